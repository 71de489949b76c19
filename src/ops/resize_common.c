/*
 * Resize and Upsample: output shapes, coordinate mapping, nearest,
 * bilinear and bicubic kernels and their backward (see resize.h for the
 * arithmetic). Forward and backward first tabulate, per resized axis, the
 * input index (nearest), the two input indices and the weight (linear) or
 * the four input indices and weights (cubic) of every output coordinate, in
 * the workspace: int64 tables, then float weights (plans and backward
 * passes malloc their workspace, so it is aligned for int64).
 */
#include <math.h>
#include <string.h>

#include "resize.h"

/* One plan's per-axis geometry. */
typedef struct geometry {
    int rank;
    int64_t in[EVM_MAX_RANK], out[EVM_MAX_RANK];
    double scale[EVM_MAX_RANK];  /* the given scale, or out / in for sizes */
    double length[EVM_MAX_RANK]; /* in * scale before flooring, or sizes */
} geometry;

/* A present input with at least one element (Resize passes empty tensors
 * for the one of scales and sizes it does not use). */
static const evm_tensor *given(const evm_node *node, evm_tensor *const *in, int i) {
    return i >= 0 && i < node->n_inputs && in[i] && in[i]->count > 0 ? in[i] : NULL;
}

/* The axes scales/sizes refer to, into axes[]; their number into *n. */
static evmap_status resized_axes(const evm_node *node, int rank, int *axes, int *n,
                                 evmap_error *err) {
    const evm_resize_params *p = node->params;
    if (!p->n_axes) {
        for (int d = 0; d < rank; d++)
            axes[d] = d;
        *n = rank;
        return EVMAP_OK;
    }
    bool seen[EVM_MAX_RANK] = {false};
    for (int k = 0; k < p->n_axes; k++) {
        evmap_status st = evm_op_axis(node, p->axes[k], rank, &axes[k], err);
        if (st != EVMAP_OK)
            return st;
        if (seen[axes[k]])
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "axis %lld is listed twice",
                                 (long long)p->axes[k]);
        seen[axes[k]] = true;
    }
    *n = p->n_axes;
    return EVMAP_OK;
}

/* Works out g from input 0's shape and the scales or sizes; infer has
 * checked everything by the time forward and backward call it again. */
static evmap_status get_geometry(const evm_node *node, evm_tensor *const *in, geometry *g,
                                 evmap_error *err) {
    const evm_resize_params *p = node->params;
    const evm_tensor *x = in[0];
    g->rank = x->rank;
    for (int d = 0; d < x->rank; d++) {
        g->in[d] = g->out[d] = x->dims[d];
        g->scale[d] = 1.0;
        g->length[d] = (double)x->dims[d];
    }
    const evm_tensor *scales = given(node, in, p->scales_input);
    const evm_tensor *sizes = given(node, in, p->sizes_input);
    if (scales && sizes)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "has both scales and sizes; exactly one must be given");
    if (!scales && !sizes && !p->n_attr_scales)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "has neither scales nor sizes; exactly one must be given");
    int which = scales ? p->scales_input : p->sizes_input;
    if (scales || sizes) {
        evmap_status st = evm_op_require_const(node, in, which, err);
        if (st != EVMAP_OK)
            return st;
        if (in[which]->dtype != (scales ? EVM_DTYPE_FLOAT : EVM_DTYPE_INT64) ||
            in[which]->rank != 1)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "input %d (%s) must be a 1-D %s tensor", which,
                                 scales ? "scales" : "sizes", scales ? "float32" : "int64");
    }
    int axes[EVM_MAX_RANK], n = 0;
    evmap_status st = resized_axes(node, x->rank, axes, &n, err);
    if (st != EVMAP_OK)
        return st;
    size_t given_n = scales || sizes ? in[which]->count : (size_t)p->n_attr_scales;
    if (given_n != (size_t)n)
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "has %zu %s for %d axes; it needs one per axis", given_n,
                             sizes ? "sizes" : "scales", n);
    const double limit = (double)EVM_MAX_TENSOR_ELEMENTS;
    for (int k = 0; k < n; k++) {
        int d = axes[k];
        double in_d = (double)x->dims[d];
        if (sizes) {
            int64_t v = evm_i64(sizes)[k];
            if (v < 0 || (double)v > limit)
                return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                                     "size %lld for axis %d is out of range", (long long)v, d);
            g->out[d] = v;
            g->length[d] = (double)v;
            g->scale[d] = x->dims[d] ? (double)v / in_d : 1.0;
        } else {
            double s = (double)(scales ? evm_f32(scales)[k] : p->attr_scales[k]);
            if (!(s > 0.0) || !isfinite(s) || in_d * s > limit)
                return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                                     "scale %g for axis %d is out of range", s, d);
            g->scale[d] = s;
            g->length[d] = in_d * s;
            g->out[d] = (int64_t)floor(in_d * s);
        }
        if (x->dims[d] == 0 && g->out[d] > 0)
            return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                                 "axis %d is empty; it cannot be resized to %lld", d,
                                 (long long)g->out[d]);
    }
    return EVMAP_OK;
}

evmap_status evm_resize_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              evmap_error *err) {
    const evm_resize_params *p = node->params;
    evmap_status st = evm_op_require_float(node, in, 0, err);
    if (st != EVMAP_OK)
        return st;
    if (in[0]->rank < 1)
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "input 0 is a scalar; there is nothing to resize");
    geometry g;
    st = get_geometry(node, in, &g, err);
    if (st != EVMAP_OK)
        return st;
    if (p->mode != EVM_RESIZE_NEAREST)
        for (int d = 0; d + 2 < g.rank; d++)
            if (g.scale[d] != 1.0)
                return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                                     "%s mode resizes axis %d of %d; only the last two axes "
                                     "(height and width) can be interpolated",
                                     p->mode == EVM_RESIZE_LINEAR ? "linear" : "cubic", d, g.rank);
    out[0]->dtype = EVM_DTYPE_FLOAT;
    return evm_tensor_set_shape(out[0], g.rank, g.out, err);
}

/* Input coordinate of output coordinate o along axis d. */
static double source_coord(evm_resize_coord mode, const geometry *g, int d, int64_t o) {
    double s = g->scale[d], len = g->length[d], c = (double)o;
    switch (mode) {
    case EVM_RESIZE_HALF_PIXEL: return (c + 0.5) / s - 0.5;
    case EVM_RESIZE_HALF_PIXEL_SYMMETRIC:
        return (1.0 - (double)g->out[d] / len) * (double)g->in[d] / 2.0 + (c + 0.5) / s - 0.5;
    case EVM_RESIZE_PYTORCH_HALF_PIXEL: return len > 1.0 ? (c + 0.5) / s - 0.5 : 0.0;
    case EVM_RESIZE_ALIGN_CORNERS:
        return len > 1.0 ? c * (double)(g->in[d] - 1) / (len - 1.0) : 0.0;
    case EVM_RESIZE_ASYMMETRIC: return c / s;
    case EVM_RESIZE_TF_HALF_PIXEL_FOR_NN: return (c + 0.5) / s;
    }
    return c;
}

static double clamp_coord(double x, int64_t n) {
    double hi = (double)(n - 1);
    return x > hi ? hi : x > 0.0 ? x : 0.0; /* NaN cannot occur: scales are finite, > 0 */
}

/* Nearest input index along axis d for output coordinate o. */
static int64_t nearest_index(const evm_resize_params *p, const geometry *g, int d, int64_t o) {
    double x = source_coord(p->coord, g, d, o);
    double f = floor(x), frac = x - f, i;
    switch (p->nearest) {
    case EVM_NEAREST_ROUND_PREFER_FLOOR: i = frac > 0.5 ? f + 1.0 : f; break;
    case EVM_NEAREST_ROUND_PREFER_CEIL: i = frac >= 0.5 ? f + 1.0 : f; break;
    case EVM_NEAREST_FLOOR: i = f; break;
    case EVM_NEAREST_CEIL: i = ceil(x); break;
    default: i = g->out[d] < g->in[d] ? ceil(x) : f; break;
    }
    return (int64_t)clamp_coord(i, g->in[d]);
}

/* Linear taps along axis d for output coordinate o. */
static void linear_taps(const evm_resize_params *p, const geometry *g, int d, int64_t o,
                        int64_t *i0, int64_t *i1, float *w) {
    double x = clamp_coord(source_coord(p->coord, g, d, o), g->in[d]);
    double f = floor(x);
    *i0 = (int64_t)f;
    *i1 = *i0 + 1 < g->in[d] ? *i0 + 1 : *i0;
    *w = (float)(x - f);
}

/* Keys' cubic convolution kernel W(s) of parameter a (resize.h). */
static double keys(double s, double a) {
    s = fabs(s);
    if (s <= 1.0)
        return ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0;
    if (s < 2.0)
        return ((a * s - 5.0 * a) * s + 8.0 * a) * s - 4.0 * a;
    return 0.0;
}

/* Cubic taps along axis d for output coordinate o: four input indices
 * (clamped to the axis) and their weights. */
static void cubic_taps(const evm_resize_params *p, const geometry *g, int d, int64_t o,
                       int64_t *idx, float *w) {
    double x = source_coord(p->coord, g, d, o), f = floor(x), t = x - f;
    const double s[4] = {1.0 + t, t, 1.0 - t, 2.0 - t};
    double wd[4], sum = 0.0;
    int64_t n = g->in[d], first = (int64_t)f - 1;
    for (int k = 0; k < 4; k++) {
        int64_t i = first + k;
        bool outside = i < 0 || i >= n;
        wd[k] = outside && p->exclude_outside ? 0.0 : keys(s[k], p->cubic_a);
        idx[k] = i < 0 ? 0 : i >= n ? n - 1 : i;
        sum += wd[k];
    }
    for (int k = 0; k < 4; k++)
        w[k] = (float)(p->exclude_outside && sum != 0.0 ? wd[k] / sum : wd[k]);
}

/* The workspace: nearest, one int64 index per output coordinate of every
 * axis; linear, i0 and i1 per output row and column (int64) then the row
 * and column weights (float); cubic, four int64 indices per output row and
 * column, then four float weights each. */
static size_t workspace_floats(const evm_resize_params *p, const geometry *g) {
    size_t n = 0;
    if (p->mode == EVM_RESIZE_NEAREST) {
        for (int d = 0; d < g->rank; d++)
            n += 2 * (size_t)g->out[d];
        return n;
    }
    size_t oh = g->rank >= 2 ? (size_t)g->out[g->rank - 2] : 1, ow = (size_t)g->out[g->rank - 1];
    return (p->mode == EVM_RESIZE_CUBIC ? 12 : 5) * (oh + ow);
}

size_t evm_resize_workspace(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out) {
    (void)out;
    geometry g;
    get_geometry(node, in, &g, NULL);
    return workspace_floats(node->params, &g);
}

/* Bilinear layout: planes of ih x iw in, oh x ow out, and the tables. */
typedef struct bilinear {
    size_t planes;
    int64_t ih, iw, oh, ow;
    const int64_t *y0, *y1, *x0, *x1;
    const float *wy, *wx;
} bilinear;

/* Makes g at least 2-D (a row is resized as a 1 x n image) and returns
 * the number of planes, the product of all but the last two axes. */
static size_t as_planes(geometry *g) {
    if (g->rank == 1) {
        g->in[1] = g->in[0], g->out[1] = g->out[0];
        g->scale[1] = g->scale[0], g->length[1] = g->length[0];
        g->in[0] = g->out[0] = 1;
        g->scale[0] = g->length[0] = 1.0;
        g->rank = 2;
    }
    size_t planes = 1;
    for (int d = 0; d + 2 < g->rank; d++)
        planes *= (size_t)g->in[d];
    return planes;
}

static void bilinear_tables(const evm_resize_params *p, geometry *g, float *workspace,
                            bilinear *b) {
    b->planes = as_planes(g);
    int r = g->rank;
    b->ih = g->in[r - 2], b->iw = g->in[r - 1], b->oh = g->out[r - 2], b->ow = g->out[r - 1];
    int64_t *t = (int64_t *)(void *)workspace;
    int64_t *y0 = t, *y1 = y0 + b->oh, *x0 = y1 + b->oh, *x1 = x0 + b->ow;
    float *wy = (float *)(void *)(x1 + b->ow), *wx = wy + b->oh;
    for (int64_t o = 0; o < b->oh; o++)
        linear_taps(p, g, r - 2, o, &y0[o], &y1[o], &wy[o]);
    for (int64_t o = 0; o < b->ow; o++)
        linear_taps(p, g, r - 1, o, &x0[o], &x1[o], &wx[o]);
    b->y0 = y0, b->y1 = y1, b->x0 = x0, b->x1 = x1, b->wy = wy, b->wx = wx;
}

/* Bicubic layout: planes of ih x iw in, oh x ow out, and the tables: four
 * row indices and weights per output row (yi[4 * oy + k], wy[4 * oy + k]),
 * four column indices and weights per output column. */
typedef struct bicubic {
    size_t planes;
    int64_t ih, iw, oh, ow;
    const int64_t *yi, *xi;
    const float *wy, *wx;
} bicubic;

static void bicubic_tables(const evm_resize_params *p, geometry *g, float *workspace, bicubic *b) {
    b->planes = as_planes(g);
    int r = g->rank;
    b->ih = g->in[r - 2], b->iw = g->in[r - 1], b->oh = g->out[r - 2], b->ow = g->out[r - 1];
    int64_t *yi = (int64_t *)(void *)workspace, *xi = yi + 4 * b->oh;
    float *wy = (float *)(void *)(xi + 4 * b->ow), *wx = wy + 4 * b->oh;
    for (int64_t o = 0; o < b->oh; o++)
        cubic_taps(p, g, r - 2, o, yi + 4 * o, wy + 4 * o);
    for (int64_t o = 0; o < b->ow; o++)
        cubic_taps(p, g, r - 1, o, xi + 4 * o, wx + 4 * o);
    b->yi = yi, b->xi = xi, b->wy = wy, b->wx = wx;
}

static void bicubic_forward(const bicubic *b, const float *restrict x, float *restrict y) {
    for (size_t pl = 0; pl < b->planes; pl++) {
        const float *xp = x + pl * (size_t)(b->ih * b->iw);
        float *yp = y + pl * (size_t)(b->oh * b->ow);
        for (int64_t oy = 0; oy < b->oh; oy++) {
            const int64_t *yi = b->yi + 4 * oy;
            const float *wy = b->wy + 4 * oy;
            for (int64_t ox = 0; ox < b->ow; ox++) {
                const int64_t *xi = b->xi + 4 * ox;
                const float *wx = b->wx + 4 * ox;
                float acc = 0.0f;
                for (int i = 0; i < 4; i++) {
                    const float *row = xp + yi[i] * b->iw;
                    float v = wx[0] * row[xi[0]] + wx[1] * row[xi[1]] + wx[2] * row[xi[2]] +
                              wx[3] * row[xi[3]];
                    acc += wy[i] * v;
                }
                yp[oy * b->ow + ox] = acc;
            }
        }
    }
}

/* The transpose of bicubic_forward: scatters gy into gx (zeroed). */
static void bicubic_backward(const bicubic *b, const float *restrict gy, float *restrict gx) {
    for (size_t pl = 0; pl < b->planes; pl++) {
        float *xp = gx + pl * (size_t)(b->ih * b->iw);
        const float *yp = gy + pl * (size_t)(b->oh * b->ow);
        for (int64_t oy = 0; oy < b->oh; oy++) {
            const int64_t *yi = b->yi + 4 * oy;
            const float *wy = b->wy + 4 * oy;
            for (int64_t ox = 0; ox < b->ow; ox++) {
                const int64_t *xi = b->xi + 4 * ox;
                const float *wx = b->wx + 4 * ox;
                float v = yp[oy * b->ow + ox];
                for (int i = 0; i < 4; i++) {
                    float *row = xp + yi[i] * b->iw, u = wy[i] * v;
                    for (int j = 0; j < 4; j++)
                        row[xi[j]] += wx[j] * u;
                }
            }
        }
    }
}

/* Nearest tables: per axis, the input index of each output coordinate. */
static void nearest_tables(const evm_resize_params *p, const geometry *g, float *workspace,
                           int64_t *tables[EVM_MAX_RANK]) {
    int64_t *t = (int64_t *)(void *)workspace;
    for (int d = 0; d < g->rank; d++) {
        tables[d] = t;
        for (int64_t o = 0; o < g->out[d]; o++)
            t[o] = nearest_index(p, g, d, o);
        t += g->out[d];
    }
}

/* Visits every output row of a nearest resize: calls the body with the
 * input offset of the row's first axis-(r-1) element (rows along the last
 * axis); o counts output elements. */
#define NEAREST_ROWS(g, tables, BODY)                                                              \
    do {                                                                                           \
        int r_ = (g).rank;                                                                         \
        int64_t stride_[EVM_MAX_RANK], idx_[EVM_MAX_RANK] = {0};                                   \
        stride_[r_ - 1] = 1;                                                                       \
        for (int d_ = r_ - 2; d_ >= 0; d_--)                                                       \
            stride_[d_] = stride_[d_ + 1] * (g).in[d_ + 1];                                        \
        size_t rows_ = 1;                                                                          \
        for (int d_ = 0; d_ < r_ - 1; d_++)                                                        \
            rows_ *= (size_t)(g).out[d_];                                                          \
        const int64_t *last = (tables)[r_ - 1];                                                    \
        int64_t n_last = (g).out[r_ - 1];                                                          \
        size_t o = 0;                                                                              \
        for (size_t row_ = 0; row_ < rows_; row_++, o += (size_t)n_last) {                         \
            int64_t base = 0;                                                                      \
            for (int d_ = 0; d_ < r_ - 1; d_++)                                                    \
                base += (tables)[d_][idx_[d_]] * stride_[d_];                                      \
            BODY;                                                                                  \
            for (int d_ = r_ - 2; d_ >= 0; d_--) {                                                 \
                if (++idx_[d_] < (g).out[d_])                                                      \
                    break;                                                                         \
                idx_[d_] = 0;                                                                      \
            }                                                                                      \
        }                                                                                          \
    } while (0)

void evm_resize_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace) {
    const evm_resize_params *p = node->params;
    const float *restrict x = evm_f32(in[0]);
    float *restrict y = evm_f32(out[0]);
    if (out[0]->count == 0)
        return;
    geometry g;
    get_geometry(node, in, &g, NULL);
    if (p->mode == EVM_RESIZE_NEAREST) {
        int64_t *tables[EVM_MAX_RANK];
        nearest_tables(p, &g, workspace, tables);
        NEAREST_ROWS(g, tables, {
            for (int64_t j = 0; j < n_last; j++)
                y[o + (size_t)j] = x[base + last[j]];
        });
        return;
    }
    if (p->mode == EVM_RESIZE_CUBIC) {
        bicubic c;
        bicubic_tables(p, &g, workspace, &c);
        bicubic_forward(&c, x, y);
        return;
    }
    bilinear b;
    bilinear_tables(p, &g, workspace, &b);
    for (size_t pl = 0; pl < b.planes; pl++) {
        const float *xp = x + pl * (size_t)(b.ih * b.iw);
        float *yp = y + pl * (size_t)(b.oh * b.ow);
        for (int64_t oy = 0; oy < b.oh; oy++) {
            const float *r0 = xp + b.y0[oy] * b.iw, *r1 = xp + b.y1[oy] * b.iw;
            float wy = b.wy[oy];
            for (int64_t ox = 0; ox < b.ow; ox++) {
                float wx = b.wx[ox];
                int64_t c0 = b.x0[ox], c1 = b.x1[ox];
                float top = (1.0f - wx) * r0[c0] + wx * r0[c1];
                float bottom = (1.0f - wx) * r1[c0] + wx * r1[c1];
                yp[oy * b.ow + ox] = (1.0f - wy) * top + wy * bottom;
            }
        }
    }
}

void evm_resize_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace) {
    const evm_resize_params *p = node->params;
    const float *restrict gy = evm_f32(grad_out);
    float *restrict gx = evm_f32(grad_in[0]);
    memset(gx, 0, grad_in[0]->count * sizeof *gx);
    if (out[0]->count == 0)
        return;
    geometry g;
    get_geometry(node, in, &g, NULL);
    if (p->mode == EVM_RESIZE_NEAREST) {
        int64_t *tables[EVM_MAX_RANK];
        nearest_tables(p, &g, workspace, tables);
        NEAREST_ROWS(g, tables, {
            for (int64_t j = 0; j < n_last; j++)
                gx[base + last[j]] += gy[o + (size_t)j];
        });
        return;
    }
    if (p->mode == EVM_RESIZE_CUBIC) {
        bicubic c;
        bicubic_tables(p, &g, workspace, &c);
        bicubic_backward(&c, gy, gx);
        return;
    }
    bilinear b;
    bilinear_tables(p, &g, workspace, &b);
    for (size_t pl = 0; pl < b.planes; pl++) {
        float *xp = gx + pl * (size_t)(b.ih * b.iw);
        const float *yp = gy + pl * (size_t)(b.oh * b.ow);
        for (int64_t oy = 0; oy < b.oh; oy++) {
            float *r0 = xp + b.y0[oy] * b.iw, *r1 = xp + b.y1[oy] * b.iw;
            float wy = b.wy[oy];
            for (int64_t ox = 0; ox < b.ow; ox++) {
                float wx = b.wx[ox], v = yp[oy * b.ow + ox];
                float top = (1.0f - wy) * v, bottom = wy * v;
                int64_t c0 = b.x0[ox], c1 = b.x1[ox];
                r0[c0] += (1.0f - wx) * top;
                r0[c1] += wx * top;
                r1[c0] += (1.0f - wx) * bottom;
                r1[c1] += wx * bottom;
            }
        }
    }
}
