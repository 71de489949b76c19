/*
 * Dense double-precision helpers for the conditional sampler (see linalg.h).
 * The Cholesky loop is row-oriented (Cholesky–Banachiewicz) so that its inner
 * products run over contiguous rows; the O(n³) products with many right-hand
 * sides use CBLAS. Every function accepts n == 0 or rows == 0 and does nothing.
 */
#include "linalg.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Pivots below this fraction of their diagonal entry mean that 12 digits
 * cancelled: the matrix is singular for all practical purposes. */
#define PIVOT_RELATIVE_MIN 1e-12

static double dot(const double *a, const double *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

bool evm_cholesky(double *a, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double *row_i = a + i * n;
        for (size_t j = 0; j < i; j++) {
            const double *row_j = a + j * n;
            row_i[j] = (row_i[j] - dot(row_i, row_j, j)) / row_j[j];
        }
        double diag = row_i[i];
        double pivot = diag - dot(row_i, row_i, i);
        if (!(pivot > PIVOT_RELATIVE_MIN * diag) || !isfinite(pivot))
            return false;
        row_i[i] = sqrt(pivot);
        for (size_t j = i + 1; j < n; j++)
            row_i[j] = 0.0;
    }
    return true;
}

bool evm_cholesky_ridge(double *a, size_t n, double *work, double *ridge) {
    *ridge = 0.0;
    if (n == 0)
        return true;
    memcpy(work, a, n * n * sizeof *a);
    if (evm_cholesky(a, n))
        return true;
    double mean_diag = 0.0;
    for (size_t i = 0; i < n; i++)
        mean_diag += work[i * n + i];
    mean_diag /= (double)n;
    if (!isfinite(mean_diag))
        return false;
    /* An all-zero matrix (a constant pixel) has no scale of its own. */
    double scale = mean_diag > 0.0 ? mean_diag : 1.0;
    double r = EVM_RIDGE_FIRST * scale;
    for (int t = 0; t < EVM_RIDGE_TRIES; t++, r *= 10.0) {
        memcpy(a, work, n * n * sizeof *a);
        for (size_t i = 0; i < n; i++)
            a[i * n + i] += r;
        if (evm_cholesky(a, n)) {
            *ridge = r;
            return true;
        }
    }
    return false;
}

void evm_solve_rows_lower_t(const double *l, size_t n, double *x, size_t rows) {
    if (n == 0 || rows == 0)
        return;
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, (int)rows, (int)n,
                1.0, l, (int)n, x, (int)n);
}

void evm_solve_rows_lower(const double *l, size_t n, double *x, size_t rows) {
    if (n == 0 || rows == 0)
        return;
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, (int)rows,
                (int)n, 1.0, l, (int)n, x, (int)n);
}

void evm_sub_outer(double *c, const double *b, size_t m, size_t n) {
    if (m == 0 || n == 0)
        return;
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, (int)m, (int)n, -1.0, b, (int)n, 1.0, c,
                (int)m);
    evm_mirror_lower(c, m);
}

void evm_add_gram(double *c, const double *x, size_t rows, size_t n) {
    if (rows == 0 || n == 0)
        return;
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, (int)n, (int)rows, 1.0, x, (int)n, 1.0, c,
                (int)n);
}

void evm_mirror_lower(double *a, size_t n) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            a[j * n + i] = a[i * n + j];
}
