/* Erf: y = erf(x); dy/dx = 2 / sqrt(pi) e^(-x^2). Element-wise on float32. */
#include <math.h>

#include "op.h"

static void erf_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace) {
    (void)node;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]);
    float *restrict y = evm_f32(out[0]);
    for (size_t i = 0; i < in[0]->count; i++)
        y[i] = erff(x[i]);
}

static void erf_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace) {
    (void)node;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]), *restrict y = evm_f32(out[0]);
    const float *restrict gy = evm_f32(grad_out);
    float *restrict gx = evm_f32(grad_in[0]);
    (void)y;
    for (size_t i = 0; i < in[0]->count; i++)
        gx[i] = gy[i] * 1.1283791670955126f * expf(-x[i] * x[i]);
}

const evm_op_def evm_op_erf = {
    .name = "Erf",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = erf_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = erf_backward,
    .kinks = EVM_KINKS_NONE,
};
