/*
 * InstanceNormalization: each channel of each image (x is N x C x D1...,
 * rank >= 3) is normalised over its spatial positions,
 * y = scale[c] * (x - mean) / sqrt(var + epsilon) + B[c] (epsilon default
 * 1e-5); statistics in double. Backward: x only (scale and B are weights).
 */
#include <math.h>

#include "op.h"

typedef struct in_params {
    float epsilon;
} in_params;

static evmap_status in_init(evm_node *node, evmap_error *err) {
    in_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    evmap_status st = evm_attr_float(node, "epsilon", 1e-5f, &p->epsilon, err);
    if (st == EVMAP_OK && !(p->epsilon >= 0))
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "epsilon must not be negative");
    return st;
}

static evmap_status in_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                             evmap_error *err) {
    evmap_status st = EVMAP_OK;
    for (int i = 0; i < 3 && st == EVMAP_OK; i++)
        st = evm_op_require_float(node, in, i, err);
    if (st != EVMAP_OK)
        return st;
    const evm_tensor *x = in[0];
    if (x->rank < 3)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "input 0 has rank %d; it must be N x C x D1 x ... (rank >= 3)",
                             x->rank);
    for (int i = 1; i < 3; i++)
        if (in[i]->rank != 1 || in[i]->dims[0] != x->dims[1]) {
            char s[EVM_SHAPE_STR_SIZE];
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "input %d has shape %s; it must be [%lld] (one per channel)", i,
                                 evm_shape_str(in[i], s, sizeof s), (long long)x->dims[1]);
        }
    return evm_op_infer_same(node, in, out, err);
}

static void stats(const float *x, size_t n, float epsilon, double *mean, double *inv) {
    double s = 0, v = 0;
    for (size_t k = 0; k < n; k++)
        s += x[k];
    double m = n ? s / (double)n : 0;
    for (size_t k = 0; k < n; k++)
        v += ((double)x[k] - m) * ((double)x[k] - m);
    *mean = m;
    *inv = 1.0 / sqrt((n ? v / (double)n : 0) + epsilon);
}

static void in_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                       float *workspace) {
    (void)workspace;
    const in_params *p = node->params;
    const evm_tensor *x = in[0];
    size_t c = (size_t)x->dims[1], planes = (size_t)x->dims[0] * c;
    size_t n = planes ? x->count / planes : 0;
    for (size_t q = 0; q < planes; q++) {
        const float *xs = evm_f32(x) + q * n;
        float *ys = evm_f32(out[0]) + q * n;
        double mean, inv;
        stats(xs, n, p->epsilon, &mean, &inv);
        double w = evm_f32(in[1])[q % c], b = evm_f32(in[2])[q % c];
        for (size_t k = 0; k < n; k++)
            ys[k] = (float)(((double)xs[k] - mean) * inv * w + b);
    }
}

/* gx = scale * inv * (g - mean(g) - h * mean(g * h)), h the normalised x. */
static void in_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace) {
    (void)out;
    (void)workspace;
    const in_params *p = node->params;
    const evm_tensor *x = in[0];
    size_t c = (size_t)x->dims[1], planes = (size_t)x->dims[0] * c;
    size_t n = planes ? x->count / planes : 0;
    for (size_t q = 0; q < planes; q++) {
        const float *xs = evm_f32(x) + q * n, *g = evm_f32(grad_out) + q * n;
        float *gx = evm_f32(grad_in[0]) + q * n;
        double mean, inv, m1 = 0, m2 = 0;
        stats(xs, n, p->epsilon, &mean, &inv);
        for (size_t k = 0; k < n; k++) {
            m1 += g[k];
            m2 += g[k] * ((double)xs[k] - mean) * inv;
        }
        m1 /= (double)n;
        m2 /= (double)n;
        double w = evm_f32(in[1])[q % c];
        for (size_t k = 0; k < n; k++)
            gx[k] = (float)(w * inv * (g[k] - m1 - ((double)xs[k] - mean) * inv * m2));
    }
}

const evm_op_def evm_op_instance_normalization = {
    .name = "InstanceNormalization",
    .min_inputs = 3,
    .max_inputs = 3,
    .init = in_init,
    .infer = in_infer,
    .forward = in_forward,
    .grad_inputs = 1u << 0,
    .backward = in_backward,
    .kinks = EVM_KINKS_NONE,
};
