/*
 * Conv's depthwise kernel (group == C == M, as in MobileNet): a direct loop
 * per channel plane, since each output channel reads one input channel and
 * an sgemm would have a single row.
 */
#include <stdbool.h>

#include "conv_internal.h"

/* Outputs [from, to) of one output row: bias plus every tap of the window,
 * accumulated tap after tap (row-major over the window) while the row stays
 * in L1. Each tap's inner loop is a multiply-add over contiguous floats
 * (stride 1) that the compiler vectorises. */
static inline void row_taps(const evm_conv2d_shape *s, const float *x, const float *kern,
                            float bias, int oy, float *d, int from, int to) {
    const evm_window2d *k = &s->win;
    int sy = k->stride[0], sx = k->stride[1];
    for (int ox = from; ox < to; ox++)
        d[ox] = bias;
    for (int ky = 0; ky < k->kernel[0]; ky++) {
        int iy = oy * sy + ky * k->dilation[0] - k->pad_begin[0];
        if (iy < 0 || iy >= s->h)
            continue;
        const float *src = x + (size_t)iy * s->w;
        for (int kx = 0; kx < k->kernel[1]; kx++) {
            int offx = kx * k->dilation[1] - k->pad_begin[1];
            int xlo, xhi;
            evm_conv_valid_range(s->ow, sx, offx, s->w, &xlo, &xhi);
            xlo = xlo > from ? xlo : from;
            xhi = xhi < to ? xhi : to;
            float wv = kern[ky * k->kernel[1] + kx];
            if (sx == 1)
                for (int ox = xlo; ox < xhi; ox++)
                    d[ox] += wv * src[ox + offx];
            else
                for (int ox = xlo; ox < xhi; ox++)
                    d[ox] += wv * src[ox * sx + offx];
        }
    }
}

/* One output row. For a 3x3 window at stride 1 (MobileNet's), the outputs
 * whose nine taps all lie inside the image are one expression each, held in
 * registers: the same sums in the same order as row_taps (no contraction
 * into FMA under -std=c11), so the results are bitwise equal. The AVX2 clone
 * runs on CPUs that have it. */
__attribute__((target_clones("avx2", "default"))) static void
depthwise_row(const evm_conv2d_shape *s, const float *x, const float *kern, float bias, int oy,
              float *d) {
    const evm_window2d *k = &s->win;
    int top = oy - k->pad_begin[0], left = -k->pad_begin[1];
    bool fast = k->kernel[0] == 3 && k->kernel[1] == 3 && k->stride[0] == 1 && k->stride[1] == 1 &&
                k->dilation[0] == 1 && k->dilation[1] == 1 && top >= 0 && top + 2 < s->h;
    if (!fast) {
        row_taps(s, x, kern, bias, oy, d, 0, s->ow);
        return;
    }
    /* ox + left >= 0 and ox + left + 2 < w */
    int lo = left >= 0 ? 0 : -left, hi = s->w - 2 - left;
    hi = hi < s->ow ? hi : s->ow;
    if (hi <= lo) {
        row_taps(s, x, kern, bias, oy, d, 0, s->ow);
        return;
    }
    row_taps(s, x, kern, bias, oy, d, 0, lo);
    const float *r0 = x + (size_t)top * s->w + left, *r1 = r0 + s->w, *r2 = r1 + s->w;
    const float w0 = kern[0], w1 = kern[1], w2 = kern[2], w3 = kern[3], w4 = kern[4], w5 = kern[5],
                w6 = kern[6], w7 = kern[7], w8 = kern[8];
    for (int ox = lo; ox < hi; ox++)
        d[ox] = bias + w0 * r0[ox] + w1 * r0[ox + 1] + w2 * r0[ox + 2] + w3 * r1[ox] +
                w4 * r1[ox + 1] + w5 * r1[ox + 2] + w6 * r2[ox] + w7 * r2[ox + 1] + w8 * r2[ox + 2];
    row_taps(s, x, kern, bias, oy, d, hi, s->ow);
}

/* One depthwise channel: y (oh x ow) = bias + window sum of x (h x w) * k. */
static void depthwise_plane(const evm_conv2d_shape *s, const float *x, const float *kern,
                            float bias, float *y) {
    for (int oy = 0; oy < s->oh; oy++)
        depthwise_row(s, x, kern, bias, oy, y + (size_t)oy * s->ow);
}

static void dw_part(void *ctx, int part, int parts) {
    const dw_job *j = ctx;
    const evm_conv2d_shape *s = j->s;
    size_t in_plane = (size_t)s->h * s->w, out_plane = (size_t)s->oh * s->ow;
    size_t kk = (size_t)s->win.kernel[0] * s->win.kernel[1];
    size_t lo, hi;
    evm_conv_items_range((size_t)s->n * s->c, part, parts, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        size_t c = i % (size_t)s->c;
        depthwise_plane(s, j->x + i * in_plane, j->w + c * kk, j->bias ? j->bias[c] : 0.0f,
                        j->y + i * out_plane);
    }
}

void evm_conv_depthwise(const evm_conv2d_shape *s, const float *x, const float *w,
                        const float *bias, float *y) {
    dw_job j = {s, x, w, bias, y};
    /* only picks the thread count; may wrap (unsigned) for absurd kernels */
    evm_conv_parallel(dw_part, &j,
                      (size_t)s->n * s->c * s->oh * s->ow * s->win.kernel[0] * s->win.kernel[1]);
}
