/* Threads for the convolution kernels (conv_gemm.c, conv_winograd.c,
 * conv_depthwise.c): a job split into as many parts as OpenBLAS has threads,
 * the caller running part 0, only when the work is large enough to pay for
 * the threads. */
#include <cblas.h>
#include <pthread.h>
#include <stdbool.h>

#include "conv_internal.h"

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

void evm_conv_parallel(conv_part_fn fn, void *ctx, size_t floats) {
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

void evm_conv_items_range(size_t n, int part, int parts, size_t *lo, size_t *hi) {
    *lo = n * (size_t)part / (size_t)parts;
    *hi = n * (size_t)(part + 1) / (size_t)parts;
}
