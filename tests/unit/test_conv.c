/*
 * Conv: the fast kernels (depthwise, Winograd, pointwise, im2col + sgemm) and
 * the input gradient against naive references (accumulated in double) on
 * random and network shapes, plus the validation errors.
 * Tolerance: the rounding bound, not a figure tuned on one CPU. A float sum
 * of K terms (products and a bias) differs from the exact sum by at most
 * K * u * S to first order, u = 2^-24, S = the sum of the |terms|, in any
 * order and with or without FMA (Higham, Accuracy and Stability of
 * Numerical Algorithms, 3.1): exactly the freedom OpenBLAS's kernels for
 * another CPU have. For large K the probabilistic bound is tighter:
 * lambda * sqrt(K) * u * S, failing with probability at most
 * 2 K exp(-lambda^2 / 2) per output (Higham and Mary, SIAM J. Sci. Comput.
 * 41(5), 2019, thm. 2.4); lambda = 8 makes that below 1e-11. The bound
 * used is the smaller, min(K, 8 sqrt(K)) * u * S, plus u * |y| for the
 * double reference's rounding to float. The direct kernels (depthwise,
 * pointwise, im2col, col2im) reach up to about 0.7 of it on small K.
 * Winograd F(2x2, 3x3) sums over the C channels of 16 transformed products
 * whose transforms add cross terms to S (about 5x on random data); it lands
 * near 0.02 of the bound. A wrong tap, pad or bias moves an output by a
 * whole |product|, about S / K, far above the bound for every K here (at
 * most 1153). Calls the op through its evm_op_def with
 * hand-built nodes, as the executor would, and gives forward and backward a
 * workspace of exactly the requested size so that AddressSanitizer catches
 * any overrun.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/conv_reference.h"
#include "ops/op.h"

static int passed, failed;

#define UNIT_ROUNDOFF (1.0 / 16777216.0) /* 2^-24, float's unit roundoff */

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
    t->node.name = "conv0";
    t->node.kind = EVM_OP_CONV;
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

/* ---- one random case ---- */

typedef struct conv_case {
    int n, c, h, w, m, group, kh, kw;
    int stride[2], dilation[2], pads[4];
    const char *auto_pad; /* NULL: explicit pads */
    int give_kernel_shape, bias;
} conv_case;

static const char *auto_pads[] = {"VALID", "SAME_UPPER", "SAME_LOWER"};

static int rnd(int lo, int hi) {
    return lo + rand() % (hi - lo + 1);
}

static conv_case random_case(void) {
    conv_case k;
    memset(&k, 0, sizeof k);
    int kind = rnd(0, 4); /* 0: dense, 1: grouped, 2: depthwise, 3: multiplier, 4: 1x1 */
    k.group = kind == 0 || kind == 4 ? 1 : rnd(2, 4);
    int cg = kind == 2 || kind == 3 ? 1 : rnd(1, 5);
    int mg = kind == 2 ? 1 : rnd(1, 5);
    k.n = rnd(1, 3);
    k.c = k.group * cg;
    k.m = k.group * mg;
    k.kh = kind == 4 ? 1 : rnd(1, 5);
    k.kw = kind == 4 ? 1 : rnd(1, 5);
    for (int i = 0; i < 2; i++) {
        k.stride[i] = kind == 4 && rnd(0, 1) ? 1 : rnd(1, 3);
        k.dilation[i] = rnd(0, 2) ? 1 : rnd(1, 3);
    }
    for (int i = 0; i < 4; i++)
        k.pads[i] = kind == 4 && rnd(0, 1) ? 0 : rnd(0, 2);
    if (rnd(0, 4) == 0)
        k.auto_pad = auto_pads[rnd(0, 2)];
    int ext_h = (k.kh - 1) * k.dilation[0] + 1, ext_w = (k.kw - 1) * k.dilation[1] + 1;
    k.h = ext_h + rnd(0, 12);
    k.w = ext_w + rnd(0, 12);
    k.give_kernel_shape = rnd(0, 1);
    k.bias = rnd(0, 2) != 0;
    return k;
}

/* Whether the case is a valid convolution, from the ONNX formulas rather
 * than from evmap: output at least 1x1 (SAME always is). */
static int case_valid(const conv_case *k) {
    if (k->auto_pad && strcmp(k->auto_pad, "VALID") != 0)
        return 1;
    int pads = !k->auto_pad;
    int ext_h = (k->kh - 1) * k->dilation[0] + 1, ext_w = (k->kw - 1) * k->dilation[1] + 1;
    return k->h + pads * (k->pads[0] + k->pads[2]) >= ext_h &&
           k->w + pads * (k->pads[1] + k->pads[3]) >= ext_w;
}

static void build_node(test_node *t, const conv_case *k) {
    node_start(t);
    int64_t ks[2] = {k->kh, k->kw};
    int64_t st[2] = {k->stride[0], k->stride[1]};
    int64_t dl[2] = {k->dilation[0], k->dilation[1]};
    int64_t pd[4] = {k->pads[0], k->pads[1], k->pads[2], k->pads[3]};
    if (k->give_kernel_shape)
        add_ints(t, "kernel_shape", ks, 2);
    add_ints(t, "strides", st, 2);
    add_ints(t, "dilations", dl, 2);
    if (k->auto_pad)
        add_string(t, "auto_pad", (char *)k->auto_pad);
    else
        add_ints(t, "pads", pd, 4);
    add_int(t, "group", k->group);
}

static void describe(const conv_case *k, char *buf, size_t size) {
    snprintf(buf, size,
             "n%d c%d %dx%d m%d g%d k%dx%d s%d,%d d%d,%d pads %d,%d,%d,%d auto_pad %s bias %d",
             k->n, k->c, k->h, k->w, k->m, k->group, k->kh, k->kw, k->stride[0], k->stride[1],
             k->dilation[0], k->dilation[1], k->pads[0], k->pads[1], k->pads[2], k->pads[3],
             k->auto_pad ? k->auto_pad : "-", k->bias);
}

/* The case's geometry with the window resolved, for the references. */
static evm_conv2d_shape resolved_shape(const test_node *t, const conv_case *k,
                                       const evm_tensor *y) {
    evm_conv2d_shape s = {k->n, k->c, k->h, k->w, k->m, k->group, (int)y->dims[2], (int)y->dims[3]};
    evmap_error err;
    evm_window2d parsed;
    evm_window2d_parse(&t->node, &parsed, false, true, false, &err);
    parsed.kernel[0] = k->kh;
    parsed.kernel[1] = k->kw;
    int64_t oh, ow;
    evm_window2d_output(&t->node, &parsed, k->h, k->w, &s.win, &oh, &ow, &err);
    return s;
}

/* Largest |got - want| over its rounding bound u * (terms * mag + |want|)
 * (mag = the sum of |terms| per element, terms = most terms one element
 * sums); NaN in got counts as infinitely far. */
static double bound_ratio(const float *got, const double *want, const double *mag, size_t n,
                          int terms, double *worst_abs) {
    double worst = 0.0, rtol = fmin(terms, 8.0 * sqrt(terms));
    *worst_abs = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        double bound = UNIT_ROUNDOFF * (rtol * mag[i] + fabs(want[i])) + 1e-37;
        if (!(d <= worst * bound))
            worst = isnan(d) ? INFINITY : d / bound;
        if (!(d <= *worst_abs))
            *worst_abs = d;
    }
    return worst;
}

/* Whether infer's verdict on the case is right: 1 it ran (ratio filled),
 * 0 it rightly rejected an invalid shape, -1 wrong (printed). */
static int infer_verdict(const conv_case *k, const char *what, evmap_status st,
                         const evmap_error *err) {
    int valid = case_valid(k);
    if (st == EVMAP_OK && valid)
        return 1;
    if (st == EVMAP_ERR_INVALID_ARGUMENT && !valid)
        return 0;
    if (st == EVMAP_OK)
        printf("infer accepted an invalid case %s\n", what);
    else
        printf("infer rejected %s (%s case): %s\n", what, valid ? "a valid" : "an invalid",
               err->message);
    return -1;
}

static void abs_copy(const evm_tensor *t, float *out) {
    for (size_t i = 0; i < t->count; i++)
        out[i] = fabsf(evm_f32(t)[i]);
}

/* Runs the op and the reference: 1 ran (*ratio = difference over its
 * rounding bound), 0 infer rightly rejected an invalid shape, -1 failed. */
static int run_case(const conv_case *k, double *ratio) {
    char what[256];
    describe(k, what, sizeof what);
    test_node t;
    build_node(&t, k);
    evmap_error err;
    *ratio = INFINITY;
    if (evm_op_conv.init(&t.node, &err) != EVMAP_OK) {
        printf("init failed for %s: %s\n", what, err.message);
        return -1;
    }
    evm_tensor x, w, b, y;
    int64_t xd[4] = {k->n, k->c, k->h, k->w};
    int64_t wd[4] = {k->m, k->c / k->group, k->kh, k->kw};
    int64_t bd[1] = {k->m};
    make_tensor(&x, 4, xd);
    make_tensor(&w, 4, wd);
    make_tensor(&b, 1, bd);
    w.is_const = b.is_const = true;
    memset(&y, 0, sizeof y);
    evm_tensor *in[3] = {&x, &w, k->bias ? &b : NULL};
    evm_tensor *out[1] = {&y};
    int verdict = infer_verdict(k, what, evm_op_conv.infer(&t.node, in, out, &err), &err);
    if (verdict == 1) {
        size_t ws = evm_op_conv.workspace(&t.node, in, out);
        float *work = ws ? malloc(ws * sizeof(float)) : NULL;
        y.data = malloc(y.count * sizeof(float) + 1);
        evm_op_conv.forward(&t.node, in, out, work);

        /* the exact result, and the sum of |products| per output (the
         * reference on |x|, |w|, |b|) */
        evm_conv2d_shape s = resolved_shape(&t, k, &y);
        float *ref = malloc(y.count * sizeof(float) + 1),
              *mag = malloc(y.count * sizeof(float) + 1);
        float *ax = malloc(x.count * sizeof(float) + 1), *aw = malloc(w.count * sizeof(float) + 1);
        float *ab = malloc(b.count * sizeof(float) + 1);
        abs_copy(&x, ax);
        abs_copy(&w, aw);
        abs_copy(&b, ab);
        evm_conv2d_reference(&s, evm_f32(&x), evm_f32(&w), k->bias ? evm_f32(&b) : NULL, ref);
        evm_conv2d_reference(&s, ax, aw, k->bias ? ab : NULL, mag);
        double *want = malloc(y.count * sizeof(double) + 1),
               *m = malloc(y.count * sizeof(double) + 1);
        for (size_t i = 0; i < y.count; i++) {
            want[i] = ref[i];
            m[i] = mag[i];
        }
        double abs_diff;
        *ratio = bound_ratio(evm_f32(&y), want, m, y.count,
                             k->c / k->group * k->kh * k->kw + (k->bias != 0), &abs_diff);
        if (!(*ratio <= 1.0))
            printf("%s: max |difference| %g, %.3g times its rounding bound\n", what, abs_diff,
                   *ratio);
        free(want);
        free(m);
        free(ax);
        free(aw);
        free(ab);
        free(mag);
        free(work);
        free(ref);
        free(y.data);
    }
    free(x.data);
    free(w.data);
    free(b.data);
    free(t.node.params);
    return verdict;
}

static void test_random(void) {
    srand(12345);
    int draws = 400, ran = 0, rejected = 0;
    double worst_all = 0.0;
    for (int i = 0; i < draws; i++) {
        conv_case k = random_case();
        double ratio;
        int r = run_case(&k, &ratio);
        ran += r == 1;
        rejected += r == 0;
        if (r == 1 && ratio > worst_all)
            worst_all = ratio;
        check(r == 0 || (r == 1 && ratio <= 1.0), "random case matches the reference");
    }
    char msg[160];
    snprintf(msg, sizeof msg,
             "forward random cases: %d of %d ran (%d invalid shapes rightly rejected), worst "
             "%.2g of the rounding bound",
             ran, draws, rejected, worst_all);
    printf("%s\n", msg);
    check(ran >= draws * 9 / 10, msg);
}

/* Shapes of the real networks, one image each (VGG, ResNet, MobileNet). */
static void test_network_shapes(void) {
    const conv_case cases[] = {
        {1, 3, 32, 32, 8, 1, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 1},   /* vgg first */
        {2, 16, 14, 14, 24, 1, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 1}, /* vgg late */
        {2, 3, 30, 30, 8, 1, 7, 7, {2, 2}, {1, 1}, {3, 3, 3, 3}, NULL, 1, 0},   /* resnet stem */
        {2, 32, 7, 7, 64, 1, 1, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, NULL, 1, 1},   /* 1x1 */
        {2, 32, 8, 8, 64, 1, 1, 1, {2, 2}, {1, 1}, {0, 0, 0, 0}, NULL, 1, 0},   /* 1x1 s2 */
        {2, 16, 9, 9, 16, 16, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 1},  /* depthwise */
        {2, 16, 9, 9, 16, 16, 3, 3, {2, 2}, {1, 1}, {0, 1, 0, 1}, NULL, 1, 1},  /* dw s2 */
        {1, 8, 10, 10, 8, 8, 5, 5, {1, 1}, {1, 1}, {0, 0, 0, 0}, "SAME_UPPER", 0, 1},
        {1, 4, 3, 3, 2, 1, 3, 3, {1, 1}, {1, 1}, {2, 2, 2, 2}, NULL, 1, 1}, /* pad > size */
        /* Winograd: plain, odd sizes with asymmetric pads, grouped, SAME, several blocks */
        {2, 64, 16, 16, 64, 1, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 1},
        {3, 72, 15, 17, 64, 1, 3, 3, {1, 1}, {1, 1}, {0, 1, 2, 0}, NULL, 0, 1},
        {2, 128, 16, 16, 128, 2, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 0},
        {2, 64, 17, 16, 64, 1, 3, 3, {1, 1}, {1, 1}, {0, 0, 0, 0}, "SAME_LOWER", 1, 1},
        {3, 64, 30, 30, 72, 1, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 1},
        /* one image per sgemm, written in place: im2col and pointwise */
        {2, 4, 34, 34, 8, 1, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 1},
        {2, 8, 40, 40, 16, 1, 1, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, NULL, 1, 1},
        /* several images per sgemm: pointwise, strided 1x1, grouped im2col */
        {5, 64, 7, 7, 48, 1, 1, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, NULL, 1, 1},
        {4, 32, 14, 14, 64, 1, 1, 1, {2, 2}, {1, 1}, {0, 0, 0, 0}, NULL, 0, 1},
        {3, 12, 9, 9, 12, 3, 3, 3, {1, 1}, {2, 2}, {2, 2, 2, 2}, NULL, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double ratio;
        int r = run_case(&cases[i], &ratio);
        check(r == 1 && ratio <= 1.0, "network-shaped case matches the reference");
    }
}

/* ---- backward (input gradient) ---- */

/* gx = J^T gy by definition: every output tap adds gy * w to the input it
 * read. gx and mag (the sum of |gy * w| per input element) start at zero. */
static void backward_reference(const evm_conv2d_shape *s, const float *gy, const float *w,
                               double *gx, double *mag) {
    const evm_window2d *k = &s->win;
    int cg = s->c / s->group, mg = s->m / s->group;
    for (int n = 0; n < s->n; n++)
        for (int m = 0; m < s->m; m++)
            for (int oy = 0; oy < s->oh; oy++)
                for (int ox = 0; ox < s->ow; ox++) {
                    double g = gy[(((size_t)n * s->m + m) * s->oh + oy) * s->ow + ox];
                    for (int ci = 0; ci < cg; ci++)
                        for (int i = 0; i < k->kernel[0]; i++)
                            for (int j = 0; j < k->kernel[1]; j++) {
                                int iy = oy * k->stride[0] + i * k->dilation[0] - k->pad_begin[0];
                                int ix = ox * k->stride[1] + j * k->dilation[1] - k->pad_begin[1];
                                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
                                    continue;
                                int c = m / mg * cg + ci;
                                size_t at = (((size_t)n * s->c + c) * s->h + iy) * s->w + ix;
                                double p =
                                    g *
                                    w[(((size_t)m * cg + ci) * k->kernel[0] + i) * k->kernel[1] +
                                      j];
                                gx[at] += p;
                                mag[at] += fabs(p);
                            }
                }
}

/* Backward against the reference, within the rounding bound (the same as
 * forward's: each gx element sums at most M/group * kh * kw products); gx
 * starts as NaN so that an element backward leaves unwritten shows. 1 ran
 * (*ratio filled), 0 infer rightly rejected an invalid shape, -1 failed. */
static int run_backward_case(const conv_case *k, double *ratio) {
    char what[256];
    describe(k, what, sizeof what);
    test_node t;
    build_node(&t, k);
    evmap_error err;
    *ratio = INFINITY;
    if (evm_op_conv.init(&t.node, &err) != EVMAP_OK) {
        printf("init failed for %s: %s\n", what, err.message);
        return -1;
    }
    evm_tensor x, w, b, y, gy, gx;
    int64_t xd[4] = {k->n, k->c, k->h, k->w};
    int64_t wd[4] = {k->m, k->c / k->group, k->kh, k->kw};
    int64_t bd[1] = {k->m};
    make_tensor(&x, 4, xd);
    make_tensor(&w, 4, wd);
    make_tensor(&b, 1, bd);
    w.is_const = b.is_const = true;
    memset(&y, 0, sizeof y);
    evm_tensor *in[3] = {&x, &w, k->bias ? &b : NULL};
    evm_tensor *out[1] = {&y};
    int verdict = infer_verdict(k, what, evm_op_conv.infer(&t.node, in, out, &err), &err);
    if (verdict == 1) {
        y.data = malloc(y.count * sizeof(float) + 1);
        size_t fws = evm_op_conv.workspace(&t.node, in, out);
        float *work = fws ? malloc(fws * sizeof(float)) : NULL;
        evm_op_conv.forward(&t.node, in, out, work); /* backward gets the forward values */
        free(work);
        make_tensor(&gy, 4, y.dims);
        make_tensor(&gx, 4, xd);
        for (size_t i = 0; i < gx.count; i++)
            evm_f32(&gx)[i] = NAN;
        evm_tensor *grad_in[3] = {&gx, NULL, NULL};
        size_t bws = evm_op_conv.backward_workspace(&t.node, in, out);
        work = bws ? malloc(bws * sizeof(float)) : NULL;
        evm_op_conv.backward(&t.node, in, out, &gy, grad_in, work);

        evm_conv2d_shape s = resolved_shape(&t, k, &y);
        double *ref = calloc(x.count, sizeof *ref), *mag = calloc(x.count, sizeof *mag);
        backward_reference(&s, evm_f32(&gy), evm_f32(&w), ref, mag);
        double abs_diff;
        *ratio = bound_ratio(evm_f32(&gx), ref, mag, x.count, k->m / k->group * k->kh * k->kw,
                             &abs_diff);
        if (!(*ratio <= 1.0))
            printf("backward %s: max |difference| %g, %.3g times its rounding bound\n", what,
                   abs_diff, *ratio);
        free(ref);
        free(mag);
        free(work);
        free(y.data);
        free(gy.data);
        free(gx.data);
    }
    free(x.data);
    free(w.data);
    free(b.data);
    free(t.node.params);
    return verdict;
}

static double backward_worst;

/* 1 ran, 0 rightly rejected, -1 failed; a check either way. */
static int check_backward(const conv_case *k) {
    double ratio;
    int r = run_backward_case(k, &ratio);
    if (r == 1 && ratio > backward_worst)
        backward_worst = ratio;
    check(r == 0 || (r == 1 && ratio <= 1.0), "backward matches the reference");
    return r;
}

/* Shapes that reach every way of computing the input gradient: the
 * transposed convolution through each forward kernel, col2im, and the
 * strided depthwise scatter. */
static void test_backward_shapes(void) {
    const conv_case cases[] = {
        /* transposed, Winograd: plain, asymmetric pads in a batch of 3, grouped */
        {1, 64, 24, 24, 64, 1, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 1},
        {3, 64, 15, 17, 72, 1, 3, 3, {1, 1}, {1, 1}, {0, 1, 2, 0}, NULL, 0, 1},
        {2, 128, 16, 16, 128, 2, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 0},
        /* transposed, pointwise: in place, then several images per sgemm */
        {1, 8, 40, 40, 16, 1, 1, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, NULL, 1, 1},
        {5, 64, 7, 7, 48, 1, 1, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, NULL, 1, 1},
        /* transposed, depthwise */
        {2, 8, 10, 10, 8, 8, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 1},
        /* transposed, im2col (C > M): 5x5, dilation 2, groups 2, asymmetric
         * pads with an even kernel, SAME_UPPER, batch 3 */
        {2, 6, 12, 12, 4, 1, 5, 5, {1, 1}, {1, 1}, {2, 2, 2, 2}, NULL, 1, 1},
        {2, 6, 12, 12, 4, 1, 3, 3, {1, 1}, {2, 2}, {2, 2, 2, 2}, NULL, 1, 0},
        {2, 12, 10, 10, 8, 2, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 1},
        {2, 6, 9, 11, 4, 1, 3, 4, {1, 1}, {1, 1}, {0, 2, 2, 1}, NULL, 1, 1},
        {2, 6, 9, 9, 4, 1, 4, 4, {1, 1}, {1, 1}, {0, 0, 0, 0}, "SAME_UPPER", 0, 1},
        {3, 16, 8, 8, 8, 1, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 1},
        /* col2im, stride 1 (C < M): VGG's first layer, 5x5, dilation 2, groups 2,
         * a depthwise multiplier, pads past the kernel */
        {1, 3, 32, 32, 64, 1, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 1},
        {2, 4, 12, 12, 6, 1, 5, 5, {1, 1}, {1, 1}, {2, 2, 2, 2}, NULL, 1, 1},
        {2, 4, 12, 12, 6, 1, 3, 3, {1, 1}, {2, 2}, {2, 2, 2, 2}, NULL, 1, 0},
        {2, 8, 10, 10, 12, 2, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 1},
        {2, 4, 9, 9, 8, 4, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 1},
        {1, 4, 5, 5, 3, 1, 3, 3, {1, 1}, {1, 1}, {3, 0, 1, 3}, NULL, 1, 1},
        {1, 4, 3, 3, 2, 1, 3, 3, {1, 1}, {1, 1}, {3, 3, 3, 3}, NULL, 1, 1},
        {4, 4, 20, 20, 6, 1, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 1}, /* batches 3 + 1 */
        /* col2im, strided: padding, dilation, the ResNet stem, a strided 1x1 and
         * grouped in batches (several images per sgemm), SAME_LOWER */
        {2, 5, 13, 13, 7, 1, 3, 3, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 1},
        {1, 3, 15, 15, 5, 1, 3, 3, {2, 2}, {2, 2}, {1, 1, 1, 1}, NULL, 1, 1},
        {2, 3, 30, 30, 8, 1, 7, 7, {2, 2}, {1, 1}, {3, 3, 3, 3}, NULL, 1, 0},
        {4, 32, 14, 14, 64, 1, 1, 1, {2, 2}, {1, 1}, {0, 0, 0, 0}, NULL, 0, 1},
        {3, 6, 9, 9, 6, 2, 3, 3, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 1},
        {2, 4, 10, 9, 6, 1, 3, 3, {2, 2}, {1, 1}, {0, 0, 0, 0}, "SAME_LOWER", 0, 1},
        {3, 6, 11, 10, 4, 1, 3, 2, {2, 3}, {1, 1}, {0, 1, 2, 0}, NULL, 1, 1},
        /* strided depthwise scatter */
        {2, 8, 11, 11, 8, 8, 3, 3, {2, 2}, {1, 1}, {0, 1, 0, 1}, NULL, 1, 1},
        {3, 8, 9, 9, 8, 8, 5, 5, {2, 2}, {2, 2}, {2, 2, 2, 2}, NULL, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check(check_backward(&cases[i]) == 1, "backward shape case runs");
}

static void test_backward_random(void) {
    srand(54321);
    int draws = 300, ran = 0, rejected = 0;
    for (int i = 0; i < draws; i++) {
        conv_case k = random_case();
        int r = check_backward(&k);
        ran += r == 1;
        rejected += r == 0;
    }
    char msg[160];
    snprintf(msg, sizeof msg,
             "backward random cases: %d of %d ran (%d invalid shapes rightly rejected); worst "
             "backward case %.2g of the rounding bound",
             ran, draws, rejected, backward_worst);
    printf("%s\n", msg);
    check(ran >= draws * 9 / 10, msg);
}

/* ---- validation errors ---- */

static evmap_status try_case(test_node *t, int xr, const int64_t *xd, int wr, const int64_t *wd,
                             const int64_t *bd, evmap_error *err) {
    evmap_status st = evm_op_conv.init(&t->node, err);
    if (st != EVMAP_OK)
        return st;
    evm_tensor x, w, b, y;
    make_tensor(&x, xr, xd);
    make_tensor(&w, wr, wd);
    if (bd)
        make_tensor(&b, 1, bd);
    memset(&y, 0, sizeof y);
    evm_tensor *in[3] = {&x, &w, bd ? &b : NULL};
    evm_tensor *out[1] = {&y};
    st = evm_op_conv.infer(&t->node, in, out, err);
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
    int64_t x4[4] = {1, 4, 8, 8}, w4[4] = {6, 2, 3, 3}, b6[1] = {6}, b5[1] = {5};

    node_start(&t);
    int64_t k1[1] = {3};
    add_ints(&t, "kernel_shape", k1, 1);
    int64_t x3[3] = {1, 4, 8}, w3[3] = {6, 4, 3};
    expect(try_case(&t, 3, x3, 3, w3, NULL, &err), EVMAP_ERR_UNSUPPORTED, &err,
           "1-D kernel_shape is rejected", "2-D");

    node_start(&t); /* no kernel_shape: the rank of X says 1-D */
    expect(try_case(&t, 3, x3, 3, w3, NULL, &err), EVMAP_ERR_UNSUPPORTED, &err,
           "1-D input is rejected", "only 2-D convolution");

    node_start(&t);
    int64_t x5[5] = {1, 4, 4, 4, 4}, w5[5] = {6, 4, 2, 2, 2};
    expect(try_case(&t, 5, x5, 5, w5, NULL, &err), EVMAP_ERR_UNSUPPORTED, &err,
           "3-D input is rejected", "only 2-D convolution");

    node_start(&t);
    add_int(&t, "group", 2);
    expect(try_case(&t, 4, x4, 4, w4, b6, &err), EVMAP_OK, &err, "grouped conv is accepted", NULL);

    node_start(&t);
    expect(try_case(&t, 4, x4, 4, w4, NULL, &err), EVMAP_ERR_INVALID_ARGUMENT, &err,
           "channel mismatch is rejected", "4 channels");

    node_start(&t);
    add_int(&t, "group", 4);
    int64_t w4g[4] = {6, 1, 3, 3};
    expect(try_case(&t, 4, x4, 4, w4g, NULL, &err), EVMAP_ERR_BAD_FILE, &err,
           "output channels not divisible by group", "divisible by group 4");

    node_start(&t);
    add_int(&t, "group", 0);
    expect(try_case(&t, 4, x4, 4, w4, NULL, &err), EVMAP_ERR_BAD_FILE, &err, "group 0", "group");

    node_start(&t);
    add_int(&t, "group", 2);
    expect(try_case(&t, 4, x4, 4, w4, b5, &err), EVMAP_ERR_BAD_FILE, &err, "bias size", "bias");

    node_start(&t);
    add_int(&t, "group", 2);
    int64_t ks[2] = {5, 5};
    add_ints(&t, "kernel_shape", ks, 2);
    expect(try_case(&t, 4, x4, 4, w4, NULL, &err), EVMAP_ERR_BAD_FILE, &err,
           "kernel_shape disagrees with W", "kernel_shape");

    node_start(&t);
    add_int(&t, "group", 2);
    add_string(&t, "auto_pad", "SAME_MIDDLE");
    expect(try_case(&t, 4, x4, 4, w4, NULL, &err), EVMAP_ERR_UNSUPPORTED, &err, "unknown auto_pad",
           "auto_pad");

    node_start(&t);
    add_int(&t, "group", 2);
    int64_t tiny[4] = {1, 4, 2, 2};
    expect(try_case(&t, 4, tiny, 4, w4, NULL, &err), EVMAP_ERR_INVALID_ARGUMENT, &err,
           "input smaller than the kernel", "conv0");
}

int main(void) {
    test_random();
    test_network_shapes();
    test_backward_shapes();
    test_backward_random();
    test_errors();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
