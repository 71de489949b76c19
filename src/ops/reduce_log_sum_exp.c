/* ReduceLogSumExp: log(sum(exp(x))) over the reduced axes (reduce.h),
 * computed as m + log(sum(exp(x - m))) with m the group's maximum, in
 * double, so that large inputs do not overflow; -inf for an empty set (and
 * for a group of -inf), +inf when the group holds +inf. Axes are an
 * attribute before opset 18, input 1 from then on; the noop form is the
 * identity. Backward: the output's gradient times softmax(x) over the
 * group. */
#include <math.h>

#include "reduce.h"

static evmap_status reduce_log_sum_exp_init(evm_node *node, evmap_error *err) {
    return evm_reduce_init(node, 18, err);
}

static double log_sum_exp(const float *v, size_t n) {
    double m = -INFINITY;
    for (size_t k = 0; k < n; k++)
        if (v[k] > m || isnan(v[k]))
            m = v[k];
    if (!isfinite(m))
        return m; /* empty, all -inf, +inf or NaN */
    double s = 0.0;
    for (size_t k = 0; k < n; k++)
        s += exp(v[k] - m);
    return m + log(s);
}

static float log_sum_exp_value(const float *v, size_t n) {
    return (float)log_sum_exp(v, n);
}

static void log_sum_exp_slope(const float *v, size_t n, float gy, float *gv) {
    double y = log_sum_exp(v, n);
    for (size_t k = 0; k < n; k++)
        gv[k] = (float)(gy * exp(v[k] - y));
}

static void reduce_log_sum_exp_forward(const evm_node *node, evm_tensor *const *in,
                                       evm_tensor *const *out, float *workspace) {
    evm_reduce_group_forward(node, in, out, workspace, log_sum_exp_value);
}

static void reduce_log_sum_exp_backward(const evm_node *node, evm_tensor *const *in,
                                        evm_tensor *const *out, const evm_tensor *grad_out,
                                        evm_tensor *const *grad_in, float *workspace) {
    evm_reduce_group_backward(node, in, out, grad_out, grad_in, workspace, log_sum_exp_slope);
}

const evm_op_def evm_op_reduce_log_sum_exp = {
    .name = "ReduceLogSumExp",
    .min_inputs = 1,
    .max_inputs = 2,
    .init = reduce_log_sum_exp_init,
    .infer = evm_reduce_infer,
    .workspace = evm_reduce_group_workspace,
    .forward = reduce_log_sum_exp_forward,
    .grad_inputs = 1u << 0,
    .backward = reduce_log_sum_exp_backward,
    .backward_workspace = evm_reduce_group_workspace,
    .kinks = EVM_KINKS_NONE,
};
