/*
 * Conv's sgemm kernels: pointwise (1x1, stride 1, no padding: the input
 * already is the matrix) and im2col + sgemm for every shape the other
 * kernels do not take. One driver, since they differ only in building B.
 *
 * Per group, Y_g (mg x cols) = W_g (mg x K) * B (K x cols), where B holds the
 * columns of nb images side by side: the images themselves (pointwise) or
 * their im2col. With nb == 1 and pointwise, B is the input and sgemm writes
 * the output directly; otherwise B is built in the workspace, and with
 * nb > 1 sgemm writes into the workspace and a scatter moves each image's
 * rows into place.
 */
#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "conv_internal.h"
#include "base/sgemm.h"

gemm_geom evm_conv_gemm_geometry(const evm_conv2d_shape *s) {
    gemm_geom g;
    g.cg = s->c / s->group;
    g.mg = s->m / s->group;
    g.kdim = g.cg * s->win.kernel[0] * s->win.kernel[1];
    g.p = s->oh * s->ow;
    size_t want = CONV_MIN_COLUMNS;
    size_t nb = (want + (size_t)g.p - 1) / (size_t)g.p;
    nb = nb < 1 ? 1 : nb > (size_t)s->n ? (size_t)s->n : nb;
    /* sgemm's column count is an int */
    while (nb > 1 && nb * (size_t)g.p > INT_MAX)
        nb--;
    g.nb = (int)nb;
    return g;
}

size_t evm_conv_gemm_workspace(const evm_conv2d_shape *s, conv_kernel kind) {
    gemm_geom g = evm_conv_gemm_geometry(s);
    size_t cols = (size_t)g.nb * g.p;
    size_t b = kind == CONV_POINTWISE && g.nb == 1 ? 0 : (size_t)g.kdim * cols;
    return b + (g.nb > 1 ? (size_t)g.mg * cols : 0);
}

/* im2col without padding (exact locality's sub-images are gathered with
 * their padding): every tap lies inside the input, so each output row is
 * one short strided copy, with no range arithmetic. */
static void im2col_unpadded(const evm_conv2d_shape *s, const float *x, int c0, int c1, float *col,
                            size_t ld) {
    const evm_window2d *k = &s->win;
    int sy = k->stride[0], sx = k->stride[1], oh = s->oh, ow = s->ow;
    for (int ci = c0; ci < c1; ci++) {
        const float *plane = x + (size_t)ci * s->h * s->w;
        for (int ky = 0; ky < k->kernel[0]; ky++)
            for (int kx = 0; kx < k->kernel[1]; kx++) {
                float *dst = col + ((size_t)(ci * k->kernel[0] + ky) * k->kernel[1] + kx) * ld;
                const float *src =
                    plane + (size_t)ky * k->dilation[0] * s->w + (size_t)kx * k->dilation[1];
                for (int oy = 0; oy < oh; oy++, dst += ow) {
                    const float *row = src + (size_t)oy * sy * s->w;
                    if (sx == 1)
                        for (int ox = 0; ox < ow; ox++)
                            dst[ox] = row[ox];
                    else
                        for (int ox = 0; ox < ow; ox++)
                            dst[ox] = row[(size_t)ox * sx];
                }
            }
    }
}

/* im2col of input channels [c0, c1) of one image: row (c, ky, kx), column
 * (oy, ox), rows ld floats apart. Writes are contiguous; padding becomes
 * memset runs. */
static void im2col(const evm_conv2d_shape *s, const float *x, int c0, int c1, float *col,
                   size_t ld) {
    const evm_window2d *k = &s->win;
    if (!k->pad_begin[0] && !k->pad_begin[1] && !k->pad_end[0] && !k->pad_end[1] &&
        (s->oh - 1) * k->stride[0] + (k->kernel[0] - 1) * k->dilation[0] < s->h &&
        (s->ow - 1) * k->stride[1] + (k->kernel[1] - 1) * k->dilation[1] < s->w) {
        im2col_unpadded(s, x, c0, c1, col, ld);
        return;
    }
    int sy = k->stride[0], sx = k->stride[1];
    for (int ci = c0; ci < c1; ci++) {
        const float *plane = x + (size_t)ci * s->h * s->w;
        for (int ky = 0; ky < k->kernel[0]; ky++) {
            int offy = ky * k->dilation[0] - k->pad_begin[0];
            int ylo, yhi;
            evm_conv_valid_range(s->oh, sy, offy, s->h, &ylo, &yhi);
            for (int kx = 0; kx < k->kernel[1]; kx++) {
                int offx = kx * k->dilation[1] - k->pad_begin[1];
                int xlo, xhi;
                evm_conv_valid_range(s->ow, sx, offx, s->w, &xlo, &xhi);
                float *dst = col + ((size_t)(ci * k->kernel[0] + ky) * k->kernel[1] + kx) * ld;
                /* the sub-images of exact locality are small and unpadded:
                 * skip empty padding runs, copy short rows inline */
                if (ylo > 0)
                    memset(dst, 0, sizeof(float) * (size_t)ylo * s->ow);
                for (int oy = ylo; oy < yhi; oy++) {
                    /* ox in [xlo, xhi) keeps ox * sx + offx inside the row */
                    const float *src = plane + (size_t)(oy * sy + offy) * s->w;
                    float *d = dst + (size_t)oy * s->ow;
                    for (int ox = 0; ox < xlo; ox++)
                        d[ox] = 0.0f;
                    if (sx == 1 && xhi - xlo > 16)
                        memcpy(d + xlo, src + xlo + offx, sizeof(float) * (size_t)(xhi - xlo));
                    else
                        for (int ox = xlo; ox < xhi; ox++)
                            d[ox] = src[ox * sx + offx];
                    for (int ox = xhi; ox < s->ow; ox++)
                        d[ox] = 0.0f;
                }
                if (yhi < s->oh)
                    memset(dst + (size_t)yhi * s->ow, 0,
                           sizeof(float) * (size_t)(s->oh - yhi) * s->ow);
            }
        }
    }
}

typedef struct gemm_job {
    const evm_conv2d_shape *s;
    const gemm_geom *g;
    conv_kernel kind;
    const float *x;   /* input of the first image of the batch of nb */
    int nb, gi;       /* images in this sgemm, group */
    float *b;         /* B */
    const float *tmp; /* sgemm output when nb > 1 */
    const float *bias;
    float *y; /* output of the first image */
} gemm_job;

/* Builds B: rows of the group's input channels (or their im2col), split
 * over input channels. */
static void gemm_b_part(void *ctx, int part, int parts) {
    const gemm_job *j = ctx;
    const evm_conv2d_shape *s = j->s;
    const gemm_geom *g = j->g;
    size_t lo, hi, in_plane = (size_t)s->h * s->w, cols = (size_t)j->nb * g->p;
    evm_conv_items_range((size_t)g->cg, part, parts, &lo, &hi);
    for (int n = 0; n < j->nb; n++) {
        const float *xg = j->x + ((size_t)n * s->c + (size_t)j->gi * g->cg) * in_plane;
        if (j->kind == CONV_POINTWISE) {
            for (size_t c = lo; c < hi; c++)
                memcpy(j->b + c * cols + (size_t)n * g->p, xg + c * in_plane,
                       sizeof(float) * in_plane);
        } else {
            im2col(s, xg, (int)lo, (int)hi, j->b + (size_t)n * g->p, cols);
        }
    }
}

/* Moves each image's rows of the sgemm output into place, adding the bias. */
static void gemm_scatter_part(void *ctx, int part, int parts) {
    const gemm_job *j = ctx;
    const gemm_geom *g = j->g;
    size_t lo, hi, cols = (size_t)j->nb * g->p, plane = (size_t)g->p;
    evm_conv_items_range((size_t)g->mg, part, parts, &lo, &hi);
    for (int n = 0; n < j->nb; n++)
        for (size_t mi = lo; mi < hi; mi++) {
            size_t m = (size_t)j->gi * g->mg + mi;
            float b = j->bias ? j->bias[m] : 0.0f;
            const float *src = j->tmp + mi * cols + (size_t)n * plane;
            float *dst = j->y + ((size_t)n * j->s->m + m) * plane;
            for (size_t i = 0; i < plane; i++)
                dst[i] = src[i] + b;
        }
}

/* Fills the group's output planes of one image with the bias, for sgemm to
 * accumulate onto. */
static void fill_bias(float *y, const float *bias, int m0, int m, size_t plane) {
    for (int i = 0; i < m; i++) {
        float v = bias ? bias[m0 + i] : 0.0f;
        float *d = y + (size_t)i * plane;
        for (size_t k = 0; k < plane; k++)
            d[k] = v;
    }
}

void evm_conv_gemm(const evm_conv2d_shape *s, conv_kernel kind, const float *x, const float *w,
                   const float *bias, float *y, float *work) {
    gemm_geom g = evm_conv_gemm_geometry(s);
    size_t in_image = (size_t)s->c * s->h * s->w, out_image = (size_t)s->m * g.p;
    for (int n0 = 0; n0 < s->n; n0 += g.nb) {
        int nb = s->n - n0 < g.nb ? s->n - n0 : g.nb;
        int cols = nb * g.p;
        for (int gi = 0; gi < s->group; gi++) {
            gemm_job j = {.s = s,
                          .g = &g,
                          .kind = kind,
                          .x = x + (size_t)n0 * in_image,
                          .nb = nb,
                          .gi = gi,
                          .b = work,
                          .bias = bias,
                          .y = y + (size_t)n0 * out_image};
            const float *b = work;
            if (kind == CONV_POINTWISE && g.nb == 1)
                b = j.x + (size_t)gi * g.cg * g.p;
            else
                evm_conv_parallel(gemm_b_part, &j, (size_t)g.kdim * cols);
            const float *wg = w + (size_t)gi * g.mg * g.kdim;
            if (g.nb == 1) {
                float *yg = j.y + (size_t)gi * g.mg * g.p;
                fill_bias(yg, bias, gi * g.mg, g.mg, (size_t)g.p);
                evm_sgemm(false, false, g.mg, cols, g.kdim, 1.0f, wg, g.kdim, b, cols, 1.0f, yg,
                          g.p);
            } else {
                float *tmp = work + (size_t)g.kdim * g.nb * g.p;
                evm_sgemm(false, false, g.mg, cols, g.kdim, 1.0f, wg, g.kdim, b, cols, 0.0f, tmp,
                          cols);
                j.tmp = tmp;
                evm_conv_parallel(gemm_scatter_part, &j, (size_t)g.mg * cols);
            }
        }
    }
}
