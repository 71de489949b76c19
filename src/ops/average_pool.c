/*
 * AveragePool, 2-D, NCHW float32: pads, auto_pad, strides, ceil_mode,
 * count_include_pad (and dilations, which opset 19 added).
 * The divisor of each output is the number of taps inside the input, or with
 * count_include_pad the number inside the padded input: with ceil_mode a
 * window that runs past the padding is clipped, and the cells beyond the
 * padding are not counted. Both counts are separable (rows x columns).
 * Invariants: infer checked the 4-D input and a non-empty output; forward
 * resolves the same window from the same shapes, so it cannot fail.
 */
#include <stdlib.h>

#include "op.h"

typedef struct avg_params {
    evm_window2d window;    /* parsed attributes; SAME_* resolved per plan */
    bool count_include_pad; /* divide by taps inside the padded input */
} avg_params;

static evmap_status average_pool_init(evm_node *node, evmap_error *err) {
    avg_params p;
    evmap_status st = evm_window2d_parse(node, &p.window, true, true, true, err);
    if (st != EVMAP_OK)
        return st;
    int64_t cip;
    st = evm_attr_int(node, "count_include_pad", 0, &cip, err);
    if (st != EVMAP_OK)
        return st;
    if (cip != 0 && cip != 1)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "count_include_pad must be 0 or 1");
    p.count_include_pad = cip == 1;
    return evm_node_set_params(node, &p, sizeof p, err);
}

static evmap_status average_pool_infer(const evm_node *node, evm_tensor *const *in,
                                       evm_tensor *const *out, evmap_error *err) {
    const avg_params *p = node->params;
    return evm_pool2d_infer(node, &p->window, in, out, err);
}

/* Taps k of the window at output o whose position o * stride + k * dilation
 * - pad lies in [lo, hi): [*first, *last], empty when *last < *first. */
static void tap_range(int64_t o, int axis, const evm_window2d *k, int64_t lo, int64_t hi,
                      int64_t *first, int64_t *last) {
    int64_t start = o * k->stride[axis] - k->pad_begin[axis], d = k->dilation[axis];
    /* first k with start + k * d >= lo, last k with start + k * d <= hi - 1 */
    *first = start >= lo ? 0 : (lo - start + d - 1) / d;
    *last = hi - 1 - start < 0 ? -1 : (hi - 1 - start) / d;
    if (*last > k->kernel[axis] - 1)
        *last = k->kernel[axis] - 1;
}

/* Number of taps of the window at output o inside [lo, hi). */
static int64_t taps_inside(int64_t o, int axis, const evm_window2d *k, int64_t lo, int64_t hi) {
    int64_t first, last;
    tap_range(o, axis, k, lo, hi, &first, &last);
    return last >= first ? last - first + 1 : 0;
}

/* Counting bounds along an axis of input size n: the input itself, or the
 * padded input [-pad_begin, n + pad_end). */
static void count_bounds(const evm_window2d *k, int axis, int64_t n, bool include_pad, int64_t *lo,
                         int64_t *hi) {
    *lo = include_pad ? -(int64_t)k->pad_begin[axis] : 0;
    *hi = include_pad ? n + k->pad_end[axis] : n;
}

/* Output rows [r->y0, r->y1) x columns [r->x0, r->x1) of one channel plane
 * (the whole plane for forward): window sums (taps outermost, rows
 * innermost, as in MaxPool), then the division by the separable tap count. */
static void average_plane(const evm_window2d *k, bool include_pad, const float *x, int64_t h,
                          int64_t w, float *y, int64_t ow, const evm_region *r) {
    for (int64_t oy = r->y0; oy < r->y1; oy++)
        for (int64_t ox = r->x0; ox < r->x1; ox++)
            y[oy * ow + ox] = 0.0f;
    int64_t sy = k->stride[0], sx = k->stride[1];
    for (int ky = 0; ky < k->kernel[0]; ky++) {
        int64_t offy = (int64_t)ky * k->dilation[0] - k->pad_begin[0];
        int64_t ylo, yhi;
        evm_window_valid_range(r->y1, sy, offy, h, &ylo, &yhi);
        ylo = ylo > r->y0 ? ylo : r->y0;
        for (int kx = 0; kx < k->kernel[1]; kx++) {
            int64_t offx = (int64_t)kx * k->dilation[1] - k->pad_begin[1];
            int64_t xlo, xhi;
            evm_window_valid_range(r->x1, sx, offx, w, &xlo, &xhi);
            xlo = xlo > r->x0 ? xlo : r->x0;
            for (int64_t oy = ylo; oy < yhi; oy++) {
                const float *src = x + (oy * sy + offy) * w;
                float *d = y + oy * ow;
                for (int64_t ox = xlo; ox < xhi; ox++)
                    d[ox] += src[ox * sx + offx];
            }
        }
    }
    int64_t rlo, rhi, clo, chi;
    count_bounds(k, 0, h, include_pad, &rlo, &rhi);
    count_bounds(k, 1, w, include_pad, &clo, &chi);
    for (int64_t oy = r->y0; oy < r->y1; oy++) {
        int64_t rows = taps_inside(oy, 0, k, rlo, rhi);
        for (int64_t ox = r->x0; ox < r->x1; ox++) {
            int64_t n = rows * taps_inside(ox, 1, k, clo, chi);
            /* a window of padding only (possible with large pads) averages to 0 */
            y[oy * ow + ox] = n > 0 ? y[oy * ow + ox] / (float)n : 0.0f;
        }
    }
}

static void average_pool_region(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                const evm_region *r, float *workspace) {
    (void)workspace;
    const avg_params *p = node->params;
    const evm_tensor *x = in[0];
    evm_window2d win;
    int64_t oh, ow;
    evm_window2d_output(node, &p->window, x->dims[2], x->dims[3], &win, &oh, &ow, NULL);
    int64_t planes = x->dims[0] * x->dims[1], h = x->dims[2], w = x->dims[3];
    for (int64_t i = 0; i < planes; i++)
        average_plane(&win, p->count_include_pad, evm_f32(x) + i * h * w, h, w,
                      evm_f32(out[0]) + i * oh * ow, ow, r);
}

static void average_pool_forward(const evm_node *node, evm_tensor *const *in,
                                 evm_tensor *const *out, float *workspace) {
    evm_region all = {EVM_REGION_RECT, 0, out[0]->dims[2], 0, out[0]->dims[3]};
    average_pool_region(node, in, out, &all, workspace);
}

static evm_region average_pool_field(const evm_node *node, evm_tensor *const *in,
                                     evm_tensor *const *out, const evm_region *in_regions) {
    const avg_params *p = node->params;
    (void)out;
    return evm_pool2d_field(node, &p->window, in, &in_regions[0]);
}

static evm_region average_pool_reads(const evm_node *node, evm_tensor *const *in,
                                     evm_tensor *const *out, const evm_region *r) {
    const avg_params *p = node->params;
    (void)out;
    return evm_pool2d_reads(node, &p->window, in, r);
}

/* One channel plane: each output's gradient divided by the forward's
 * divisor and added to its window's taps inside the input (windows may
 * overlap, so the plane is cleared first). */
static void average_plane_backward(const evm_window2d *k, bool include_pad, int64_t h, int64_t w,
                                   const float *gy, int64_t oh, int64_t ow, float *gx) {
    for (int64_t i = 0; i < h * w; i++)
        gx[i] = 0.0f;
    int64_t rlo, rhi, clo, chi;
    count_bounds(k, 0, h, include_pad, &rlo, &rhi);
    count_bounds(k, 1, w, include_pad, &clo, &chi);
    int64_t dy = k->dilation[0], dx = k->dilation[1];
    for (int64_t oy = 0; oy < oh; oy++) {
        int64_t rows = taps_inside(oy, 0, k, rlo, rhi), ky0, ky1;
        tap_range(oy, 0, k, 0, h, &ky0, &ky1);
        int64_t y0 = oy * k->stride[0] - k->pad_begin[0];
        for (int64_t ox = 0; ox < ow; ox++) {
            int64_t n = rows * taps_inside(ox, 1, k, clo, chi), kx0, kx1;
            if (n == 0)
                continue; /* the forward's constant 0 */
            tap_range(ox, 1, k, 0, w, &kx0, &kx1);
            float g = gy[oy * ow + ox] / (float)n;
            int64_t x0 = ox * k->stride[1] - k->pad_begin[1];
            for (int64_t ky = ky0; ky <= ky1; ky++) {
                float *row = gx + (y0 + ky * dy) * w;
                for (int64_t kx = kx0; kx <= kx1; kx++)
                    row[x0 + kx * dx] += g;
            }
        }
    }
}

static void average_pool_backward(const evm_node *node, evm_tensor *const *in,
                                  evm_tensor *const *out, const evm_tensor *grad_out,
                                  evm_tensor *const *grad_in, float *workspace) {
    (void)out;
    (void)workspace;
    const avg_params *p = node->params;
    const evm_tensor *x = in[0];
    evm_window2d win;
    int64_t oh, ow;
    evm_window2d_output(node, &p->window, x->dims[2], x->dims[3], &win, &oh, &ow, NULL);
    int64_t planes = x->dims[0] * x->dims[1], h = x->dims[2], w = x->dims[3];
    for (int64_t i = 0; i < planes; i++)
        average_plane_backward(&win, p->count_include_pad, h, w, evm_f32(grad_out) + i * oh * ow,
                               oh, ow, evm_f32(grad_in[0]) + i * h * w);
}

const evm_op_def evm_op_average_pool = {
    .name = "AveragePool",
    .min_inputs = 1,
    .max_inputs = 1,
    .init = average_pool_init,
    .infer = average_pool_infer,
    .forward = average_pool_forward,
    .field = average_pool_field,
    .reads = average_pool_reads,
    .forward_region = average_pool_region,
    .grad_inputs = 1u << 0,
    .backward = average_pool_backward,
    .kinks = EVM_KINKS_NONE,
};
