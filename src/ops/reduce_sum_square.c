/* ReduceSumSquare: the sum of squares over the reduced axes (reduce.h),
 * summed in double; 0 for an empty set. Axes are an attribute before opset
 * 18, input 1 from then on; the noop form is the identity. Backward:
 * 2 x times the output's gradient. */
#include "reduce.h"

static evmap_status reduce_sum_square_init(evm_node *node, evmap_error *err) {
    return evm_reduce_init(node, 18, err);
}

static float sum_square_value(const float *v, size_t n) {
    double s = 0.0;
    for (size_t k = 0; k < n; k++)
        s += (double)v[k] * v[k];
    return (float)s;
}

static void sum_square_slope(const float *v, size_t n, float gy, float *gv) {
    for (size_t k = 0; k < n; k++)
        gv[k] = (float)(2.0 * v[k] * gy);
}

static void reduce_sum_square_forward(const evm_node *node, evm_tensor *const *in,
                                      evm_tensor *const *out, float *workspace) {
    evm_reduce_group_forward(node, in, out, workspace, sum_square_value);
}

static void reduce_sum_square_backward(const evm_node *node, evm_tensor *const *in,
                                       evm_tensor *const *out, const evm_tensor *grad_out,
                                       evm_tensor *const *grad_in, float *workspace) {
    evm_reduce_group_backward(node, in, out, grad_out, grad_in, workspace, sum_square_slope);
}

const evm_op_def evm_op_reduce_sum_square = {
    .name = "ReduceSumSquare",
    .min_inputs = 1,
    .max_inputs = 2,
    .init = reduce_sum_square_init,
    .infer = evm_reduce_infer,
    .workspace = evm_reduce_group_workspace,
    .forward = reduce_sum_square_forward,
    .grad_inputs = 1u << 0,
    .backward = reduce_sum_square_backward,
    .backward_workspace = evm_reduce_group_workspace,
    .kinks = EVM_KINKS_NONE,
};
