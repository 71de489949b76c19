/* Softplus: y = log(1 + exp(x)), element-wise on float32, computed as
 * max(x, 0) + log1p(exp(-|x|)) so that it neither overflows for large x nor
 * loses small values for very negative x. Smooth: dy/dx = sigmoid(x). */
#include <math.h>

#include "op.h"

static void softplus_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                             float *workspace) {
    (void)node;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]);
    float *restrict y = evm_f32(out[0]);
    for (size_t i = 0; i < in[0]->count; i++)
        y[i] = fmaxf(x[i], 0.0f) + log1pf(expf(-fabsf(x[i])));
}

static void softplus_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              const evm_tensor *grad_out, evm_tensor *const *grad_in,
                              float *workspace) {
    (void)node;
    (void)out;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]), *restrict gy = evm_f32(grad_out);
    float *restrict gx = evm_f32(grad_in[0]);
    for (size_t i = 0; i < in[0]->count; i++)
        gx[i] = gy[i] / (1.0f + expf(-x[i]));
}

const evm_op_def evm_op_softplus = {
    .name = "Softplus",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = softplus_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = softplus_backward,
    .kinks = EVM_KINKS_NONE,
};
