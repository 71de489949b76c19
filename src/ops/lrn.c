/*
 * LRN (local response normalization across channels), float32, N x C x ...:
 * y = x / (bias + alpha / size * square_sum) ^ beta, where square_sum runs
 * over channels [c - floor((size - 1) / 2), c + ceil((size - 1) / 2)] clipped
 * to the tensor. Each output channel plane accumulates its squares directly
 * in the output buffer, so no workspace is needed.
 * Backward (d = bias + alpha / size * square_sum, y = x * d^-beta):
 * gx_j = g_j d_j^-beta - 2 beta alpha / size * x_j * sum of t_i = g_i x_i
 * d_i^(-beta-1) over the channels i whose window holds j; the t of one
 * image live in the backward workspace.
 * Invariants: size >= 1 (checked at init); the input has rank >= 2.
 */
#include <math.h>
#include <stdlib.h>

#include "op.h"

typedef struct lrn_params {
    int size;                /* channels in the window, >= 1 */
    float alpha, beta, bias; /* as ONNX */
} lrn_params;

static evmap_status lrn_init(evm_node *node, evmap_error *err) {
    if (!evm_node_attr(node, "size"))
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "attribute 'size' is required");
    int64_t size;
    lrn_params p;
    evmap_status st = evm_attr_int(node, "size", 1, &size, err);
    if (st == EVMAP_OK)
        st = evm_attr_float(node, "alpha", 1e-4f, &p.alpha, err);
    if (st == EVMAP_OK)
        st = evm_attr_float(node, "beta", 0.75f, &p.beta, err);
    if (st == EVMAP_OK)
        st = evm_attr_float(node, "bias", 1.0f, &p.bias, err);
    if (st != EVMAP_OK)
        return st;
    if (size < 1 || size > 65536)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "size %lld is out of range",
                             (long long)size);
    p.size = (int)size;
    return evm_node_set_params(node, &p, sizeof p, err);
}

static evmap_status lrn_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              evmap_error *err) {
    evmap_status st = evm_op_require_float(node, in, 0, err);
    if (st != EVMAP_OK)
        return st;
    if (in[0]->rank < 2) {
        char buf[EVM_SHAPE_STR_SIZE];
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "input has shape %s; expected N x C x ...",
                             evm_shape_str(in[0], buf, sizeof buf));
    }
    out[0]->dtype = EVM_DTYPE_FLOAT;
    return evm_tensor_set_shape(out[0], in[0]->rank, in[0]->dims, err);
}

/* t ^ -beta, with the common exponents done without powf. */
static inline float inv_pow(float t, float beta) {
    if (beta == 0.75f)
        return 1.0f / (sqrtf(t) * sqrtf(sqrtf(t)));
    if (beta == 0.5f)
        return 1.0f / sqrtf(t);
    return powf(t, -beta);
}

/* Elements [j0, j0 + len) of every channel plane of image i. */
static void lrn_segment(const lrn_params *p, const float *xi, float *yi, int64_t c, size_t plane,
                        size_t j0, size_t len) {
    int64_t before = (p->size - 1) / 2, after = p->size - 1 - before;
    float scale = p->alpha / (float)p->size;
    for (int64_t ch = 0; ch < c; ch++) {
        float *y = yi + (size_t)ch * plane + j0;
        int64_t lo = ch - before < 0 ? 0 : ch - before;
        int64_t hi = ch + after > c - 1 ? c - 1 : ch + after;
        for (size_t j = 0; j < len; j++)
            y[j] = 0.0f;
        for (int64_t k = lo; k <= hi; k++) {
            const float *src = xi + (size_t)k * plane + j0;
            for (size_t j = 0; j < len; j++)
                y[j] += src[j] * src[j];
        }
        const float *src = xi + (size_t)ch * plane + j0;
        for (size_t j = 0; j < len; j++)
            y[j] = src[j] * inv_pow(p->bias + scale * y[j], p->beta);
    }
}

static void lrn_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace) {
    (void)workspace;
    const evm_tensor *x = in[0];
    int64_t n = x->dims[0], c = x->dims[1];
    size_t plane = n * c != 0 ? x->count / (size_t)(n * c) : 0;
    for (int64_t i = 0; i < n; i++)
        lrn_segment(node->params, evm_f32(x) + (size_t)(i * c) * plane,
                    evm_f32(out[0]) + (size_t)(i * c) * plane, c, plane, 0, plane);
}

/* Region r: one segment per image and row of r (LRN mixes channels only). */
static void lrn_forward_region(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               const evm_region *r, float *workspace) {
    (void)workspace;
    const evm_tensor *x = in[0];
    int64_t n = x->dims[0], c = x->dims[1], w = x->dims[3];
    size_t plane = (size_t)(x->dims[2] * w);
    for (int64_t i = 0; i < n; i++)
        for (int64_t yy = r->y0; yy < r->y1; yy++)
            lrn_segment(node->params, evm_f32(x) + (size_t)(i * c) * plane,
                        evm_f32(out[0]) + (size_t)(i * c) * plane, c, plane,
                        (size_t)(yy * w + r->x0), (size_t)(r->x1 - r->x0));
}

/* One image's t_i = g_i x_i d_i^(-beta-1) into t, and the first term
 * g_j d_j^-beta into gx. d is the forward's float d (the same float sum);
 * the powers are in double. */
static void lrn_backward_local(const lrn_params *p, const float *x, const float *g, float *gx,
                               float *t, int64_t c, size_t plane) {
    int64_t before = (p->size - 1) / 2, after = p->size - 1 - before;
    float scale = p->alpha / (float)p->size;
    for (int64_t ch = 0; ch < c; ch++) {
        int64_t lo = ch - before < 0 ? 0 : ch - before;
        int64_t hi = ch + after > c - 1 ? c - 1 : ch + after;
        for (size_t j = 0; j < plane; j++) {
            float sq = 0.0f;
            for (int64_t k = lo; k <= hi; k++)
                sq += x[(size_t)k * plane + j] * x[(size_t)k * plane + j];
            double d = p->bias + scale * sq;
            size_t i = (size_t)ch * plane + j;
            double pb = pow(d, -(double)p->beta);
            gx[i] = (float)(g[i] * pb);
            t[i] = (float)(g[i] * x[i] * pb / d);
        }
    }
}

/* Subtracts the cross term: channel ch lies in the windows of the channels
 * [ch - after, ch + before]. Sums in double. */
static void lrn_backward_cross(const lrn_params *p, const float *x, const float *t, float *gx,
                               int64_t c, size_t plane) {
    int64_t before = (p->size - 1) / 2, after = p->size - 1 - before;
    double coef = 2.0 * (double)p->beta * (double)(p->alpha / (float)p->size);
    for (int64_t ch = 0; ch < c; ch++) {
        int64_t lo = ch - after < 0 ? 0 : ch - after;
        int64_t hi = ch + before > c - 1 ? c - 1 : ch + before;
        for (size_t j = 0; j < plane; j++) {
            double sum = 0.0;
            for (int64_t k = lo; k <= hi; k++)
                sum += t[(size_t)k * plane + j];
            size_t i = (size_t)ch * plane + j;
            gx[i] = (float)(gx[i] - coef * x[i] * sum);
        }
    }
}

/* t of one image: C x plane floats. */
static size_t lrn_backward_workspace(const evm_node *node, evm_tensor *const *in,
                                     evm_tensor *const *out) {
    (void)node;
    (void)out;
    return in[0]->dims[0] ? in[0]->count / (size_t)in[0]->dims[0] : 0;
}

static void lrn_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace) {
    (void)out;
    const evm_tensor *x = in[0];
    int64_t n = x->dims[0], c = x->dims[1];
    size_t plane = n * c != 0 ? x->count / (size_t)(n * c) : 0;
    for (int64_t i = 0; i < n; i++) {
        size_t off = (size_t)(i * c) * plane;
        lrn_backward_local(node->params, evm_f32(x) + off, evm_f32(grad_out) + off,
                           evm_f32(grad_in[0]) + off, workspace, c, plane);
        lrn_backward_cross(node->params, evm_f32(x) + off, workspace, evm_f32(grad_in[0]) + off, c,
                           plane);
    }
}

const evm_op_def evm_op_lrn = {
    .name = "LRN",
    .min_inputs = 1,
    .max_inputs = 1,
    .init = lrn_init,
    .infer = lrn_infer,
    .forward = lrn_forward,
    .field = evm_field_pointwise,
    .forward_region = lrn_forward_region,
    .grad_inputs = 1u << 0,
    .backward = lrn_backward,
    .backward_workspace = lrn_backward_workspace,
    .kinks = EVM_KINKS_NONE,
};
