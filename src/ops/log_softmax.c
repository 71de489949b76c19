/*
 * LogSoftmax on float32: y = x - m - log(sum(exp(x - m))) along Softmax's
 * axes (softmax_axes.h), m their maximum (so that large inputs do not
 * overflow; the sum in double).
 */
#include <math.h>

#include "softmax_axes.h"

static void log_softmax_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                float *workspace) {
    (void)workspace;
    size_t outer, n, inner;
    evm_softmax_axes_split(node->params, in[0], &outer, &n, &inner);
    if (in[0]->count == 0)
        return;
    const float *x = evm_f32(in[0]);
    float *y = evm_f32(out[0]);
    for (size_t o = 0; o < outer; o++)
        for (size_t j = 0; j < inner; j++) {
            size_t base = o * n * inner + j;
            float m = x[base];
            for (size_t k = 1; k < n; k++)
                m = x[base + k * inner] > m ? x[base + k * inner] : m;
            double sum = 0.0;
            for (size_t k = 0; k < n; k++)
                sum += exp((double)x[base + k * inner] - m);
            double shift = m + log(sum);
            for (size_t k = 0; k < n; k++)
                y[base + k * inner] = (float)(x[base + k * inner] - shift);
        }
}

/* gx = g - softmax(x) * sum(g) along the normalised axes, softmax(x) =
 * exp(y); the sum in double. */
static void log_softmax_backward(const evm_node *node, evm_tensor *const *in,
                                 evm_tensor *const *out, const evm_tensor *grad_out,
                                 evm_tensor *const *grad_in, float *workspace) {
    (void)workspace;
    size_t outer, n, inner;
    evm_softmax_axes_split(node->params, in[0], &outer, &n, &inner);
    if (in[0]->count == 0)
        return;
    const float *y = evm_f32(out[0]), *g = evm_f32(grad_out);
    float *gx = evm_f32(grad_in[0]);
    for (size_t o = 0; o < outer; o++)
        for (size_t j = 0; j < inner; j++) {
            size_t base = o * n * inner + j;
            double sum = 0.0;
            for (size_t k = 0; k < n; k++)
                sum += g[base + k * inner];
            for (size_t k = 0; k < n; k++)
                gx[base + k * inner] =
                    (float)(g[base + k * inner] - exp((double)y[base + k * inner]) * sum);
        }
}

const evm_op_def evm_op_log_softmax = {
    .name = "LogSoftmax",
    .min_inputs = 1,
    .max_inputs = 1,
    .init = evm_softmax_axes_init,
    .infer = evm_softmax_axes_infer,
    .forward = log_softmax_forward,
    .grad_inputs = 1u << 0,
    .backward = log_softmax_backward,
    .kinks = EVM_KINKS_NONE,
};
