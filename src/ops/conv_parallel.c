/* Threads for the convolution kernels (conv_gemm.c, conv_winograd.c,
 * conv_depthwise.c): a job split into as many parts as the runner's pool has
 * threads (base/pool.h), the caller running part 0, only when the work is
 * large enough to pay for the hand-over. */
#include "base/pool.h"
#include "conv_internal.h"

void evm_conv_parallel(conv_part_fn fn, void *ctx, size_t floats) {
    evm_pool *pool = evm_pool_current();
    int parts = floats >= CONV_PARALLEL_MIN ? evm_pool_threads(pool) : 1;
    if (parts > CONV_MAX_THREADS)
        parts = CONV_MAX_THREADS;
    if (parts == 1)
        fn(ctx, 0, 1);
    else
        evm_pool_run(pool, fn, ctx, parts);
}

void evm_conv_items_range(size_t n, int part, int parts, size_t *lo, size_t *hi) {
    *lo = n * (size_t)part / (size_t)parts;
    *hi = n * (size_t)(part + 1) / (size_t)parts;
}
