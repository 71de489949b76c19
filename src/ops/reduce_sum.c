/* ReduceSum: the sum over the reduced axes (reduce.h), accumulated in
 * double. Axes are an attribute before opset 13, input 1 from then on. */

#include "reduce.h"

static evmap_status reduce_sum_init(evm_node *node, evmap_error *err) {
    return evm_reduce_init(node, 13, err);
}

static void reduce_sum_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               float *workspace) {
    (void)workspace;
    evm_reduce_sum_forward(node, in, out, false);
}

/* Every reduced element gets its output's gradient (also the noop form). */
static void reduce_sum_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                const evm_tensor *grad_out, evm_tensor *const *grad_in,
                                float *workspace) {
    (void)out;
    (void)workspace;
    evm_reduce_sum_backward(node, in, grad_out, grad_in, false);
}

const evm_op_def evm_op_reduce_sum = {
    .name = "ReduceSum",
    .min_inputs = 1,
    .max_inputs = 2,
    .init = reduce_sum_init,
    .infer = evm_reduce_infer,
    .forward = reduce_sum_forward,
    .grad_inputs = 1u << 0,
    .backward = reduce_sum_backward,
    .kinks = EVM_KINKS_NONE,
};
