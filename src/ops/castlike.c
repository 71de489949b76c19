/*
 * CastLike: converts input 0 to the element type of input 1 (whose values
 * are not read), with Cast's conversions (cast.c): float32, int64 and bool.
 * 'saturate' (opset 19) only concerns float8 targets, which evmap refuses,
 * so it is read and has no effect. Backward: float -> float is the
 * identity for input 0; input 1's values do not reach the output, so its
 * gradient is 0. Other casts leave float and stop gradients.
 */
#include <string.h>

#include "op.h"

static evmap_status castlike_init(evm_node *node, evmap_error *err) {
    int64_t saturate = 1;
    if (node->opset >= 19)
        return evm_attr_int(node, "saturate", 1, &saturate, err);
    return EVMAP_OK;
}

static evmap_status castlike_infer(const evm_node *node, evm_tensor *const *in,
                                   evm_tensor *const *out, evmap_error *err) {
    if (!in[1])
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "needs input 1 (target_type), whose data type it converts to");
    for (int i = 0; i < 2; i++)
        if (evm_dtype_size(in[i]->dtype) == 0)
            return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                                 "input %d has data type %s; evmap supports float32, int64 and "
                                 "bool",
                                 i, evm_dtype_name(in[i]->dtype));
    out[0]->dtype = in[1]->dtype;
    return evm_tensor_set_shape(out[0], in[0]->rank, in[0]->dims, err);
}

/* Only float -> float casts get a gradient (the others have no float path). */
static void castlike_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              const evm_tensor *grad_out, evm_tensor *const *grad_in,
                              float *workspace) {
    if (grad_in[0])
        evm_op_backward_copy(node, in, out, grad_out, grad_in, workspace);
    if (grad_in[1] && in[1]->count)
        memset(evm_f32(grad_in[1]), 0, in[1]->count * sizeof(float));
}

const evm_op_def evm_op_castlike = {
    .name = "CastLike",
    .min_inputs = 2,
    .max_inputs = 2,
    .init = castlike_init,
    .infer = castlike_infer,
    .forward = evm_cast_forward,
    .grad_inputs = 1u << 0 | 1u << 1,
    .backward = castlike_backward,
    .kinks = EVM_KINKS_NONE,
};
