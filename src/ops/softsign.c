/* Softsign: y = x / (1 + |x|), element-wise on float32. Its derivative
 * 1 / (1 + |x|)^2 is continuous (|x|'s kink only reaches the second
 * derivative), so there is no kink to declare. */
#include <math.h>

#include "op.h"

static void softsign_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                             float *workspace) {
    (void)node;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]);
    float *restrict y = evm_f32(out[0]);
    for (size_t i = 0; i < in[0]->count; i++)
        y[i] = x[i] / (1.0f + fabsf(x[i]));
}

static void softsign_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              const evm_tensor *grad_out, evm_tensor *const *grad_in,
                              float *workspace) {
    (void)node;
    (void)out;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]), *restrict gy = evm_f32(grad_out);
    float *restrict gx = evm_f32(grad_in[0]);
    for (size_t i = 0; i < in[0]->count; i++) {
        float d = 1.0f + fabsf(x[i]);
        gx[i] = gy[i] / (d * d);
    }
}

const evm_op_def evm_op_softsign = {
    .name = "Softsign",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = softsign_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = softsign_backward,
    .kinks = EVM_KINKS_NONE,
};
