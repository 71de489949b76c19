/* ReduceProd: the product over the reduced axes (reduce.h), multiplied in
 * double; 1 for an empty set. Axes are an attribute before opset 18,
 * input 1 from then on. Backward: each element gets the product of the
 * others (taken without dividing, so that zeros are exact: with one zero
 * only that element's slope is nonzero, with two or more every slope is
 * 0). A polynomial: no kinks. */
#include "reduce.h"

static evmap_status reduce_prod_init(evm_node *node, evmap_error *err) {
    return evm_reduce_init(node, 18, err);
}

static float prod_value(const float *v, size_t n) {
    double p = 1.0;
    for (size_t k = 0; k < n; k++)
        p *= v[k];
    return (float)p;
}

static void prod_slope(const float *v, size_t n, float gy, float *gv) {
    size_t zeros = 0, zero_at = 0;
    double p = 1.0; /* product of the nonzero values */
    for (size_t k = 0; k < n; k++) {
        if (v[k] == 0.0f) {
            zeros++;
            zero_at = k;
        } else {
            p *= v[k];
        }
    }
    for (size_t k = 0; k < n; k++)
        gv[k] = zeros ? 0.0f : (float)(gy * (p / v[k]));
    if (zeros == 1)
        gv[zero_at] = (float)(gy * p);
}

static void reduce_prod_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                float *workspace) {
    evm_reduce_group_forward(node, in, out, workspace, prod_value);
}

static void reduce_prod_backward(const evm_node *node, evm_tensor *const *in,
                                 evm_tensor *const *out, const evm_tensor *grad_out,
                                 evm_tensor *const *grad_in, float *workspace) {
    evm_reduce_group_backward(node, in, out, grad_out, grad_in, workspace, prod_slope);
}

const evm_op_def evm_op_reduce_prod = {
    .name = "ReduceProd",
    .min_inputs = 1,
    .max_inputs = 2,
    .init = reduce_prod_init,
    .infer = evm_reduce_infer,
    .workspace = evm_reduce_group_workspace,
    .forward = reduce_prod_forward,
    .grad_inputs = 1u << 0,
    .backward = reduce_prod_backward,
    .backward_workspace = evm_reduce_group_workspace,
    .kinks = EVM_KINKS_NONE,
};
