/*
 * Conv's depthwise kernel (group == C == M, as in MobileNet): a direct loop
 * per channel plane, since each output channel reads one input channel and
 * an sgemm would have a single row.
 */
#include "conv_internal.h"

/* One depthwise channel: y (oh x ow) = bias + window sum of x (h x w) * k. */
static void depthwise_plane(const evm_conv2d_shape *s, const float *x, const float *kern,
                            float bias, float *y) {
    const evm_window2d *k = &s->win;
    int sy = k->stride[0], sx = k->stride[1];
    for (size_t j = 0; j < (size_t)s->oh * s->ow; j++)
        y[j] = bias;
    for (int ky = 0; ky < k->kernel[0]; ky++) {
        int offy = ky * k->dilation[0] - k->pad_begin[0];
        int ylo, yhi;
        evm_conv_valid_range(s->oh, sy, offy, s->h, &ylo, &yhi);
        for (int kx = 0; kx < k->kernel[1]; kx++) {
            int offx = kx * k->dilation[1] - k->pad_begin[1];
            int xlo, xhi;
            evm_conv_valid_range(s->ow, sx, offx, s->w, &xlo, &xhi);
            float wv = kern[ky * k->kernel[1] + kx];
            for (int oy = ylo; oy < yhi; oy++) {
                const float *src = x + (size_t)(oy * sy + offy) * s->w;
                float *d = y + (size_t)oy * s->ow;
                if (sx == 1)
                    for (int ox = xlo; ox < xhi; ox++)
                        d[ox] += wv * src[ox + offx];
                else
                    for (int ox = xlo; ox < xhi; ox++)
                        d[ox] += wv * src[ox * sx + offx];
            }
        }
    }
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
