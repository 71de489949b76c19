/*
 * Backward passes against central finite differences (DESIGN.md 4).
 * 1. Every operator but Constant and Shape has a backward.
 * 2. Every ONNX conformance case evmap runs (Debian's libonnx-testdata, the
 *    first data set): for each float input x the case feeds, the gradient of
 *    S = sum_i v_i y_i (v random, y output 0) is checked coordinate by
 *    coordinate against (S(x + h e_k) - S(x - h e_k)) / 2h at h, h/2 and h/4
 *    (the closest counts), S summed in double; outputs a coordinate does
 *    not touch are bit-identical in both runs, so their rounding cancels.
 *    Coordinates that match at no step and whose one-sided differences
 *    disagree even at h/4 sit on a kink (Relu at 0, a max that changes
 *    hands): they are skipped and counted, and at most half may be.
 *    Outputs outside the function's domain (NaN: Sqrt or Log of a negative
 *    number) are left out of S; coordinates whose gradient is NaN there, or
 *    for which every step leaves the domain, are skipped and counted, and
 *    at least one coordinate must be checked.
 *    Whether the output depends on an input, and whether evmap has a
 *    gradient on the way (parameters such as Conv's W or Clip's min have
 *    none by design), is worked out here from the plan and the operator
 *    table; evm_backward_create must agree: "does not depend" only where no
 *    float path exists, UNSUPPORTED only where a path passes an input
 *    without a gradient (those are counted as skipped), any other error
 *    fails. At least MIN_CHECKED inputs must be checked.
 * 3. Whole models (the shipped Fashion-MNIST models): the gradient with
 *    respect to the input, the same way.
 * usage: test_gradients [--filter TEXT] [--verbose]
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backward.h"
#include "engine/onnx_load.h"
#include "ops/op.h"

#define MAX_IO 16
#define MAX_COORDS 48
/* conformance inputs checked against finite differences (about 220 with
 * Debian's libonnx-testdata 1.14) */
#define MIN_CHECKED 150

static int passed, failed, skipped, skipped_coords, checked_coords, outside_coords;
static int inputs_checked, inputs_no_path;
static int verbose;
static const char *filter;

static void check(int ok, const char *what) {
    if (ok) {
        passed++;
        if (verbose)
            printf("pass  %s\n", what);
    } else {
        failed++;
        printf("FAIL: %s\n", what);
    }
}

#define RNG_SEED 0x9e3779b97f4a7c15ull
static unsigned long long rng_state = RNG_SEED;
static double uniform(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static double gaussian(void) {
    double u = uniform(), w = uniform();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * w);
}

/* ----------------------------------------------------- 1. operator table */

static void check_table(void) {
    for (int k = 0; k < EVM_OP_KIND_COUNT; k++) {
        const evm_op_def *def = evm_op_get((evm_op_kind)k);
        /* no float input 0: constants, shapes, masks and comparisons (bool
         * outputs); Where's input 0 is its bool condition, its data inputs
         * 1 and 2 have a backward */
        if (k == EVM_OP_CONSTANT || k == EVM_OP_SHAPE || k == EVM_OP_CONSTANT_OF_SHAPE ||
            k == EVM_OP_RANGE || k == EVM_OP_EQUAL || k == EVM_OP_LESS || k == EVM_OP_GREATER ||
            k == EVM_OP_LESS_OR_EQUAL || k == EVM_OP_GREATER_OR_EQUAL || k == EVM_OP_NOT)
            continue;
        if (k == EVM_OP_WHERE) {
            check(def->backward != NULL && def->grad_inputs == (1u << 1 | 1u << 2),
                  "Where has a backward for inputs 1 and 2");
            continue;
        }
        char what[128];
        snprintf(what, sizeof what, "%s has a backward for input 0", def->name);
        check(def->backward != NULL && (def->grad_inputs & 1u), what);
    }
}

/* ------------------------------------------------ finite-difference check */

static double weighted_sum(const evm_tensor *y, const double *v) {
    const float *p = evm_f32(y);
    double s = 0;
    for (size_t i = 0; i < y->count; i++)
        if (v[i] != 0) /* 0: an output outside the function's domain (NaN) */
            s += v[i] * (double)p[i];
    return s;
}

/* (S(x + h e_k) - S(x - h e_k)) / (actual step), x_k at *xk; restores it. */
static double central_difference(evm_plan *plan, const evm_tensor *y, const double *v, float *xk,
                                 double h, double *sp_out, double *sm_out) {
    float x0 = *xk, xp = (float)(x0 + h), xm = (float)(x0 - h);
    *xk = xp;
    evm_plan_run(plan);
    double sp = weighted_sum(y, v);
    *xk = xm;
    evm_plan_run(plan);
    double sm = weighted_sum(y, v);
    *xk = x0;
    if (sp_out)
        *sp_out = sp;
    if (sm_out)
        *sm_out = sm;
    return (sp - sm) / ((double)xp - xm);
}

/* What evm_backward_create should say for d out / d wrt, worked out here:
 * 0 no float path from wrt to out, -2 a path passes an operator input that
 * has no gradient (the op table's grad_inputs), 1 it should succeed. */
static int expected_gradient(const evm_plan *plan, int wrt, int out) {
    const evm_graph *g = plan->graph;
    bool *reach = calloc((size_t)g->n_values + 1, sizeof *reach);
    reach[wrt] = true;
    bool blocked = false;
    for (int i = 0; i < plan->n_steps; i++) { /* steps run in dependency order */
        const evm_node *node = &g->nodes[plan->steps[i].node];
        const evm_op_def *def = evm_op_get(node->kind);
        bool any = false;
        for (int j = 0; j < node->n_inputs; j++) {
            int v = node->inputs[j];
            if (v == EVM_NO_VALUE || !reach[v])
                continue;
            any = true;
            if (!def->backward || (j < 32 && !(def->grad_inputs & (1u << j))))
                blocked = true;
        }
        for (int j = 0; any && j < node->n_outputs; j++) {
            int v = node->outputs[j];
            const evm_tensor *t = v == EVM_NO_VALUE ? NULL : &plan->values[v];
            if (t && !t->is_const && t->dtype == EVM_DTYPE_FLOAT && t->data)
                reach[v] = true;
        }
    }
    int r = !reach[out] ? 0 : blocked ? -2 : 1;
    free(reach);
    return r;
}

/* Checks d(sum v*y)/dx for x = plan value wrt, y = plan value out (both
 * float). Returns 1 pass, 0 fail (why filled), -1 no gradient path, -2 no
 * gradient by design (both as expected_gradient predicted; otherwise 0). */
static int check_value(evm_plan *plan, int wrt, int out, char *why, size_t why_size) {
    evm_tensor *x = &plan->values[wrt], *y = &plan->values[out];
    evm_backward *b = NULL;
    evmap_error err = {0};
    int expect = expected_gradient(plan, wrt, out);
    evmap_status st = evm_backward_create(plan, out, wrt, &b, &err);
    if (st != EVMAP_OK || expect != 1) {
        int got = st == EVMAP_OK                                                               ? 1
                  : st == EVMAP_ERR_UNSUPPORTED                                                ? -2
                  : st == EVMAP_ERR_INVALID_ARGUMENT && strstr(err.message, "does not depend") ? 0
                                                                                               : -3;
        static const char *const says[] = {"an error", "no gradient through an input",
                                           "no dependence", "a gradient"};
        if (got == expect) {
            snprintf(why, why_size, "%s", err.message);
            return expect == 0 ? -1 : -2;
        }
        snprintf(why, why_size, "d/d'%s': evm_backward_create gave %s (%s), expected %s",
                 plan->graph->values[wrt].name, says[got + 3], st == EVMAP_OK ? "ok" : err.message,
                 says[expect + 3]);
        evm_backward_free(b);
        return 0;
    }
    double *v = malloc(sizeof(double) * (y->count + 1));
    evm_plan_run(plan);
    evm_tensor *seed = evm_backward_seed(b);
    for (size_t i = 0; i < y->count; i++) {
        double r = gaussian();
        /* Outputs outside the function's domain (Sqrt or Log of a negative
         * number, Pow of a negative base) are left out of S. */
        v[i] = isfinite(evm_f32(y)[i]) ? r : 0;
        evm_f32(seed)[i] = (float)v[i];
    }
    for (size_t i = 0; i < y->count; i++)
        v[i] = (double)evm_f32(seed)[i]; /* the exact seed the backward used */
    evm_backward_run(b, EVM_BACKWARD_EXACT, NULL, NULL);
    const float *g = evm_f32(evm_backward_result(b));
    double scale = 1e-6;
    for (size_t k = 0; k < x->count; k++)
        scale = fmax(scale, fabs((double)g[k]));
    double s0 = weighted_sum(y, v), worst = 0;
    size_t worst_k = 0, n = x->count < MAX_COORDS ? x->count : MAX_COORDS;
    int kinks = 0, outside = 0;
    double worst_fd = 0;
    float *xd = evm_f32(x);
    for (size_t c = 0; c < n; c++) {
        size_t k = x->count <= MAX_COORDS ? c : (size_t)(uniform() * (double)x->count);
        float x0 = xd[k];
        /* relative steps, but not so large that they leave the function's
         * scale (Softmax of values near 10000) */
        double h = 1e-3 * fmin(fmax(1.0, fabs((double)x0)), 30.0);
        /* the closest of three step sizes: near a kink the larger steps
         * straddle it, far from one they all agree */
        double best = INFINITY, best_fd = 0, sp = 0, sm = 0;
        for (int i = 0; i < 3; i++, h /= 2) {
            double fd = central_difference(plan, y, v, xd + k, h, &sp, &sm);
            if (fabs(fd - (double)g[k]) < best) {
                best = fabs(fd - (double)g[k]);
                best_fd = fd;
            }
        }
        h *= 2;
        if (!isfinite((double)g[k]) || best == INFINITY) {
            /* an input outside the domain (its gradient is NaN, as PyTorch's),
             * or so close to its edge that every step leaves it */
            outside++;
            continue;
        }
        double dp = (sp - s0) / h, dm = (s0 - sm) / h;
        if (best > 1e-2 * scale && fabs(dp - dm) > 0.05 * scale) {
            kinks++; /* the one-sided slopes disagree even at the smallest step */
            continue;
        }
        if (best / scale > worst) {
            worst = best / scale;
            worst_k = k;
            worst_fd = best_fd;
        }
    }
    evm_plan_run(plan);
    skipped_coords += kinks;
    outside_coords += outside;
    checked_coords += (int)n - kinks - outside;
    int ok = worst <= 1e-2 && (kinks * 2 <= (int)n || kinks <= 1) &&
             (outside < (int)n || n == 0); /* something inside the domain is checked */
    snprintf(why, why_size,
             "d/d'%s': worst |fd - grad| / max|grad| = %.2g at %zu (grad %.6g, fd %.6g), "
             "%d of %zu coordinates at kinks, %d outside the domain",
             plan->graph->values[wrt].name, worst, worst_k, (double)g[worst_k], worst_fd, kinks, n,
             outside);
    free(v);
    evm_backward_free(b);
    return ok;
}

/* --------------------------------------------------- 2. conformance cases */

static int count_files(const char *dir, const char *prefix) {
    char path[1200];
    for (int n = 0;; n++) {
        snprintf(path, sizeof path, "%s/%s_%d.pb", dir, prefix, n);
        FILE *f = fopen(path, "rb");
        if (!f)
            return n;
        fclose(f);
    }
}

/* Graph input i is a parameter evmap needs when planning: int64 inputs are
 * shapes, axes or indices; float inputs feeding Resize's or Upsample's roi,
 * scales or sizes set the output shape (models carry them as constants). */
static bool known_when_planning(const evm_graph *g, int i, const evm_tensor *t) {
    if (t->dtype == EVM_DTYPE_INT64)
        return true;
    for (int k = 0; k < g->n_nodes; k++) {
        const evm_node *node = &g->nodes[k];
        if (node->kind != EVM_OP_RESIZE && node->kind != EVM_OP_UPSAMPLE)
            continue;
        for (int j = 1; j < node->n_inputs; j++)
            if (node->inputs[j] == g->inputs[i])
                return true;
    }
    return false;
}

/* Plans a case's first data set; NULL when evmap does not run it. */
static evm_plan *plan_case(const evm_graph *g, const char *case_dir) {
    char dir[1100], path[1200];
    snprintf(dir, sizeof dir, "%s/test_data_set_0", case_dir);
    int n_in = count_files(dir, "input");
    if (n_in != g->n_inputs || n_in > MAX_IO || g->n_outputs < 1)
        return NULL;
    evm_tensor inputs[MAX_IO] = {0};
    evmap_error err = {0};
    evm_plan *plan = NULL;
    int ok = 1;
    for (int i = 0; i < n_in && ok; i++) {
        snprintf(path, sizeof path, "%s/input_%d.pb", dir, i);
        ok = evm_onnx_read_tensor_file(path, &inputs[i], &err) == EVMAP_OK;
        inputs[i].is_const = known_when_planning(g, i, &inputs[i]);
    }
    if (ok && evm_plan_create(g, inputs, &plan, &err) == EVMAP_OK) {
        for (int i = 0; i < n_in; i++) {
            evm_tensor *t = evm_plan_input(plan, i);
            if (!t->is_const)
                memcpy(t->data, inputs[i].data, inputs[i].count * evm_dtype_size(t->dtype));
        }
    }
    for (int i = 0; i < MAX_IO; i++)
        evm_tensor_release(&inputs[i]);
    return plan;
}

static void run_case(const char *root, const char *name) {
    char case_dir[1024], path[1100];
    snprintf(case_dir, sizeof case_dir, "%s/%s", root, name);
    snprintf(path, sizeof path, "%s/model.onnx", case_dir);
    evm_graph *g = NULL;
    evmap_error err = {0};
    if (evm_onnx_load_file(path, &g, &err) != EVMAP_OK)
        return; /* operators evmap does not run, or out of scope */
    evm_plan *plan = plan_case(g, case_dir);
    int out = g->outputs[0];
    if (plan && plan->values[out].dtype == EVM_DTYPE_FLOAT && plan->values[out].count > 0) {
        for (int i = 0; i < g->n_inputs; i++) {
            int v = g->inputs[i];
            const evm_tensor *t = &plan->values[v];
            if (t->is_const || t->dtype != EVM_DTYPE_FLOAT || t->count == 0)
                continue;
            char why[512], what[1024];
            int r = check_value(plan, v, out, why, sizeof why);
            if (r == -1) {
                inputs_no_path++; /* the output does not depend on this input */
                continue;
            }
            if (r == -2) {
                skipped++; /* e.g. a gradient for Conv weights: none by design */
                if (verbose)
                    printf("skip  %s: %s\n", name, why);
                continue;
            }
            inputs_checked++;
            snprintf(what, sizeof what, "%s: %s", name, why);
            check(r, what);
        }
    }
    evm_plan_free(plan);
    evm_graph_free(g);
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_directory(const char *root) {
    DIR *d = opendir(root);
    if (!d) {
        printf("FAIL: cannot open %s (install libonnx-testdata)\n", root);
        failed++;
        return;
    }
    char *names[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096)
        if (!strncmp(e->d_name, "test_", 5) && (!filter || strstr(e->d_name, filter)))
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, compare_names);
    for (int i = 0; i < n; i++) {
        run_case(root, names[i]);
        free(names[i]);
    }
}

/* ------------------------------------------------------- 3. whole models */

static void run_model(const char *path, int batch) {
    if (filter && !strstr(path, filter))
        return;
    evm_graph *g = NULL;
    evm_plan *plan = NULL;
    evmap_error err = {0};
    char what[1024], why[512];
    if (evm_onnx_load_file(path, &g, &err) != EVMAP_OK) {
        snprintf(what, sizeof what, "%s: %s", path, err.message);
        check(0, what);
        return;
    }
    evm_tensor shape = {.dtype = EVM_DTYPE_FLOAT};
    int64_t dims[4] = {batch, g->values[g->inputs[0]].tensor.dims[1],
                       g->values[g->inputs[0]].tensor.dims[2],
                       g->values[g->inputs[0]].tensor.dims[3]};
    if (evm_tensor_set_shape(&shape, 4, dims, &err) == EVMAP_OK &&
        evm_plan_create(g, &shape, &plan, &err) == EVMAP_OK) {
        evm_tensor *in = evm_plan_input(plan, 0);
        for (size_t i = 0; i < in->count; i++)
            evm_f32(in)[i] = (float)uniform();
        int r = check_value(plan, g->inputs[0], g->outputs[0], why, sizeof why);
        snprintf(what, sizeof what, "%s, batch %d: %s", path, batch, why);
        check(r == 1, what);
    } else {
        snprintf(what, sizeof what, "%s: %s", path, err.message);
        check(0, what);
    }
    evm_plan_free(plan);
    evm_graph_free(g);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--filter") && i + 1 < argc)
            filter = argv[++i];
        else if (!strcmp(argv[i], "--verbose"))
            verbose = 1;
    }
    check_table();
    run_directory("/usr/share/libonnx-testdata/data/node");
    run_directory("/usr/share/libonnx-testdata/data/pytorch-converted");
    run_directory("/usr/share/libonnx-testdata/data/pytorch-operator");
    if (!filter) {
        char what[200];
        snprintf(what, sizeof what,
                 "conformance inputs checked: %d (at least %d), %d without a gradient by "
                 "design, %d the output does not depend on",
                 inputs_checked, MIN_CHECKED, skipped, inputs_no_path);
        check(inputs_checked >= MIN_CHECKED, what);
        printf("%s\n", what);
    }
    /* The models draw from a fresh stream: their images and coordinates do
     * not shift when conformance cases (or operators) are added, and are
     * the ones --filter fashion checks. */
    rng_state = RNG_SEED;
    run_model("models/fashion_cnn.onnx", 2);
    run_model("models/fashion_resnet.onnx", 2);
    printf("gradients: %d coordinates checked, %d skipped at kinks, %d outside the domain\n",
           checked_coords, skipped_coords, outside_coords);
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
