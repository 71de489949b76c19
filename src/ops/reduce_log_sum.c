/* ReduceLogSum: log of the sum over the reduced axes (reduce.h), summed in
 * double; -inf for an empty set, NaN where the sum is negative. Axes are an
 * attribute before opset 18, input 1 from then on; the noop form is the
 * identity. Backward: the output's gradient over the sum, for every
 * element of the group. */
#include <math.h>

#include "reduce.h"

static evmap_status reduce_log_sum_init(evm_node *node, evmap_error *err) {
    return evm_reduce_init(node, 18, err);
}

static double sum(const float *v, size_t n) {
    double s = 0.0;
    for (size_t k = 0; k < n; k++)
        s += v[k];
    return s;
}

static float log_sum_value(const float *v, size_t n) {
    return (float)log(sum(v, n));
}

static void log_sum_slope(const float *v, size_t n, float gy, float *gv) {
    float g = (float)(gy / sum(v, n));
    for (size_t k = 0; k < n; k++)
        gv[k] = g;
}

static void reduce_log_sum_forward(const evm_node *node, evm_tensor *const *in,
                                   evm_tensor *const *out, float *workspace) {
    evm_reduce_group_forward(node, in, out, workspace, log_sum_value);
}

static void reduce_log_sum_backward(const evm_node *node, evm_tensor *const *in,
                                    evm_tensor *const *out, const evm_tensor *grad_out,
                                    evm_tensor *const *grad_in, float *workspace) {
    evm_reduce_group_backward(node, in, out, grad_out, grad_in, workspace, log_sum_slope);
}

const evm_op_def evm_op_reduce_log_sum = {
    .name = "ReduceLogSum",
    .min_inputs = 1,
    .max_inputs = 2,
    .init = reduce_log_sum_init,
    .infer = evm_reduce_infer,
    .workspace = evm_reduce_group_workspace,
    .forward = reduce_log_sum_forward,
    .grad_inputs = 1u << 0,
    .backward = reduce_log_sum_backward,
    .backward_workspace = evm_reduce_group_workspace,
    .kinks = EVM_KINKS_NONE,
};
