/*
 * The runner's thread pool (base/pool.h) and the GEMM split across it
 * (base/sgemm.h): every part of a job runs exactly once whatever the pool's
 * size, every index of a parallel range once; a split GEMM equals one
 * single-threaded CBLAS call on every shape, transposition and beta, with the
 * same bits for 1-4 threads; a runner with three threads gives bit for bit
 * the probabilities of a runner with one.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pool.h"
#include "base/sgemm.h"
#include "evmap.h"

static int passed, failed;

static void check(int ok, const char *what) {
    if (ok)
        passed++;
    else
        failed++;
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
}

typedef struct count_job {
    int hits[16];
    int parts_seen[16];
} count_job;

static void count_part(void *ctx, int part, int parts) {
    count_job *j = ctx;
    __atomic_add_fetch(&j->hits[part], 1, __ATOMIC_SEQ_CST);
    j->parts_seen[part] = parts;
}

typedef struct nested_job {
    evm_pool *pool;
    count_job inner[4];
} nested_job;

/* Each part runs a job of its own on the same pool: the caller's nested
 * call must run inline instead of waiting for workers that are busy. */
static void nested_part(void *ctx, int part, int parts) {
    (void)parts;
    nested_job *j = ctx;
    evm_pool_run(j->pool, count_part, &j->inner[part], 3);
}

static void pool_checks(void) {
    for (int threads = 1; threads <= 4; threads++) {
        evm_pool *pool = NULL;
        evmap_error err = {0};
        if (evm_pool_create(threads, &pool, &err) != EVMAP_OK) {
            check(0, "pool created");
            continue;
        }
        int ok = evm_pool_threads(pool) == threads;
        for (int repeat = 0; repeat < 50; repeat++)
            for (int parts = 1; parts <= 9; parts++) {
                count_job j = {{0}, {0}};
                evm_pool_run(pool, count_part, &j, parts);
                for (int i = 0; i < 16; i++)
                    ok = ok && j.hits[i] == (i < parts) && (i >= parts || j.parts_seen[i] == parts);
            }
        char what[128];
        snprintf(what, sizeof what,
                 "pool of %d threads: 50 x 9 jobs of 1-9 parts, each part run once with its count",
                 threads);
        check(ok, what);
        evm_pool_free(pool);
    }
    evm_pool *pool = NULL;
    evmap_error err = {0};
    if (evm_pool_create(3, &pool, &err) == EVMAP_OK) {
        nested_job nj = {.pool = pool};
        evm_pool_run(pool, nested_part, &nj, 3);
        int ok = 1;
        for (int p = 0; p < 3; p++)
            for (int i = 0; i < 3; i++)
                ok = ok && nj.inner[p].hits[i] == 1;
        check(ok, "a job started from inside a part of a job on the same pool runs (inline)");
        evm_pool_free(pool);
    }
    count_job j = {{0}, {0}};
    evm_pool_run(NULL, count_part, &j, 3);
    check(j.hits[0] == 1 && j.hits[1] == 1 && j.hits[2] == 1, "no pool: every part in the caller");
}

static void mark_range(void *ctx, size_t lo, size_t hi) {
    unsigned char *seen = ctx;
    for (size_t i = lo; i < hi; i++)
        seen[i]++;
}

static void range_checks(void) {
    evm_pool *pool = NULL;
    evmap_error err = {0};
    if (evm_pool_create(3, &pool, &err) != EVMAP_OK) {
        check(0, "pool created");
        return;
    }
    evm_pool_use(pool);
    const size_t sizes[] = {0, 1, 15, 16, 17, 100, 1000, 65536, 65537, 200003};
    int ok = 1;
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++)
        for (size_t min = 1; min <= 100000; min *= 1000) {
            unsigned char *seen = calloc(sizes[t] + 1, 1);
            evm_parallel_range(sizes[t], min, mark_range, seen);
            for (size_t i = 0; i < sizes[t]; i++)
                ok = ok && seen[i] == 1;
            free(seen);
        }
    evm_pool_use(NULL);
    evm_pool_free(pool);
    check(ok, "evm_parallel_range on 3 threads visits each of 0-200003 indices once");
}

static float *random_floats(size_t n, unsigned seed) {
    float *v = malloc(sizeof(float) * n);
    for (size_t i = 0; v && i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        v[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    return v;
}

/* evm_sgemm on a pool of `threads` (1: none) into got. */
static void pooled_sgemm(int threads, bool ta, bool tb, int m, int n, int k, const float *a,
                         int lda, const float *b, int ldb, float beta, float *got) {
    evm_pool *pool = NULL;
    evmap_error err = {0};
    if (threads > 1 && evm_pool_create(threads, &pool, &err) != EVMAP_OK)
        return;
    evm_pool_use(pool);
    evm_sgemm(ta, tb, m, n, k, 0.75f, a, lda, b, ldb, beta, got, n);
    evm_pool_use(NULL);
    evm_pool_free(pool);
}

static void sgemm_checks(void) {
    evm_sgemm_init_blas();
    const int shapes[][3] = {{64, 3136, 147}, {1000, 16, 512}, {7, 900, 500},
                             {300, 5, 800},   {64, 784, 36},   {16, 196, 144}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++) {
            int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            bool ta = t & 1, tb = t & 2;
            float beta = s % 2 ? 0.5f : 0.0f;
            int lda = ta ? m : k, ldb = tb ? k : n;
            size_t mn = (size_t)m * n;
            float *a = random_floats((size_t)m * k, 1 + (unsigned)s);
            float *b = random_floats((size_t)k * n, 7 + (unsigned)s);
            float *want = random_floats(mn, 11);
            float *got[4];
            for (int i = 0; i < 4; i++) {
                got[i] = malloc(sizeof(float) * mn);
                memcpy(got[i], want, sizeof(float) * mn);
                pooled_sgemm(i + 1, ta, tb, m, n, k, a, lda, b, ldb, beta, got[i]);
            }
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                        tb ? CblasTrans : CblasNoTrans, m, n, k, 0.75f, a, lda, b, ldb, beta, want,
                        n);
            double worst = 0, scale = 0;
            for (size_t i = 0; i < mn; i++) {
                worst = fmax(worst, fabs((double)got[2][i] - want[i]));
                scale = fmax(scale, fabs((double)want[i]));
            }
            char what[200];
            snprintf(what, sizeof what,
                     "split sgemm %dx%dx%d trans %d%d beta %.1f = one CBLAS call (max diff %.1e "
                     "of %.1e)",
                     m, n, k, ta, tb, (double)beta, worst, scale);
            check(worst <= 1e-5 * scale, what);
            /* The blocks depend on the shape only: any thread count gives the same bits. */
            int same = 1;
            for (int i = 1; i < 4; i++)
                same &= !memcmp(got[0], got[i], sizeof(float) * mn);
            snprintf(what, sizeof what,
                     "split sgemm %dx%dx%d trans %d%d: 1, 2, 3 and 4 threads give identical bits",
                     m, n, k, ta, tb);
            check(same, what);
            free(a);
            free(b);
            free(want);
            for (int i = 0; i < 4; i++)
                free(got[i]);
        }
}

static void runner_checks(void) {
    evmap_error err = {0};
    evmap_model *model = NULL;
    evmap_model_info info;
    if (evmap_model_load("models/fashion_resnet.onnx", &model, &err) != EVMAP_OK ||
        evmap_model_get_info(model, &info, &err) != EVMAP_OK) {
        check(0, err.message);
        return;
    }
    int n = 16;
    size_t floats = (size_t)n * info.channels * info.height * info.width;
    float *x = random_floats(floats, 3);
    for (size_t i = 0; x && i < floats; i++)
        x[i] = 0.5f + 0.5f * x[i];
    float *p1 = malloc(sizeof(float) * (size_t)n * info.num_classes);
    float *p3 = malloc(sizeof(float) * (size_t)n * info.num_classes);
    evmap_runner *one = NULL, *three = NULL;
    int ok = evmap_runner_create(model, n, 1, &one, &err) == EVMAP_OK &&
             evmap_runner_create(model, n, 3, &three, &err) == EVMAP_OK &&
             evmap_runner_classify(one, x, n, p1, &err) == EVMAP_OK &&
             evmap_runner_classify(three, x, n, p3, &err) == EVMAP_OK;
    /* Bit for bit: a map must not depend on --threads (GEMM blocks follow the shape). */
    check(ok && !memcmp(p1, p3, sizeof(float) * (size_t)n * info.num_classes),
          "fashion_resnet, 16 images: 3 threads give the bits of 1 thread");
    evmap_runner_free(one);
    evmap_runner_free(three);
    evmap_model_free(model);
    free(x);
    free(p1);
    free(p3);
}

int main(void) {
    pool_checks();
    range_checks();
    sgemm_checks();
    runner_checks();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
