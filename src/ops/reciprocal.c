/* Reciprocal: y = 1 / x; dy/dx = -1 / x^2 = -y^2. Element-wise on float32. */
#include <math.h>

#include "op.h"

static void reciprocal_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               float *workspace) {
    (void)node;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]);
    float *restrict y = evm_f32(out[0]);
    for (size_t i = 0; i < in[0]->count; i++)
        y[i] = 1.0f / x[i];
}

static void reciprocal_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                const evm_tensor *grad_out, evm_tensor *const *grad_in,
                                float *workspace) {
    (void)node;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]), *restrict y = evm_f32(out[0]);
    const float *restrict gy = evm_f32(grad_out);
    float *restrict gx = evm_f32(grad_in[0]);
    (void)x;
    for (size_t i = 0; i < in[0]->count; i++)
        gx[i] = -gy[i] * y[i] * y[i];
}

const evm_op_def evm_op_reciprocal = {
    .name = "Reciprocal",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = reciprocal_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = reciprocal_backward,
    .kinks = EVM_KINKS_NONE,
};
