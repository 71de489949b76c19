/* Sqrt: y = sqrt(x), NaN for x < 0; dy/dx = 1 / (2 y), infinite at 0. Element-wise on float32. */
#include <math.h>

#include "op.h"

static void sqrt_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         float *workspace) {
    (void)node;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]);
    float *restrict y = evm_f32(out[0]);
    for (size_t i = 0; i < in[0]->count; i++)
        y[i] = sqrtf(x[i]);
}

static void sqrt_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                          const evm_tensor *grad_out, evm_tensor *const *grad_in,
                          float *workspace) {
    (void)node;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]), *restrict y = evm_f32(out[0]);
    const float *restrict gy = evm_f32(grad_out);
    float *restrict gx = evm_f32(grad_in[0]);
    (void)x;
    for (size_t i = 0; i < in[0]->count; i++)
        gx[i] = gy[i] * 0.5f / y[i];
}

const evm_op_def evm_op_sqrt = {
    .name = "Sqrt",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = sqrt_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = sqrt_backward,
    .kinks = EVM_KINKS_NONE,
};
