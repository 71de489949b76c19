/* Not: element-wise logical negation of a bool tensor. */
#include "op.h"

static evmap_status not_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              evmap_error *err) {
    if (in[0]->dtype != EVM_DTYPE_BOOL)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "input has data type %s; Not takes bool",
                             evm_dtype_name(in[0]->dtype));
    out[0]->dtype = EVM_DTYPE_BOOL;
    return evm_tensor_set_shape(out[0], in[0]->rank, in[0]->dims, err);
}

static void not_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace) {
    (void)node;
    (void)workspace;
    const uint8_t *x = evm_bool(in[0]);
    uint8_t *y = evm_bool(out[0]);
    for (size_t i = 0; i < in[0]->count; i++)
        y[i] = !x[i];
}

const evm_op_def evm_op_not = {
    .name = "Not",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = not_infer,
    .forward = not_forward,
};
