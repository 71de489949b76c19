/*
 * Conv: 2-D grouped convolution, NCHW, float32.
 *
 * Four kernels, chosen per plan from the shapes (conv_choose):
 *  - depthwise (group == C == M): a direct loop per channel plane;
 *  - Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions with enough channels
 *    and tiles: 16 sgemms on transformed tiles, 2.25x fewer multiplications;
 *  - pointwise (1x1, stride 1, no padding): the input already is the
 *    (C/group) x (H*W) matrix of an sgemm;
 *  - im2col + sgemm for everything else.
 * The sgemm kernels put several images side by side in one sgemm when the
 * output planes are small, so that sgemm stays wide.
 * The data movement around sgemm (im2col, transforms, gathers) is split over
 * as many threads as OpenBLAS uses, since on two cores it would otherwise
 * take as long as the sgemms themselves; sgemm threads itself.
 * Invariants: infer has checked every shape forward relies on (W is
 * M x C/group x kh x kw, bias has M values, the output is non-empty and fits
 * sgemm's int sizes), and forward re-derives the resolved window and the
 * kernel choice from the same shapes, so it cannot fail. The workspace
 * (sized by conv_workspace from the same choice) is the only scratch memory.
 */
#include <cblas.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "conv_reference.h"
#include "op.h"

typedef struct conv_params {
    evm_window2d window; /* parsed attributes; kernel is 0x0 when taken from W */
    int group;           /* >= 1 */
} conv_params;

typedef enum conv_kernel { CONV_DEPTHWISE, CONV_WINOGRAD, CONV_POINTWISE, CONV_IM2COL } conv_kernel;

/* Tuning, from VGG16 / ResNet-50 layer shapes timed with OpenBLAS 0.3.21
 * (SkylakeX kernels) on 1 and 2 cores. */
enum {
    /* sgemms narrower than this many columns take several images at once */
    CONV_MIN_COLUMNS = 1024,
    /* Winograd needs this many channels in and out per group (below, its
     * transforms cost about what it saves) ... */
    WINO_MIN_CHANNELS = 64,
    /* ... and this many tiles per forward, to repay the weight transform */
    WINO_MIN_TILES = 128,
    /* tiles per block of the Winograd pipeline (at least; whole tile rows) */
    WINO_BLOCK_TILES = 512,
    /* most threads the data movement is split over */
    CONV_MAX_THREADS = 8,
    /* floats a phase must touch before it is worth a second thread */
    CONV_PARALLEL_MIN = 1 << 16,
};

static evmap_status conv_init(evm_node *node, evmap_error *err) {
    conv_params p;
    evmap_status st = evm_window2d_parse(node, &p.window, false, true, false, err);
    if (st != EVMAP_OK)
        return st;
    int64_t group;
    st = evm_attr_int(node, "group", 1, &group, err);
    if (st != EVMAP_OK)
        return st;
    if (group < 1 || group > INT_MAX)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "group %lld must be at least 1",
                             (long long)group);
    p.group = (int)group;
    return evm_node_set_params(node, &p, sizeof p, err);
}

/* Fills the geometry from the tensors. err may be NULL: forward calls it with
 * shapes infer already accepted, so it cannot fail there. */
static evmap_status conv_shape(const evm_node *node, evm_tensor *const *in, evm_conv2d_shape *s,
                               evmap_error *err) {
    const conv_params *p = node->params;
    const evm_tensor *x = in[0], *w = in[1];
    evm_window2d win = p->window;
    if (win.kernel[0] == 0) {
        win.kernel[0] = (int)w->dims[2];
        win.kernel[1] = (int)w->dims[3];
    }
    int64_t oh, ow;
    evmap_status st =
        evm_window2d_output(node, &win, x->dims[2], x->dims[3], &s->win, &oh, &ow, err);
    if (st != EVMAP_OK)
        return st;
    s->n = (int)x->dims[0];
    s->c = (int)x->dims[1];
    s->h = (int)x->dims[2];
    s->w = (int)x->dims[3];
    s->m = (int)w->dims[0];
    s->group = p->group;
    /* oh, ow <= padded input: checked to fit an int by conv_infer */
    s->oh = (int)oh;
    s->ow = (int)ow;
    return EVMAP_OK;
}

static conv_kernel conv_choose(const evm_conv2d_shape *s);

/* For stride 1, the input gradient is itself a convolution: of the output
 * gradient with the flipped, transposed weights (flip_part), padded by what
 * each forward window reaches past its output position. Fills t with that
 * convolution's shape; false when it does not apply (strides, a pad beyond
 * the dilated kernel) or its sizes would not fit sgemm's ints. */
static bool conv_transposed_shape(const evm_conv2d_shape *s, evm_conv2d_shape *t) {
    const evm_window2d *k = &s->win;
    if (k->stride[0] != 1 || k->stride[1] != 1)
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

/* --------------------------------------------------------------- infer */

/* Rank check for X and W: rank 3 and 5 are valid ONNX (1-D, 3-D) that evmap
 * does not handle; anything else below 3 is malformed. */
static evmap_status check_rank(const evm_node *node, const evm_tensor *t, const char *what,
                               evmap_status below, evmap_error *err) {
    if (t->rank == 4)
        return EVMAP_OK;
    char buf[EVM_SHAPE_STR_SIZE];
    if (t->rank >= 3)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "only 2-D convolution is supported; %s has shape %s (%d-D)", what,
                             evm_shape_str(t, buf, sizeof buf), t->rank - 2);
    return evm_node_fail(err, node, below, "%s has shape %s; expected N x C x H x W", what,
                         evm_shape_str(t, buf, sizeof buf));
}

static evmap_status check_dims_fit(const evm_node *node, const evm_tensor *t, const char *what,
                                   evmap_error *err) {
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i] > INT_MAX)
            return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                                 "%s dimension %d (%lld) is too large", what, i,
                                 (long long)t->dims[i]);
    return EVMAP_OK;
}

static evmap_status check_weights(const evm_node *node, evm_tensor *const *in, evmap_error *err) {
    const conv_params *p = node->params;
    const evm_tensor *x = in[0], *w = in[1];
    char xs[EVM_SHAPE_STR_SIZE], ws[EVM_SHAPE_STR_SIZE];
    evm_shape_str(x, xs, sizeof xs);
    evm_shape_str(w, ws, sizeof ws);
    for (int i = 0; i < 4; i++)
        if (w->dims[i] < 1)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "weights have an empty shape %s",
                                 ws);
    if (p->window.kernel[0] != 0 &&
        (w->dims[2] != p->window.kernel[0] || w->dims[3] != p->window.kernel[1]))
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "kernel_shape [%d,%d] disagrees with weights of shape %s",
                             p->window.kernel[0], p->window.kernel[1], ws);
    if (w->dims[0] % p->group != 0)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "%lld output channels (weights %s) are not divisible by group %d",
                             (long long)w->dims[0], ws, p->group);
    if (x->dims[1] != w->dims[1] * p->group)
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "input %s has %lld channels but weights %s with group %d expect "
                             "%lld",
                             xs, (long long)x->dims[1], ws, p->group,
                             (long long)(w->dims[1] * p->group));
    if (in[2]) {
        const evm_tensor *b = in[2];
        if (b->rank != 1 || b->dims[0] != w->dims[0]) {
            char bs[EVM_SHAPE_STR_SIZE];
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "bias has shape %s; expected [%lld] (one per output channel)",
                                 evm_shape_str(b, bs, sizeof bs), (long long)w->dims[0]);
        }
    }
    return EVMAP_OK;
}

static evmap_status conv_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               evmap_error *err) {
    evmap_status st = EVMAP_OK;
    for (int i = 0; i < 3 && st == EVMAP_OK; i++)
        if (i < 2 || in[i])
            st = evm_op_require_float(node, in, i, err);
    if (st == EVMAP_OK)
        st = check_rank(node, in[0], "input", EVMAP_ERR_INVALID_ARGUMENT, err);
    if (st == EVMAP_OK)
        st = check_rank(node, in[1], "weights", EVMAP_ERR_BAD_FILE, err);
    if (st == EVMAP_OK)
        st = check_dims_fit(node, in[0], "input", err);
    if (st == EVMAP_OK)
        st = check_dims_fit(node, in[1], "weights", err);
    if (st == EVMAP_OK)
        st = check_weights(node, in, err);
    evm_conv2d_shape s;
    if (st == EVMAP_OK)
        st = conv_shape(node, in, &s, err);
    if (st != EVMAP_OK)
        return st;
    /* The kernels' int arithmetic (tap rows oy * stride + ky * dilation - pad,
     * sub-image sides) stays below the padded input plus the dilated kernel. */
    for (int a = 0; a < 2; a++) {
        int64_t extent = (int64_t)(s.win.kernel[a] - 1) * s.win.dilation[a] + 1;
        if ((int64_t)(a ? s.w : s.h) + s.win.pad_begin[a] + s.win.pad_end[a] + extent > INT_MAX)
            return evm_node_fail(err, node, EVMAP_ERR_TOO_LARGE,
                                 "the padded input or the dilated kernel is too large");
    }
    /* sgemm takes int sizes */
    int64_t kdim = (int64_t)(s.c / s.group) * s.win.kernel[0] * s.win.kernel[1];
    if ((int64_t)s.oh * s.ow > INT_MAX || kdim > INT_MAX)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "output plane %lldx%lld or kernel is too large", (long long)s.oh,
                             (long long)s.ow);
    int64_t dims[4] = {s.n, s.m, s.oh, s.ow};
    out[0]->dtype = EVM_DTYPE_FLOAT;
    st = evm_tensor_set_shape(out[0], 4, dims, err);
    /* Bounds every workspace (im2col, Winograd, col2im, region sub-images'
     * kernels) to a few times 2^34 floats; depthwise needs none. After the
     * output's shape: conv_choose relies on its 2^34 limit. */
    if (st == EVMAP_OK && conv_choose(&s) != CONV_DEPTHWISE &&
        kdim * ((int64_t)s.oh * s.ow) > (int64_t)EVM_MAX_TENSOR_ELEMENTS)
        return evm_node_fail(err, node, EVMAP_ERR_TOO_LARGE,
                             "the im2col matrix (%lld x %lld) is too large", (long long)kdim,
                             (long long)s.oh * s.ow);
    return st;
}

/* ------------------------------------------------------------ threading */

/* A phase of data movement split into parts: part i of n handles the i-th
 * n-th of the items (items_range). */
typedef void (*conv_part_fn)(void *ctx, int part, int parts);

typedef struct conv_part {
    conv_part_fn fn;
    void *ctx;
    int part, parts;
} conv_part;

static void *conv_part_main(void *arg) {
    conv_part *p = arg;
    p->fn(p->ctx, p->part, p->parts);
    return NULL;
}

static int conv_threads(void) {
    int t = openblas_get_num_threads();
    return t < 1 ? 1 : t > CONV_MAX_THREADS ? CONV_MAX_THREADS : t;
}

/* Runs fn over all parts, on extra threads when the phase touches enough
 * floats. A thread that cannot start has its part run here instead, so this
 * cannot fail. */
static void conv_parallel(conv_part_fn fn, void *ctx, size_t floats) {
    int parts = floats >= CONV_PARALLEL_MIN ? conv_threads() : 1;
    conv_part part[CONV_MAX_THREADS];
    pthread_t thread[CONV_MAX_THREADS];
    bool started[CONV_MAX_THREADS] = {false};
    for (int i = 1; i < parts; i++) {
        part[i] = (conv_part){fn, ctx, i, parts};
        started[i] = pthread_create(&thread[i], NULL, conv_part_main, &part[i]) == 0;
    }
    fn(ctx, 0, parts);
    for (int i = 1; i < parts; i++) {
        if (started[i])
            pthread_join(thread[i], NULL);
        else
            fn(ctx, i, parts);
    }
}

/* Items [*lo, *hi) of n that part `part` of `parts` handles. */
static void items_range(size_t n, int part, int parts, size_t *lo, size_t *hi) {
    *lo = n * (size_t)part / (size_t)parts;
    *hi = n * (size_t)(part + 1) / (size_t)parts;
}

/* ------------------------------------------------------------ depthwise */

/* Output positions o in [0, n_out) whose tap o * stride + offset lies inside
 * [0, size): the half-open range [*lo, *hi). Empty ranges give lo == hi. */
static void valid_range(int n_out, int stride, int offset, int size, int *lo, int *hi) {
    /* smallest o with o * stride + offset >= 0 */
    int a = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    /* one past the largest o with o * stride + offset <= size - 1 */
    int last = size - 1 - offset;
    int b = last < 0 ? 0 : last / stride + 1;
    if (a > n_out)
        a = n_out;
    if (b > n_out)
        b = n_out;
    if (b < a)
        b = a;
    *lo = a;
    *hi = b;
}

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
        valid_range(s->oh, sy, offy, s->h, &ylo, &yhi);
        for (int kx = 0; kx < k->kernel[1]; kx++) {
            int offx = kx * k->dilation[1] - k->pad_begin[1];
            int xlo, xhi;
            valid_range(s->ow, sx, offx, s->w, &xlo, &xhi);
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

typedef struct dw_job {
    const evm_conv2d_shape *s;
    const float *x, *w, *bias;
    float *y;
} dw_job;

static void dw_part(void *ctx, int part, int parts) {
    const dw_job *j = ctx;
    const evm_conv2d_shape *s = j->s;
    size_t in_plane = (size_t)s->h * s->w, out_plane = (size_t)s->oh * s->ow;
    size_t kk = (size_t)s->win.kernel[0] * s->win.kernel[1];
    size_t lo, hi;
    items_range((size_t)s->n * s->c, part, parts, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        size_t c = i % (size_t)s->c;
        depthwise_plane(s, j->x + i * in_plane, j->w + c * kk, j->bias ? j->bias[c] : 0.0f,
                        j->y + i * out_plane);
    }
}

static void conv_depthwise(const evm_conv2d_shape *s, const float *x, const float *w,
                           const float *bias, float *y) {
    dw_job j = {s, x, w, bias, y};
    /* only picks the thread count; may wrap (unsigned) for absurd kernels */
    conv_parallel(dw_part, &j,
                  (size_t)s->n * s->c * s->oh * s->ow * s->win.kernel[0] * s->win.kernel[1]);
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
    valid_range(s->oh, sy, offy, s->h, &ylo, &yhi);
    valid_range(s->ow, sx, offx, s->w, &xlo, &xhi);
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
 * gradient. */
static void dw_backward_part(void *ctx, int part, int parts) {
    const dw_job *j = ctx;
    const evm_conv2d_shape *s = j->s;
    size_t in_plane = (size_t)s->h * s->w, out_plane = (size_t)s->oh * s->ow;
    int kh = s->win.kernel[0], kw = s->win.kernel[1];
    size_t lo, hi;
    items_range((size_t)s->n * s->c, part, parts, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        const float *kern = j->w + (i % (size_t)s->c) * kh * kw;
        float *gx = j->y + i * in_plane;
        memset(gx, 0, sizeof(float) * in_plane);
        for (int ky = 0; ky < kh; ky++)
            for (int kx = 0; kx < kw; kx++)
                scatter_tap(s, ky, kx, j->x + i * out_plane, kern[ky * kw + kx], gx);
    }
}

/* -------------------------------------------------- pointwise and im2col */

/* Per group, Y_g (mg x cols) = W_g (mg x K) * B (K x cols), where B holds the
 * columns of nb images side by side: the images themselves (pointwise) or
 * their im2col. With nb == 1 and pointwise, B is the input and sgemm writes
 * the output directly; otherwise B is built in the workspace, and with
 * nb > 1 sgemm writes into the workspace and a scatter moves each image's
 * rows into place. */
typedef struct gemm_geom {
    int cg, mg; /* channels per group, in and out */
    int kdim;   /* rows of B: cg * kh * kw */
    int p;      /* output positions per image: oh * ow */
    int nb;     /* images per sgemm */
} gemm_geom;

static gemm_geom gemm_geometry(const evm_conv2d_shape *s) {
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

/* B for nb images (K x nb*p), then sgemm output (mg x nb*p) when nb > 1. */
static size_t gemm_workspace(const evm_conv2d_shape *s, conv_kernel kind) {
    gemm_geom g = gemm_geometry(s);
    size_t cols = (size_t)g.nb * g.p;
    size_t b = kind == CONV_POINTWISE && g.nb == 1 ? 0 : (size_t)g.kdim * cols;
    return b + (g.nb > 1 ? (size_t)g.mg * cols : 0);
}

/* im2col of input channels [c0, c1) of one image: row (c, ky, kx), column
 * (oy, ox), rows ld floats apart. Writes are contiguous; padding becomes
 * memset runs. */
static void im2col(const evm_conv2d_shape *s, const float *x, int c0, int c1, float *col,
                   size_t ld) {
    const evm_window2d *k = &s->win;
    int sy = k->stride[0], sx = k->stride[1];
    for (int ci = c0; ci < c1; ci++) {
        const float *plane = x + (size_t)ci * s->h * s->w;
        for (int ky = 0; ky < k->kernel[0]; ky++) {
            int offy = ky * k->dilation[0] - k->pad_begin[0];
            int ylo, yhi;
            valid_range(s->oh, sy, offy, s->h, &ylo, &yhi);
            for (int kx = 0; kx < k->kernel[1]; kx++) {
                int offx = kx * k->dilation[1] - k->pad_begin[1];
                int xlo, xhi;
                valid_range(s->ow, sx, offx, s->w, &xlo, &xhi);
                float *dst = col + ((size_t)(ci * k->kernel[0] + ky) * k->kernel[1] + kx) * ld;
                memset(dst, 0, sizeof(float) * (size_t)ylo * s->ow);
                for (int oy = ylo; oy < yhi; oy++) {
                    /* ox in [xlo, xhi) keeps ox * sx + offx inside the row */
                    const float *src = plane + (size_t)(oy * sy + offy) * s->w;
                    float *d = dst + (size_t)oy * s->ow;
                    memset(d, 0, sizeof(float) * (size_t)xlo);
                    if (sx == 1)
                        memcpy(d + xlo, src + xlo + offx, sizeof(float) * (size_t)(xhi - xlo));
                    else
                        for (int ox = xlo; ox < xhi; ox++)
                            d[ox] = src[ox * sx + offx];
                    memset(d + xhi, 0, sizeof(float) * (size_t)(s->ow - xhi));
                }
                memset(dst + (size_t)yhi * s->ow, 0, sizeof(float) * (size_t)(s->oh - yhi) * s->ow);
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
    items_range((size_t)g->cg, part, parts, &lo, &hi);
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
    items_range((size_t)g->mg, part, parts, &lo, &hi);
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

static void conv_gemm(const evm_conv2d_shape *s, conv_kernel kind, const float *x, const float *w,
                      const float *bias, float *y, float *work) {
    gemm_geom g = gemm_geometry(s);
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
                conv_parallel(gemm_b_part, &j, (size_t)g.kdim * cols);
            const float *wg = w + (size_t)gi * g.mg * g.kdim;
            if (g.nb == 1) {
                float *yg = j.y + (size_t)gi * g.mg * g.p;
                fill_bias(yg, bias, gi * g.mg, g.mg, (size_t)g.p);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.mg, cols, g.kdim, 1.0f, wg,
                            g.kdim, b, cols, 1.0f, yg, g.p);
            } else {
                float *tmp = work + (size_t)g.kdim * g.nb * g.p;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.mg, cols, g.kdim, 1.0f, wg,
                            g.kdim, b, cols, 0.0f, tmp, cols);
                j.tmp = tmp;
                conv_parallel(gemm_scatter_part, &j, (size_t)g.mg * cols);
            }
        }
    }
}

/* Input gradient by sgemm and col2im, for the shapes the transposed
 * convolution does not cover: per group, the columns W_g^T (kdim x mg) *
 * gY_g (mg x cols) hold what each kernel tap read, and col2im adds them back
 * onto the input pixels. Several images share one sgemm as in conv_gemm,
 * their rows of gY gathered side by side after the columns. */
typedef struct col_job {
    const evm_conv2d_shape *s;
    const gemm_geom *g;
    int nb, gi;      /* images in this sgemm, group */
    const float *gy; /* output gradient of the first image of the batch */
    float *col;      /* the columns, nb * p wide */
    float *tmp;      /* gathered gY_g when nb > 1 */
    float *gx;       /* input gradient of the first image */
} col_job;

static void col_gather_part(void *ctx, int part, int parts) {
    const col_job *j = ctx;
    const gemm_geom *g = j->g;
    size_t lo, hi, p = (size_t)g->p, cols = (size_t)j->nb * p;
    items_range((size_t)g->mg, part, parts, &lo, &hi);
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
    items_range((size_t)j->nb * g->cg, part, parts, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        size_t n = i / (size_t)g->cg, c = i % (size_t)g->cg;
        float *plane = j->gx + (n * s->c + (size_t)j->gi * g->cg + c) * in_plane;
        const float *rows = j->col + c * kh * kw * cols + n * g->p;
        memset(plane, 0, sizeof(float) * in_plane);
        for (int ky = 0; ky < kh; ky++)
            for (int kx = 0; kx < kw; kx++)
                scatter_tap(s, ky, kx, rows + (size_t)(ky * kw + kx) * cols, 1.0f, plane);
    }
}

/* Workspace: as conv_gemm's for CONV_IM2COL (columns, then gathered rows). */
static void conv_backward_gemm(const evm_conv2d_shape *s, const float *gy, const float *w,
                               float *gx, float *work) {
    gemm_geom g = gemm_geometry(s);
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
                         .gx = gx + (size_t)n0 * in_image};
            const float *b = j.gy + (size_t)gi * g.mg * g.p;
            int ldb = g.p;
            if (nb > 1) {
                conv_parallel(col_gather_part, &j, (size_t)g.mg * cols);
                b = j.tmp;
                ldb = cols;
            }
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g.kdim, cols, g.mg, 1.0f,
                        w + (size_t)gi * g.mg * g.kdim, g.kdim, b, ldb, 0.0f, work, cols);
            conv_parallel(col2im_part, &j, (size_t)g.kdim * cols);
        }
    }
}

/* ------------------------------------------------------------- Winograd */

/* F(2x2, 3x3): each 2x2 output tile comes from a 4x4 input tile with 16
 * multiplications instead of 36, as 16 independent sgemms, one per position
 * xi of the transformed 4x4 tile:
 *   U[xi] (mg x cg) = (G g G^T)[xi]   weights, transformed on every forward
 *   V[xi] (cg x nt) = (B^T d B)[xi]   input tiles of the current block
 *   M[xi] (mg x nt) = U[xi] V[xi]
 *   y tile (2 x 2)  = A^T M A + bias
 * Tiles are numbered across the batch row by row (tile row R = n * th + ty)
 * and processed in blocks of whole tile rows: wide enough that sgemm's
 * packing of U is repaid, small enough to keep V and M near the caches. The
 * transforms work along tile rows on contiguous temporaries so that they
 * vectorise, and are split over threads by channel.
 * The transforms only add, subtract and halve, so the result is about as
 * accurate as the direct sum (test_conv checks it against the reference). */

/* Kronecker square of G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]: row xi = 4i+j
 * turns a row-major 3x3 kernel into (G g G^T)[i][j]. */
/* clang-format off */
static const float wino_gg[16 * 9] = {
    1.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,
    0.5f, 0.5f, 0.5f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,
    0.5f, -0.5f, 0.5f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,
    0.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,
    0.5f, 0.0f, 0.0f, 0.5f, 0.0f, 0.0f, 0.5f, 0.0f, 0.0f,
    0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f,
    0.25f, -0.25f, 0.25f, 0.25f, -0.25f, 0.25f, 0.25f, -0.25f, 0.25f,
    0.0f, 0.0f, 0.5f, 0.0f, 0.0f, 0.5f, 0.0f, 0.0f, 0.5f,
    0.5f, 0.0f, 0.0f, -0.5f, 0.0f, 0.0f, 0.5f, 0.0f, 0.0f,
    0.25f, 0.25f, 0.25f, -0.25f, -0.25f, -0.25f, 0.25f, 0.25f, 0.25f,
    0.25f, -0.25f, 0.25f, -0.25f, 0.25f, -0.25f, 0.25f, -0.25f, 0.25f,
    0.0f, 0.0f, 0.5f, 0.0f, 0.0f, -0.5f, 0.0f, 0.0f, 0.5f,
    0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1.0f, 0.0f, 0.0f,
    0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.5f, 0.5f, 0.5f,
    0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.5f, -0.5f, 0.5f,
    0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1.0f,
};
/* clang-format on */

typedef struct wino_geom {
    int cg, mg;     /* channels per group, in and out */
    int th, tw;     /* tile rows and tiles per row, per image */
    int rows;       /* tile rows over the whole batch: n * th */
    int block_rows; /* tile rows per block */
    int lp;         /* padded input row length the tiles of a row read: 2 * tw + 2 */
    size_t temp;    /* scratch floats per thread for the row transforms */
} wino_geom;

static wino_geom wino_geometry(const evm_conv2d_shape *s) {
    wino_geom g;
    g.cg = s->c / s->group;
    g.mg = s->m / s->group;
    g.th = (s->oh + 1) / 2;
    g.tw = (s->ow + 1) / 2;
    g.rows = s->n * g.th;
    g.lp = 2 * g.tw + 2;
    size_t want = WINO_BLOCK_TILES;
    size_t br = (want + (size_t)g.tw - 1) / (size_t)g.tw;
    g.block_rows = br < 1 ? 1 : br > (size_t)g.rows ? g.rows : (int)br;
    /* a padded row, the even and odd columns of 4 rows and their row
     * combinations; or the 4 outputs of each tile of a row */
    g.temp = (size_t)g.lp + 16 * (size_t)(g.tw + 1);
    return g;
}

static bool wino_suits(const evm_conv2d_shape *s) {
    const evm_window2d *k = &s->win;
    if (k->kernel[0] != 3 || k->kernel[1] != 3 || k->stride[0] != 1 || k->stride[1] != 1 ||
        k->dilation[0] != 1 || k->dilation[1] != 1)
        return false;
    /* Channels first: with mg >= 64 the output's 2^34 limit keeps the
     * geometry's int products (n * th, 2 * tw + 2) far from overflowing. */
    if (s->c / s->group < WINO_MIN_CHANNELS || s->m / s->group < WINO_MIN_CHANNELS)
        return false;
    wino_geom g = wino_geometry(s);
    return (size_t)g.rows * g.tw >= WINO_MIN_TILES && (size_t)g.mg * g.cg <= INT_MAX;
}

/* U, V and M of one block, then each thread's row scratch. */
static size_t wino_workspace(const evm_conv2d_shape *s) {
    wino_geom g = wino_geometry(s);
    size_t nt = (size_t)g.block_rows * g.tw;
    return 16 * ((size_t)g.mg * g.cg + (size_t)g.cg * nt + (size_t)g.mg * nt) +
           CONV_MAX_THREADS * g.temp;
}

/* Input rows y0..y0+3 of one channel plane, columns -pad_left .. lp-1-pad_left,
 * zero outside the image, split into even and odd columns: ev and od are
 * 4 x (tw + 1) each. row is a scratch row of lp floats. */
static void wino_load_rows(const evm_conv2d_shape *s, const wino_geom *g, const float *plane,
                           int y0, float *row, float *restrict ev, float *restrict od) {
    int pl = s->win.pad_begin[1], half = g->tw + 1;
    int lo = pl < g->lp ? pl : g->lp;               /* columns before the image */
    int hi = s->w + pl < g->lp ? s->w + pl : g->lp; /* one past the image */
    for (int a = 0; a < 4; a++) {
        float *e = ev + (size_t)a * half, *o = od + (size_t)a * half;
        int yy = y0 + a;
        if (yy < 0 || yy >= s->h || hi <= lo) {
            memset(e, 0, sizeof(float) * (size_t)half);
            memset(o, 0, sizeof(float) * (size_t)half);
            continue;
        }
        memset(row, 0, sizeof(float) * (size_t)lo);
        memcpy(row + lo, plane + (size_t)yy * s->w + (lo - pl), sizeof(float) * (size_t)(hi - lo));
        memset(row + hi, 0, sizeof(float) * (size_t)(g->lp - hi));
        for (int i = 0; i < half; i++) {
            e[i] = row[2 * i];
            o[i] = row[2 * i + 1];
        }
    }
}

/* Four rows of V from one row r of B^T d, given as its even (re) and odd (ro)
 * columns: tile t reads columns 2t .. 2t+3 = re[t], ro[t], re[t+1], ro[t+1]. */
static void wino_cols(int tw, const float *restrict re, const float *restrict ro,
                      float *restrict w0, float *restrict w1, float *restrict w2,
                      float *restrict w3) {
    for (int t = 0; t < tw; t++) {
        w0[t] = re[t] - re[t + 1];
        w1[t] = ro[t] + re[t + 1];
        w2[t] = re[t + 1] - ro[t];
        w3[t] = ro[t] - ro[t + 1];
    }
}

/* The rows of B^T d: (r0 - r2, r1 + r2, r2 - r1, r1 - r3), for n columns. */
static void wino_rows(int n, const float *restrict r, float *restrict q) {
    const float *r0 = r, *r1 = r + n, *r2 = r + 2 * n, *r3 = r + 3 * n;
    for (int i = 0; i < n; i++) {
        q[i] = r0[i] - r2[i];
        q[n + i] = r1[i] + r2[i];
        q[2 * n + i] = r2[i] - r1[i];
        q[3 * n + i] = r1[i] - r3[i];
    }
}

/* V[xi][c][t] = (B^T d B)[xi] for the tw tiles of one tile row, from the even
 * and odd columns of its 4 input rows; q is scratch of the same size. */
static void wino_input_row(int tw, const float *ev, const float *od, float *qe, float *qo, float *v,
                           size_t stride) {
    int half = tw + 1;
    wino_rows(half, ev, qe);
    wino_rows(half, od, qo);
    for (int a = 0; a < 4; a++) {
        float *w = v + (size_t)(4 * a) * stride;
        wino_cols(tw, qe + (size_t)a * half, qo + (size_t)a * half, w, w + stride, w + 2 * stride,
                  w + 3 * stride);
    }
}

typedef struct wino_job {
    const evm_conv2d_shape *s;
    const wino_geom *g;
    const float *x, *bias;
    float *y;
    int gi;     /* group */
    int r0, nr; /* tile rows of the block */
    float *v, *mo, *temp;
} wino_job;

/* V for the block, split over input channels. */
static void wino_input_part(void *ctx, int part, int parts) {
    const wino_job *j = ctx;
    const evm_conv2d_shape *s = j->s;
    const wino_geom *g = j->g;
    size_t nt = (size_t)j->nr * g->tw, stride = (size_t)g->cg * nt;
    size_t plane = (size_t)s->h * s->w, rows4 = 4 * (size_t)(g->tw + 1);
    float *row = j->temp + (size_t)part * g->temp;
    float *ev = row + g->lp, *od = ev + rows4, *qe = od + rows4, *qo = qe + rows4;
    size_t lo, hi;
    items_range((size_t)g->cg, part, parts, &lo, &hi);
    for (size_t c = lo; c < hi; c++)
        for (int r = 0; r < j->nr; r++) {
            int n = (j->r0 + r) / g->th, ty = (j->r0 + r) % g->th;
            const float *src = j->x + ((size_t)n * s->c + (size_t)j->gi * g->cg + c) * plane;
            wino_load_rows(s, g, src, 2 * ty - s->win.pad_begin[0], row, ev, od);
            wino_input_row(g->tw, ev, od, qe, qo, j->v + c * nt + (size_t)r * g->tw, stride);
        }
}

/* y = A^T M A + bias for the tw tiles of one tile row of one output channel,
 * into output rows y0 and y1 (y1 NULL past the bottom). e (4 x tw) holds the
 * four outputs of each tile before they interleave. */
static void wino_output_row(int ow, int tw, const float *restrict mo, size_t stride, float bias,
                            float *restrict e, float *y0, float *y1) {
    const float *restrict p0 = mo, *restrict p1 = mo + stride, *restrict p2 = mo + 2 * stride,
                          *restrict p3 = mo + 3 * stride, *restrict p4 = mo + 4 * stride,
                          *restrict p5 = mo + 5 * stride, *restrict p6 = mo + 6 * stride,
                          *restrict p7 = mo + 7 * stride, *restrict p8 = mo + 8 * stride,
                          *restrict p9 = mo + 9 * stride, *restrict p10 = mo + 10 * stride,
                          *restrict p11 = mo + 11 * stride, *restrict p12 = mo + 12 * stride,
                          *restrict p13 = mo + 13 * stride, *restrict p14 = mo + 14 * stride,
                          *restrict p15 = mo + 15 * stride;
    float *restrict e00 = e, *restrict e01 = e + tw, *restrict e10 = e + 2 * tw,
                    *restrict e11 = e + 3 * tw;
    for (int t = 0; t < tw; t++) {
        /* A^T M: rows (r0 + r1 + r2, r1 - r2 - r3), per column */
        float a0 = p0[t] + p4[t] + p8[t], a1 = p1[t] + p5[t] + p9[t];
        float a2 = p2[t] + p6[t] + p10[t], a3 = p3[t] + p7[t] + p11[t];
        float b0 = p4[t] - p8[t] - p12[t], b1 = p5[t] - p9[t] - p13[t];
        float b2 = p6[t] - p10[t] - p14[t], b3 = p7[t] - p11[t] - p15[t];
        /* (A^T M) A: the same combinations of columns */
        e00[t] = a0 + a1 + a2 + bias;
        e01[t] = a1 - a2 - a3 + bias;
        e10[t] = b0 + b1 + b2 + bias;
        e11[t] = b1 - b2 - b3 + bias;
    }
    int pairs = ow / 2;
    for (int t = 0; t < pairs; t++) {
        y0[2 * t] = e00[t];
        y0[2 * t + 1] = e01[t];
    }
    if (ow & 1)
        y0[2 * pairs] = e00[pairs];
    if (!y1)
        return;
    for (int t = 0; t < pairs; t++) {
        y1[2 * t] = e10[t];
        y1[2 * t + 1] = e11[t];
    }
    if (ow & 1)
        y1[2 * pairs] = e10[pairs];
}

/* The block's outputs, split over output channels. */
static void wino_output_part(void *ctx, int part, int parts) {
    const wino_job *j = ctx;
    const evm_conv2d_shape *s = j->s;
    const wino_geom *g = j->g;
    size_t nt = (size_t)j->nr * g->tw, stride = (size_t)g->mg * nt;
    size_t plane = (size_t)s->oh * s->ow;
    float *e = j->temp + (size_t)part * g->temp;
    size_t lo, hi;
    items_range((size_t)g->mg, part, parts, &lo, &hi);
    for (size_t mi = lo; mi < hi; mi++) {
        size_t m = (size_t)j->gi * g->mg + mi;
        float b = j->bias ? j->bias[m] : 0.0f;
        for (int r = 0; r < j->nr; r++) {
            int n = (j->r0 + r) / g->th, ty = (j->r0 + r) % g->th;
            float *out = j->y + ((size_t)n * s->m + m) * plane + (size_t)(2 * ty) * s->ow;
            float *out1 = 2 * ty + 1 < s->oh ? out + s->ow : NULL;
            wino_output_row(s->ow, g->tw, j->mo + mi * nt + (size_t)r * g->tw, stride, b, e, out,
                            out1);
        }
    }
}

static void conv_winograd(const evm_conv2d_shape *s, const float *x, const float *w,
                          const float *bias, float *y, float *work) {
    wino_geom g = wino_geometry(s);
    size_t nb = (size_t)g.block_rows * g.tw;
    size_t ukc = (size_t)g.mg * g.cg;
    float *u = work;
    float *v = u + 16 * ukc;
    float *mo = v + 16 * (size_t)g.cg * nb;
    float *temp = mo + 16 * (size_t)g.mg * nb;
    for (int gi = 0; gi < s->group; gi++) {
        /* U (16 x mg*cg) = wino_gg (16 x 9) * W_g^T, W_g viewed as (mg*cg x 9) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 16, (int)ukc, 9, 1.0f, wino_gg, 9,
                    w + gi * ukc * 9, 9, 0.0f, u, (int)ukc);
        for (int r0 = 0; r0 < g.rows; r0 += g.block_rows) {
            int nr = g.rows - r0 < g.block_rows ? g.rows - r0 : g.block_rows;
            int nt = nr * g.tw;
            wino_job j = {s, &g, x, bias, y, gi, r0, nr, v, mo, temp};
            conv_parallel(wino_input_part, &j, 16 * (size_t)g.cg * nt);
            for (int xi = 0; xi < 16; xi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.mg, nt, g.cg, 1.0f,
                            u + xi * ukc, g.cg, v + (size_t)xi * g.cg * nt, nt, 0.0f,
                            mo + (size_t)xi * g.mg * nt, nt);
            conv_parallel(wino_output_part, &j, 16 * (size_t)g.mg * nt);
        }
    }
}

/* -------------------------------------------------------------- forward */

static conv_kernel conv_choose(const evm_conv2d_shape *s) {
    const evm_window2d *k = &s->win;
    if (s->group == s->c && s->group == s->m && s->group > 1)
        return CONV_DEPTHWISE;
    if (wino_suits(s))
        return CONV_WINOGRAD;
    if (k->kernel[0] == 1 && k->kernel[1] == 1 && k->stride[0] == 1 && k->stride[1] == 1 &&
        k->pad_begin[0] == 0 && k->pad_begin[1] == 0 && k->pad_end[0] == 0 && k->pad_end[1] == 0)
        return CONV_POINTWISE;
    return CONV_IM2COL;
}

/* Scratch floats the chosen kernel needs for shape s. */
static size_t conv_kernel_workspace(const evm_conv2d_shape *s) {
    conv_kernel kind = conv_choose(s);
    if (kind == CONV_DEPTHWISE)
        return 0;
    if (kind == CONV_WINOGRAD)
        return wino_workspace(s);
    return gemm_workspace(s, kind);
}

static void conv_run(const evm_conv2d_shape *s, const float *x, const float *w, const float *bias,
                     float *y, float *workspace) {
    conv_kernel kind = conv_choose(s);
    if (kind == CONV_DEPTHWISE)
        conv_depthwise(s, x, w, bias, y);
    else if (kind == CONV_WINOGRAD)
        conv_winograd(s, x, w, bias, y, workspace);
    else
        conv_gemm(s, kind, x, w, bias, y, workspace);
}

static size_t conv_workspace(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out) {
    (void)out;
    evm_conv2d_shape s;
    conv_shape(node, in, &s, NULL);
    return conv_kernel_workspace(&s);
}

static void conv_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         float *workspace) {
    evm_conv2d_shape s;
    conv_shape(node, in, &s, NULL);
    conv_run(&s, evm_f32(in[0]), evm_f32(in[1]), in[2] ? evm_f32(in[2]) : NULL, evm_f32(out[0]),
             workspace);
}

/* ------------------------------------------------------------- backward */

/* Only the input gradient: evmap explains inputs, never weights. */
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
        if (conv_choose(t) != CONV_IM2COL || im2col + flip < col2im)
            return GRAD_TRANSPOSED;
    }
    return conv_choose(s) == CONV_DEPTHWISE ? GRAD_DEPTHWISE : GRAD_COL2IM;
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
    items_range((size_t)s->c, part, parts, &lo, &hi);
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

static size_t conv_backward_workspace(const evm_node *node, evm_tensor *const *in,
                                      evm_tensor *const *out) {
    (void)out;
    evm_conv2d_shape s, t;
    conv_shape(node, in, &s, NULL);
    conv_grad how = grad_choose(&s, &t);
    if (how == GRAD_TRANSPOSED)
        return in[1]->count + conv_kernel_workspace(&t);
    return how == GRAD_DEPTHWISE ? 0 : gemm_workspace(&s, CONV_IM2COL);
}

static void conv_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                          const evm_tensor *grad_out, evm_tensor *const *grad_in,
                          float *workspace) {
    (void)out;
    if (!grad_in[0] || !grad_in[0]->count) /* an empty input may have no buffer */
        return;
    evm_conv2d_shape s, t;
    conv_shape(node, in, &s, NULL);
    const float *gy = evm_f32(grad_out), *w = evm_f32(in[1]);
    float *gx = evm_f32(grad_in[0]);
    conv_grad how = grad_choose(&s, &t);
    if (how == GRAD_TRANSPOSED) {
        flip_job j = {&s, w, workspace};
        conv_parallel(flip_part, &j, in[1]->count);
        conv_run(&t, gy, workspace, NULL, gx, workspace + in[1]->count);
    } else if (how == GRAD_DEPTHWISE) {
        dw_job j = {&s, gy, w, NULL, gx};
        conv_parallel(dw_backward_part, &j,
                      (size_t)s.n * s.c * s.oh * s.ow * s.win.kernel[0] * s.win.kernel[1]);
    } else {
        conv_backward_gemm(&s, gy, w, gx, workspace);
    }
}

/* ------------------------------------------------------------- locality */

/* Output region r of the whole convolution is a small unpadded convolution
 * of the input rectangle its windows read: that rectangle (zero outside the
 * image) is gathered into the workspace as a batch of sub-images, the usual
 * kernels (chosen for the sub-shape) convolve it, and the result is copied
 * into r. */
typedef struct conv_sub {
    evm_conv2d_shape full, sub;
    int64_t iy0, ix0; /* input position of the sub-image's top-left corner */
} conv_sub;

static void conv_sub_geometry(const evm_node *node, evm_tensor *const *in, const evm_region *r,
                              conv_sub *g) {
    conv_shape(node, in, &g->full, NULL);
    const evm_window2d *k = &g->full.win;
    g->sub = g->full;
    g->sub.oh = (int)(r->y1 - r->y0);
    g->sub.ow = (int)(r->x1 - r->x0);
    g->sub.h = (g->sub.oh - 1) * k->stride[0] + (k->kernel[0] - 1) * k->dilation[0] + 1;
    g->sub.w = (g->sub.ow - 1) * k->stride[1] + (k->kernel[1] - 1) * k->dilation[1] + 1;
    for (int a = 0; a < 2; a++)
        g->sub.win.pad_begin[a] = g->sub.win.pad_end[a] = 0;
    g->sub.win.auto_pad = EVM_AUTO_PAD_NOTSET;
    g->sub.win.ceil_mode = 0;
    g->iy0 = r->y0 * k->stride[0] - k->pad_begin[0];
    g->ix0 = r->x0 * k->stride[1] - k->pad_begin[1];
}

static evm_region conv_field(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                             const evm_region *in_regions) {
    if (in_regions[1].kind != EVM_REGION_NONE ||
        (node->n_inputs > 2 && in_regions[2].kind != EVM_REGION_NONE))
        return (evm_region){.kind = EVM_REGION_ALL};
    evm_conv2d_shape s;
    conv_shape(node, in, &s, NULL);
    return evm_window2d_field(&s.win, out[0]->dims[2], out[0]->dims[3], &in_regions[0]);
}

static size_t conv_region_workspace(const evm_node *node, evm_tensor *const *in,
                                    evm_tensor *const *out, const evm_region *r) {
    (void)out;
    conv_sub g;
    conv_sub_geometry(node, in, r, &g);
    const evm_conv2d_shape *s = &g.sub;
    /* The sub-image is at most the padded input, which large pads can make
     * far larger than the input: SIZE_MAX makes the caller's checked size
     * fail. The output part is at most the output's count. */
    size_t xs;
    if (!evm_mul_size((size_t)s->n * s->c, (size_t)s->h * s->w, &xs) ||
        xs > EVM_MAX_TENSOR_ELEMENTS)
        return SIZE_MAX;
    return xs + (size_t)s->n * s->m * s->oh * s->ow + conv_kernel_workspace(s);
}

/* Copies the sub-image rectangle of every input plane, zero outside. */
static void conv_gather(const conv_sub *g, const float *x, float *dst) {
    const evm_conv2d_shape *f = &g->full, *s = &g->sub;
    size_t planes = (size_t)f->n * f->c, in_plane = (size_t)f->h * f->w;
    int64_t xlo = g->ix0 < 0 ? -g->ix0 : 0;
    int64_t xhi = g->ix0 + s->w > f->w ? f->w - g->ix0 : s->w;
    for (size_t p = 0; p < planes; p++) {
        const float *plane = x + p * in_plane;
        for (int64_t yy = 0; yy < s->h; yy++, dst += s->w) {
            int64_t iy = g->iy0 + yy;
            if (iy < 0 || iy >= f->h || xhi <= xlo) {
                memset(dst, 0, sizeof(float) * (size_t)s->w);
                continue;
            }
            memset(dst, 0, sizeof(float) * (size_t)xlo);
            memcpy(dst + xlo, plane + iy * f->w + g->ix0 + xlo,
                   sizeof(float) * (size_t)(xhi - xlo));
            memset(dst + xhi, 0, sizeof(float) * (size_t)(s->w - xhi));
        }
    }
}

static void conv_forward_region(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                const evm_region *r, float *workspace) {
    conv_sub g;
    conv_sub_geometry(node, in, r, &g);
    const evm_conv2d_shape *s = &g.sub;
    float *xs = workspace;
    float *ys = xs + (size_t)s->n * s->c * s->h * s->w;
    float *kw = ys + (size_t)s->n * s->m * s->oh * s->ow;
    conv_gather(&g, evm_f32(in[0]), xs);
    conv_run(s, xs, evm_f32(in[1]), in[2] ? evm_f32(in[2]) : NULL, ys, kw);
    size_t planes = (size_t)s->n * s->m, out_w = (size_t)g.full.ow;
    size_t out_plane = (size_t)g.full.oh * out_w;
    float *y = evm_f32(out[0]);
    for (size_t p = 0; p < planes; p++)
        for (int oy = 0; oy < s->oh; oy++)
            memcpy(y + p * out_plane + (size_t)(r->y0 + oy) * out_w + (size_t)r->x0,
                   ys + (p * s->oh + (size_t)oy) * s->ow, sizeof(float) * (size_t)s->ow);
}

static double conv_macs(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out) {
    (void)node;
    const evm_tensor *w = in[1];
    /* every output value: one multiply-add per weight of its output channel */
    return (double)out[0]->count * (double)(w->dims[1] * w->dims[2] * w->dims[3]);
}

const evm_op_def evm_op_conv = {
    .name = "Conv",
    .min_inputs = 2,
    .max_inputs = 3,
    .init = conv_init,
    .infer = conv_infer,
    .workspace = conv_workspace,
    .forward = conv_forward,
    .field = conv_field,
    .region_workspace = conv_region_workspace,
    .forward_region = conv_forward_region,
    .macs = conv_macs,
    .grad_inputs = 1u << 0,
    .backward = conv_backward,
    .backward_workspace = conv_backward_workspace,
    .kinks = EVM_KINKS_NONE,
};
