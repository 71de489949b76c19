/*
 * BatchNormalization, inference form: y = (x - mean) / sqrt(var + epsilon) *
 * scale + B per channel (axis 1) of an N x C x ... float32 tensor. The loader
 * folds most of these into the preceding Conv; this op covers the rest.
 * Training (training_mode = 1, or the running-statistics outputs) and
 * spatial = 0 (per-element statistics, opsets < 9) are rejected at init.
 * Invariants: infer checked that the four parameters hold C values each.
 */
#include <math.h>
#include <stdlib.h>

#include "op.h"

typedef struct bn_params {
    float epsilon; /* added to the variance */
} bn_params;

static evmap_status batch_normalization_init(evm_node *node, evmap_error *err) {
    for (int i = 1; i < node->n_outputs; i++)
        if (node->outputs[i] != EVM_NO_VALUE)
            return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                                 "training-mode outputs (running mean and variance) are not "
                                 "supported; export the model in eval mode");
    int64_t training_mode, spatial;
    bn_params p;
    evmap_status st = evm_attr_int(node, "training_mode", 0, &training_mode, err);
    if (st == EVMAP_OK)
        st = evm_attr_int(node, "spatial", 1, &spatial, err);
    if (st == EVMAP_OK)
        st = evm_attr_float(node, "epsilon", 1e-5f, &p.epsilon, err);
    if (st != EVMAP_OK)
        return st;
    if (training_mode != 0)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "training_mode=%lld is not supported; export the model in eval mode",
                             (long long)training_mode);
    if (spatial != 1)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "spatial=%lld (per-element statistics) is not supported",
                             (long long)spatial);
    if (!(p.epsilon >= 0.0f))
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "epsilon %g is negative",
                             (double)p.epsilon);
    /* momentum and is_test only matter for training. */
    evm_attr_ignore(node, "momentum");
    evm_attr_ignore(node, "is_test");
    return evm_node_set_params(node, &p, sizeof p, err);
}

static evmap_status batch_normalization_infer(const evm_node *node, evm_tensor *const *in,
                                              evm_tensor *const *out, evmap_error *err) {
    static const char *const names[5] = {"X", "scale", "B", "mean", "var"};
    for (int i = 0; i < 5; i++) {
        evmap_status st = evm_op_require_float(node, in, i, err);
        if (st != EVMAP_OK)
            return st;
    }
    const evm_tensor *x = in[0];
    char buf[EVM_SHAPE_STR_SIZE];
    if (x->rank < 2)
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "input has shape %s; expected N x C x ...",
                             evm_shape_str(x, buf, sizeof buf));
    for (int i = 1; i < 5; i++)
        if (in[i]->rank != 1 || in[i]->dims[0] != x->dims[1])
            return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                                 "%s has shape %s but the input has %lld channels", names[i],
                                 evm_shape_str(in[i], buf, sizeof buf), (long long)x->dims[1]);
    out[0]->dtype = EVM_DTYPE_FLOAT;
    return evm_tensor_set_shape(out[0], x->rank, x->dims, err);
}

/* The per-channel factor a = scale / sqrt(var + epsilon) of y = x * a + b. */
static double bn_factor(const bn_params *p, const float *scale, const float *var, size_t ch) {
    return scale[ch] / sqrt((double)var[ch] + (double)p->epsilon);
}

/* y = x * a + b over rows [y0, y1) x columns [x0, x1) of every plane, the
 * plane seen as rows of w (forward: one row of the whole plane). */
static void bn_apply(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out, size_t w,
                     size_t y0, size_t y1, size_t x0, size_t x1) {
    const bn_params *p = node->params;
    const evm_tensor *x = in[0];
    const float *scale = evm_f32(in[1]), *shift = evm_f32(in[2]);
    const float *mean = evm_f32(in[3]), *var = evm_f32(in[4]);
    size_t n = (size_t)x->dims[0], c = (size_t)x->dims[1];
    size_t plane = n * c != 0 ? x->count / (n * c) : 0;
    const float *xs = evm_f32(x);
    float *ys = evm_f32(out[0]);
    for (size_t ch = 0; ch < c; ch++) {
        /* y = x * a + b; a and b in double so only the final rounding is float */
        double a = bn_factor(p, scale, var, ch);
        float af = (float)a, bf = (float)(shift[ch] - mean[ch] * a);
        for (size_t i = 0; i < n; i++)
            for (size_t yy = y0; yy < y1; yy++) {
                const float *src = xs + (i * c + ch) * plane + yy * w;
                float *dst = ys + (i * c + ch) * plane + yy * w;
                for (size_t j = x0; j < x1; j++)
                    dst[j] = src[j] * af + bf;
            }
    }
}

static void batch_normalization_forward(const evm_node *node, evm_tensor *const *in,
                                        evm_tensor *const *out, float *workspace) {
    (void)workspace;
    size_t nc = (size_t)(in[0]->dims[0] * in[0]->dims[1]);
    size_t plane = nc != 0 ? in[0]->count / nc : 0;
    bn_apply(node, in, out, plane, 0, 1, 0, plane);
}

static void batch_normalization_region(const evm_node *node, evm_tensor *const *in,
                                       evm_tensor *const *out, const evm_region *r,
                                       float *workspace) {
    (void)workspace;
    bn_apply(node, in, out, (size_t)in[0]->dims[3], (size_t)r->y0, (size_t)r->y1, (size_t)r->x0,
             (size_t)r->x1);
}

/* dy/dx is the forward's float factor a of its channel. */
static void batch_normalization_backward(const evm_node *node, evm_tensor *const *in,
                                         evm_tensor *const *out, const evm_tensor *grad_out,
                                         evm_tensor *const *grad_in, float *workspace) {
    (void)out;
    (void)workspace;
    if (!grad_in[0])
        return;
    const float *scale = evm_f32(in[1]), *var = evm_f32(in[4]), *gy = evm_f32(grad_out);
    float *gx = evm_f32(grad_in[0]);
    size_t n = (size_t)in[0]->dims[0], c = (size_t)in[0]->dims[1];
    size_t plane = n * c != 0 ? in[0]->count / (n * c) : 0;
    for (size_t ch = 0; ch < c; ch++) {
        float af = (float)bn_factor(node->params, scale, var, ch);
        for (size_t i = 0; i < n; i++) {
            size_t base = (i * c + ch) * plane;
            for (size_t j = 0; j < plane; j++)
                gx[base + j] = gy[base + j] * af;
        }
    }
}

const evm_op_def evm_op_batch_normalization = {
    .name = "BatchNormalization",
    .min_inputs = 5,
    .max_inputs = 5,
    .init = batch_normalization_init,
    .infer = batch_normalization_infer,
    .forward = batch_normalization_forward,
    .field = evm_field_pointwise,
    .forward_region = batch_normalization_region,
    .in_place = true,
    .grad_inputs = 1u << 0,
    .backward = batch_normalization_backward,
    .kinks = EVM_KINKS_NONE,
};
