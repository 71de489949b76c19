/* ReduceMin: the smallest value over the reduced axes (reduce.h); +inf for
 * an empty set. Axes are an attribute before opset 18, input 1 from then
 * on. Backward sends each output's gradient to the first minimum in
 * row-major order of the reduced axes (EVM_KINKS_ARGMIN); NaN inputs are
 * never taken as a minimum unless first. */
#include <math.h>

#include "reduce.h"

static evmap_status reduce_min_init(evm_node *node, evmap_error *err) {
    return evm_reduce_init(node, 18, err);
}

static size_t first_min(const float *v, size_t n) {
    size_t best = 0;
    for (size_t k = 1; k < n; k++)
        if (v[k] < v[best])
            best = k;
    return best;
}

static float min_value(const float *v, size_t n) {
    return n ? v[first_min(v, n)] : INFINITY;
}

static void min_slope(const float *v, size_t n, float gy, float *gv) {
    for (size_t k = 0; k < n; k++)
        gv[k] = 0.0f;
    gv[first_min(v, n)] = gy;
}

static void reduce_min_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               float *workspace) {
    evm_reduce_group_forward(node, in, out, workspace, min_value);
}

static void reduce_min_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                const evm_tensor *grad_out, evm_tensor *const *grad_in,
                                float *workspace) {
    evm_reduce_group_backward(node, in, out, grad_out, grad_in, workspace, min_slope);
}

const evm_op_def evm_op_reduce_min = {
    .name = "ReduceMin",
    .min_inputs = 1,
    .max_inputs = 2,
    .init = reduce_min_init,
    .infer = evm_reduce_infer,
    .workspace = evm_reduce_group_workspace,
    .forward = reduce_min_forward,
    .grad_inputs = 1u << 0,
    .backward = reduce_min_backward,
    .backward_workspace = evm_reduce_group_workspace,
    .kinks = EVM_KINKS_ARGMIN,
};
