/*
 * Softmax on float32, numerically stable (the maximum is subtracted before
 * exp, so large inputs do not overflow), over the axes of softmax_axes.h:
 * "outer x n x inner" blocks normalised over n. Where inner > 1 the maxima
 * and sums of the inner positions are kept in the workspace so that the
 * loops still run over contiguous memory.
 */
#include <math.h>
#include <stdlib.h>

#include "softmax_axes.h"

static size_t softmax_workspace(const evm_node *node, evm_tensor *const *in,
                                evm_tensor *const *out) {
    (void)out;
    size_t outer, n, inner;
    evm_softmax_axes_split(node->params, in[0], &outer, &n, &inner);
    return inner > 1 ? 2 * inner : 0;
}

/* One contiguous row of n values. */
static void softmax_row(const float *restrict x, float *restrict y, size_t n) {
    float m = x[0];
    for (size_t i = 1; i < n; i++)
        m = x[i] > m ? x[i] : m;
    float sum = 0.0f;
    for (size_t i = 0; i < n; i++) {
        y[i] = expf(x[i] - m);
        sum += y[i];
    }
    float scale = 1.0f / sum;
    for (size_t i = 0; i < n; i++)
        y[i] *= scale;
}

/* An n x inner block normalised down its columns; m and sum hold inner floats. */
static void softmax_columns(const float *restrict x, float *restrict y, size_t n, size_t inner,
                            float *restrict m, float *restrict sum) {
    for (size_t j = 0; j < inner; j++) {
        m[j] = x[j];
        sum[j] = 0.0f;
    }
    for (size_t k = 1; k < n; k++)
        for (size_t j = 0; j < inner; j++)
            m[j] = x[k * inner + j] > m[j] ? x[k * inner + j] : m[j];
    for (size_t k = 0; k < n; k++)
        for (size_t j = 0; j < inner; j++) {
            y[k * inner + j] = expf(x[k * inner + j] - m[j]);
            sum[j] += y[k * inner + j];
        }
    for (size_t j = 0; j < inner; j++)
        sum[j] = 1.0f / sum[j];
    for (size_t k = 0; k < n; k++)
        for (size_t j = 0; j < inner; j++)
            y[k * inner + j] *= sum[j];
}

static void softmax_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                            float *workspace) {
    size_t outer, n, inner;
    evm_softmax_axes_split(node->params, in[0], &outer, &n, &inner);
    if (in[0]->count == 0)
        return;
    const float *x = evm_f32(in[0]);
    float *y = evm_f32(out[0]);
    size_t block = n * inner;
    for (size_t o = 0; o < outer; o++) {
        if (inner == 1)
            softmax_row(x + o * block, y + o * block, n);
        else
            softmax_columns(x + o * block, y + o * block, n, inner, workspace, workspace + inner);
    }
}

/* gx = y * (g - sum(g * y)) along the normalised axes, per outer block and
 * inner position; the sum in double. An inner position's values are inner
 * floats apart (contiguous for the last axis and the opset < 13 rule). */
static void softmax_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                             const evm_tensor *grad_out, evm_tensor *const *grad_in,
                             float *workspace) {
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
            double dot = 0.0;
            for (size_t k = 0; k < n; k++)
                dot += (double)g[base + k * inner] * y[base + k * inner];
            for (size_t k = 0; k < n; k++)
                gx[base + k * inner] = (float)(y[base + k * inner] * (g[base + k * inner] - dot));
        }
}

const evm_op_def evm_op_softmax = {
    .name = "Softmax",
    .min_inputs = 1,
    .max_inputs = 1,
    .init = evm_softmax_axes_init,
    .infer = evm_softmax_axes_infer,
    .forward = softmax_forward,
    .workspace = softmax_workspace,
    .grad_inputs = 1u << 0,
    .backward = softmax_backward,
    .kinks = EVM_KINKS_NONE,
};
