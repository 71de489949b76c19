/*
 * Conv's input gradient (evmap explains inputs, never weights), which is also
 * ConvTranspose's forward (evm_conv_transpose_run, with a bias). Three ways,
 * chosen per plan (grad_choose): for stride 1 the transposed convolution,
 * which reuses the forward kernels on flipped weights; otherwise every tap
 * scattered back (depthwise) or sgemm + col2im.
 * Shapes may have a negative pad_end (ConvTranspose's output_padding and
 * output_shape reach past the last tap): only pad_begin places taps, and the
 * valid ranges keep every tap inside the plane.
 */
#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "conv_internal.h"
#include "base/sgemm.h"

/* For stride 1, the input gradient is itself a convolution: of the output
 * gradient with the flipped, transposed weights (flip_part), padded by what
 * each forward window reaches past its output position. Fills t with that
 * convolution's shape; false when it does not apply (strides, a pad beyond
 * the dilated kernel) or its sizes would not fit sgemm's ints. */
static bool conv_transposed_shape(const evm_conv2d_shape *s, evm_conv2d_shape *t) {
    const evm_window2d *k = &s->win;
    if (k->stride[0] != 1 || k->stride[1] != 1 || k->pad_begin[0] < 0 || k->pad_begin[1] < 0)
        return false;
    *t = *s;
    t->c = s->m;
    t->h = s->oh;
    t->w = s->ow;
    t->m = s->c;
    t->oh = s->h;
    t->ow = s->w;
    t->win.auto_pad = EVM_AUTO_PAD_NOTSET;
    for (int a = 0; a < 2; a++) {
        int reach = (k->kernel[a] - 1) * k->dilation[a]; /* < INT_MAX: axis_output */
        if (k->pad_begin[a] > reach || k->pad_end[a] > reach)
            return false;
        t->win.pad_begin[a] = reach - k->pad_begin[a];
        t->win.pad_end[a] = reach - k->pad_end[a];
    }
    int64_t kdim = (int64_t)(s->m / s->group) * k->kernel[0] * k->kernel[1];
    int64_t plane = (int64_t)s->h * s->w;
    /* its im2col bounded as the forward's is (conv_infer) */
    return plane <= INT_MAX && kdim <= INT_MAX && kdim * plane <= (int64_t)EVM_MAX_TENSOR_ELEMENTS;
}

/* Starts an input-gradient plane: all zero, or the bias of its channel. */
static void fill_plane(float *plane, size_t n, float v) {
    if (v == 0.0f) {
        memset(plane, 0, sizeof(float) * n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        plane[i] = v;
}

/* The transpose of one kernel tap (ky, kx): plane (h x w) += wv * g (oh x ow)
 * at the input positions the tap reads. */
static void scatter_tap(const evm_conv2d_shape *s, int ky, int kx, const float *restrict g,
                        float wv, float *restrict plane) {
    const evm_window2d *k = &s->win;
    int sy = k->stride[0], sx = k->stride[1];
    int offy = ky * k->dilation[0] - k->pad_begin[0];
    int offx = kx * k->dilation[1] - k->pad_begin[1];
    int ylo, yhi, xlo, xhi;
    evm_conv_valid_range(s->oh, sy, offy, s->h, &ylo, &yhi);
    evm_conv_valid_range(s->ow, sx, offx, s->w, &xlo, &xhi);
    for (int oy = ylo; oy < yhi; oy++) {
        float *restrict d = plane + (size_t)(oy * sy + offy) * s->w;
        const float *restrict src = g + (size_t)oy * s->ow;
        if (sx == 1)
            for (int ox = xlo; ox < xhi; ox++)
                d[ox + offx] += wv * src[ox];
        else
            for (int ox = xlo; ox < xhi; ox++)
                d[ox * sx + offx] += wv * src[ox];
    }
}

/* Input gradient of depthwise convolution, one plane per channel and image:
 * every tap scattered back, for the shapes the transposed convolution does
 * not cover (strides, large pads). x is the output gradient, y the input
 * gradient, bias (may be NULL) one value per input channel. */
static void dw_backward_part(void *ctx, int part, int parts) {
    const dw_job *j = ctx;
    const evm_conv2d_shape *s = j->s;
    size_t in_plane = (size_t)s->h * s->w, out_plane = (size_t)s->oh * s->ow;
    int kh = s->win.kernel[0], kw = s->win.kernel[1];
    size_t lo, hi;
    evm_conv_items_range((size_t)s->n * s->c, part, parts, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        const float *kern = j->w + (i % (size_t)s->c) * kh * kw;
        float *gx = j->y + i * in_plane;
        fill_plane(gx, in_plane, j->bias ? j->bias[i % (size_t)s->c] : 0.0f);
        for (int ky = 0; ky < kh; ky++)
            for (int kx = 0; kx < kw; kx++)
                scatter_tap(s, ky, kx, j->x + i * out_plane, kern[ky * kw + kx], gx);
    }
}

/* Input gradient by sgemm and col2im, for the shapes the transposed
 * convolution does not cover: per group, the columns W_g^T (kdim x mg) *
 * gY_g (mg x cols) hold what each kernel tap read, and col2im adds them back
 * onto the input pixels. Several images share one sgemm as in evm_conv_gemm,
 * their rows of gY gathered side by side after the columns. */
typedef struct col_job {
    const evm_conv2d_shape *s;
    const gemm_geom *g;
    int nb, gi;        /* images in this sgemm, group */
    const float *gy;   /* output gradient of the first image of the batch */
    float *col;        /* the columns, nb * p wide */
    float *tmp;        /* gathered gY_g when nb > 1 */
    float *gx;         /* input gradient of the first image */
    const float *bias; /* per input channel; may be NULL */
} col_job;

static void col_gather_part(void *ctx, int part, int parts) {
    const col_job *j = ctx;
    const gemm_geom *g = j->g;
    size_t lo, hi, p = (size_t)g->p, cols = (size_t)j->nb * p;
    evm_conv_items_range((size_t)g->mg, part, parts, &lo, &hi);
    for (int n = 0; n < j->nb; n++)
        for (size_t mi = lo; mi < hi; mi++)
            memcpy(j->tmp + mi * cols + (size_t)n * p,
                   j->gy + ((size_t)n * j->s->m + (size_t)j->gi * g->mg + mi) * p,
                   sizeof(float) * p);
}

/* Split over (image, channel) planes, so that no two parts add to one. */
static void col2im_part(void *ctx, int part, int parts) {
    const col_job *j = ctx;
    const evm_conv2d_shape *s = j->s;
    const gemm_geom *g = j->g;
    int kh = s->win.kernel[0], kw = s->win.kernel[1];
    size_t lo, hi, in_plane = (size_t)s->h * s->w, cols = (size_t)j->nb * g->p;
    evm_conv_items_range((size_t)j->nb * g->cg, part, parts, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        size_t n = i / (size_t)g->cg, c = i % (size_t)g->cg;
        size_t ch = (size_t)j->gi * g->cg + c;
        float *plane = j->gx + (n * s->c + ch) * in_plane;
        const float *rows = j->col + c * kh * kw * cols + n * g->p;
        fill_plane(plane, in_plane, j->bias ? j->bias[ch] : 0.0f);
        for (int ky = 0; ky < kh; ky++)
            for (int kx = 0; kx < kw; kx++)
                scatter_tap(s, ky, kx, rows + (size_t)(ky * kw + kx) * cols, 1.0f, plane);
    }
}

/* Workspace: as evm_conv_gemm's for CONV_IM2COL (columns, then gathered rows). */
static void conv_backward_gemm(const evm_conv2d_shape *s, const float *gy, const float *w,
                               const float *bias, float *gx, float *work) {
    gemm_geom g = evm_conv_gemm_geometry(s);
    size_t in_image = (size_t)s->c * s->h * s->w, out_image = (size_t)s->m * g.p;
    for (int n0 = 0; n0 < s->n; n0 += g.nb) {
        int nb = s->n - n0 < g.nb ? s->n - n0 : g.nb;
        int cols = nb * g.p;
        for (int gi = 0; gi < s->group; gi++) {
            col_job j = {.s = s,
                         .g = &g,
                         .nb = nb,
                         .gi = gi,
                         .gy = gy + (size_t)n0 * out_image,
                         .col = work,
                         .tmp = work + (size_t)g.kdim * cols,
                         .gx = gx + (size_t)n0 * in_image,
                         .bias = bias};
            const float *b = j.gy + (size_t)gi * g.mg * g.p;
            int ldb = g.p;
            if (nb > 1) {
                evm_conv_parallel(col_gather_part, &j, (size_t)g.mg * cols);
                b = j.tmp;
                ldb = cols;
            }
            evm_sgemm(true, false, g.kdim, cols, g.mg, 1.0f, w + (size_t)gi * g.mg * g.kdim, g.kdim,
                      b, ldb, 0.0f, work, cols);
            evm_conv_parallel(col2im_part, &j, (size_t)g.kdim * cols);
        }
    }
}

typedef enum conv_grad { GRAD_TRANSPOSED, GRAD_DEPTHWISE, GRAD_COL2IM } conv_grad;

/* The transposed convolution (t) reuses the forward kernels at the cost of
 * flipping the weights. Where it would fall to im2col, sgemm + col2im needs
 * no flip, and wins unless its columns outweigh im2col's and the flip (it
 * does when C > M; VGG's first layer is the opposite: 27 rows, not 576). */
static conv_grad grad_choose(const evm_conv2d_shape *s, evm_conv2d_shape *t) {
    if (conv_transposed_shape(s, t)) {
        double kk = (double)s->win.kernel[0] * s->win.kernel[1];
        double flip = kk * s->m * (s->c / s->group);
        double im2col = kk * s->n * (s->m / s->group) * s->h * s->w;
        double col2im = kk * s->n * (s->c / s->group) * s->oh * s->ow;
        if (evm_conv_choose(t) != CONV_IM2COL || im2col + flip < col2im)
            return GRAD_TRANSPOSED;
    }
    return evm_conv_choose(s) == CONV_DEPTHWISE ? GRAD_DEPTHWISE : GRAD_COL2IM;
}

typedef struct flip_job {
    const evm_conv2d_shape *s;
    const float *w;
    float *wt;
} flip_job;

/* Weights of the transposed convolution, C x mg x kh x kw:
 * wt[g*cg + ci][co] = w[g*mg + co][ci] rotated by 180 degrees. Split over
 * the C rows of wt. */
static void flip_part(void *ctx, int part, int parts) {
    const flip_job *j = ctx;
    const evm_conv2d_shape *s = j->s;
    size_t cg = (size_t)(s->c / s->group), mg = (size_t)(s->m / s->group);
    size_t kk = (size_t)s->win.kernel[0] * s->win.kernel[1];
    size_t lo, hi;
    evm_conv_items_range((size_t)s->c, part, parts, &lo, &hi);
    for (size_t c = lo; c < hi; c++) {
        size_t gi = c / cg, ci = c % cg;
        for (size_t co = 0; co < mg; co++) {
            const float *src = j->w + ((gi * mg + co) * cg + ci) * kk;
            float *dst = j->wt + (c * mg + co) * kk;
            for (size_t i = 0; i < kk; i++)
                dst[i] = src[kk - 1 - i];
        }
    }
}

size_t evm_conv_transpose_workspace(const evm_conv2d_shape *s) {
    evm_conv2d_shape t;
    conv_grad how = grad_choose(s, &t);
    if (how == GRAD_TRANSPOSED) /* the flipped weights, then the kernel's */
        return (size_t)s->m * (s->c / s->group) * s->win.kernel[0] * s->win.kernel[1] +
               evm_conv_kernel_workspace(&t);
    return how == GRAD_DEPTHWISE ? 0 : evm_conv_gemm_workspace(s, CONV_IM2COL);
}

void evm_conv_transpose_run(const evm_conv2d_shape *s, const float *gy, const float *w,
                            const float *bias, float *gx, float *workspace) {
    evm_conv2d_shape t;
    conv_grad how = grad_choose(s, &t);
    if (how == GRAD_TRANSPOSED) {
        size_t wn = (size_t)s->m * (s->c / s->group) * s->win.kernel[0] * s->win.kernel[1];
        flip_job j = {s, w, workspace};
        evm_conv_parallel(flip_part, &j, wn);
        evm_conv_run(&t, gy, workspace, bias, gx, workspace + wn);
    } else if (how == GRAD_DEPTHWISE) {
        dw_job j = {s, gy, w, bias, gx};
        evm_conv_parallel(dw_backward_part, &j,
                          (size_t)s->n * s->c * s->oh * s->ow * s->win.kernel[0] *
                              s->win.kernel[1]);
    } else {
        conv_backward_gemm(s, gy, w, bias, gx, workspace);
    }
}

size_t evm_conv_backward_workspace(const evm_node *node, evm_tensor *const *in,
                                   evm_tensor *const *out) {
    (void)out;
    evm_conv2d_shape s;
    evm_conv_shape(node, in, &s, NULL);
    return evm_conv_transpose_workspace(&s);
}

void evm_conv_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                       const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace) {
    (void)out;
    if (!grad_in[0] || !grad_in[0]->count) /* an empty input may have no buffer */
        return;
    evm_conv2d_shape s;
    evm_conv_shape(node, in, &s, NULL);
    evm_conv_transpose_run(&s, evm_f32(grad_out), evm_f32(in[1]), NULL, evm_f32(grad_in[0]),
                           workspace);
}
