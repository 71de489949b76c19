/*
 * Pad, modes 'constant', 'reflect' and 'edge', any rank, float32 and int64.
 * Opset < 11: 'pads' and 'value' attributes. Opset >= 11: pads is input 1 (a
 * constant 1-D int64 tensor) and the value is optional input 2 (one element
 * of x's type; read on every run, so it need not be constant).
 * pads = [x1_begin, x2_begin, ..., x1_end, x2_end, ...]; negative pads crop.
 * Forward walks the output rows (all axes but the last): a row whose outer
 * coordinates fall outside x is all padding; otherwise it is left padding, a
 * copied (possibly cropped) stretch of one x row, and right padding.
 * 'reflect' mirrors x about its first and last elements (numpy's 'reflect':
 * period 2 (n - 1), so pads may exceed the axis; an axis of one element
 * repeats it) and 'edge' repeats them. With negative pads, those modes crop
 * first and pad the cropped x (as ONNX Runtime). They walk the output rows
 * the same way, mapping every coordinate to its x element; their backward
 * adds each output's gradient to that element.
 */
#include <stdlib.h>
#include <string.h>

#include "op.h"

enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE };

typedef struct pad_params {
    int mode;                       /* PAD_* */
    bool pads_are_input;            /* opset >= 11 */
    int n_pads;                     /* opset < 11: 2 * rank */
    int64_t pads[2 * EVM_MAX_RANK]; /* opset < 11: the 'pads' attribute */
    float value;                    /* opset < 11: the 'value' attribute */
} pad_params;

static evmap_status pad_init(evm_node *node, evmap_error *err) {
    pad_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    const char *mode;
    evmap_status st = evm_attr_string(node, "mode", "constant", &mode, err);
    if (st != EVMAP_OK)
        return st;
    if (strcmp(mode, "reflect") == 0)
        p->mode = PAD_REFLECT;
    else if (strcmp(mode, "edge") == 0)
        p->mode = PAD_EDGE;
    else if (strcmp(mode, "constant") != 0)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "mode '%s' is not supported; only 'constant', 'reflect' and 'edge' "
                             "padding are",
                             mode);
    p->pads_are_input = node->opset >= 11;
    if (p->pads_are_input)
        return EVMAP_OK;
    const int64_t *pads;
    size_t n;
    st = evm_attr_ints(node, "pads", &pads, &n, err);
    if (st == EVMAP_OK)
        st = evm_attr_float(node, "value", 0.0f, &p->value, err);
    if (st != EVMAP_OK)
        return st;
    if (!evm_node_attr(node, "pads"))
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "attribute 'pads' is required");
    if (n % 2 || n > 2 * EVM_MAX_RANK)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "attribute 'pads' has %zu values; it needs two per axis (at most "
                             "%d axes)",
                             n, EVM_MAX_RANK);
    memcpy(p->pads, pads, n * sizeof *pads);
    p->n_pads = (int)n;
    return EVMAP_OK;
}

/* The pads for this call: the attribute, or the constant input 1. */
static void get_pads(const evm_node *node, evm_tensor *const *in, const int64_t **pads, size_t *n) {
    const pad_params *p = node->params;
    if (p->pads_are_input) {
        *pads = evm_i64(in[1]);
        *n = in[1]->count;
    } else {
        *pads = p->pads;
        *n = (size_t)p->n_pads;
    }
}

static evmap_status check_value_input(const evm_node *node, evm_tensor *const *in,
                                      evmap_error *err) {
    if (node->n_inputs < 3 || !in[2])
        return EVMAP_OK;
    if (in[2]->dtype != in[0]->dtype || in[2]->count != 1) {
        char s[EVM_SHAPE_STR_SIZE];
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "input 2 (constant_value) must be one %s value; it is %s %s",
                             evm_dtype_name(in[0]->dtype), evm_dtype_name(in[2]->dtype),
                             evm_shape_str(in[2], s, sizeof s));
    }
    return EVMAP_OK;
}

static evmap_status pad_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              evmap_error *err) {
    const pad_params *p = node->params;
    const evm_tensor *x = in[0];
    if (x->dtype != EVM_DTYPE_FLOAT && x->dtype != EVM_DTYPE_INT64)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "input 0 has data type %s; only float32 and int64 are supported",
                             evm_dtype_name(x->dtype));
    if (p->pads_are_input) {
        if (node->n_inputs < 2 || !in[1])
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "input 1 (pads) is required");
        evmap_status st = evm_op_require_const(node, in, 1, err);
        if (st != EVMAP_OK)
            return st;
        if (in[1]->dtype != EVM_DTYPE_INT64 || in[1]->rank != 1)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "input 1 (pads) must be a 1-D int64 tensor");
        st = check_value_input(node, in, err);
        if (st != EVMAP_OK)
            return st;
    } else if (node->n_inputs > 1) {
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "has %d inputs; before opset 11 pads are attributes", node->n_inputs);
    }
    const int64_t *pads;
    size_t n;
    get_pads(node, in, &pads, &n);
    if (n != 2 * (size_t)x->rank)
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "has %zu pads for an input of rank %d; it needs %d", n, x->rank,
                             2 * x->rank);
    int64_t dims[EVM_MAX_RANK];
    for (int d = 0; d < x->rank; d++) {
        int64_t b = pads[d], e = pads[d + x->rank];
        /* Bound pads first so the sum cannot overflow. */
        const int64_t limit = (int64_t)EVM_MAX_TENSOR_ELEMENTS;
        if (b < -x->dims[d] || e < -x->dims[d] || b > limit || e > limit || x->dims[d] + b + e < 0)
            return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                                 "pads %lld and %lld do not fit axis %d of size %lld", (long long)b,
                                 (long long)e, d, (long long)x->dims[d]);
        dims[d] = x->dims[d] + b + e;
        /* reflect and edge copy x's elements into the padding: none to copy */
        int64_t kept = x->dims[d] + (b < 0 ? b : 0) + (e < 0 ? e : 0);
        if (p->mode != PAD_CONSTANT && kept <= 0 && (b > 0 || e > 0))
            return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                                 "cannot pad axis %d in mode '%s': no elements are left to copy", d,
                                 p->mode == PAD_REFLECT ? "reflect" : "edge");
    }
    out[0]->dtype = x->dtype;
    return evm_tensor_set_shape(out[0], x->rank, dims, err);
}

/* Fills y (ranked like x) from x; T is the element type. */
#define DEFINE_PAD(name, T)                                                                        \
    static void name(const T *restrict x, const int64_t *xdims, T *restrict y,                     \
                     const int64_t *ydims, int r, const int64_t *begin, T value, size_t count) {   \
        int64_t n = ydims[r - 1], b = begin[r - 1], xn = xdims[r - 1];                             \
        /* The stretch of each output row that comes from x: [lo, hi). */                          \
        int64_t lo = b > 0 ? b : 0, hi = b + xn < n ? b + xn : n;                                  \
        if (hi < lo)                                                                               \
            hi = lo;                                                                               \
        int64_t idx[EVM_MAX_RANK] = {0}; /* output row coordinates, axes 0..r-2 */                 \
        for (size_t o = 0; o < count; o += (size_t)n) {                                            \
            T *row = y + o;                                                                        \
            /* Offset of the matching x row, or -1 when it lies in the padding. */                 \
            int64_t off = 0;                                                                       \
            for (int d = 0; d < r - 1 && off >= 0; d++) {                                          \
                int64_t i = idx[d] - begin[d];                                                     \
                off = i < 0 || i >= xdims[d] ? -1 : off * xdims[d] + i;                            \
            }                                                                                      \
            if (off < 0) {                                                                         \
                for (int64_t j = 0; j < n; j++)                                                    \
                    row[j] = value;                                                                \
            } else {                                                                               \
                const T *src = x + off * xn + (lo - b); /* x element of row[lo] */                 \
                for (int64_t j = 0; j < lo; j++)                                                   \
                    row[j] = value;                                                                \
                for (int64_t j = lo; j < hi; j++)                                                  \
                    row[j] = src[j - lo];                                                          \
                for (int64_t j = hi; j < n; j++)                                                   \
                    row[j] = value;                                                                \
            }                                                                                      \
            for (int d = r - 2; d >= 0; d--) {                                                     \
                if (++idx[d] < ydims[d])                                                           \
                    break;                                                                         \
                idx[d] = 0;                                                                        \
            }                                                                                      \
        }                                                                                          \
    }

DEFINE_PAD(pad_f32, float)
DEFINE_PAD(pad_i64, int64_t)

/* x coordinate (in the cropped axis of n >= 1 elements) of padded
 * coordinate i, for reflect and edge. */
static int64_t source_index(int mode, int64_t i, int64_t n) {
    if (i >= 0 && i < n)
        return i;
    if (mode == PAD_EDGE || n == 1)
        return i < 0 ? 0 : n - 1;
    int64_t period = 2 * (n - 1);
    i %= period;
    if (i < 0)
        i += period;
    return i < n ? i : period - i;
}

/* Per-axis geometry of a reflect/edge pad: x coordinate = first[d] +
 * source_index(y coordinate - shift[d], kept[d]). */
typedef struct pad_map {
    int64_t first[EVM_MAX_RANK], kept[EVM_MAX_RANK], shift[EVM_MAX_RANK];
    int64_t xstride[EVM_MAX_RANK];
} pad_map;

static void get_map(const int64_t *xdims, int r, const int64_t *pads, pad_map *m) {
    for (int d = r - 1; d >= 0; d--) {
        int64_t b = pads[d], e = pads[d + r];
        m->first[d] = b < 0 ? -b : 0;
        m->kept[d] = xdims[d] - m->first[d] - (e < 0 ? -e : 0);
        m->shift[d] = b > 0 ? b : 0;
        m->xstride[d] = d == r - 1 ? 1 : m->xstride[d + 1] * xdims[d + 1];
    }
}

/* Runs BODY for every element of y (ydims, rank r): o its index in y, src
 * the index of its x element. */
#define PAD_MAP_LOOP(mode, m, ydims, r, count, BODY)                                               \
    do {                                                                                           \
        int64_t idx_[EVM_MAX_RANK] = {0}, n_ = (ydims)[(r)-1];                                     \
        for (size_t row_ = 0; row_ < (count); row_ += (size_t)n_) {                                \
            int64_t base_ = 0;                                                                     \
            for (int d_ = 0; d_ < (r)-1; d_++)                                                     \
                base_ +=                                                                           \
                    ((m).first[d_] + source_index(mode, idx_[d_] - (m).shift[d_], (m).kept[d_])) * \
                    (m).xstride[d_];                                                               \
            int64_t l_ = (r)-1;                                                                    \
            for (int64_t j_ = 0; j_ < n_; j_++) {                                                  \
                size_t o = row_ + (size_t)j_;                                                      \
                int64_t src =                                                                      \
                    base_ + (m).first[l_] + source_index(mode, j_ - (m).shift[l_], (m).kept[l_]);  \
                BODY;                                                                              \
            }                                                                                      \
            for (int d_ = (r)-2; d_ >= 0; d_--) {                                                  \
                if (++idx_[d_] < (ydims)[d_])                                                      \
                    break;                                                                         \
                idx_[d_] = 0;                                                                      \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* The float 'value' attribute for int64 data (out-of-range values would be
 * undefined behaviour to convert; they become 0). */
static int64_t float_to_i64(float v) {
    return v > -9.2e18f && v < 9.2e18f ? (int64_t)v : 0;
}

static void pad_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace) {
    (void)workspace;
    const pad_params *p = node->params;
    const evm_tensor *x = in[0];
    evm_tensor *y = out[0];
    if (y->count == 0)
        return;
    if (x->rank == 0) { /* no axes, nothing to pad */
        memcpy(y->data, x->data, evm_dtype_size(x->dtype));
        return;
    }
    const int64_t *pads;
    size_t n;
    get_pads(node, in, &pads, &n);
    if (p->mode != PAD_CONSTANT) {
        pad_map m;
        get_map(x->dims, x->rank, pads, &m);
        if (x->dtype == EVM_DTYPE_FLOAT) {
            const float *xs = x->data;
            float *ys = y->data;
            PAD_MAP_LOOP(p->mode, m, y->dims, x->rank, y->count, ys[o] = xs[src]);
        } else {
            const int64_t *xs = x->data;
            int64_t *ys = y->data;
            PAD_MAP_LOOP(p->mode, m, y->dims, x->rank, y->count, ys[o] = xs[src]);
        }
        return;
    }
    const evm_tensor *v = p->pads_are_input && node->n_inputs > 2 ? in[2] : NULL;
    if (x->dtype == EVM_DTYPE_FLOAT)
        pad_f32(x->data, x->dims, y->data, y->dims, x->rank, pads, v ? evm_f32(v)[0] : p->value,
                y->count);
    else
        pad_i64(x->data, x->dims, y->data, y->dims, x->rank, pads,
                v ? evm_i64(v)[0] : float_to_i64(p->value), y->count);
}

/* The gradient crops grad_out back to x: x element c came from output
 * element c + begin, or was cropped away (negative pads) and gets 0. That is
 * padding grad_out with the negated begin pads and 0, into x's shape (for
 * constant padding; reflect and edge add up the copies). Only
 * x is differentiated; the padding value rarely depends on the input. */
static void pad_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace) {
    (void)workspace;
    const evm_tensor *x = in[0];
    evm_tensor *gx = grad_in[0];
    if (x->count == 0)
        return;
    if (x->rank == 0) {
        evm_f32(gx)[0] = evm_f32(grad_out)[0];
        return;
    }
    const int64_t *pads;
    size_t n;
    get_pads(node, in, &pads, &n);
    const pad_params *p = node->params;
    if (p->mode != PAD_CONSTANT) {
        pad_map m;
        get_map(x->dims, x->rank, pads, &m);
        float *g = gx->data;
        const float *gy = grad_out->data;
        memset(g, 0, x->count * sizeof *g);
        PAD_MAP_LOOP(p->mode, m, out[0]->dims, x->rank, out[0]->count, g[src] += gy[o]);
        return;
    }
    int64_t begin[EVM_MAX_RANK];
    for (int d = 0; d < x->rank; d++)
        begin[d] = -pads[d];
    pad_f32(grad_out->data, out[0]->dims, gx->data, x->dims, x->rank, begin, 0.0f, x->count);
}

/* ---- exact locality: constant padding of the spatial axes of N x C x H x W
 * floats (any sign: negative pads crop) moves every pixel by the begin
 * pads; other modes mirror pixels into the borders and stay global. */

/* The begin pads of H and W when the op moves pixels only. */
static bool spatial_shift(const evm_node *node, evm_tensor *const *in, int64_t *dy, int64_t *dx) {
    const pad_params *p = node->params;
    if (p->mode != PAD_CONSTANT || in[0]->rank != 4 || in[0]->dtype != EVM_DTYPE_FLOAT)
        return false;
    const int64_t *pads;
    size_t n;
    get_pads(node, in, &pads, &n);
    if (pads[0] || pads[1] || pads[4] || pads[5])
        return false; /* images or channels added or cropped */
    *dy = pads[2];
    *dx = pads[3];
    return true;
}

static evm_region pad_field(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                            const evm_region *in_regions) {
    int64_t dy, dx;
    for (int j = 1; j < node->n_inputs; j++)
        if (in_regions[j].kind != EVM_REGION_NONE)
            return (evm_region){.kind = EVM_REGION_ALL}; /* the padding value changed */
    if (!spatial_shift(node, in, &dy, &dx))
        return (evm_region){.kind = EVM_REGION_ALL};
    const evm_region *r = &in_regions[0];
    if (r->kind == EVM_REGION_ALL)
        return *r;
    return evm_region_clip(r->y0 + dy, r->y1 + dy, r->x0 + dx, r->x1 + dx, out[0]->dims[2],
                           out[0]->dims[3]);
}

static evm_region pad_reads(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                            const evm_region *r) {
    (void)out;
    int64_t dy = 0, dx = 0;
    spatial_shift(node, in, &dy, &dx); /* the field was a rectangle: it holds */
    return evm_region_clip(r->y0 - dy, r->y1 - dy, r->x0 - dx, r->x1 - dx, in[0]->dims[2],
                           in[0]->dims[3]);
}

static void pad_forward_region(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               const evm_region *r, float *workspace) {
    (void)workspace;
    const pad_params *p = node->params;
    const evm_tensor *x = in[0], *y = out[0];
    const evm_tensor *v = p->pads_are_input && node->n_inputs > 2 ? in[2] : NULL;
    float value = v ? evm_f32(v)[0] : p->value;
    int64_t dy = 0, dx = 0;
    spatial_shift(node, in, &dy, &dx);
    int64_t h = x->dims[2], w = x->dims[3], oh = y->dims[2], ow = y->dims[3];
    for (int64_t plane = 0; plane < x->dims[0] * x->dims[1]; plane++) {
        const float *xs = evm_f32(x) + plane * h * w;
        float *ys = evm_f32(y) + plane * oh * ow;
        for (int64_t oy = r->y0; oy < r->y1; oy++)
            for (int64_t ox = r->x0; ox < r->x1; ox++) {
                int64_t iy = oy - dy, ix = ox - dx;
                bool inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
                ys[oy * ow + ox] = inside ? xs[iy * w + ix] : value;
            }
    }
}

const evm_op_def evm_op_pad = {
    .name = "Pad",
    .min_inputs = 1,
    .max_inputs = 3,
    .init = pad_init,
    .infer = pad_infer,
    .forward = pad_forward,
    .field = pad_field,
    .forward_region = pad_forward_region,
    .reads = pad_reads,
    .grad_inputs = 1u << 0,
    .backward = pad_backward,
    .kinks = EVM_KINKS_NONE,
};
