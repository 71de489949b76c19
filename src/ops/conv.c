/*
 * Conv: 2-D grouped convolution, NCHW, float32.
 *
 * Four kernels, chosen per plan from the shapes (evm_conv_choose):
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
 * Files: this one is the operator (attributes, shape inference, the kernel
 * choice and workspace sizes, forward, exact-locality regions, evm_op_conv)
 * and the threading the kernels share; conv_gemm.c (pointwise and im2col),
 * conv_winograd.c and conv_depthwise.c hold the kernels, conv_backward.c the
 * input gradient, conv_internal.h what they share.
 * Invariants: infer has checked every shape forward relies on (W is
 * M x C/group x kh x kw, bias has M values, the output is non-empty and fits
 * sgemm's int sizes), and forward re-derives the resolved window and the
 * kernel choice from the same shapes, so it cannot fail. The workspace
 * (sized by conv_workspace from the same choice) is the only scratch memory.
 */
#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "conv_internal.h"

typedef struct conv_params {
    evm_window2d window; /* parsed attributes; kernel is 0x0 when taken from W */
    int group;           /* >= 1 */
} conv_params;

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

evmap_status evm_conv_shape(const evm_node *node, evm_tensor *const *in, evm_conv2d_shape *s,
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
        st = evm_conv_shape(node, in, &s, err);
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
     * output's shape: evm_conv_choose relies on its 2^34 limit. */
    if (st == EVMAP_OK && evm_conv_choose(&s) != CONV_DEPTHWISE &&
        kdim * ((int64_t)s.oh * s.ow) > (int64_t)EVM_MAX_TENSOR_ELEMENTS)
        return evm_node_fail(err, node, EVMAP_ERR_TOO_LARGE,
                             "the im2col matrix (%lld x %lld) is too large", (long long)kdim,
                             (long long)s.oh * s.ow);
    return st;
}

/* -------------------------------------------------------------- forward */

conv_kernel evm_conv_choose(const evm_conv2d_shape *s) {
    const evm_window2d *k = &s->win;
    if (s->group == s->c && s->group == s->m && s->group > 1)
        return CONV_DEPTHWISE;
    if (evm_conv_wino_suits(s))
        return CONV_WINOGRAD;
    if (k->kernel[0] == 1 && k->kernel[1] == 1 && k->stride[0] == 1 && k->stride[1] == 1 &&
        k->pad_begin[0] == 0 && k->pad_begin[1] == 0 && k->pad_end[0] == 0 && k->pad_end[1] == 0)
        return CONV_POINTWISE;
    return CONV_IM2COL;
}

size_t evm_conv_kernel_workspace(const evm_conv2d_shape *s) {
    conv_kernel kind = evm_conv_choose(s);
    if (kind == CONV_DEPTHWISE)
        return 0;
    if (kind == CONV_WINOGRAD)
        return evm_conv_wino_workspace(s);
    return evm_conv_gemm_workspace(s, kind);
}

void evm_conv_run(const evm_conv2d_shape *s, const float *x, const float *w, const float *bias,
                  float *y, float *workspace) {
    conv_kernel kind = evm_conv_choose(s);
    if (kind == CONV_DEPTHWISE)
        evm_conv_depthwise(s, x, w, bias, y);
    else if (kind == CONV_WINOGRAD)
        evm_conv_winograd(s, x, w, bias, y, workspace);
    else
        evm_conv_gemm(s, kind, x, w, bias, y, workspace);
}

static size_t conv_workspace(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out) {
    (void)out;
    evm_conv2d_shape s;
    evm_conv_shape(node, in, &s, NULL);
    return evm_conv_kernel_workspace(&s);
}

static void conv_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         float *workspace) {
    evm_conv2d_shape s;
    evm_conv_shape(node, in, &s, NULL);
    evm_conv_run(&s, evm_f32(in[0]), evm_f32(in[1]), in[2] ? evm_f32(in[2]) : NULL, evm_f32(out[0]),
                 workspace);
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
    evm_conv_shape(node, in, &g->full, NULL);
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
    evm_conv_shape(node, in, &s, NULL);
    return evm_window2d_field(&s.win, out[0]->dims[2], out[0]->dims[3], &in_regions[0]);
}

static evm_region conv_reads(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                             const evm_region *r) {
    (void)out;
    evm_conv2d_shape s;
    evm_conv_shape(node, in, &s, NULL);
    return evm_window2d_reads(&s.win, s.h, s.w, r);
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
    return xs + (size_t)s->n * s->m * s->oh * s->ow + evm_conv_kernel_workspace(s);
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
            for (int64_t i = 0; i < xlo; i++) /* short runs: no calls */
                dst[i] = 0.0f;
            memcpy(dst + xlo, plane + iy * f->w + g->ix0 + xlo,
                   sizeof(float) * (size_t)(xhi - xlo));
            for (int64_t i = xhi; i < s->w; i++)
                dst[i] = 0.0f;
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
    evm_conv_run(s, xs, evm_f32(in[1]), in[2] ? evm_f32(in[2]) : NULL, ys, kw);
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
    .reads = conv_reads,
    .region_workspace = conv_region_workspace,
    .forward_region = conv_forward_region,
    .macs = conv_macs,
    .grad_inputs = 1u << 0,
    .backward = evm_conv_backward,
    .backward_workspace = evm_conv_backward_workspace,
    .kinks = EVM_KINKS_NONE,
};
