/* Mish (opset 18): y = x * tanh(softplus(x)), element-wise on float32, with
 * softplus computed without overflow (as in softplus.c). Smooth:
 * dy/dx = t + x (1 - t^2) sigmoid(x), t = tanh(softplus(x)). */
#include <math.h>

#include "op.h"

static inline float softplus(float x) {
    return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
}

static void mish_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         float *workspace) {
    (void)node;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]);
    float *restrict y = evm_f32(out[0]);
    for (size_t i = 0; i < in[0]->count; i++)
        y[i] = x[i] * tanhf(softplus(x[i]));
}

static void mish_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                          const evm_tensor *grad_out, evm_tensor *const *grad_in,
                          float *workspace) {
    (void)node;
    (void)out;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]), *restrict gy = evm_f32(grad_out);
    float *restrict gx = evm_f32(grad_in[0]);
    for (size_t i = 0; i < in[0]->count; i++) {
        float t = tanhf(softplus(x[i]));
        float s = 1.0f / (1.0f + expf(-x[i]));
        gx[i] = gy[i] * (t + x[i] * (1.0f - t * t) * s);
    }
}

const evm_op_def evm_op_mish = {
    .name = "Mish",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = mish_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = mish_backward,
    .kinks = EVM_KINKS_NONE,
};
