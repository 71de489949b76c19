/* Log: y = ln x (-inf at 0, NaN below); dy/dx = 1 / x. Element-wise on float32. */
#include <math.h>

#include "op.h"

static void log_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace) {
    (void)node;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]);
    float *restrict y = evm_f32(out[0]);
    for (size_t i = 0; i < in[0]->count; i++)
        y[i] = logf(x[i]);
}

static void log_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace) {
    (void)node;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]), *restrict y = evm_f32(out[0]);
    const float *restrict gy = evm_f32(grad_out);
    float *restrict gx = evm_f32(grad_in[0]);
    (void)y;
    for (size_t i = 0; i < in[0]->count; i++)
        gx[i] = gy[i] / x[i];
}

const evm_op_def evm_op_log = {
    .name = "Log",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = log_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = log_backward,
    .kinks = EVM_KINKS_NONE,
};
