/* ReduceL1: the sum of absolute values over the reduced axes (reduce.h),
 * summed in double; 0 for an empty set. Axes are an attribute before opset
 * 18, input 1 from then on; the noop form is the identity. Backward: the
 * output's gradient times sign(x), 0 at x = 0 (EVM_KINKS_SIGNUM, as Abs). */
#include <math.h>

#include "reduce.h"

static evmap_status reduce_l1_init(evm_node *node, evmap_error *err) {
    return evm_reduce_init(node, 18, err);
}

static float l1_value(const float *v, size_t n) {
    double s = 0.0;
    for (size_t k = 0; k < n; k++)
        s += fabs((double)v[k]);
    return (float)s;
}

static void l1_slope(const float *v, size_t n, float gy, float *gv) {
    for (size_t k = 0; k < n; k++)
        gv[k] = v[k] > 0.0f ? gy : v[k] < 0.0f ? -gy : 0.0f;
}

static void reduce_l1_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              float *workspace) {
    evm_reduce_group_forward(node, in, out, workspace, l1_value);
}

static void reduce_l1_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               const evm_tensor *grad_out, evm_tensor *const *grad_in,
                               float *workspace) {
    evm_reduce_group_backward(node, in, out, grad_out, grad_in, workspace, l1_slope);
}

const evm_op_def evm_op_reduce_l1 = {
    .name = "ReduceL1",
    .min_inputs = 1,
    .max_inputs = 2,
    .init = reduce_l1_init,
    .infer = evm_reduce_infer,
    .workspace = evm_reduce_group_workspace,
    .forward = reduce_l1_forward,
    .grad_inputs = 1u << 0,
    .backward = reduce_l1_backward,
    .backward_workspace = evm_reduce_group_workspace,
    .kinks = EVM_KINKS_SIGNUM,
};
