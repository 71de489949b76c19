/* Pool-split GEMM (sgemm.h). */
#include "sgemm.h"

#include <cblas.h>

#include "pool.h"

/* Below this many multiply-adds one call does it all: a split's wake-up
 * costs about as much as a few hundred thousand. */
#define SPLIT_MIN_MACS (1L << 18)
/* Blocks are at least this many rows or columns, and at most MAX_BLOCKS:
 * every block repacks the other operand. */
#define SPLIT_MIN_SIDE 64
#define SPLIT_MAX_BLOCKS 4

typedef struct gemm_job {
    bool trans_a, trans_b, by_rows;
    int m, n, k, lda, ldb, ldc;
    int blocks;
    float alpha, beta;
    const float *a, *b;
    float *c;
} gemm_job;

/* One OpenBLAS call on block `block` of the larger side of C. */
static void gemm_block(const gemm_job *j, int block) {
    int side = j->by_rows ? j->m : j->n;
    int lo = (int)((long)side * block / j->blocks),
        hi = (int)((long)side * (block + 1) / j->blocks);
    if (hi <= lo)
        return;
    CBLAS_TRANSPOSE ta = j->trans_a ? CblasTrans : CblasNoTrans;
    CBLAS_TRANSPOSE tb = j->trans_b ? CblasTrans : CblasNoTrans;
    if (j->by_rows) { /* rows lo..hi of C: rows of op(A) */
        const float *a = j->trans_a ? j->a + lo : j->a + (long)lo * j->lda;
        cblas_sgemm(CblasRowMajor, ta, tb, hi - lo, j->n, j->k, j->alpha, a, j->lda, j->b, j->ldb,
                    j->beta, j->c + (long)lo * j->ldc, j->ldc);
    } else { /* columns lo..hi of C: columns of op(B) */
        const float *b = j->trans_b ? j->b + (long)lo * j->ldb : j->b + lo;
        cblas_sgemm(CblasRowMajor, ta, tb, j->m, hi - lo, j->k, j->alpha, j->a, j->lda, b, j->ldb,
                    j->beta, j->c + lo, j->ldc);
    }
}

static void gemm_part(void *ctx, int part, int parts) {
    const gemm_job *j = ctx;
    for (int b = j->blocks * part / parts; b < j->blocks * (part + 1) / parts; b++)
        gemm_block(j, b);
}

/* The blocks depend on the shape only, never on the threads: OpenBLAS may
 * sum a block in another order than the whole (small-matrix and GEMV paths
 * chosen by size), so thread-dependent blocks would make a map depend on
 * --threads. */
static int gemm_blocks(int m, int n, int k, int side) {
    if ((long)m * n * k < SPLIT_MIN_MACS)
        return 1;
    int blocks = 1;
    while (blocks < SPLIT_MAX_BLOCKS && side / (2 * blocks) >= SPLIT_MIN_SIDE)
        blocks *= 2;
    return blocks;
}

void evm_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    gemm_job j = {trans_a, trans_b, m > n, m, n, k, lda, ldb, ldc, 1, alpha, beta, a, b, c};
    j.blocks = gemm_blocks(m, n, k, j.by_rows ? m : n);
    evm_pool *pool = evm_pool_current();
    int parts = evm_pool_threads(pool);
    if (parts > j.blocks)
        parts = j.blocks;
    if (parts == 1)
        gemm_part(&j, 0, 1);
    else
        evm_pool_run(pool, gemm_part, &j, parts);
}

void evm_sgemm_init_blas(void) {
    if (openblas_get_num_threads() != 1)
        openblas_set_num_threads(1);
}
