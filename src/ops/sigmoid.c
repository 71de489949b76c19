/* Sigmoid: y = 1 / (1 + exp(-x)), element-wise on float32. For very negative
 * x, exp(-x) overflows to +inf and y correctly becomes 0 (never NaN). */
#include <math.h>

#include "op.h"

static void sigmoid_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                            float *workspace) {
    (void)node;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]);
    float *restrict y = evm_f32(out[0]);
    for (size_t i = 0; i < in[0]->count; i++)
        y[i] = 1.0f / (1.0f + expf(-x[i]));
}

/* dy/dx = y (1 - y), from the output: no exp, and it stays 0 (not NaN)
 * where the forward saturated. */
static void sigmoid_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                             const evm_tensor *grad_out, evm_tensor *const *grad_in,
                             float *workspace) {
    (void)node;
    (void)in;
    (void)workspace;
    const float *restrict y = evm_f32(out[0]), *restrict gy = evm_f32(grad_out);
    float *restrict gx = evm_f32(grad_in[0]);
    for (size_t i = 0; i < out[0]->count; i++)
        gx[i] = gy[i] * y[i] * (1.0f - y[i]);
}

const evm_op_def evm_op_sigmoid = {
    .name = "Sigmoid",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = sigmoid_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = sigmoid_backward,
    .kinks = EVM_KINKS_NONE,
};
