/*
 * Row-major single-precision GEMM, C = alpha·op(A)·op(B) + beta·C, split
 * across the calling thread's pool (pool.h): the larger of C's two sides is
 * cut into at most 4 blocks, fixed by the shape alone so that the result has
 * the same bits for any number of threads, and each block is one
 * single-threaded OpenBLAS call. OpenBLAS's own threads stay off (evm_sgemm_init_blas): they
 * wait for each other with sched_yield, which collapses when another
 * process shares the cores.
 */
#ifndef EVM_SGEMM_H
#define EVM_SGEMM_H

#include <stdbool.h>

void evm_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* Keeps OpenBLAS single-threaded (the pool does the threading). */
void evm_sgemm_init_blas(void);

#endif
