/*
 * Samplers and the random number generator.
 *  - rng: reproducibility and moment sanity of uniform, bounded and normal draws.
 *  - conditional: fitted mean/covariance and the conditional mean/covariance of
 *    centre and border windows against numpy (tests/sampler_reference.py) on
 *    Fashion-MNIST (1 channel) and a 3-channel stack made from it, per channel
 *    and joint; moments of 100000 draws against the conditional Gaussian;
 *    clipping to the data range.
 *  - marginal and constant draws; shape checks; argument errors.
 *  - files: save/load round trip, and truncated, corrupt and hostile files.
 * Timings are printed for information only, never asserted.
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "evmap.h"
#include "samplers/sampler_internal.h"

#define FASHION "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
#define REFERENCE_SCRIPT "tests/sampler_reference.py"

static int passed, failed;
static char folder[64]; /* temporary folder for files and the numpy reference */

static void check(int ok, const char *fmt, ...) {
    if (ok) {
        passed++;
        return;
    }
    failed++;
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        printf("out of memory\n");
        exit(2);
    }
    return p;
}

static const char *temp_path(const char *name) {
    static char path[4][128];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", folder, name);
    return p;
}

static int write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    int ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok;
}

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = xmalloc((size_t)n + 1);
    *size = fread(data, 1, (size_t)n, f);
    fclose(f);
    return data;
}

/* ---------------------------------------------------------------- data */

/* The first n Fashion-MNIST training images as an n × 1 × 28 × 28 stack in [0, 1]. */
static float *load_fashion(size_t n) {
    evmap_error err;
    evmap_image_set *set = NULL;
    if (evmap_image_set_create(&set, &err) != EVMAP_OK ||
        evmap_image_set_add(set, FASHION, &err) != EVMAP_OK || evmap_image_set_count(set) < n) {
        printf("cannot read %s: %s\n", FASHION, err.message);
        evmap_image_set_free(set);
        return NULL;
    }
    float *data = xmalloc(n * 28 * 28 * sizeof *data);
    for (size_t i = 0; i < n; i++) {
        evmap_image *img = NULL;
        if (evmap_image_set_load(set, i, &img, &err) != EVMAP_OK || img->width != 28 ||
            img->height != 28 || img->channels != 1) {
            printf("cannot decode Fashion-MNIST image %zu: %s\n", i, err.message);
            evmap_image_free(img);
            evmap_image_set_free(set);
            free(data);
            return NULL;
        }
        memcpy(data + i * 784, img->pixels, 784 * sizeof *data);
        evmap_image_free(img);
    }
    evmap_image_set_free(set);
    return data;
}

/* A 3-channel stack with correlated channels, like RGB: the gray image,
 * a blend with its right neighbour, and an inverted blend with the pixel
 * below, plus a little noise so that the joint covariance has full rank. */
static float *make_rgb(const float *gray, size_t n) {
    float *rgb = xmalloc(n * 3 * 784 * sizeof *rgb);
    evm_rng rng;
    evm_rng_seed(&rng, 99);
    for (size_t i = 0; i < n; i++) {
        const float *g = gray + i * 784;
        float *o = rgb + i * 3 * 784;
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++) {
                float v = g[y * 28 + x];
                float right = g[y * 28 + (x + 1) % 28], below = g[((y + 1) % 28) * 28 + x];
                o[y * 28 + x] = v;
                o[784 + y * 28 + x] = 0.6f * v + 0.4f * right + 0.05f * (float)evm_rng_normal(&rng);
                o[2 * 784 + y * 28 + x] =
                    0.5f * (1 - v) + 0.5f * below + 0.05f * (float)evm_rng_normal(&rng);
            }
    }
    return rgb;
}

/* ----------------------------------------------------------------- rng */

static void test_rng(void) {
    evm_rng a, b;
    evm_rng_seed(&a, 42);
    evm_rng_seed(&b, 42);
    int same = 1;
    for (int i = 0; i < 1000; i++)
        same &= evm_rng_next(&a) == evm_rng_next(&b);
    check(same, "rng: same seed gives the same sequence");
    evm_rng_seed(&b, 43);
    check(evm_rng_next(&a) != evm_rng_next(&b), "rng: different seeds differ");

    const int n = 1000000;
    double sum = 0, sum2 = 0;
    int in_range = 1;
    for (int i = 0; i < n; i++) {
        double u = evm_rng_uniform(&a);
        in_range &= u >= 0.0 && u < 1.0;
        sum += u;
        sum2 += u * u;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    check(in_range, "rng: uniform in [0, 1)");
    check(fabs(mean - 0.5) < 5 * sqrt(1.0 / 12 / n), "rng: uniform mean %g", mean);
    check(fabs(var - 1.0 / 12) < 1e-3, "rng: uniform variance %g", var);

    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint64_t v = evm_rng_below(&a, 7);
        if (v < 7)
            counts[v]++;
        else
            in_range = 0;
    }
    int balanced = 1;
    for (int i = 0; i < 7; i++)
        balanced &= abs(counts[i] - 10000) < 500;
    check(in_range && balanced, "rng: below(7) in range and balanced");

    double m1 = 0, m2 = 0, m4 = 0;
    for (int i = 0; i < n; i++) {
        double z = evm_rng_normal(&a);
        m1 += z;
        m2 += z * z;
        m4 += z * z * z * z;
    }
    m1 /= n;
    m2 /= n;
    m4 /= n;
    check(fabs(m1) < 5 / sqrt(n), "rng: normal mean %g", m1);
    check(fabs(m2 - 1) < 5 * sqrt(2.0 / n), "rng: normal variance %g", m2);
    check(fabs(m4 - 3) < 5 * sqrt(96.0 / n), "rng: normal fourth moment %g", m4);
}

/* ------------------------------------------------- conditional vs numpy */

/* The conditional covariance L·Lᵀ of the window at (y, x) for one group. */
static void conditional_cov(const evm_sampler *s, int group, int y, int x, int h, int w,
                            double *out, double *ridge) {
    int py, px;
    evm_conditional_patch_origin(s, h, w, y, x, &py, &px);
    size_t o = (size_t)(y - py) * (size_t)s->side + (size_t)(x - px);
    const evm_conditional *c = &s->cond[(size_t)group * (size_t)s->side * (size_t)s->side + o];
    size_t wd = s->window_dim;
    for (size_t i = 0; i < wd; i++)
        for (size_t j = 0; j < wd; j++) {
            double sum = 0;
            for (size_t t = 0; t < wd; t++)
                sum += c->chol[i * wd + t] * c->chol[j * wd + t];
            out[i * wd + j] = sum;
        }
    *ridge = c->ridge_ring + c->ridge_window;
}

static double max_abs_diff(const double *a, const double *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

typedef struct query {
    int y, x;
} query;

/* Fits a sampler, hands the same patch list to numpy and compares. */
static void test_against_numpy(const evm_image_stack *refs, const float *image, int k, int pad,
                               bool joint, size_t patches, const char *name) {
    evmap_error err;
    evm_sampler *s = NULL;
    if (evm_sampler_fit_conditional(refs, k, pad, joint, patches, 7, &s, &err) != EVMAP_OK) {
        check(0, "%s: fit failed: %s", name, err.message);
        return;
    }
    int h = refs->height, w = refs->width, c = refs->channels;
    const query queries[] = {{12, 12}, {0, 0}, {0, 24}, {24, 24}, {1, 13}, {23, 5}, {10, 0}};
    const int nq = (int)(sizeof queries / sizeof queries[0]);

    int64_t *pos = xmalloc(patches * 3 * sizeof *pos);
    evm_patch_cursor cur;
    evm_patch_cursor_init(&cur, refs->n, h, w, k + 2 * pad, 7);
    for (size_t i = 0; i < patches; i++) {
        evm_patch_pos p = evm_patch_cursor_next(&cur);
        pos[3 * i] = (int64_t)p.image;
        pos[3 * i + 1] = p.y;
        pos[3 * i + 2] = p.x;
    }
    int32_t q32[2 * 16];
    for (int i = 0; i < nq; i++) {
        q32[2 * i] = queries[i].y;
        q32[2 * i + 1] = queries[i].x;
    }
    char params[128];
    int len = snprintf(params, sizeof params, "%zu %d %d %d %d %d %d %zu %d\n", refs->n, c, h, w, k,
                       pad, joint ? 1 : 0, patches, nq);
    size_t plane = (size_t)c * (size_t)h * (size_t)w;
    int ok = write_file(temp_path("params.txt"), params, (size_t)len) &&
             write_file(temp_path("images.f32"), refs->data, refs->n * plane * sizeof(float)) &&
             write_file(temp_path("positions.i64"), pos, patches * 3 * sizeof *pos) &&
             write_file(temp_path("image.f32"), image, plane * sizeof(float)) &&
             write_file(temp_path("queries.i32"), q32, (size_t)nq * 2 * sizeof(int32_t));
    free(pos);
    if (access(REFERENCE_SCRIPT, R_OK) != 0)
        printf("%s not found: run the test from the repository root\n", REFERENCE_SCRIPT);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s", REFERENCE_SCRIPT, folder);
    ok = ok && system(cmd) == 0;
    size_t size = 0;
    double *ref = ok ? (double *)read_file(temp_path("ref.f64"), &size) : NULL;
    size_t wd = s->window_dim, n = s->dim, groups = (size_t)s->groups;
    size_t expected = groups * (n + n * n) + (size_t)nq * (groups * wd + groups * wd * wd);
    check(ref && size == expected * sizeof(double), "%s: numpy reference ran (%zu bytes)", name,
          size);
    if (ref && size == expected * sizeof(double)) {
        const double *r = ref;
        for (size_t g = 0; g < groups; g++) {
            double dm = max_abs_diff(r, s->mean + g * n, n);
            r += n;
            double dc = max_abs_diff(r, s->cov + g * n * n, n * n);
            r += n * n;
            check(dm < 1e-6 && dc < 1e-6, "%s: group %zu mean/cov differ from numpy by %g/%g", name,
                  g, dm, dc);
        }
        float *scratch = xmalloc(evm_sampler_scratch_floats(s) * sizeof *scratch);
        float *mean = xmalloc(groups * wd * sizeof *mean);
        double *cov = xmalloc(wd * wd * sizeof *cov);
        double worst_mean = 0, worst_cov = 0;
        for (int i = 0; i < nq; i++) {
            evm_sampler_conditional_mean(s, image, h, w, queries[i].y, queries[i].x, scratch, mean);
            double dm = 0;
            for (size_t j = 0; j < groups * wd; j++)
                dm = fmax(dm, fabs(mean[j] - r[j]));
            r += groups * wd;
            double dc = 0, ridge = 0;
            for (size_t g = 0; g < groups; g++) {
                double one_ridge;
                conditional_cov(s, (int)g, queries[i].y, queries[i].x, h, w, cov, &one_ridge);
                ridge += one_ridge;
                dc = fmax(dc, max_abs_diff(cov, r, wd * wd));
                r += wd * wd;
            }
            check(ridge == 0, "%s: window (%d,%d) needed a ridge", name, queries[i].y,
                  queries[i].x);
            check(dm < 1e-4 && dc < 1e-4,
                  "%s: window (%d,%d): conditional mean/cov differ from numpy by %g/%g", name,
                  queries[i].y, queries[i].x, dm, dc);
            worst_mean = fmax(worst_mean, dm);
            worst_cov = fmax(worst_cov, dc);
        }
        printf("info: %s: max |diff| vs numpy over %d windows: mean %.2g, cov %.2g\n", name, nq,
               worst_mean, worst_cov);
        free(scratch);
        free(mean);
        free(cov);
    }
    free(ref);
    const char *names[] = {"params.txt", "images.f32",  "positions.i64",
                           "image.f32",  "queries.i32", "ref.f64"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unlink(temp_path(names[i]));
    evm_sampler_free(s);
}

/* ---------------------------------------------------- draw statistics */

/* Mean and covariance of 100000 draws against the conditional Gaussian,
 * within 5 standard errors, with clipping switched off. */
static void test_draw_moments(evm_sampler *s, const float *image, int y, int x, const char *name) {
    const int n = 100000;
    int h = 28, w = 28;
    size_t wd = s->window_dim, per = (size_t)s->channels * (size_t)s->window * (size_t)s->window;
    float saved_lo[3], saved_hi[3];
    memcpy(saved_lo, s->lo, sizeof saved_lo);
    memcpy(saved_hi, s->hi, sizeof saved_hi);
    for (int c = 0; c < 3; c++) {
        s->lo[c] = -FLT_MAX;
        s->hi[c] = FLT_MAX;
    }
    float *scratch = xmalloc(evm_sampler_scratch_floats(s) * sizeof *scratch);
    float *draws = xmalloc((size_t)n * per * sizeof *draws);
    float *mean = xmalloc(per * sizeof *mean);
    double *cov = xmalloc(wd * wd * sizeof *cov);
    double *sample_mean = xmalloc(per * sizeof *sample_mean);
    evm_rng rng;
    evm_rng_seed(&rng, 2024);
    evm_sampler_draw(s, image, h, w, y, x, n, 0, &rng, scratch, draws);
    evm_sampler_conditional_mean(s, image, h, w, y, x, scratch, mean);
    int mean_ok = 1, cov_ok = 1;
    double worst = 0;
    for (int g = 0; g < s->groups; g++) {
        double ridge;
        conditional_cov(s, g, y, x, h, w, cov, &ridge);
        size_t base = (size_t)g * wd;
        for (size_t i = 0; i < wd; i++) {
            double sum = 0;
            for (int t = 0; t < n; t++)
                sum += draws[(size_t)t * per + base + i];
            sample_mean[base + i] = sum / n;
            double z = (sample_mean[base + i] - mean[base + i]) / sqrt(cov[i * wd + i] / n);
            worst = fmax(worst, fabs(z));
            mean_ok &= fabs(z) < 5;
        }
        for (size_t i = 0; i < wd; i++)
            for (size_t j = 0; j <= i; j++) {
                double sum = 0;
                for (int t = 0; t < n; t++)
                    sum += (draws[(size_t)t * per + base + i] - sample_mean[base + i]) *
                           (draws[(size_t)t * per + base + j] - sample_mean[base + j]);
                double c = sum / (n - 1), e = cov[i * wd + j];
                double se = sqrt((cov[i * wd + i] * cov[j * wd + j] + e * e) / n);
                worst = fmax(worst, fabs(c - e) / se);
                cov_ok &= fabs(c - e) < 5 * se;
            }
    }
    check(mean_ok, "%s: mean of %d draws at (%d,%d) off the conditional mean", name, n, y, x);
    check(cov_ok, "%s: covariance of %d draws at (%d,%d) off the conditional one", name, n, y, x);
    printf("info: %s: draws at (%d,%d): worst deviation %.2f standard errors\n", name, y, x, worst);

    /* With the real data range, every draw lies inside it. */
    memcpy(s->lo, saved_lo, sizeof saved_lo);
    memcpy(s->hi, saved_hi, sizeof saved_hi);
    evm_sampler_draw(s, image, h, w, y, x, 1000, 0, &rng, scratch, draws);
    int inside = 1, clipped = 0;
    size_t kk = (size_t)s->window * (size_t)s->window;
    for (size_t t = 0; t < 1000 * per; t++) {
        int c = (int)((t % per) / kk);
        inside &= draws[t] >= s->lo[c] && draws[t] <= s->hi[c];
        clipped += draws[t] == s->lo[c] || draws[t] == s->hi[c];
    }
    check(inside, "%s: draws outside the data range", name);
    printf("info: %s: %d of %zu values clipped\n", name, clipped, 1000 * per);
    free(scratch);
    free(draws);
    free(mean);
    free(cov);
    free(sample_mean);
}

/* Same seed, same draws; draws differ across windows and seeds. */
static void test_draw_determinism(const evm_sampler *s, const float *image) {
    size_t per = (size_t)s->channels * (size_t)s->window * (size_t)s->window;
    float *scratch = xmalloc(evm_sampler_scratch_floats(s) * sizeof *scratch);
    float *a = xmalloc(10 * per * sizeof *a), *b = xmalloc(10 * per * sizeof *b);
    evm_rng r1, r2;
    evm_rng_seed(&r1, 5);
    evm_rng_seed(&r2, 5);
    evm_sampler_draw(s, image, 28, 28, 3, 17, 10, 0, &r1, scratch, a);
    evm_sampler_draw(s, image, 28, 28, 3, 17, 10, 0, &r2, scratch, b);
    check(memcmp(a, b, 10 * per * sizeof *a) == 0, "conditional: same seed, same draws");
    evm_sampler_draw(s, image, 28, 28, 3, 17, 10, 0, &r2, scratch, b);
    check(memcmp(a, b, 10 * per * sizeof *a) != 0, "conditional: later draws differ");
    free(scratch);
    free(a);
    free(b);
}

/* ------------------------------------------------- marginal, constant */

static void test_marginal(const float *gray) {
    evmap_error err;
    evm_image_stack refs = {gray, 5, 1, 28, 28};
    evm_sampler *s = NULL;
    check(evm_sampler_create_marginal(&refs, 4, &s, &err) == EVMAP_OK, "marginal: create");
    if (!s)
        return;
    check(evm_sampler_max_samples(s) == 5 && evm_sampler_get_kind(s) == EVM_SAMPLER_MARGINAL &&
              evm_sampler_pad(s) == 0 && evm_sampler_window(s) == 4,
          "marginal: accessors");
    float out[5 * 16], scratch[1], mean[16];
    evm_rng rng;
    evm_rng_seed(&rng, 1);
    evm_sampler_draw(s, gray + 9 * 784, 28, 28, 20, 3, 5, 0, &rng, scratch, out);
    int exact = 1;
    for (int i = 0; i < 5; i++)
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++)
                exact &= out[i * 16 + r * 4 + c] == gray[i * 784 + (20 + r) * 28 + 3 + c];
    check(exact, "marginal: draw s is reference image s's window");
    evm_sampler_draw(s, gray, 28, 28, 0, 24, 2, 3, &rng, scratch, out);
    exact = 1;
    for (int i = 0; i < 2; i++)
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++)
                exact &= out[i * 16 + r * 4 + c] == gray[(3 + i) * 784 + r * 28 + 24 + c];
    check(exact, "marginal: first_sample selects the reference");
    evm_sampler_conditional_mean(s, gray, 28, 28, 10, 10, scratch, mean);
    double expect = 0;
    for (int i = 0; i < 5; i++)
        expect += gray[i * 784 + 11 * 28 + 11];
    check(fabs(mean[5] - expect / 5) < 1e-6, "marginal: mean of the references");
    check(evm_sampler_check(s, 1, 28, 28, &err) == EVMAP_OK, "marginal: check accepts 28x28");
    check(evm_sampler_check(s, 1, 32, 32, &err) == EVMAP_ERR_INVALID_ARGUMENT,
          "marginal: check rejects references of another size");
    evm_sampler_free(s);
}

static void test_constant(void) {
    evmap_error err;
    const float fill[3] = {0.25f, -1.5f, 3.0f};
    evm_sampler *s = NULL;
    check(evm_sampler_create_constant(fill, 3, 5, &s, &err) == EVMAP_OK, "constant: create");
    if (!s)
        return;
    float out[2 * 75], scratch[1];
    evm_sampler_draw(s, NULL, 28, 28, 0, 0, 2, 0, NULL, scratch, out);
    int ok = 1;
    for (int i = 0; i < 150; i++)
        ok &= out[i] == fill[(i % 75) / 25];
    check(ok, "constant: fill values");
    check(evm_sampler_max_samples(s) == 1, "constant: one sample");
    check(evm_sampler_check(s, 3, 4, 28, &err) == EVMAP_ERR_INVALID_ARGUMENT,
          "constant: check rejects a window larger than the image");
    evm_sampler_free(s);
    const float nan_fill[1] = {NAN};
    check(evm_sampler_create_constant(nan_fill, 1, 5, &s, &err) == EVMAP_ERR_INVALID_ARGUMENT,
          "constant: NaN fill rejected");
}

/* ------------------------------------------------------ checks, errors */

static void test_checks(const evm_sampler *s) {
    evmap_error err;
    check(evm_sampler_check(s, 1, 28, 28, &err) == EVMAP_OK, "check: 28x28 accepted");
    check(evm_sampler_check(s, 1, 8, 8, &err) == EVMAP_OK, "check: image of patch size accepted");
    check(evm_sampler_check(s, 1, 3, 28, &err) == EVMAP_ERR_INVALID_ARGUMENT,
          "check: window larger than the image");
    check(evm_sampler_check(s, 1, 28, 7, &err) == EVMAP_ERR_INVALID_ARGUMENT &&
              strstr(err.message, "patch"),
          "check: patch larger than the image (%s)", err.message);
    check(evm_sampler_check(s, 3, 28, 28, &err) == EVMAP_ERR_INVALID_ARGUMENT,
          "check: wrong channel count");
}

static void test_fit_errors(const float *gray) {
    evmap_error err;
    evm_sampler *s = NULL;
    evm_image_stack refs = {gray, 10, 1, 28, 28};
    struct {
        int k, pad, joint;
        size_t patches;
        const char *what;
    } bad[] = {{0, 2, 0, 100, "window 0"},
               {4, 17, 0, 100, "pad 17"},
               {4, 2, 0, 1, "one patch"},
               {26, 2, 0, 100, "patch larger than images"},
               {65, 0, 0, 100, "window 65"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        evmap_status st = evm_sampler_fit_conditional(&refs, bad[i].k, bad[i].pad, bad[i].joint,
                                                      bad[i].patches, 1, &s, &err);
        check(st == EVMAP_ERR_INVALID_ARGUMENT && !s, "fit rejects %s", bad[i].what);
    }
    evm_image_stack two = {gray, 10, 2, 28, 28};
    check(evm_sampler_fit_conditional(&two, 4, 2, false, 100, 1, &s, &err) ==
              EVMAP_ERR_INVALID_ARGUMENT,
          "fit rejects 2 channels");
    float *big = xmalloc(3 * 64 * 64 * sizeof *big);
    for (int i = 0; i < 3 * 64 * 64; i++)
        big[i] = (float)(i % 7);
    evm_image_stack rgb = {big, 1, 3, 64, 64};
    check(evm_sampler_fit_conditional(&rgb, 40, 0, true, 100, 1, &s, &err) ==
              EVMAP_ERR_INVALID_ARGUMENT,
          "fit rejects a joint Gaussian over the dimension limit");
    big[100] = NAN;
    check(evm_sampler_fit_conditional(&rgb, 4, 1, false, 100, 1, &s, &err) ==
              EVMAP_ERR_INVALID_ARGUMENT,
          "fit rejects NaN in the references");
    free(big);
}

/* Constant pixels give zero variances: the ridge fallback must cope. */
static void test_degenerate(void) {
    float *flat = xmalloc(4 * 20 * 20 * sizeof *flat);
    for (int i = 0; i < 4 * 400; i++)
        flat[i] = 0.5f;
    evm_image_stack refs = {flat, 4, 1, 20, 20};
    evmap_error err;
    evm_sampler *s = NULL;
    check(evm_sampler_fit_conditional(&refs, 3, 2, false, 500, 1, &s, &err) == EVMAP_OK,
          "fit on constant images succeeds with a ridge");
    if (s) {
        float out[10 * 9], scratch[256];
        evm_rng rng;
        evm_rng_seed(&rng, 3);
        evm_sampler_draw(s, flat, 20, 20, 5, 5, 10, 0, &rng, scratch, out);
        int ok = 1;
        for (int i = 0; i < 90; i++)
            ok &= out[i] == 0.5f;
        check(ok && evm_sampler_scratch_floats(s) <= 256,
              "constant images: draws are the constant (clipped)");
        evm_sampler_free(s);
    }
    free(flat);
}

/* ---------------------------------------------------------------- files */

static uint64_t fnv1a(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3u;
    }
    return h;
}

static void reseal(unsigned char *data, size_t size) {
    uint64_t h = fnv1a(data, size - 8);
    for (int i = 0; i < 8; i++)
        data[size - 8 + i] = (unsigned char)(h >> (8 * i));
}

/* Loading this content must fail with want, without crash or leak. */
static void expect_load_failure(const unsigned char *data, size_t size, evmap_status want,
                                const char *what) {
    const char *path = temp_path("bad.evs");
    write_file(path, data, size);
    evmap_error err = {0};
    evm_sampler *s = NULL;
    char tag[64];
    evmap_status st = evm_sampler_load(path, &s, tag, sizeof tag, &err);
    check(st == want && !s && strstr(err.message, "bad.evs"), "load of %s: status %d (%s)", what,
          (int)st, err.message);
    evm_sampler_free(s);
    unlink(path);
}

static void set_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void test_round_trip(const evm_sampler *s, const float *image, const char *tag,
                            const char *name) {
    evmap_error err;
    const char *path = temp_path("sampler.evs");
    check(evm_sampler_save(s, tag, path, &err) == EVMAP_OK, "%s: save: %s", name, err.message);
    evm_sampler *t = NULL;
    char got[64] = "";
    check(evm_sampler_load(path, &t, got, sizeof got, &err) == EVMAP_OK, "%s: load: %s", name,
          err.message);
    if (!t)
        return;
    check(strcmp(got, tag) == 0, "%s: tag round trip ('%s')", name, got);
    check(evm_sampler_window(t) == evm_sampler_window(s) && evm_sampler_pad(t) == s->pad &&
              evm_sampler_joint(t) == s->joint && evm_sampler_channels(t) == s->channels &&
              evm_sampler_patches(t) == s->patches,
          "%s: fields round trip", name);
    size_t per = (size_t)s->channels * (size_t)s->window * (size_t)s->window;
    float *scratch = xmalloc(evm_sampler_scratch_floats(s) * sizeof *scratch);
    float *a = xmalloc(10 * per * sizeof *a), *b = xmalloc(10 * per * sizeof *b);
    int same = 1;
    const query windows[] = {{0, 0}, {12, 7}, {24, 24}, {2, 23}};
    for (int i = 0; i < 4; i++) {
        evm_rng r1, r2;
        evm_rng_seed(&r1, 77);
        evm_rng_seed(&r2, 77);
        evm_sampler_draw(s, image, 28, 28, windows[i].y, windows[i].x, 10, 0, &r1, scratch, a);
        evm_sampler_draw(t, image, 28, 28, windows[i].y, windows[i].x, 10, 0, &r2, scratch, b);
        same &= memcmp(a, b, 10 * per * sizeof *a) == 0;
    }
    check(same, "%s: loaded sampler draws exactly like the saved one", name);
    free(scratch);
    free(a);
    free(b);
    evm_sampler_free(t);
}

static void test_bad_files(const evm_sampler *small) {
    evmap_error err;
    const char *path = temp_path("small.evs");
    if (evm_sampler_save(small, "none 1x28x28", path, &err) != EVMAP_OK) {
        check(0, "save small sampler: %s", err.message);
        return;
    }
    size_t size = 0;
    unsigned char *good = read_file(path, &size);
    unsigned char *data = xmalloc(size + 16);
    unlink(path);

    evm_sampler *s = NULL;
    check(evm_sampler_load(temp_path("missing.evs"), &s, NULL, 0, &err) == EVMAP_ERR_IO,
          "load of a missing file is an I/O error");
    check(evm_sampler_load(folder, &s, NULL, 0, &err) == EVMAP_ERR_IO && !s,
          "load of a folder is an I/O error");
    char tiny[4];
    write_file(path, good, size);
    check(evm_sampler_load(path, &s, tiny, sizeof tiny, &err) == EVMAP_ERR_INVALID_ARGUMENT && !s,
          "load with a too small tag buffer");
    unlink(path);

    expect_load_failure(good, 0, EVMAP_ERR_BAD_FILE, "an empty file");
    expect_load_failure(good, 20, EVMAP_ERR_BAD_FILE, "a truncated header");
    expect_load_failure(good, size / 2, EVMAP_ERR_BAD_FILE, "a file cut in half");
    expect_load_failure(good, size - 1, EVMAP_ERR_BAD_FILE, "a file missing its last byte");
    memcpy(data, good, size);
    data[size] = 0;
    expect_load_failure(data, size + 1, EVMAP_ERR_BAD_FILE, "trailing data");

    memcpy(data, good, size);
    data[0] = 'X';
    expect_load_failure(data, size, EVMAP_ERR_BAD_FILE, "wrong magic");
    const struct {
        size_t at;
        uint32_t value;
        const char *what;
    } fields[] = {{8, 2, "version 2"},
                  {12, 1, "kind 1"},
                  {16, 1000, "window 1000"},
                  {16, 0xffffffffu, "window 2^32-1"},
                  {20, 99, "pad 99"},
                  {24, 2, "2 channels"},
                  {24, 0x7fffffff, "2^31 channels"},
                  {28, 7, "joint 7"},
                  {32, 0, "0 patches"},
                  {40, 100000, "tag length 100000"}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        memcpy(data, good, size);
        set_u32(data + fields[i].at, fields[i].value);
        reseal(data, size);
        expect_load_failure(data, size, EVMAP_ERR_BAD_FILE, fields[i].what);
    }
    /* A header implying a different (but allowed) size. */
    memcpy(data, good, size);
    set_u32(data + 16, 3);
    reseal(data, size);
    expect_load_failure(data, size, EVMAP_ERR_BAD_FILE, "a window that does not match the size");

    /* Values: NaN, asymmetry, a correlation beyond 1, a negative variance,
     * a bad data range; each with a valid checksum. */
    size_t tag_len = strlen("none 1x28x28");
    size_t ranges = 44 + tag_len, means = ranges + 16, covs = means + 8 * small->dim;
    size_t n = small->dim;
    const double nan = NAN;
    struct {
        size_t at;
        double value;
        const char *what;
    } values[] = {{covs + 8 * (0 * n + 1), nan, "NaN in a covariance"},
                  {covs + 8 * (2 * n + 5), 12.5, "an asymmetric covariance"},
                  {covs + 8 * (3 * n + 3), -1.0, "a negative variance"},
                  {means + 8 * 3, INFINITY, "an infinite mean"},
                  {ranges, 2.0, "a data range with lo > hi"}};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        memcpy(data, good, size);
        memcpy(data + values[i].at, &values[i].value, 8); /* the test runs little-endian */
        reseal(data, size);
        expect_load_failure(data, size, EVMAP_ERR_BAD_FILE, values[i].what);
    }
    /* Symmetric but correlation 3: violates Cauchy–Schwarz. */
    memcpy(data, good, size);
    double v0, v1;
    memcpy(&v0, good + covs, 8);
    memcpy(&v1, good + covs + 8 * (n + 1), 8);
    double big = 3 * sqrt(v0 * v1);
    memcpy(data + covs + 8 * 1, &big, 8);
    memcpy(data + covs + 8 * n, &big, 8);
    reseal(data, size);
    expect_load_failure(data, size, EVMAP_ERR_BAD_FILE, "a correlation of 3");
    /* NaN without fixing the checksum. */
    memcpy(data, good, size);
    memcpy(data + covs + 8 * 7, &nan, 8);
    expect_load_failure(data, size, EVMAP_ERR_BAD_FILE, "a NaN caught by the checksum");

    /* Every single-byte corruption is refused. */
    int refused = 0, total = 0;
    for (size_t i = 0; i < size; i++) {
        memcpy(data, good, size);
        data[i] ^= 0x5a;
        write_file(path, data, size);
        s = NULL;
        evmap_status st = evm_sampler_load(path, &s, NULL, 0, &err);
        refused += st == EVMAP_ERR_BAD_FILE && !s;
        total++;
        evm_sampler_free(s);
    }
    unlink(path);
    check(refused == total, "every corrupted byte refused (%d of %d)", refused, total);
    free(good);
    free(data);
}

/* ------------------------------------------------------------- timing */

static void report_timings(const evm_image_stack *gray, const evm_image_stack *rgb,
                           const float *image) {
    struct {
        const evm_image_stack *refs;
        int k, pad;
        bool joint;
        const char *what;
    } fits[] = {{gray, 10, 2, false, "1 channel, l = 14 (196-dim)"},
                {rgb, 10, 2, false, "3 channels per channel, l = 14"},
                {rgb, 10, 2, true, "3 channels joint, l = 14 (588-dim)"}};
    evmap_error err;
    for (size_t i = 0; i < sizeof fits / sizeof fits[0]; i++) {
        evm_sampler *s = NULL;
        double t0 = now();
        evmap_status st = evm_sampler_fit_conditional(fits[i].refs, fits[i].k, fits[i].pad,
                                                      fits[i].joint, 20000, 1, &s, &err);
        double t1 = now();
        check(st == EVMAP_OK, "fit %s: %s", fits[i].what, err.message);
        printf("info: fit on 20000 patches, %s: %.3f s\n", fits[i].what, t1 - t0);
        evm_sampler_free(s);
    }
    for (int joint = 0; joint < 2; joint++) {
        const evm_image_stack *refs = joint ? rgb : gray;
        evm_sampler *s = NULL;
        if (evm_sampler_fit_conditional(refs, 4, 2, joint, 20000, 1, &s, &err) != EVMAP_OK)
            continue;
        size_t per = (size_t)refs->channels * 16;
        float *scratch = xmalloc(evm_sampler_scratch_floats(s) * sizeof *scratch);
        float *out = xmalloc(10 * per * sizeof *out);
        evm_rng rng;
        evm_rng_seed(&rng, 1);
        const float *img = joint ? rgb->data : image;
        double t0 = now();
        size_t samples = 0;
        for (int rep = 0; rep < 10; rep++)
            for (int y = 0; y <= 24; y++)
                for (int x = 0; x <= 24; x++) {
                    evm_sampler_draw(s, img, 28, 28, y, x, 10, 0, &rng, scratch, out);
                    samples += 10;
                }
        double t1 = now();
        printf("info: draw, k = 4, l = 8, %s, S = 10: %.3f us per sample (%.3f us per "
               "window)\n",
               joint ? "3 channels joint" : "1 channel", 1e6 * (t1 - t0) / (double)samples,
               1e7 * (t1 - t0) / (double)samples);
        free(scratch);
        free(out);
        evm_sampler_free(s);
    }
}

/* ---------------------------------------------------------------- main */

int main(void) {
    snprintf(folder, sizeof folder, "/tmp/evmap_sampler_XXXXXX");
    if (!mkdtemp(folder)) {
        printf("cannot create a temporary folder\n0 passed, 1 failed\n");
        return 1;
    }
    test_rng();
    test_constant();
    test_degenerate();

    const size_t n = 2000;
    float *gray = load_fashion(n + 1);
    check(gray != NULL, "Fashion-MNIST loads through evmap_image_set");
    if (gray) {
        float *rgb = make_rgb(gray, n + 1);
        const float *gray_image = gray + n * 784, *rgb_image = rgb + n * 3 * 784;
        evm_image_stack gray_refs = {gray, n, 1, 28, 28};
        evm_image_stack rgb_refs = {rgb, n, 3, 28, 28};

        test_against_numpy(&gray_refs, gray_image, 4, 2, false, 20000, "fashion 1ch");
        test_against_numpy(&rgb_refs, rgb_image, 4, 2, false, 20000, "rgb per channel");
        test_against_numpy(&rgb_refs, rgb_image, 4, 2, true, 20000, "rgb joint");

        evmap_error err;
        evm_sampler *s1 = NULL, *s3 = NULL, *small = NULL;
        evm_sampler_fit_conditional(&gray_refs, 4, 2, false, 20000, 11, &s1, &err);
        evm_sampler_fit_conditional(&rgb_refs, 4, 2, true, 20000, 11, &s3, &err);
        evm_sampler_fit_conditional(&gray_refs, 2, 1, false, 5000, 11, &small, &err);
        check(s1 && s3 && small, "fits for the draw and file tests");
        if (s1 && s3 && small) {
            test_draw_moments(s1, gray_image, 12, 12, "fashion 1ch centre");
            test_draw_moments(s1, gray_image, 0, 23, "fashion 1ch border");
            test_draw_moments(s3, rgb_image, 24, 2, "rgb joint border");
            test_draw_determinism(s1, gray_image);
            test_checks(s1);
            test_round_trip(s1, gray_image, "none 1x28x28", "file 1ch");
            test_round_trip(s3, rgb_image, "custom 3x28x28", "file joint");
            test_bad_files(small);
        }
        evm_sampler_free(s1);
        evm_sampler_free(s3);
        evm_sampler_free(small);
        test_marginal(gray);
        test_fit_errors(gray);
        report_timings(&gray_refs, &rgb_refs, gray_image);
        free(rgb);
    }
    free(gray);
    unlink(temp_path("sampler.evs"));
    rmdir(folder);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
