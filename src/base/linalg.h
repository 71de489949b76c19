/*
 * Small dense linear algebra in double precision for the conditional sampler:
 * Cholesky factorization with a ridge fallback, triangular solves applied to
 * the rows of a matrix, and a symmetric rank-k update. Matrices are row-major
 * n × n (or rows × n) arrays; sizes stay in the low thousands, so the products
 * go through CBLAS and the factorization is a plain loop.
 */
#ifndef EVM_LINALG_H
#define EVM_LINALG_H

#include <stdbool.h>
#include <stddef.h>

/* The ridge fallback starts at this fraction of mean(diag), grows tenfold per
 * failed try, and gives up after EVM_RIDGE_TRIES tries (1e-6 .. 1e3). */
#define EVM_RIDGE_FIRST 1e-6
#define EVM_RIDGE_TRIES 10

/* Factors the symmetric matrix a (lower triangle read) as L·Lᵀ in place: a
 * becomes L with a zero upper triangle. Returns false, leaving a partly
 * overwritten, when a pivot is not positive, not finite, or smaller than
 * 1e-12 of its diagonal entry (numerically singular). */
bool evm_cholesky(double *a, size_t n);

/* Like evm_cholesky, but on failure retries with a ridge added to the
 * diagonal (see EVM_RIDGE_FIRST). work holds n·n doubles. *ridge receives the
 * ridge that was added (0 when none was needed). Returns false when every try
 * failed (non-finite input, or a matrix far from positive semi-definite). */
bool evm_cholesky_ridge(double *a, size_t n, double *work, double *ridge);

/* x (rows × n) ← x · L⁻ᵀ: each row y of the result solves L·y = row. */
void evm_solve_rows_lower_t(const double *l, size_t n, double *x, size_t rows);

/* x (rows × n) ← x · L⁻¹: each row y of the result solves Lᵀ·y = row. */
void evm_solve_rows_lower(const double *l, size_t n, double *x, size_t rows);

/* c (m × m, symmetric) ← c − b·bᵀ with b m × n; both triangles are written. */
void evm_sub_outer(double *c, const double *b, size_t m, size_t n);

/* c (n × n) += xᵀ·x with x rows × n; only the lower triangle of c is updated. */
void evm_add_gram(double *c, const double *x, size_t rows, size_t n);

/* Copies the lower triangle of a onto the upper one. */
void evm_mirror_lower(double *a, size_t n);

#endif
