/*
 * ConvTranspose: forward and input gradient against naive references
 * (accumulated in double) on random shapes (groups, depthwise, strides,
 * dilations, pads, output_padding, output_shape, every auto_pad) and on
 * network shapes that reach each kernel of conv_backward.c and conv.c
 * (transposed convolution with Winograd or im2col, depthwise scatter,
 * sgemm + col2im, pointwise), plus the validation errors.
 * Tolerance: the rounding bound of test_conv.c, min(K, 8 sqrt(K)) * u * S +
 * u * |y| (K terms per output, S the sum of their magnitudes). Calls the op
 * through its evm_op_def with hand-built nodes and gives forward and
 * backward workspaces of exactly the requested size, so that
 * AddressSanitizer catches any overrun.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"

static int passed, failed;

#define UNIT_ROUNDOFF (1.0 / 16777216.0) /* 2^-24 */

static void check(int ok, const char *what) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL: %s\n", what);
    }
}

/* ---- hand-built nodes ---- */

typedef struct test_node {
    evm_node node;
    evm_attr attrs[8];
    int64_t ints[8][4];
    char names[8][16];
} test_node;

static void node_start(test_node *t) {
    memset(t, 0, sizeof *t);
    t->node.name = "convt0";
    t->node.kind = EVM_OP_CONV_TRANSPOSE;
    t->node.opset = 11;
    t->node.attrs = t->attrs;
}

static void add_ints(test_node *t, const char *name, const int64_t *v, size_t n) {
    size_t i = t->node.n_attrs++;
    evm_attr *a = &t->attrs[i];
    snprintf(t->names[i], sizeof t->names[i], "%s", name);
    a->name = t->names[i];
    a->type = EVM_ATTR_INTS;
    memcpy(t->ints[i], v, n * sizeof *v);
    a->ints = t->ints[i];
    a->n = n;
}

static void add_pair(test_node *t, const char *name, int a, int b) {
    int64_t v[2] = {a, b};
    add_ints(t, name, v, 2);
}

static void add_int(test_node *t, const char *name, int64_t v) {
    size_t i = t->node.n_attrs++;
    evm_attr *a = &t->attrs[i];
    snprintf(t->names[i], sizeof t->names[i], "%s", name);
    a->name = t->names[i];
    a->type = EVM_ATTR_INT;
    a->i = v;
}

static void add_string(test_node *t, const char *name, char *v) {
    size_t i = t->node.n_attrs++;
    evm_attr *a = &t->attrs[i];
    snprintf(t->names[i], sizeof t->names[i], "%s", name);
    a->name = t->names[i];
    a->type = EVM_ATTR_STRING;
    a->s = v;
}

static void make_tensor(evm_tensor *t, int rank, const int64_t *dims) {
    memset(t, 0, sizeof *t);
    t->dtype = EVM_DTYPE_FLOAT;
    evmap_error err;
    if (evm_tensor_set_shape(t, rank, dims, &err) != EVMAP_OK) {
        printf("bad test shape: %s\n", err.message);
        exit(2);
    }
    t->data = malloc(t->count * sizeof(float) + 1);
    for (size_t i = 0; i < t->count; i++)
        ((float *)t->data)[i] = (float)((double)rand() / RAND_MAX * 2.0 - 1.0);
}

/* ---- one case ---- */

typedef struct convt_case {
    int n, c, h, w, m, group, kh, kw;
    int stride[2], dilation[2], pads[4], out_pad[2];
    int out_shape[2]; /* 0: not given */
    char *auto_pad;   /* NULL: not given */
    int bias;
} convt_case;

/* The spec's output size and crop at the start along one axis; pb = 0 for
 * a negative total (outputs past the last tap come at the end). */
static int ref_axis(const convt_case *k, int a, int *out, int *pb) {
    int in = a ? k->w : k->h, kern = a ? k->kw : k->kh, s = k->stride[a];
    int reach = s * (in - 1) + (kern - 1) * k->dilation[a] + 1 + k->out_pad[a];
    int same = k->auto_pad && strncmp(k->auto_pad, "SAME", 4) == 0;
    if (k->out_shape[0] || same) {
        *out = k->out_shape[0] ? k->out_shape[a] : in * s;
        int total = reach - *out;
        int upper = same && strcmp(k->auto_pad, "SAME_UPPER") == 0;
        *pb = total < 0 ? 0 : upper ? total / 2 : total - total / 2;
    } else if (k->auto_pad) { /* VALID */
        *out = reach;
        *pb = 0;
    } else {
        *pb = k->pads[a];
        *out = reach - k->pads[a] - k->pads[a + 2];
    }
    return *out >= 1;
}

static void describe(const convt_case *k, char *buf, size_t size) {
    snprintf(buf, size,
             "n%d c%d %dx%d m%d g%d k%dx%d s%d,%d d%d,%d p%d,%d,%d,%d op%d,%d os%d,%d %s%s", k->n,
             k->c, k->h, k->w, k->m, k->group, k->kh, k->kw, k->stride[0], k->stride[1],
             k->dilation[0], k->dilation[1], k->pads[0], k->pads[1], k->pads[2], k->pads[3],
             k->out_pad[0], k->out_pad[1], k->out_shape[0], k->out_shape[1],
             k->auto_pad ? k->auto_pad : "NOTSET", k->bias ? " bias" : "");
}

static void build_node(test_node *t, const convt_case *k) {
    node_start(t);
    add_int(t, "group", k->group);
    add_pair(t, "strides", k->stride[0], k->stride[1]);
    add_pair(t, "dilations", k->dilation[0], k->dilation[1]);
    if (k->auto_pad)
        add_string(t, "auto_pad", k->auto_pad);
    else {
        int64_t p[4] = {k->pads[0], k->pads[1], k->pads[2], k->pads[3]};
        add_ints(t, "pads", p, 4);
    }
    add_pair(t, "output_padding", k->out_pad[0], k->out_pad[1]);
    if (k->out_shape[0])
        add_pair(t, "output_shape", k->out_shape[0], k->out_shape[1]);
}

/* Visits every (input pixel, kernel tap, output pixel) triple of one image
 * pair of channels: x index i, w index j, y index o. */
#define FOR_TAPS(k, oh, ow, pb, body)                                                              \
    for (int iy = 0; iy < (k)->h; iy++)                                                            \
        for (int ix = 0; ix < (k)->w; ix++)                                                        \
            for (int ky = 0; ky < (k)->kh; ky++)                                                   \
                for (int kx = 0; kx < (k)->kw; kx++) {                                             \
                    int oy = iy * (k)->stride[0] + ky * (k)->dilation[0] - (pb)[0];                \
                    int ox = ix * (k)->stride[1] + kx * (k)->dilation[1] - (pb)[1];                \
                    if (oy < 0 || oy >= (oh) || ox < 0 || ox >= (ow))                              \
                        continue;                                                                  \
                    size_t i = (size_t)iy * (k)->w + ix, j = (size_t)ky * (k)->kw + kx;            \
                    size_t o = (size_t)oy * (ow) + ox;                                             \
                    body;                                                                          \
                }

/* Largest difference over its rounding bound. */
static double bound_ratio(const float *got, const double *want, const double *mag, size_t n,
                          int terms) {
    double worst = 0.0, rtol = fmin(terms, 8.0 * sqrt(terms));
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        double bound = UNIT_ROUNDOFF * (rtol * mag[i] + fabs(want[i])) + 1e-37;
        if (!(d <= worst * bound))
            worst = isnan(d) ? INFINITY : d / bound;
    }
    return worst;
}

/* Runs forward and backward against the references: 1 ran (*ratio the
 * worse of the two), 0 infer rightly rejected an empty output, -1 failed. */
static int run_case(const convt_case *k, double *ratio) {
    char what[256];
    describe(k, what, sizeof what);
    int oh, ow, pb[2];
    int valid = ref_axis(k, 0, &oh, &pb[0]) & ref_axis(k, 1, &ow, &pb[1]);
    test_node t;
    build_node(&t, k);
    evmap_error err;
    if (evm_op_conv_transpose.init(&t.node, &err) != EVMAP_OK) {
        printf("init failed for %s: %s\n", what, err.message);
        return -1;
    }
    int cg = k->c / k->group, mg = k->m / k->group;
    evm_tensor x, w, b, y, gy, gx;
    int64_t xd[4] = {k->n, k->c, k->h, k->w}, wd[4] = {k->c, mg, k->kh, k->kw}, bd[1] = {k->m};
    make_tensor(&x, 4, xd);
    make_tensor(&w, 4, wd);
    make_tensor(&b, 1, bd);
    w.is_const = b.is_const = true;
    memset(&y, 0, sizeof y);
    evm_tensor *in[3] = {&x, &w, k->bias ? &b : NULL}, *out[1] = {&y};
    evmap_status st = evm_op_conv_transpose.infer(&t.node, in, out, &err);
    int result = -1;
    if (st != EVMAP_OK || !valid) {
        if (st == EVMAP_ERR_INVALID_ARGUMENT && !valid)
            result = 0;
        else
            printf("infer %s %s: %s\n", st == EVMAP_OK ? "accepted" : "rejected", what,
                   st == EVMAP_OK ? "an empty output" : err.message);
        goto done;
    }
    if (y.dims[0] != k->n || y.dims[1] != k->m || y.dims[2] != oh || y.dims[3] != ow) {
        printf("output shape of %s: %lldx%lld, want %dx%d\n", what, (long long)y.dims[2],
               (long long)y.dims[3], oh, ow);
        goto done;
    }
    /* forward */
    size_t ws = evm_op_conv_transpose.workspace(&t.node, in, out);
    float *work = malloc(ws * sizeof(float) + 1);
    y.data = malloc(y.count * sizeof(float));
    evm_op_conv_transpose.forward(&t.node, in, out, work);
    free(work);
    double *want = calloc(y.count, sizeof(double)), *mag = calloc(y.count, sizeof(double));
    size_t oplane = (size_t)oh * ow, iplane = (size_t)k->h * k->w, kk = (size_t)k->kh * k->kw;
    for (int n = 0; n < k->n; n++)
        for (int mo = 0; mo < k->m; mo++) {
            size_t yo = ((size_t)n * k->m + mo) * oplane;
            double bv = k->bias ? evm_f32(&b)[mo] : 0.0;
            for (size_t o = 0; o < oplane; o++) {
                want[yo + o] = bv;
                mag[yo + o] = fabs(bv);
            }
            int g = mo / mg;
            for (int ci = g * cg; ci < (g + 1) * cg; ci++) {
                const float *xp = evm_f32(&x) + ((size_t)n * k->c + ci) * iplane;
                const float *wp = evm_f32(&w) + ((size_t)ci * mg + mo % mg) * kk;
                FOR_TAPS(k, oh, ow, pb, {
                    double p = (double)xp[i] * wp[j];
                    want[yo + o] += p;
                    mag[yo + o] += fabs(p);
                })
            }
        }
    int terms = cg * k->kh * k->kw + 1;
    double fwd = bound_ratio(evm_f32(&y), want, mag, y.count, terms);
    free(want);
    free(mag);
    /* backward: gx[n][ci] = sum over the taps of gy * w */
    make_tensor(&gy, 4, y.dims);
    make_tensor(&gx, 4, xd);
    evm_tensor *gin[3] = {&gx, NULL, NULL};
    ws = evm_op_conv_transpose.backward_workspace(&t.node, in, out);
    work = malloc(ws * sizeof(float) + 1);
    evm_op_conv_transpose.backward(&t.node, in, out, &gy, gin, work);
    free(work);
    want = calloc(x.count, sizeof(double));
    mag = calloc(x.count, sizeof(double));
    for (int n = 0; n < k->n; n++)
        for (int ci = 0; ci < k->c; ci++) {
            size_t xo = ((size_t)n * k->c + ci) * iplane;
            int g = ci / cg;
            for (int mo = g * mg; mo < (g + 1) * mg; mo++) {
                const float *gp = evm_f32(&gy) + ((size_t)n * k->m + mo) * oplane;
                const float *wp = evm_f32(&w) + ((size_t)ci * mg + mo % mg) * kk;
                FOR_TAPS(k, oh, ow, pb, {
                    double p = (double)gp[o] * wp[j];
                    want[xo + i] += p;
                    mag[xo + i] += fabs(p);
                })
            }
        }
    double bwd = bound_ratio(evm_f32(&gx), want, mag, x.count, mg * k->kh * k->kw);
    free(want);
    free(mag);
    free(gy.data);
    free(gx.data);
    *ratio = fmax(fwd, bwd);
    result = *ratio <= 1.0 ? 1 : -1;
    if (result < 0)
        printf("%s: forward %.3g, backward %.3g of the rounding bound\n", what, fwd, bwd);
done:
    free(x.data);
    free(w.data);
    free(b.data);
    free(y.data);
    free(t.node.params);
    return result;
}

static int rnd(int lo, int hi) {
    return lo + rand() % (hi - lo + 1);
}

static char *auto_pads[] = {NULL, NULL, "VALID", "SAME_UPPER", "SAME_LOWER"};

static convt_case random_case(void) {
    convt_case k;
    memset(&k, 0, sizeof k);
    k.n = rnd(1, 2);
    k.group = rnd(1, 3);
    int depthwise = rnd(0, 3) == 0;
    k.c = k.group * (depthwise ? 1 : rnd(1, 3));
    k.m = k.group * (depthwise ? 1 : rnd(1, 3));
    k.h = rnd(1, 7);
    k.w = rnd(1, 7);
    k.kh = rnd(1, 4);
    k.kw = rnd(1, 4);
    for (int a = 0; a < 2; a++) {
        k.stride[a] = rnd(1, 3);
        k.dilation[a] = rnd(1, 2);
        int limit = k.stride[a] > k.dilation[a] ? k.stride[a] : k.dilation[a];
        k.out_pad[a] = rnd(0, limit - 1);
        k.pads[a] = rnd(0, 2);
        k.pads[a + 2] = rnd(0, 2);
    }
    k.auto_pad = auto_pads[rnd(0, 4)];
    if (rnd(0, 3) == 0) /* around the natural size, past it or short of it */
        for (int a = 0; a < 2; a++) {
            int in = a ? k.w : k.h, kern = a ? k.kw : k.kh;
            int reach = k.stride[a] * (in - 1) + (kern - 1) * k.dilation[a] + 1;
            int v = reach + rnd(-3, 3);
            k.out_shape[a] = v > 1 ? v : 1;
        }
    k.bias = rnd(0, 1);
    return k;
}

static void test_random(void) {
    int draws = 600, ran = 0, bad = 0;
    double worst = 0.0;
    for (int i = 0; i < draws; i++) {
        convt_case k = random_case();
        double ratio;
        int r = run_case(&k, &ratio);
        ran += r == 1;
        bad += r < 0;
        if (r == 1 && ratio > worst)
            worst = ratio;
    }
    char msg[160];
    snprintf(msg, sizeof msg, "%d random ConvTranspose cases (%d ran, worst %.3g of the bound)",
             draws, ran, worst);
    check(bad == 0 && ran >= draws * 3 / 4, msg);
}

/* Shapes of real decoders and upsamplers, chosen to reach each kernel. */
static void test_network_shapes(void) {
    static const convt_case cases[] = {
        /* stride 1, 3x3, 64 channels: transposed convolution by Winograd,
         * gradient by Winograd */
        {1, 64, 24, 24, 64, 1, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, {0, 0}, {0, 0}, NULL, 1},
        /* 2x2 stride-2 upsampling (U-Net): sgemm + col2im over two images */
        {2, 64, 16, 16, 32, 1, 2, 2, {2, 2}, {1, 1}, {0, 0, 0, 0}, {0, 0}, {0, 0}, NULL, 1},
        /* 4x4 stride 2 pad 1 (DCGAN) with groups */
        {1, 16, 8, 8, 8, 2, 4, 4, {2, 2}, {1, 1}, {1, 1, 1, 1}, {0, 0}, {0, 0}, NULL, 1},
        /* depthwise upsampling: every tap scattered */
        {2, 8, 9, 7, 8, 8, 4, 4, {2, 2}, {1, 1}, {1, 1, 1, 1}, {1, 1}, {0, 0}, NULL, 1},
        /* depthwise stride 1 with output_shape past the taps */
        {1, 8, 9, 7, 8, 8, 3, 3, {1, 1}, {1, 1}, {0, 0, 0, 0}, {0, 0}, {13, 12}, NULL, 0},
        /* pointwise, 1x1 stride 1 */
        {2, 32, 10, 10, 16, 1, 1, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, {0, 0}, {0, 0}, NULL, 1},
        /* 1x1 with a dilation-allowed output_padding: outputs beyond the taps */
        {1, 4, 5, 5, 4, 1, 1, 1, {1, 1}, {2, 2}, {0, 0, 0, 0}, {1, 1}, {0, 0}, NULL, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[300], msg[400];
        describe(&cases[i], what, sizeof what);
        double ratio = INFINITY;
        int r = run_case(&cases[i], &ratio);
        snprintf(msg, sizeof msg, "network shape %s (%.3g of the bound)", what, ratio);
        check(r == 1, msg);
    }
}

/* ---- validation errors ---- */

static evmap_status try_case(test_node *t, int xr, const int64_t *xd, int wr, const int64_t *wd,
                             const int64_t *bd, evmap_error *err) {
    evmap_status st = evm_op_conv_transpose.init(&t->node, err);
    if (st != EVMAP_OK)
        return st;
    evm_tensor x, w, b, y;
    make_tensor(&x, xr, xd);
    make_tensor(&w, wr, wd);
    if (bd)
        make_tensor(&b, 1, bd);
    memset(&y, 0, sizeof y);
    evm_tensor *in[3] = {&x, &w, bd ? &b : NULL}, *out[1] = {&y};
    st = evm_op_conv_transpose.infer(&t->node, in, out, err);
    free(x.data);
    free(w.data);
    if (bd)
        free(b.data);
    free(t->node.params);
    t->node.params = NULL;
    return st;
}

static void expect(evmap_status got, evmap_status want, const evmap_error *err, const char *what,
                   const char *needle) {
    int ok = got == want && (!needle || strstr(err->message, needle));
    if (!ok)
        printf("%s: status %d (want %d), message '%s'\n", what, got, want,
               got == EVMAP_OK ? "" : err->message);
    check(ok, what);
}

static void test_errors(void) {
    test_node t;
    evmap_error err;
    int64_t x4[4] = {1, 4, 8, 8}, w4[4] = {4, 3, 3, 3}, b6[1] = {6}, b5[1] = {5};

    node_start(&t);
    add_int(&t, "group", 2);
    expect(try_case(&t, 4, x4, 4, w4, b6, &err), EVMAP_OK, &err, "grouped ConvTranspose", NULL);

    node_start(&t);
    int64_t x3[3] = {1, 4, 8}, w3[3] = {4, 3, 3};
    expect(try_case(&t, 3, x3, 3, w3, NULL, &err), EVMAP_ERR_UNSUPPORTED, &err, "1-D input",
           "only 2-D (images) is supported");

    node_start(&t);
    int64_t x5[5] = {1, 4, 4, 4, 4}, w5[5] = {4, 3, 2, 2, 2};
    expect(try_case(&t, 5, x5, 5, w5, NULL, &err), EVMAP_ERR_UNSUPPORTED, &err, "3-D input",
           "only 2-D (images) is supported");

    node_start(&t);
    int64_t op3[3] = {1, 1, 1};
    add_ints(&t, "output_padding", op3, 3);
    expect(try_case(&t, 4, x4, 4, w4, NULL, &err), EVMAP_ERR_UNSUPPORTED, &err,
           "3-D output_padding", "only 2-D (images) is supported");

    node_start(&t);
    int64_t x2[4] = {1, 2, 8, 8};
    expect(try_case(&t, 4, x2, 4, w4, NULL, &err), EVMAP_ERR_INVALID_ARGUMENT, &err,
           "channel mismatch", "2 channels");

    node_start(&t);
    add_int(&t, "group", 3);
    int64_t x3c[4] = {1, 4, 8, 8};
    expect(try_case(&t, 4, x3c, 4, w4, NULL, &err), EVMAP_ERR_BAD_FILE, &err,
           "input channels not divisible by group", "divisible by group 3");

    node_start(&t);
    add_int(&t, "group", 2);
    expect(try_case(&t, 4, x4, 4, w4, b5, &err), EVMAP_ERR_BAD_FILE, &err, "bias size", "[6]");

    node_start(&t);
    add_pair(&t, "kernel_shape", 5, 5);
    expect(try_case(&t, 4, x4, 4, w4, NULL, &err), EVMAP_ERR_BAD_FILE, &err,
           "kernel_shape disagrees with W", "kernel_shape");

    node_start(&t);
    add_pair(&t, "strides", 2, 2);
    add_pair(&t, "output_padding", 2, 0);
    expect(try_case(&t, 4, x4, 4, w4, NULL, &err), EVMAP_ERR_BAD_FILE, &err,
           "output_padding not below the stride", "output_padding");

    node_start(&t);
    add_pair(&t, "output_shape", 0, 4);
    expect(try_case(&t, 4, x4, 4, w4, NULL, &err), EVMAP_ERR_BAD_FILE, &err, "output_shape of 0",
           "output_shape");

    node_start(&t);
    int64_t big[4] = {4, 4, 4, 4};
    add_ints(&t, "pads", big, 4);
    int64_t tiny[4] = {1, 4, 1, 1};
    expect(try_case(&t, 4, tiny, 4, w4, NULL, &err), EVMAP_ERR_INVALID_ARGUMENT, &err,
           "pads larger than the output", "convt0");

    node_start(&t);
    add_int(&t, "strides_typo", 2);
    evmap_status st = evm_op_conv_transpose.init(&t.node, &err);
    if (st == EVMAP_OK)
        st = evm_node_check_attrs(&t.node, &err);
    free(t.node.params);
    expect(st, EVMAP_ERR_UNSUPPORTED, &err, "unknown attribute", "strides_typo");
}

int main(void) {
    srand(7);
    test_random();
    test_network_shapes();
    test_errors();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
