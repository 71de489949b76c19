/*
 * GlobalAveragePool: the mean of each channel over all spatial positions,
 * N x C x D1 x ... x Dk -> N x C x 1 x ... x 1 (any k >= 1), float32.
 * Sums in double so that large planes do not lose precision.
 */
#include "op.h"

static void global_average_pool_forward(const evm_node *node, evm_tensor *const *in,
                                        evm_tensor *const *out, float *workspace) {
    (void)node;
    (void)workspace;
    size_t planes = out[0]->count;
    size_t plane = planes ? in[0]->count / planes : 0;
    const float *x = evm_f32(in[0]);
    float *y = evm_f32(out[0]);
    for (size_t i = 0; i < planes; i++) {
        const float *p = x + i * plane;
        double sum = 0.0;
        for (size_t j = 0; j < plane; j++)
            sum += p[j];
        y[i] = plane ? (float)(sum / (double)plane) : 0.0f;
    }
}

/* Each output's gradient spread evenly over its plane (1 / plane each). */
static void global_average_pool_backward(const evm_node *node, evm_tensor *const *in,
                                         evm_tensor *const *out, const evm_tensor *grad_out,
                                         evm_tensor *const *grad_in, float *workspace) {
    (void)node;
    (void)workspace;
    size_t planes = out[0]->count;
    size_t plane = planes ? in[0]->count / planes : 0;
    const float *gy = evm_f32(grad_out);
    float *gx = evm_f32(grad_in[0]);
    for (size_t i = 0; i < planes; i++) {
        float g = (float)((double)gy[i] / (double)plane);
        for (size_t j = 0; j < plane; j++)
            gx[i * plane + j] = g;
    }
}

const evm_op_def evm_op_global_average_pool = {
    .name = "GlobalAveragePool",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_global_pool_infer,
    .forward = global_average_pool_forward,
    .grad_inputs = 1u << 0,
    .backward = global_average_pool_backward,
    .kinks = EVM_KINKS_NONE,
};
