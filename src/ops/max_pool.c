/*
 * MaxPool, 2-D, NCHW float32: pads, auto_pad, strides, dilations, ceil_mode.
 * Padding never wins (it acts as -infinity), and with ceil_mode a window that
 * runs past the padded input is clipped to it. The optional Indices output
 * and storage_order 1 are rejected at init.
 * Backward routes each output's gradient to the tap the forward picked: the
 * first strict maximum in row-major window order (as PyTorch on ties).
 * Invariants: infer checked the 4-D input and a non-empty output; forward
 * resolves the same window from the same shapes, so it cannot fail.
 */
#include <float.h>
#include <stdlib.h>

#include "op.h"

typedef struct pool_params {
    evm_window2d window; /* parsed attributes; SAME_* resolved per plan */
} pool_params;

static evmap_status max_pool_init(evm_node *node, evmap_error *err) {
    if (node->n_outputs > 1 && node->outputs[1] != EVM_NO_VALUE)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "the optional Indices output is not supported");
    int64_t storage_order;
    evmap_status st = evm_attr_int(node, "storage_order", 0, &storage_order, err);
    if (st != EVMAP_OK)
        return st;
    if (storage_order != 0)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "storage_order %lld is not supported (only 0, row major)",
                             (long long)storage_order);
    pool_params p;
    st = evm_window2d_parse(node, &p.window, true, true, true, err);
    if (st != EVMAP_OK)
        return st;
    return evm_node_set_params(node, &p, sizeof p, err);
}

static evmap_status max_pool_infer(const evm_node *node, evm_tensor *const *in,
                                   evm_tensor *const *out, evmap_error *err) {
    const pool_params *p = node->params;
    return evm_pool2d_infer(node, &p->window, in, out, err);
}

/* Output rows [r->y0, r->y1) x columns [r->x0, r->x1) of one channel plane
 * (the whole plane for forward). Taps loop outermost so the inner loop runs
 * along a row with no bounds checks (contiguous for stride 1). */
static void max_plane(const evm_window2d *k, const float *x, int64_t h, int64_t w, float *y,
                      int64_t ow, const evm_region *r) {
    for (int64_t oy = r->y0; oy < r->y1; oy++)
        for (int64_t ox = r->x0; ox < r->x1; ox++)
            y[oy * ow + ox] =
                -FLT_MAX; /* a window of padding only: the lowest float, as ONNX Runtime */
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
                for (int64_t ox = xlo; ox < xhi; ox++) {
                    float v = src[ox * sx + offx];
                    d[ox] = v > d[ox] ? v : d[ox];
                }
            }
        }
    }
}

static void max_pool_region(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                            const evm_region *r, float *workspace) {
    (void)workspace;
    const pool_params *p = node->params;
    const evm_tensor *x = in[0];
    evm_window2d win;
    int64_t oh, ow;
    evm_window2d_output(node, &p->window, x->dims[2], x->dims[3], &win, &oh, &ow, NULL);
    int64_t planes = x->dims[0] * x->dims[1], h = x->dims[2], w = x->dims[3];
    for (int64_t i = 0; i < planes; i++)
        max_plane(&win, evm_f32(x) + i * h * w, h, w, evm_f32(out[0]) + i * oh * ow, ow, r);
}

static void max_pool_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                             float *workspace) {
    evm_region all = {EVM_REGION_RECT, 0, out[0]->dims[2], 0, out[0]->dims[3]};
    max_pool_region(node, in, out, &all, workspace);
}

static evm_region max_pool_field(const evm_node *node, evm_tensor *const *in,
                                 evm_tensor *const *out, const evm_region *in_regions) {
    const pool_params *p = node->params;
    (void)out;
    return evm_pool2d_field(node, &p->window, in, &in_regions[0]);
}

static evm_region max_pool_reads(const evm_node *node, evm_tensor *const *in,
                                 evm_tensor *const *out, const evm_region *r) {
    const pool_params *p = node->params;
    (void)out;
    return evm_pool2d_reads(node, &p->window, in, r);
}

/* Taps k of the window at output o (resolved window, one axis) that land
 * inside an input of size n: [*first, *last], empty when *last < *first.
 * (Same arithmetic as AveragePool's taps_inside.) */
static void tap_range(const evm_window2d *k, int axis, int64_t o, int64_t n, int64_t *first,
                      int64_t *last) {
    int64_t start = o * k->stride[axis] - k->pad_begin[axis], d = k->dilation[axis];
    *first = start >= 0 ? 0 : (-start + d - 1) / d;
    *last = n - 1 - start < 0 ? -1 : (n - 1 - start) / d;
    if (*last > k->kernel[axis] - 1)
        *last = k->kernel[axis] - 1;
}

/* Input offset of the first strict maximum of output (oy, ox)'s window, in
 * the forward's tap order and starting from its -FLT_MAX; -1 when no tap
 * beats that (padding only, or NaN / -inf inputs), which gets no gradient. */
static int64_t argmax_tap(const evm_window2d *k, const float *x, int64_t h, int64_t w, int64_t oy,
                          int64_t ox) {
    int64_t ky0, ky1, kx0, kx1, at = -1;
    tap_range(k, 0, oy, h, &ky0, &ky1);
    tap_range(k, 1, ox, w, &kx0, &kx1);
    int64_t y0 = oy * k->stride[0] - k->pad_begin[0], x0 = ox * k->stride[1] - k->pad_begin[1];
    float best = -FLT_MAX;
    for (int64_t ky = ky0; ky <= ky1; ky++) {
        int64_t row = (y0 + ky * k->dilation[0]) * w;
        for (int64_t kx = kx0; kx <= kx1; kx++) {
            int64_t i = row + x0 + kx * k->dilation[1];
            if (x[i] > best) {
                best = x[i];
                at = i;
            }
        }
    }
    return at;
}

/* One channel plane: overlapping windows may pick the same input, so the
 * plane is cleared and the gradients accumulate. */
static void max_plane_backward(const evm_window2d *k, const float *x, int64_t h, int64_t w,
                               const float *gy, int64_t oh, int64_t ow, float *gx) {
    for (int64_t i = 0; i < h * w; i++)
        gx[i] = 0.0f;
    for (int64_t oy = 0; oy < oh; oy++)
        for (int64_t ox = 0; ox < ow; ox++) {
            int64_t at = argmax_tap(k, x, h, w, oy, ox);
            if (at >= 0)
                gx[at] += gy[oy * ow + ox];
        }
}

static void max_pool_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              const evm_tensor *grad_out, evm_tensor *const *grad_in,
                              float *workspace) {
    (void)out;
    (void)workspace;
    const pool_params *p = node->params;
    const evm_tensor *x = in[0];
    evm_window2d win;
    int64_t oh, ow;
    evm_window2d_output(node, &p->window, x->dims[2], x->dims[3], &win, &oh, &ow, NULL);
    int64_t planes = x->dims[0] * x->dims[1], h = x->dims[2], w = x->dims[3];
    for (int64_t i = 0; i < planes; i++)
        max_plane_backward(&win, evm_f32(x) + i * h * w, h, w, evm_f32(grad_out) + i * oh * ow, oh,
                           ow, evm_f32(grad_in[0]) + i * h * w);
}

const evm_op_def evm_op_max_pool = {
    .name = "MaxPool",
    .min_inputs = 1,
    .max_inputs = 1,
    .init = max_pool_init,
    .infer = max_pool_infer,
    .forward = max_pool_forward,
    .field = max_pool_field,
    .reads = max_pool_reads,
    .forward_region = max_pool_region,
    .grad_inputs = 1u << 0,
    .backward = max_pool_backward,
    .kinks = EVM_KINKS_ARGMAX,
};
