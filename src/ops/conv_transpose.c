/*
 * ConvTranspose: 2-D grouped transposed convolution, NCHW, float32.
 *
 * X is N x C x H x W, W is C x M/group x kh x kw, the optional bias has M
 * values. Y[n][m] at full position i * stride + k * dilation (one tap per
 * input pixel i and kernel tap k) accumulates X[n][c][i] * W[c][m][k],
 * cropped by pad_begin at the start; output_padding, output_shape and the
 * SAME modes only change how many positions the output keeps and where the
 * crop begins.
 *
 * That is exactly the input gradient of the Conv whose input is Y's shape,
 * whose output is X's, with the same W (M input and C output channels, the
 * same group, stride, dilation and pad_begin): ConvTranspose's forward is
 * evm_conv_transpose_run on that shape (conv_backward.c: the transposed
 * convolution, depthwise scatter or sgemm + col2im, each starting from the
 * bias), and its input gradient is that Conv's forward (evm_conv_run).
 * Outputs past the last tap (output_padding, an output_shape larger than the
 * taps reach) get the bias alone: a negative pad_end in that Conv's shape.
 *
 * Padding (ONNX): explicit pads crop both ends. With output_shape, or
 * auto_pad SAME_UPPER/SAME_LOWER (output = input * stride), the total crop is
 * total = stride * (in - 1) + output_padding + (k - 1) * dilation + 1 - out,
 * split as pad_begin = total / 2 for SAME_UPPER and total - total / 2
 * otherwise (the spec's formula). A negative total (an output larger than
 * the taps reach) crops nothing at the start: the extra positions come at
 * the end, as in onnxruntime.
 */
#include <limits.h>
#include <string.h>

#include "conv_internal.h"

typedef struct convt_params {
    evm_window2d window;  /* parsed attributes; kernel is 0x0 when taken from W */
    int group;            /* >= 1 */
    int out_pad[2];       /* output_padding */
    int64_t out_shape[2]; /* output_shape; 0 when not given */
} convt_params;

static evmap_status read_output_attrs(evm_node *node, convt_params *p, evmap_error *err) {
    const int64_t *v;
    size_t n;
    evmap_status st = evm_attr_ints(node, "output_padding", &v, &n, err);
    if (st != EVMAP_OK)
        return st;
    if (n != 0 && n != 2)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "attribute 'output_padding' has %zu values; only 2-D (images) is "
                             "supported",
                             n);
    for (size_t i = 0; i < n; i++) {
        int limit = p->window.stride[i] > p->window.dilation[i] ? p->window.stride[i]
                                                                : p->window.dilation[i];
        if (v[i] < 0 || v[i] >= limit)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "output_padding %lld must be at least 0 and less than the "
                                 "stride or dilation (%d)",
                                 (long long)v[i], limit);
        p->out_pad[i] = (int)v[i];
    }
    st = evm_attr_ints(node, "output_shape", &v, &n, err);
    if (st != EVMAP_OK)
        return st;
    if (n != 0 && n != 2)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "attribute 'output_shape' has %zu values; only 2-D (images) is "
                             "supported (give the spatial sizes)",
                             n);
    for (size_t i = 0; i < n; i++) {
        if (v[i] < 1 || v[i] > INT_MAX)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "output_shape value %lld is out of range", (long long)v[i]);
        p->out_shape[i] = v[i];
    }
    return EVMAP_OK;
}

static evmap_status convt_init(evm_node *node, evmap_error *err) {
    convt_params p;
    memset(&p, 0, sizeof p);
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
    st = read_output_attrs(node, &p, err);
    if (st != EVMAP_OK)
        return st;
    return evm_node_set_params(node, &p, sizeof p, err);
}

/* --------------------------------------------------------------- shapes */

/* One spatial axis: output size and crop at the start for input size in;
 * false when the output would be empty or a size would not fit an int. */
static bool convt_axis(const convt_params *p, int a, int64_t in, int kernel, int64_t *out,
                       int64_t *pad_begin) {
    const evm_window2d *w = &p->window;
    int64_t s = w->stride[a], ext = (int64_t)(kernel - 1) * w->dilation[a] + 1;
    int64_t reach = s * (in - 1) + ext + p->out_pad[a]; /* in, kernel <= INT_MAX */
    if (reach > INT_MAX)
        return false;
    int64_t o, pb;
    bool same = w->auto_pad == EVM_AUTO_PAD_SAME_UPPER || w->auto_pad == EVM_AUTO_PAD_SAME_LOWER;
    if (p->out_shape[0] || same) {
        o = p->out_shape[0] ? p->out_shape[a] : in * s;
        int64_t total = reach - o;
        pb = total < 0 ? 0 : w->auto_pad == EVM_AUTO_PAD_SAME_UPPER ? total / 2 : total - total / 2;
    } else if (w->auto_pad == EVM_AUTO_PAD_VALID) {
        pb = 0;
        o = reach;
    } else {
        pb = w->pad_begin[a];
        o = reach - pb - w->pad_end[a];
    }
    /* o + ext bounds the transposed convolution's padded sides (conv_backward.c) */
    if (o < 1 || o + ext > INT_MAX)
        return false;
    *out = o;
    *pad_begin = pb;
    return true;
}

/* The Conv whose input gradient this ConvTranspose is (see the top). err
 * may be NULL: forward and backward call it with shapes infer accepted. */
static evmap_status convt_shape(const evm_node *node, evm_tensor *const *in, evm_conv2d_shape *s,
                                evmap_error *err) {
    const convt_params *p = node->params;
    const evm_tensor *x = in[0], *w = in[1];
    memset(s, 0, sizeof *s);
    s->win = p->window;
    s->win.kernel[0] = (int)w->dims[2];
    s->win.kernel[1] = (int)w->dims[3];
    s->win.auto_pad = EVM_AUTO_PAD_NOTSET;
    s->win.ceil_mode = 0;
    int64_t o[2], pb[2];
    for (int a = 0; a < 2; a++) {
        if (!convt_axis(p, a, x->dims[2 + a], s->win.kernel[a], &o[a], &pb[a]))
            return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                                 "the output along spatial axis %d would be empty or too large "
                                 "for input size %lld",
                                 a, (long long)x->dims[2 + a]);
        int64_t ext = (int64_t)(s->win.kernel[a] - 1) * s->win.dilation[a] + 1;
        s->win.pad_begin[a] = (int)pb[a];
        /* negative when outputs lie past the last tap */
        s->win.pad_end[a] = (int)(s->win.stride[a] * (x->dims[2 + a] - 1) + ext - pb[a] - o[a]);
    }
    s->n = (int)x->dims[0];
    s->c = (int)(w->dims[1] * p->group); /* checked to fit by convt_infer */
    s->h = (int)o[0];
    s->w = (int)o[1];
    s->m = (int)x->dims[1];
    s->group = p->group;
    s->oh = (int)x->dims[2];
    s->ow = (int)x->dims[3];
    return EVMAP_OK;
}

/* --------------------------------------------------------------- infer */

/* Rank 3 and 5 are valid ONNX (1-D, 3-D) that evmap does not handle. */
static evmap_status check_rank(const evm_node *node, const evm_tensor *t, const char *what,
                               evmap_status below, evmap_error *err) {
    char buf[EVM_SHAPE_STR_SIZE];
    if (t->rank == 4) {
        for (int i = 0; i < 4; i++)
            if (t->dims[i] > INT_MAX)
                return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                                     "%s dimension %d (%lld) is too large", what, i,
                                     (long long)t->dims[i]);
        return EVMAP_OK;
    }
    if (t->rank >= 3)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "%s has shape %s (%d-D); only 2-D (images) is supported", what,
                             evm_shape_str(t, buf, sizeof buf), t->rank - 2);
    return evm_node_fail(err, node, below, "%s has shape %s; expected N x C x H x W", what,
                         evm_shape_str(t, buf, sizeof buf));
}

static evmap_status check_weights(const evm_node *node, evm_tensor *const *in, evmap_error *err) {
    const convt_params *p = node->params;
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
                             "%lld input channels (weights %s) are not divisible by group %d",
                             (long long)w->dims[0], ws, p->group);
    if (x->dims[1] != w->dims[0])
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "input %s has %lld channels but weights %s expect %lld", xs,
                             (long long)x->dims[1], ws, (long long)w->dims[0]);
    if (x->dims[2] < 1 || x->dims[3] < 1)
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT, "input %s has an empty image",
                             xs);
    int64_t m = w->dims[1] * p->group;
    if (m > INT_MAX)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED, "%lld output channels are too many",
                             (long long)m);
    if (in[2]) {
        const evm_tensor *b = in[2];
        if (b->rank != 1 || b->dims[0] != m) {
            char bs[EVM_SHAPE_STR_SIZE];
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "bias has shape %s; expected [%lld] (one per output channel)",
                                 evm_shape_str(b, bs, sizeof bs), (long long)m);
        }
    }
    return EVMAP_OK;
}

static evmap_status convt_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
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
        st = check_weights(node, in, err);
    evm_conv2d_shape s;
    if (st == EVMAP_OK)
        st = convt_shape(node, in, &s, err);
    if (st != EVMAP_OK)
        return st;
    /* sgemm takes int sizes: the input plane is the columns of both the
     * forward's col2im and the gradient's im2col, M/group x kh x kw their
     * rows; their product bounds every workspace (the transposed path checks
     * its own, conv_backward.c). */
    int64_t kdim = (int64_t)(s.c / s.group) * s.win.kernel[0] * s.win.kernel[1];
    int64_t plane = (int64_t)s.oh * s.ow;
    if (plane > INT_MAX || kdim > INT_MAX)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "input plane %lldx%lld or kernel is too large", (long long)s.oh,
                             (long long)s.ow);
    if (kdim * plane > (int64_t)EVM_MAX_TENSOR_ELEMENTS)
        return evm_node_fail(err, node, EVMAP_ERR_TOO_LARGE,
                             "the col2im matrix (%lld x %lld) is too large", (long long)kdim,
                             (long long)plane);
    int64_t dims[4] = {s.n, s.c, s.h, s.w};
    out[0]->dtype = EVM_DTYPE_FLOAT;
    return evm_tensor_set_shape(out[0], 4, dims, err);
}

/* ------------------------------------------------------ forward, backward */

static size_t convt_workspace(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out) {
    (void)out;
    evm_conv2d_shape s;
    convt_shape(node, in, &s, NULL);
    return evm_conv_transpose_workspace(&s);
}

static void convt_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                          float *workspace) {
    if (!out[0]->count) /* an empty batch may have no buffer */
        return;
    evm_conv2d_shape s;
    convt_shape(node, in, &s, NULL);
    evm_conv_transpose_run(&s, evm_f32(in[0]), evm_f32(in[1]), in[2] ? evm_f32(in[2]) : NULL,
                           evm_f32(out[0]), workspace);
}

static double convt_macs(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out) {
    (void)node;
    (void)out;
    const evm_tensor *w = in[1];
    /* every input value: one multiply-add per weight of its input channel */
    return (double)in[0]->count * (double)(w->dims[1] * w->dims[2] * w->dims[3]);
}

static size_t convt_backward_workspace(const evm_node *node, evm_tensor *const *in,
                                       evm_tensor *const *out) {
    (void)out;
    evm_conv2d_shape s;
    convt_shape(node, in, &s, NULL);
    return evm_conv_kernel_workspace(&s);
}

/* The input gradient: the Conv of the output gradient with the same W. */
static void convt_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                           const evm_tensor *grad_out, evm_tensor *const *grad_in,
                           float *workspace) {
    (void)out;
    if (!grad_in[0] || !grad_in[0]->count) /* an empty input may have no buffer */
        return;
    evm_conv2d_shape s;
    convt_shape(node, in, &s, NULL);
    evm_conv_run(&s, evm_f32(grad_out), evm_f32(in[1]), NULL, evm_f32(grad_in[0]), workspace);
}

const evm_op_def evm_op_conv_transpose = {
    .name = "ConvTranspose",
    .min_inputs = 2,
    .max_inputs = 3,
    .init = convt_init,
    .infer = convt_infer,
    .workspace = convt_workspace,
    .forward = convt_forward,
    .macs = convt_macs,
    .grad_inputs = 1u << 0,
    .backward = convt_backward,
    .backward_workspace = convt_backward_workspace,
    .kinks = EVM_KINKS_NONE,
};
