/*
 * Exact locality (DESIGN.md 1.2).
 * 1. Receptive fields of Conv, MaxPool and AveragePool (padding, stride,
 *    dilation, ceil_mode, count_include_pad, auto_pad) against brute force:
 *    change one input rectangle, run the full forward, and see which outputs
 *    change; they must lie inside the field (its bounding box exactly when
 *    there is no dilation). forward_region on the field, over the unperturbed
 *    output, must then give the perturbed output everywhere.
 *    Every drawn case is valid, so a rejection at init or infer fails; the
 *    cases that reached each check are counted and must reach a minimum.
 * 2. Whole models (models/fashion_cnn.onnx, models/fashion_resnet.onnx and
 *    the torchvision exports in $MODELS, default build/models, where
 *    tests/run-all writes them): for windows at corners, borders and the
 *    centre, every activation of the local run (steps before the cut in the
 *    local plan, the rest in a full plan fed by evm_local_export) against a
 *    full forward of the same images. A missing model fails. With --quick or
 *    EVMAP_QUICK=1 (the sanitized pass) only resnet18 and googlenet of the
 *    torchvision models run, as in tests/test_locality.py. The same inside
 *    each step's region for a small block of windows (a region of
 *    interest: the engines fill only their footprints), run in turn by an
 *    engine and its clone.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/model_internal.h"
#include "ops/op.h"
#include "engine/plan_local.h"

static int passed, failed;
/* window cases that ran, and that reached the tightness and region checks */
static int windows_ran, windows_tight, windows_region;

static void check(int ok, const char *what) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL: %s\n", what);
    }
}

static int rnd(int lo, int hi) {
    return lo + rand() % (hi - lo + 1);
}
static float frand(void) {
    return (float)((double)rand() / RAND_MAX * 2.0 - 1.0);
}

/* ------------------------------------------------------- hand-built nodes */

typedef struct test_node {
    evm_node node;
    evm_attr attrs[8];
    int64_t ints[8][4];
    char names[8][24];
    char text[8][16];
} test_node;

static void add_ints(test_node *t, const char *name, int64_t a, int64_t b, int64_t c, int64_t d,
                     size_t n) {
    size_t i = t->node.n_attrs++;
    evm_attr *at = &t->attrs[i];
    snprintf(t->names[i], sizeof t->names[i], "%s", name);
    at->name = t->names[i];
    at->type = n == 1 ? EVM_ATTR_INT : EVM_ATTR_INTS;
    t->ints[i][0] = a;
    t->ints[i][1] = b;
    t->ints[i][2] = c;
    t->ints[i][3] = d;
    at->ints = t->ints[i];
    at->i = a;
    at->n = n;
}

static void add_string(test_node *t, const char *name, const char *v) {
    size_t i = t->node.n_attrs++;
    evm_attr *at = &t->attrs[i];
    snprintf(t->names[i], sizeof t->names[i], "%s", name);
    snprintf(t->text[i], sizeof t->text[i], "%s", v);
    at->name = t->names[i];
    at->type = EVM_ATTR_STRING;
    at->s = t->text[i];
}

static void make_tensor(evm_tensor *t, int rank, const int64_t *dims) {
    memset(t, 0, sizeof *t);
    t->dtype = EVM_DTYPE_FLOAT;
    evmap_error err;
    if (evm_tensor_set_shape(t, rank, dims, &err) != EVMAP_OK) {
        printf("bad test shape: %s\n", err.message);
        exit(2);
    }
    t->data = calloc(t->count + 1, sizeof(float));
    t->owns_data = true;
    for (size_t i = 0; i < t->count; i++)
        evm_f32(t)[i] = frand();
}

enum { CHECK_RAN = 1, CHECK_TIGHT = 2, CHECK_REGION = 4 };

/* A single-map op (node, inputs in, output y0 inferred, not allocated)
 * against brute force: one random rectangle of input 0 changed (raised
 * when raise, so that a max sees it), the changed outputs must lie inside
 * the field (be its box when want_tight), forward_region on the field must
 * give the perturbed output, and it must read only inside def->reads.
 * Returns the CHECK_* that ran; y0 is left allocated. */
static int check_region_op(const evm_node *node, const evm_op_def *def, const char *what,
                           evm_tensor *const *in, evm_tensor *y0, bool raise, bool want_tight) {
    evmap_error err;
    char msg[256];
    int done = 0;
    const evm_tensor *x = in[0];
    int n = (int)x->dims[0], c = (int)x->dims[1], h = (int)x->dims[2], w = (int)x->dims[3];
    evm_tensor y1 = *y0, x1;
    evm_tensor *out[1] = {y0};
    evm_tensor_alloc(y0, &err);
    evm_tensor_alloc(&y1, &err);
    size_t ws = def->workspace ? def->workspace(node, in, out) : 0;
    float *work = malloc((ws + 1) * sizeof(float));
    def->forward(node, in, out, work);
    /* the perturbed input: one random rectangle changed (raised for MaxPool,
     * so that every window touching it changes) */
    int ry0 = rnd(0, h - 1), rx0 = rnd(0, w - 1);
    evm_region change = {EVM_REGION_RECT, ry0, rnd(ry0 + 1, h), rx0, rnd(rx0 + 1, w)};
    x1 = *x;
    x1.data = malloc(x->count * sizeof(float));
    x1.owns_data = true;
    memcpy(x1.data, x->data, x->count * sizeof(float));
    for (int p = 0; p < n * c; p++)
        for (int64_t yy = change.y0; yy < change.y1; yy++)
            for (int64_t xx = change.x0; xx < change.x1; xx++)
                evm_f32(&x1)[(size_t)p * h * w + yy * w + xx] += raise ? 5.0f + frand() : frand();
    evm_tensor *in1[3] = {&x1, in[1], in[2]};
    evm_tensor *out1[1] = {&y1};
    def->forward(node, in1, out1, work);
    evm_region in_regions[3] = {change, {EVM_REGION_NONE}, {EVM_REGION_NONE}};
    evm_region f = def->field(node, in1, out1, in_regions);
    int64_t oh = y0->dims[2], ow = y0->dims[3];
    /* brute force: the bounding box of the outputs that changed */
    int64_t by0 = oh, by1 = 0, bx0 = ow, bx1 = 0;
    int outside = 0;
    for (int p = 0; p < n * (int)y0->dims[1]; p++)
        for (int64_t yy = 0; yy < oh; yy++)
            for (int64_t xx = 0; xx < ow; xx++) {
                size_t i = (size_t)p * oh * ow + yy * ow + xx;
                if (evm_f32(y0)[i] == evm_f32(&y1)[i])
                    continue;
                by0 = yy < by0 ? yy : by0;
                by1 = yy + 1 > by1 ? yy + 1 : by1;
                bx0 = xx < bx0 ? xx : bx0;
                bx1 = xx + 1 > bx1 ? xx + 1 : bx1;
                bool in_field =
                    f.kind == EVM_REGION_ALL || (f.kind == EVM_REGION_RECT && yy >= f.y0 &&
                                                 yy < f.y1 && xx >= f.x0 && xx < f.x1);
                outside += !in_field;
            }
    done |= CHECK_RAN;
    snprintf(msg, sizeof msg, "%s: changed outputs outside the field", what);
    check(outside == 0, msg);
    if (want_tight && by1 > 0) {
        evm_region want = evm_region_clip(by0, by1, bx0, bx1, oh, ow);
        bool tight = want.kind == f.kind &&
                     (f.kind != EVM_REGION_RECT ||
                      (want.y0 == f.y0 && want.y1 == f.y1 && want.x0 == f.x0 && want.x1 == f.x1));
        snprintf(
            msg, sizeof msg,
            "%s: field %d [%lld,%lld)x[%lld,%lld) is not the changed box [%lld,%lld)x[%lld,%lld)",
            what, (int)f.kind, (long long)f.y0, (long long)f.y1, (long long)f.x0, (long long)f.x1,
            (long long)by0, (long long)by1, (long long)bx0, (long long)bx1);
        check(tight, msg);
        done |= CHECK_TIGHT;
    }
    if (f.kind == EVM_REGION_RECT) {
        /* region forward over the unperturbed output = the perturbed output */
        size_t rws = def->region_workspace ? def->region_workspace(node, in1, out1, &f) : 0;
        float *rwork = malloc((rws + 1) * sizeof(float));
        evm_tensor *out0[1] = {y0};
        def->forward_region(node, in1, out0, &f, rwork);
        double diff = 0;
        for (size_t i = 0; i < y0->count; i++)
            diff = fmax(diff, fabs((double)evm_f32(y0)[i] - evm_f32(&y1)[i]));
        snprintf(msg, sizeof msg, "%s: forward_region differs by %g", what, diff);
        check(diff <= 1e-5, msg);
        done |= CHECK_REGION;
        /* it reads only inside def->reads: poison the rest of the input */
        evm_region rd = def->reads(node, in1, out1, &f);
        for (int p = 0; p < n * c; p++)
            for (int64_t yy = 0; yy < h; yy++)
                for (int64_t xx = 0; xx < w; xx++) {
                    bool inside =
                        rd.kind == EVM_REGION_ALL || (rd.kind == EVM_REGION_RECT && yy >= rd.y0 &&
                                                      yy < rd.y1 && xx >= rd.x0 && xx < rd.x1);
                    if (!inside)
                        evm_f32(&x1)[(size_t)p * h * w + yy * w + xx] = 1e30f;
                }
        def->forward(node, in, out0, work);
        def->forward_region(node, in1, out0, &f, rwork);
        diff = 0;
        for (size_t i = 0; i < y0->count; i++)
            diff = fmax(diff, fabs((double)evm_f32(y0)[i] - evm_f32(&y1)[i]));
        snprintf(msg, sizeof msg, "%s: forward_region reads outside its reads region (%g)", what,
                 diff);
        check(diff <= 1e-5, msg);
        free(rwork);
    }
    free(work);
    evm_tensor_release(&x1);
    evm_tensor_release(&y1);
    return done;
}

/* One random Conv / MaxPool / AveragePool case. */
static void window_case(int trial) {
    test_node t;
    memset(&t, 0, sizeof t);
    int kind = trial % 3; /* 0 Conv, 1 MaxPool, 2 AveragePool */
    t.node.name = "op";
    t.node.kind = kind == 0 ? EVM_OP_CONV : kind == 1 ? EVM_OP_MAX_POOL : EVM_OP_AVERAGE_POOL;
    t.node.opset = 13;
    t.node.attrs = t.attrs;
    int kh = rnd(1, 4), kw = rnd(1, 4), sy = rnd(1, 3), sx = rnd(1, 3);
    int dy = rnd(0, 2) ? 1 : rnd(1, 3), dx = rnd(0, 2) ? 1 : rnd(1, 3);
    int n = rnd(1, 2), c = rnd(1, 3), m = rnd(1, 3);
    int h = (kh - 1) * dy + 1 + rnd(0, 14), w = (kw - 1) * dx + 1 + rnd(0, 14);
    add_ints(&t, "kernel_shape", kh, kw, 0, 0, 2);
    add_ints(&t, "strides", sy, sx, 0, 0, 2);
    add_ints(&t, "dilations", dy, dx, 0, 0, 2);
    int pads = rnd(0, 3);
    if (pads == 3)
        add_string(&t, "auto_pad", rnd(0, 1) ? "SAME_UPPER" : "SAME_LOWER");
    else if (pads)
        add_ints(&t, "pads", rnd(0, kh - 1), rnd(0, kw - 1), rnd(0, kh - 1), rnd(0, kw - 1), 4);
    if (kind != 0 && pads != 3 && rnd(0, 1))
        add_ints(&t, "ceil_mode", 1, 0, 0, 0, 1);
    if (kind == 2 && rnd(0, 1))
        add_ints(&t, "count_include_pad", 1, 0, 0, 0, 1);
    const evm_op_def *def = evm_op_get(t.node.kind);
    evmap_error err;
    char what[160];
    snprintf(what, sizeof what, "%s k%dx%d s%dx%d d%dx%d pads %d in %dx%d", def->name, kh, kw, sy,
             sx, dy, dx, pads, h, w);
    char msg[256];
    /* every drawn case is valid (the input covers the dilated kernel, pads
     * are below the kernel): a rejection is a failure, not a skip */
    if (def->init(&t.node, &err) != EVMAP_OK) {
        snprintf(msg, sizeof msg, "%s: init rejected a valid case: %s", what, err.message);
        check(0, msg);
        return;
    }
    evm_tensor x, wt, b, y0;
    int64_t xd[4] = {n, c, h, w}, wd[4] = {m, c, kh, kw}, bd[1] = {m};
    make_tensor(&x, 4, xd);
    make_tensor(&wt, 4, wd);
    make_tensor(&b, 1, bd);
    evm_tensor *in[3] = {&x, kind == 0 ? &wt : NULL, kind == 0 ? &b : NULL};
    t.node.n_inputs = kind == 0 ? 3 : 1;
    memset(&y0, 0, sizeof y0);
    evm_tensor *out[1] = {&y0};
    if (def->infer(&t.node, in, out, &err) != EVMAP_OK) {
        snprintf(msg, sizeof msg, "%s: infer rejected a valid case: %s", what, err.message);
        check(0, msg);
        free(t.node.params);
        evm_tensor_release(&x);
        evm_tensor_release(&wt);
        evm_tensor_release(&b);
        return;
    }
    int ran = check_region_op(&t.node, def, what, in, &y0, kind == 1, dy == 1 && dx == 1);
    windows_ran += (ran & CHECK_RAN) != 0;
    windows_tight += (ran & CHECK_TIGHT) != 0;
    windows_region += (ran & CHECK_REGION) != 0;
    free(t.node.params);
    evm_tensor_release(&x);
    evm_tensor_release(&wt);
    evm_tensor_release(&b);
    evm_tensor_release(&y0);
}

/* One random constant Pad of the spatial axes (negative pads crop). */
static int pad_case(void) {
    test_node t;
    memset(&t, 0, sizeof t);
    t.node.name = "pad";
    t.node.kind = EVM_OP_PAD;
    t.node.opset = 13;
    t.node.attrs = t.attrs;
    const evm_op_def *def = evm_op_get(t.node.kind);
    int n = rnd(1, 2), c = rnd(1, 3), h = rnd(5, 14), w = rnd(5, 14); /* cropped to 1 at least */
    int64_t pads[8] = {0, 0, rnd(-2, 3), rnd(-2, 3), 0, 0, rnd(-2, 3), rnd(-2, 3)};
    char what[160];
    snprintf(what, sizeof what, "Pad [%lld,%lld,%lld,%lld] in %dx%d", (long long)pads[2],
             (long long)pads[3], (long long)pads[6], (long long)pads[7], h, w);
    evmap_error err;
    evm_tensor x, pt, v, y0;
    int64_t xd[4] = {n, c, h, w}, pd[1] = {8}, vd[1] = {1};
    make_tensor(&x, 4, xd);
    make_tensor(&v, 1, vd); /* a random padding value */
    memset(&pt, 0, sizeof pt);
    pt.dtype = EVM_DTYPE_INT64;
    evm_tensor_set_shape(&pt, 1, pd, &err);
    pt.data = pads;
    pt.is_const = true;
    evm_tensor *in[3] = {&x, &pt, &v};
    t.node.n_inputs = 3;
    memset(&y0, 0, sizeof y0);
    evm_tensor *out[1] = {&y0};
    int done = 0;
    if (def->init(&t.node, &err) != EVMAP_OK || def->infer(&t.node, in, out, &err) != EVMAP_OK) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s: rejected a valid case: %s", what, err.message);
        check(0, msg);
    } else {
        done = check_region_op(&t.node, def, what, in, &y0, false, true);
        evm_tensor_release(&y0);
    }
    free(t.node.params);
    evm_tensor_release(&x);
    evm_tensor_release(&v);
    return done;
}

/* ------------------------------------------------------------ whole models */

/* Largest |a - b| relative to max |b| over one tensor. */
static double rel_diff(const evm_tensor *a, const evm_tensor *b) {
    double d = 0, s = 0;
    for (size_t i = 0; i < b->count; i++) {
        d = fmax(d, fabs((double)evm_f32(a)[i] - evm_f32(b)[i]));
        s = fmax(s, fabs((double)evm_f32(b)[i]));
    }
    return d / (s + 1e-12);
}

/* The same random k×k window at (y0, x0) into the local batch and into the
 * naive batch of full copies of the cached image, in each of their rows. */
static void perturb(evm_local *local, evm_plan *cache, evm_plan *naive, int samples, int y0, int x0,
                    int k) {
    const evm_tensor *x = evm_plan_input(cache, 0);
    int64_t c = x->dims[1], h = x->dims[2], w = x->dims[3];
    size_t per_image = x->count;
    float *li = evm_f32(evm_local_input(local)), *ni = evm_f32(evm_plan_input(naive, 0));
    for (int s = 0; s < samples; s++) {
        memcpy(ni + s * per_image, evm_f32(x), per_image * sizeof(float));
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t yy = y0; yy < y0 + k; yy++)
                for (int64_t xx = x0; xx < x0 + k; xx++) {
                    size_t at = (size_t)s * per_image + (size_t)((ch * h + yy) * w + xx);
                    li[at] = ni[at] = (frand() + 1.0f) / 2.0f;
                }
    }
}

/* Loads path and runs its batch-1 plan (the cache) on a random image;
 * NULL (a failed check) when either fails. */
static evmap_model *load_cached(const char *path, evm_plan **cache) {
    evmap_error err;
    evmap_model *model;
    if (evmap_model_load(path, &model, &err) != EVMAP_OK) {
        check(0, err.message);
        return NULL;
    }
    if (evm_model_plan(model, 1, cache, &err) != EVMAP_OK) {
        check(0, err.message);
        evmap_model_free(model);
        return NULL;
    }
    evm_tensor *x = evm_plan_input(*cache, 0);
    for (size_t i = 0; i < x->count; i++)
        evm_f32(x)[i] = (frand() + 1.0f) / 2.0f;
    evm_plan_run(*cache);
    return model;
}

/* Largest |a - b| relative to max |b| inside region r of 4-D maps
 * (everything otherwise). */
static double rel_diff_in(const evm_tensor *a, const evm_tensor *b, evm_region r) {
    if (r.kind == EVM_REGION_NONE)
        return 0;
    if (r.kind == EVM_REGION_ALL || b->rank != 4)
        return rel_diff(a, b);
    double d = 0, s = 0;
    int64_t h = b->dims[2], w = b->dims[3];
    for (int64_t p = 0; p < b->dims[0] * b->dims[1]; p++)
        for (int64_t y = r.y0; y < r.y1; y++)
            for (int64_t x = r.x0; x < r.x1; x++) {
                size_t i = (size_t)((p * h + y) * w + x);
                d = fmax(d, fabs((double)evm_f32(a)[i] - evm_f32(b)[i]));
                s = fmax(s, fabs((double)evm_f32(b)[i]));
            }
    return d / (s + 1e-12);
}

/* One k x k window at (y0, x0) through the engine (steps before cut) and
 * the full plan (from cut), against the naive plan's full forward of the
 * same images: updates the worst relative difference over the steps'
 * outputs, whole or (inside) only inside the window's region of each value. */
static void check_window(evm_local *local, evm_plan *cache, evm_plan *naive, evm_plan *full,
                         int cut, int samples, int y0, int x0, int k, bool inside, double *worst,
                         const char **worst_name) {
    const evm_graph *g = cache->graph;
    const evm_plan *lp = evm_local_plan(local);
    const evm_tensor *x = evm_plan_input(cache, 0);
    evm_region r = evm_region_clip(y0, y0 + k, x0, x0 + k, x->dims[2], x->dims[3]);
    evm_local_begin(local, &r);
    perturb(local, cache, naive, samples, y0, x0, k);
    evm_local_run(local, NULL, NULL);
    evm_local_export(local, full, 0);
    evm_plan_run_range(full, cut, full->n_steps, NULL, NULL);
    evm_plan_run(naive);
    for (int si = 0; si < cache->n_steps; si++) {
        int v = g->nodes[cache->steps[si].node].outputs[0];
        if (si < cut && !evm_local_holds(local, v))
            continue; /* overwritten in place by its reader, which is checked */
        double d = si >= cut ? rel_diff(&full->values[v], &naive->values[v])
                   : inside
                       ? rel_diff_in(&lp->values[v], &naive->values[v], evm_local_region(local, v))
                       : rel_diff(&lp->values[v], &naive->values[v]);
        if (d > *worst) {
            *worst = d;
            *worst_name = g->values[v].name;
        }
    }
    double d = rel_diff(evm_plan_output(full, 0), evm_plan_output(naive, 0));
    if (d > *worst) {
        *worst = d;
        *worst_name = "output";
    }
}

/* A model's cache, an engine of `samples` rows and two plans of as many
 * images (the naive forward and the part from cut); NULL after a failed
 * check. */
static evmap_model *open_case(const char *path, int samples, evm_plan **cache, evm_local **local,
                              evm_plan **naive, evm_plan **full) {
    evmap_error err;
    evmap_model *model = load_cached(path, cache);
    if (!model)
        return NULL;
    evmap_status st = evm_local_create(*cache, samples, local, &err);
    if (st == EVMAP_OK)
        st = evm_model_plan(model, samples, naive, &err);
    if (st == EVMAP_OK)
        st = evm_model_plan(model, samples, full, &err);
    if (st != EVMAP_OK) {
        check(0, err.message);
        return NULL;
    }
    return model;
}

static void model_case(const char *path, int samples) {
    if (access(path, R_OK) != 0) {
        char msg[600];
        snprintf(msg, sizeof msg,
                 "%s is missing (the torchvision models: scripts/export_torchvision.py --out "
                 "$MODELS, as tests/run-all does)",
                 path);
        check(0, msg);
        return;
    }
    evmap_error err;
    evm_plan *cache, *naive, *full;
    evm_local *local;
    evmap_model *model = open_case(path, samples, &cache, &local, &naive, &full);
    if (!model)
        return;
    int h = model->info.height, w = model->info.width;
    int k = evmap_pda_default_window(h, w);
    evmap_status st;
    /* corners, borders, centre, and back to a corner (restores cross over) */
    int wins[][2] = {{0, 0},     {h - k, w - k}, {h / 2, w - k}, {(h - k) / 2, (w - k) / 2},
                     {0, w / 3}, {h - k, 0},     {0, 0}};
    int n_wins = (int)(sizeof wins / sizeof wins[0]);
    int cut = cache->n_steps;
    for (int i = 0; i < n_wins; i++) {
        evm_region r =
            evm_region_clip(wins[i][0], wins[i][0] + k, wins[i][1], wins[i][1] + k, h, w);
        int ci = evm_local_survey(local, &r);
        cut = ci < cut ? ci : cut;
    }
    st = evm_local_set_cut(local, cut, &err);
    if (st == EVMAP_OK)
        evm_local_fill(local);
    evm_plan_release_before(full, cut);
    const evm_graph *g = cache->graph;
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; st == EVMAP_OK && i < n_wins; i++)
        check_window(local, cache, naive, full, cut, samples, wins[i][0], wins[i][1], k, false,
                     &worst, &worst_name);
    int shared = 0;
    for (int si = 0; si < cut; si++)
        shared += !evm_local_holds(local, g->nodes[cache->steps[si].node].outputs[0]);
    char msg[512];
    snprintf(msg, sizeof msg,
             "%s: local activations differ from full ones by %.2g (relative, at %s)", path, worst,
             worst_name);
    check(st == EVMAP_OK && worst <= 1e-4, msg);
    printf("%s %s: %d of %d steps local (%d of their values in their readers' buffers), worst "
           "relative difference %.2g\n",
           worst <= 1e-4 ? "ok  " : "FAIL", path, cut, cache->n_steps, shared, worst);
    evm_local_free(local);
    evm_plan_free(naive);
    evm_plan_free(full);
    evm_plan_free(cache);
    evmap_model_free(model);
}

/* A region of interest: windows in a small block, so that the engines fill
 * only their footprints (the rest of their maps stays unwritten), shared by
 * an engine and its clone in turn. Inside each step's region and from cut
 * on, the activations must be the full forward pass's. */
static void roi_case(const char *path, int samples) {
    evmap_error err;
    evm_plan *cache, *naive, *full;
    evm_local *engines[2] = {NULL, NULL};
    evmap_model *model = open_case(path, samples, &cache, &engines[0], &naive, &full);
    if (!model)
        return;
    int h = model->info.height, w = model->info.width;
    int k = evmap_pda_default_window(h, w);
    evmap_status st;
    /* a 3 x 3 block of windows a pixel apart, then back to its first */
    int y0 = h / 3, x0 = w / 2, n_wins = 10, cut = cache->n_steps;
    for (int i = 0; i < n_wins; i++) {
        evm_region r =
            evm_region_clip(y0 + i % 9 / 3, y0 + i % 9 / 3 + k, x0 + i % 3, x0 + i % 3 + k, h, w);
        int ci = evm_local_survey(engines[0], &r);
        cut = ci < cut ? ci : cut;
    }
    st = evm_local_set_cut(engines[0], cut, &err);
    if (st == EVMAP_OK)
        st = evm_local_clone(engines[0], &engines[1], &err);
    for (int e = 0; st == EVMAP_OK && e < 2; e++)
        evm_local_fill(engines[e]);
    evm_plan_release_before(full, cut);
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; st == EVMAP_OK && i < n_wins; i++)
        check_window(engines[i % 2], cache, naive, full, cut, samples, y0 + i % 9 / 3, x0 + i % 3,
                     k, true, &worst, &worst_name);
    char msg[512];
    snprintf(msg, sizeof msg,
             "%s, a region of interest on an engine and its clone: local activations differ "
             "from full ones by %.2g (relative, at %s)",
             path, worst, worst_name);
    check(st == EVMAP_OK && worst <= 1e-4, msg);
    printf("%s %s\n", worst <= 1e-4 ? "ok  " : "FAIL", msg);
    evm_local_free(engines[0]);
    evm_local_free(engines[1]);
    evm_plan_free(naive);
    evm_plan_free(full);
    evm_plan_free(cache);
    evmap_model_free(model);
}

/* The samples' mean inside the locality engine (evm_local_set_mean): row 0
 * of every value from the mean step on must equal a batch-1 plan run from
 * that step on, after the values live there were set to the mean over S
 * full forward passes of the perturbed images. */
static void mean_case(const char *path, int samples, int mean_step) {
    evmap_error err;
    evm_plan *cache, *naive, *ref;
    evmap_model *model = load_cached(path, &cache);
    if (!model)
        return;
    int h = model->info.height, w = model->info.width;
    int k = evmap_pda_default_window(h, w);
    evm_local *local;
    evmap_status st = evm_model_plan(model, samples, &naive, &err);
    if (st == EVMAP_OK)
        st = evm_model_plan(model, 1, &ref, &err);
    if (st == EVMAP_OK)
        st = evm_local_create(cache, samples, &local, &err);
    if (st != EVMAP_OK) {
        check(0, err.message);
        return;
    }
    int wins[][2] = {{h / 2, w / 3}, {0, 0}, {h - k, w - k}, {h / 2, w / 3}};
    int n_wins = (int)(sizeof wins / sizeof wins[0]), cut = cache->n_steps;
    for (int i = 0; i < n_wins; i++) {
        evm_region r =
            evm_region_clip(wins[i][0], wins[i][0] + k, wins[i][1], wins[i][1] + k, h, w);
        int ci = evm_local_survey(local, &r);
        cut = ci < cut ? ci : cut;
    }
    if (mean_step > cut)
        mean_step = cut;
    st = evm_local_set_mean(local, mean_step, &err);
    if (st == EVMAP_OK)
        st = evm_local_set_cut(local, cut, &err);
    if (st == EVMAP_OK)
        evm_local_fill(local);
    const evm_plan *lp = evm_local_plan(local);
    const evm_graph *g = cache->graph;
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; st == EVMAP_OK && i < n_wins; i++) {
        int y0 = wins[i][0], x0 = wins[i][1];
        evm_region r = evm_region_clip(y0, y0 + k, x0, x0 + k, h, w);
        evm_local_begin(local, &r);
        perturb(local, cache, naive, samples, y0, x0, k);
        evm_local_run(local, NULL, NULL);
        /* the reference: S full passes up to the mean step, every value
         * computed by then averaged into the batch-1 plan, the rest on it */
        evm_plan_run_range(naive, 0, mean_step, NULL, NULL);
        for (int v = 0; v < g->n_values; v++) {
            evm_tensor *src = &naive->values[v], *dst = &ref->values[v];
            if (src->is_const || !src->data || src->dtype != EVM_DTYPE_FLOAT ||
                src->count != dst->count * (size_t)samples)
                continue;
            for (size_t e = 0; e < dst->count; e++) {
                double sum = 0;
                for (int b = 0; b < samples; b++)
                    sum += evm_f32(src)[(size_t)b * dst->count + e];
                evm_f32(dst)[e] = (float)(sum / samples);
            }
        }
        evm_plan_run_range(ref, mean_step, cut, NULL, NULL);
        for (int si = mean_step; si < cut; si++) {
            int v = g->nodes[cache->steps[si].node].outputs[0];
            if (!evm_local_holds(local, v))
                continue;
            evm_tensor row0 = lp->values[v];
            row0.count /= (size_t)samples;
            row0.dims[0] = 1;
            double d = rel_diff(&row0, &ref->values[v]);
            if (d > worst) {
                worst = d;
                worst_name = g->values[v].name;
            }
        }
    }
    char msg[600];
    snprintf(msg, sizeof msg,
             "%s: the samples' mean at step %d of %d local: row 0 differs from the mean's forward "
             "pass by %.2g (relative, at %s)",
             path, mean_step, cut, worst, worst_name);
    check(st == EVMAP_OK && worst <= 1e-4, msg);
    printf("%s %s\n", worst <= 1e-4 ? "ok  " : "FAIL", msg);
    evm_local_free(local);
    evm_plan_free(naive);
    evm_plan_free(ref);
    evm_plan_free(cache);
    evmap_model_free(model);
}

int main(int argc, char **argv) {
    srand(7);
    const int trials = 3000;
    for (int trial = 0; trial < trials; trial++)
        window_case(trial);
    /* the random draws must actually exercise the checks: each case runs
     * the field check, most have no dilation (tightness), and the field of
     * a changed rectangle is a rectangle unless it covers everything */
    char msg[200];
    snprintf(msg, sizeof msg,
             "window cases: %d of %d ran, %d checked for tightness, %d through forward_region",
             windows_ran, trials, windows_tight, windows_region);
    check(windows_ran == trials && windows_tight >= trials / 3 && windows_region >= trials / 3,
          msg);
    printf("%s\n", msg);
    int pads_ran = 0, pads_region = 0, pad_trials = 500;
    for (int trial = 0; trial < pad_trials; trial++) {
        int done = pad_case();
        pads_ran += (done & CHECK_RAN) != 0;
        pads_region += (done & CHECK_REGION) != 0;
    }
    snprintf(msg, sizeof msg, "Pad cases: %d of %d ran, %d through forward_region", pads_ran,
             pad_trials, pads_region);
    check(pads_ran == pad_trials && pads_region >= pad_trials / 3, msg);
    printf("%s\n", msg);
    /* where tests/run-all exports the torchvision models */
    const char *models = getenv("MODELS") && *getenv("MODELS") ? getenv("MODELS") : "build/models";
    static const char *const torch_models[] = {"alexnet",   "vgg16",        "resnet18",
                                               "googlenet", "mobilenet_v2", "densenet121"};
    model_case("models/fashion_cnn.onnx", 3);
    model_case("models/fashion_resnet.onnx", 3);
    model_case("models/scenes_cnn.onnx", 2);
    roi_case("models/fashion_resnet.onnx", 3);
    roi_case("models/scenes_cnn.onnx", 2);
    mean_case("models/fashion_cnn.onnx", 4, 5);    /* after the first MaxPool */
    mean_case("models/fashion_resnet.onnx", 3, 6); /* inside block 1: its input is live */
    mean_case("models/scenes_cnn.onnx", 3, 4);     /* after the stem */
    const char *quick_env = getenv("EVMAP_QUICK");
    bool quick =
        (argc > 1 && !strcmp(argv[1], "--quick")) || (quick_env && !strcmp(quick_env, "1"));
    for (size_t i = 0; i < sizeof torch_models / sizeof torch_models[0]; i++) {
        if (quick && strcmp(torch_models[i], "resnet18") && strcmp(torch_models[i], "googlenet"))
            continue; /* the quick pass: a residual and a branching model */
        char path[512];
        snprintf(path, sizeof path, "%s/%s.onnx", models, torch_models[i]);
        model_case(path, 2);
        roi_case(path, 2);
        mean_case(path, 2, 4);
    }
    if (quick)
        printf("quick pass: resnet18 and googlenet of the torchvision models\n");
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
