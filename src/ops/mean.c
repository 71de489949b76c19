/* Mean: y = (in[0] + ... + in[n-1]) / n, 1..N float32 inputs with numpy
 * broadcasting from opset 8 (equal shapes before). */
#include <limits.h>

#include "variadic.h"

#define ADD_F(x, y) ((x) + (y))

EVM_DEFINE_ROW_KERNELS(sum_f32, float, float, float, ADD_F)

static evmap_status mean_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               evmap_error *err) {
    return evm_variadic_infer(node, in, out, false, err);
}

static void mean_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         float *workspace) {
    (void)workspace;
    evm_variadic_forward(node, &sum_f32, in, out);
    float n = (float)node->n_inputs, *y = evm_f32(out[0]);
    for (size_t i = 0; i < out[0]->count; i++)
        y[i] /= n;
}

static void mean_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                          const evm_tensor *grad_out, evm_tensor *const *grad_in,
                          float *workspace) {
    (void)out;
    (void)workspace;
    evm_variadic_backward_sum(node, 1.0f / (float)node->n_inputs, in, grad_out, grad_in);
}

const evm_op_def evm_op_mean = {
    .name = "Mean",
    .min_inputs = 1,
    .max_inputs = INT_MAX, /* variadic */
    .infer = mean_infer,
    .forward = mean_forward,
    .elementwise = true,
    .grad_inputs = ~0u,
    .backward = mean_backward,
    .kinks = EVM_KINKS_NONE,
};
