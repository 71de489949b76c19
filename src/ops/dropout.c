/*
 * Dropout at inference: y = x (float32). The optional ratio input (opset 12+)
 * and the ratio attribute (older opsets) do not matter then. A training_mode
 * input, if given, must be a constant false: evmap never trains. The optional
 * mask output is boolean, a type evmap does not have, so a node that asks for
 * it is rejected.
 */
#include <string.h>

#include "op.h"

static evmap_status dropout_init(evm_node *node, evmap_error *err) {
    if (node->n_outputs > 1 && node->outputs[1] != EVM_NO_VALUE)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "the 'mask' output (boolean) is not supported; only the first "
                             "output may be used");
    /* The drop ratio and the seed only matter in training. */
    evm_attr_ignore(node, "ratio");
    evm_attr_ignore(node, "seed");
    int64_t is_test;
    evmap_status st = evm_attr_int(node, "is_test", 1, &is_test, err);
    if (st == EVMAP_OK && is_test == 0 && node->opset < 7)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "is_test=0 (training) is not supported");
    return st;
}

/* True when the training_mode input t is known to be false. */
static bool is_false_constant(const evm_tensor *t) {
    if (!t->is_const || !t->data || t->count != 1)
        return false;
    if (t->dtype == EVM_DTYPE_INT64)
        return evm_i64(t)[0] == 0;
    if (t->dtype == EVM_DTYPE_FLOAT)
        return evm_f32(t)[0] == 0.0f;
    return false;
}

static evmap_status dropout_infer(const evm_node *node, evm_tensor *const *in,
                                  evm_tensor *const *out, evmap_error *err) {
    if (node->n_inputs > 2 && in[2] && !is_false_constant(in[2]))
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "input 2 ('training_mode') must be a constant false; training-mode "
                             "dropout is not supported");
    return evm_op_infer_same(node, in, out, err);
}

const evm_op_def evm_op_dropout = {
    .name = "Dropout",
    .min_inputs = 1,
    .max_inputs = 3,
    .init = dropout_init,
    .infer = dropout_infer,
    .forward = evm_op_forward_copy,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = evm_op_backward_copy,
    .kinks = EVM_KINKS_NONE,
};
