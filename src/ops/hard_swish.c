/* HardSwish (opset 14): y = x * max(0, min(1, alpha * x + beta)) with
 * alpha = 1/6 and beta = 0.5 (no attributes), element-wise on float32.
 * v = alpha * x + beta is rounded as in EVM_KINKS_HARD. */
#include "op.h"

#define HS_ALPHA (1.0f / 6.0f)
#define HS_BETA 0.5f

static void hard_swish_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               float *workspace) {
    (void)node;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]);
    float *restrict y = evm_f32(out[0]);
    for (size_t i = 0; i < in[0]->count; i++) {
        float ax = HS_ALPHA * x[i]; /* a statement of its own: never contracted */
        float v = ax + HS_BETA;
        y[i] = x[i] * (v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v);
    }
}

/* dy/dx: 0 where v < 0, 1 where v > 1, alpha * x + v = 2 x / 6 + 0.5 in
 * between, bounds included (at x = -3 slope -0.5, at x = 3 slope 1.5, as
 * PyTorch's hardswish). */
static void hard_swish_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                const evm_tensor *grad_out, evm_tensor *const *grad_in,
                                float *workspace) {
    (void)node;
    (void)out;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]), *restrict gy = evm_f32(grad_out);
    float *restrict gx = evm_f32(grad_in[0]);
    for (size_t i = 0; i < in[0]->count; i++) {
        float ax = HS_ALPHA * x[i];
        float v = ax + HS_BETA;
        float g = gy[i];
        gx[i] = v < 0.0f ? 0.0f : v > 1.0f ? g : g * (ax + v);
    }
}

const evm_op_def evm_op_hard_swish = {
    .name = "HardSwish",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = hard_swish_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = hard_swish_backward,
    .kinks = EVM_KINKS_HARD,
};
