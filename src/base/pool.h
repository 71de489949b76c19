/*
 * A pool of worker threads owned by a runner: one job at a time, split into
 * parts; the calling thread runs part 0 and the workers the others. Workers
 * sleep on a condition variable between jobs, so a pool costs nothing while
 * idle and never spins against other processes for the CPU.
 *
 * The pool a kernel uses is the calling thread's current pool
 * (evm_pool_use), set by the runner before it runs a plan: kernels have no
 * context argument, and a thread-local keeps runners on different threads
 * apart.
 */
#ifndef EVM_POOL_H
#define EVM_POOL_H

#include <stddef.h>

#include "evmap.h"

typedef struct evm_pool evm_pool;
typedef void (*evm_part_fn)(void *ctx, int part, int parts);

/* threads: parts a job may have (the caller included); 1 makes no workers. */
evmap_status evm_pool_create(int threads, evm_pool **out, evmap_error *err);
void evm_pool_free(evm_pool *pool);
int evm_pool_threads(const evm_pool *pool); /* 1 for NULL */

/* Runs fn(ctx, i, parts) for every i < parts and returns when all are done;
 * parts beyond the pool's threads run in the caller. NULL pool: all in the
 * caller. */
void evm_pool_run(evm_pool *pool, evm_part_fn fn, void *ctx, int parts);

/* Runs fn(ctx, lo, hi) over [0, n) split into one contiguous range per
 * thread of the current pool, when n is at least min (else all in the
 * caller): for element-wise loops. */
typedef void (*evm_range_fn)(void *ctx, size_t lo, size_t hi);
/* Elements below which an element-wise loop is not worth a hand-over. */
#define EVM_PARALLEL_ELEMENTS ((size_t)1 << 16)
void evm_parallel_range(size_t n, size_t min, evm_range_fn fn, void *ctx);

/* Threads when none are asked for: OPENBLAS_NUM_THREADS when set, else the
 * CPUs this process may run on. */
int evm_pool_default_threads(void);

/* The calling thread's current pool (NULL: none). */
void evm_pool_use(evm_pool *pool);
evm_pool *evm_pool_current(void);

#endif
