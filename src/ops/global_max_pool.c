/*
 * GlobalMaxPool: the maximum of each channel over all spatial positions,
 * N x C x D1 x ... x Dk -> N x C x 1 x ... x 1 (any k >= 1), float32.
 * Backward routes each gradient to the plane's first maximum (ties: the
 * first in memory order, as PyTorch).
 */
#include <float.h>

#include "op.h"

static void global_max_pool_forward(const evm_node *node, evm_tensor *const *in,
                                    evm_tensor *const *out, float *workspace) {
    (void)node;
    (void)workspace;
    size_t planes = out[0]->count;
    size_t plane = planes ? in[0]->count / planes : 0;
    const float *x = evm_f32(in[0]);
    float *y = evm_f32(out[0]);
    for (size_t i = 0; i < planes; i++) {
        const float *p = x + i * plane;
        float m = -FLT_MAX; /* an empty plane, as ONNX Runtime's lowest float */
        for (size_t j = 0; j < plane; j++)
            m = p[j] > m ? p[j] : m;
        y[i] = m;
    }
}

/* The same scan as forward (strict >, from -FLT_MAX), so the gradient goes
 * to the element the forward picked; a plane no element beats (all -inf or
 * NaN) gets none. */
static void global_max_pool_backward(const evm_node *node, evm_tensor *const *in,
                                     evm_tensor *const *out, const evm_tensor *grad_out,
                                     evm_tensor *const *grad_in, float *workspace) {
    (void)node;
    (void)workspace;
    size_t planes = out[0]->count;
    size_t plane = planes ? in[0]->count / planes : 0;
    const float *x = evm_f32(in[0]), *gy = evm_f32(grad_out);
    float *gx = evm_f32(grad_in[0]);
    for (size_t i = 0; i < planes; i++) {
        const float *p = x + i * plane;
        float m = -FLT_MAX;
        size_t at = plane;
        for (size_t j = 0; j < plane; j++) {
            if (p[j] > m) {
                m = p[j];
                at = j;
            }
            gx[i * plane + j] = 0.0f;
        }
        if (at < plane)
            gx[i * plane + at] = gy[i];
    }
}

const evm_op_def evm_op_global_max_pool = {
    .name = "GlobalMaxPool",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_global_pool_infer,
    .forward = global_max_pool_forward,
    .grad_inputs = 1u << 0,
    .backward = global_max_pool_backward,
    .kinks = EVM_KINKS_ARGMAX,
};
