/* ReduceMean: the mean over the reduced axes (reduce.h), summed in
 * double. Axes are an attribute before opset 18, input 1 from then on. */

#include "reduce.h"

static evmap_status reduce_mean_init(evm_node *node, evmap_error *err) {
    return evm_reduce_init(node, 18, err);
}

static void reduce_mean_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                float *workspace) {
    (void)workspace;
    evm_reduce_sum_forward(node, in, out, true);
}

/* Every reduced element gets its output's gradient over the count (the noop
 * form: the gradient itself, as the count is 1). */
static void reduce_mean_backward(const evm_node *node, evm_tensor *const *in,
                                 evm_tensor *const *out, const evm_tensor *grad_out,
                                 evm_tensor *const *grad_in, float *workspace) {
    (void)out;
    (void)workspace;
    evm_reduce_sum_backward(node, in, grad_out, grad_in, true);
}

const evm_op_def evm_op_reduce_mean = {
    .name = "ReduceMean",
    .min_inputs = 1,
    .max_inputs = 2,
    .init = reduce_mean_init,
    .infer = evm_reduce_infer,
    .forward = reduce_mean_forward,
    .grad_inputs = 1u << 0,
    .backward = reduce_mean_backward,
    .kinks = EVM_KINKS_NONE,
};
