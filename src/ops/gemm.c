/*
 * Gemm: Y = alpha * op(A) * op(B) + beta * C, with op = transpose when transA
 * / transB is set, A and B 2-D float32 and the optional C unidirectionally
 * broadcast to (M, N). Forward writes beta * C into Y and lets sgemm
 * accumulate on top of it.
 * Invariants: infer checked that the inner dimensions agree, that C
 * broadcasts to (M, N) and that M, N, K fit sgemm's int arguments.
 */
#include <cblas.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "base/sgemm.h"

typedef struct gemm_params {
    float alpha, beta;
    bool trans_a, trans_b; /* A is (K, M) / B is (N, K) */
} gemm_params;

static evmap_status gemm_init(evm_node *node, evmap_error *err) {
    gemm_params p;
    int64_t ta, tb;
    evmap_status st = evm_attr_float(node, "alpha", 1.0f, &p.alpha, err);
    if (st == EVMAP_OK)
        st = evm_attr_float(node, "beta", 1.0f, &p.beta, err);
    if (st == EVMAP_OK)
        st = evm_attr_int(node, "transA", 0, &ta, err);
    if (st == EVMAP_OK)
        st = evm_attr_int(node, "transB", 0, &tb, err);
    if (st != EVMAP_OK)
        return st;
    /* "broadcast" (opsets 1-6) only allowed what every later opset does. */
    if (node->opset < 7)
        evm_attr_ignore(node, "broadcast");
    p.trans_a = ta != 0;
    p.trans_b = tb != 0;
    return evm_node_set_params(node, &p, sizeof p, err);
}

/* M, N, K from the shapes of A and B (already checked to be 2-D). */
static void gemm_dims(const gemm_params *p, evm_tensor *const *in, int64_t *m, int64_t *n,
                      int64_t *k, int64_t *kb) {
    const evm_tensor *a = in[0], *b = in[1];
    *m = p->trans_a ? a->dims[1] : a->dims[0];
    *k = p->trans_a ? a->dims[0] : a->dims[1];
    *kb = p->trans_b ? b->dims[1] : b->dims[0];
    *n = p->trans_b ? b->dims[0] : b->dims[1];
}

/* C broadcasts to (M, N): rank 0, (N) or (1), or (M or 1, N or 1). */
static evmap_status check_c(const evm_node *node, const evm_tensor *c, int64_t m, int64_t n,
                            evmap_error *err) {
    int64_t cm = c->rank == 2 ? c->dims[0] : 1;
    int64_t cn = c->rank >= 1 ? c->dims[c->rank - 1] : 1;
    char buf[EVM_SHAPE_STR_SIZE];
    if (c->rank > 2 || (cn != n && cn != 1))
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "C has shape %s, which does not broadcast to (M, N) = (%lld, %lld)",
                             evm_shape_str(c, buf, sizeof buf), (long long)m, (long long)n);
    if (cm != m && cm != 1)
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "C has shape %s but the batch (M) is %lld",
                             evm_shape_str(c, buf, sizeof buf), (long long)m);
    return EVMAP_OK;
}

static evmap_status gemm_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               evmap_error *err) {
    const gemm_params *p = node->params;
    evmap_status st = EVMAP_OK;
    for (int i = 0; i < 3 && st == EVMAP_OK; i++)
        if (i < 2 || in[i])
            st = evm_op_require_float(node, in, i, err);
    if (st != EVMAP_OK)
        return st;
    char as[EVM_SHAPE_STR_SIZE], bs[EVM_SHAPE_STR_SIZE];
    evm_shape_str(in[0], as, sizeof as);
    evm_shape_str(in[1], bs, sizeof bs);
    if (in[0]->rank != 2)
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "A has shape %s; Gemm needs a matrix (flatten it first)", as);
    if (in[1]->rank != 2)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "B has shape %s; expected a matrix",
                             bs);
    int64_t m, n, k, kb;
    gemm_dims(p, in, &m, &n, &k, &kb);
    if (k != kb)
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "A %s%s and B %s%s disagree on the inner dimension (%lld vs %lld)", as,
                             p->trans_a ? " (transposed)" : "", bs,
                             p->trans_b ? " (transposed)" : "", (long long)k, (long long)kb);
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED, "matrices %s x %s are too large", as,
                             bs);
    if (in[2] && (st = check_c(node, in[2], m, n, err)) != EVMAP_OK)
        return st;
    int64_t dims[2] = {m, n};
    out[0]->dtype = EVM_DTYPE_FLOAT;
    return evm_tensor_set_shape(out[0], 2, dims, err);
}

/* Y = beta * C broadcast to (m, n). */
static void fill_c(float *y, const evm_tensor *c, float beta, int64_t m, int64_t n) {
    const float *cv = evm_f32(c);
    bool per_row = c->rank == 2 && c->dims[0] != 1;
    bool per_col = c->rank >= 1 && c->dims[c->rank - 1] != 1;
    for (int64_t i = 0; i < m; i++) {
        const float *row = cv + (per_row ? i * (per_col ? n : 1) : 0);
        float *d = y + i * n;
        if (per_col)
            for (int64_t j = 0; j < n; j++)
                d[j] = beta * row[j];
        else
            for (int64_t j = 0; j < n; j++)
                d[j] = beta * row[0];
    }
}

static void gemm_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         float *workspace) {
    (void)workspace;
    const gemm_params *p = node->params;
    int64_t m, n, k, kb;
    gemm_dims(p, in, &m, &n, &k, &kb);
    float *y = evm_f32(out[0]);
    bool with_c = in[2] && p->beta != 0.0f;
    if (with_c)
        fill_c(y, in[2], p->beta, m, n);
    if (m == 0 || n == 0)
        return;
    if (k == 0) { /* empty product: sgemm would reject the leading dimensions */
        if (!with_c)
            for (int64_t i = 0; i < m * n; i++)
                y[i] = 0.0f;
        return;
    }
    if (m == 1) {
        /* One row (batch 1): sgemv streams B once, where sgemm would also pack
         * it, about twice as fast for the large fully connected layers. */
        if (!with_c)
            memset(y, 0, sizeof(float) * (size_t)n);
        if (p->trans_b)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)k, p->alpha, evm_f32(in[1]),
                        (int)k, evm_f32(in[0]), 1, 1.0f, y, 1);
        else
            cblas_sgemv(CblasRowMajor, CblasTrans, (int)k, (int)n, p->alpha, evm_f32(in[1]), (int)n,
                        evm_f32(in[0]), 1, 1.0f, y, 1);
        return;
    }
    evm_sgemm(p->trans_a, p->trans_b, (int)m, (int)n, (int)k, p->alpha, evm_f32(in[0]),
              (int)in[0]->dims[1], evm_f32(in[1]), (int)in[1]->dims[1], with_c ? 1.0f : 0.0f, y,
              (int)n);
}

/* ---- backward: with P = op(A) (M x K) and Q = op(B) (K x N),
 * dP = alpha gY Q^T and dQ = alpha P^T gY, transposed back for a transposed
 * operand; dC = beta gY summed over the axes C was broadcast along. */

/* out (rows x cols) = alpha * op(x) * op(y), op(x) rows x inner; zero for an
 * empty inner dimension, which sgemm's leading dimensions would reject. */
static void product(bool tx, bool ty, int64_t rows, int64_t cols, int64_t inner, float alpha,
                    const float *x, int64_t ldx, const float *y, int64_t ldy, float *out) {
    if (rows == 0 || cols == 0)
        return;
    if (inner == 0) {
        memset(out, 0, sizeof(float) * (size_t)(rows * cols));
        return;
    }
    evm_sgemm(tx, ty, (int)rows, (int)cols, (int)inner, alpha, x, (int)ldx, y, (int)ldy, 0.0f, out,
              (int)cols);
}

/* dA for one row of A (batch 1, the usual fully connected layer): sgemv
 * streams B once where sgemm would also pack it. */
static void grad_a_row(const gemm_params *p, const evm_tensor *b, const float *gy, int64_t n,
                       int64_t k, float *ga) {
    if (n == 0) {
        memset(ga, 0, sizeof(float) * (size_t)k);
        return;
    }
    /* dA^T = alpha Q gY^T */
    cblas_sgemv(CblasRowMajor, p->trans_b ? CblasTrans : CblasNoTrans, (int)b->dims[0],
                (int)b->dims[1], p->alpha, evm_f32(b), (int)b->dims[1], gy, 1, 0.0f, ga, 1);
}

static void grad_a(const gemm_params *p, evm_tensor *const *in, const float *gy, int64_t m,
                   int64_t n, int64_t k, float *ga) {
    const float *b = evm_f32(in[1]);
    int64_t ldb = in[1]->dims[1];
    if (k == 0)
        return;
    if (m == 1)
        grad_a_row(p, in[1], gy, n, k, ga);
    else if (!p->trans_a) /* dA = alpha gY Q^T */
        product(false, !p->trans_b, m, k, n, p->alpha, gy, n, b, ldb, ga);
    else /* dA = dP^T = alpha Q gY^T */
        product(p->trans_b, true, k, m, n, p->alpha, b, ldb, gy, n, ga);
}

static void grad_b(const gemm_params *p, evm_tensor *const *in, const float *gy, int64_t m,
                   int64_t n, int64_t k, float *gb) {
    const float *a = evm_f32(in[0]);
    int64_t lda = in[0]->dims[1];
    if (!p->trans_b) /* dB = alpha P^T gY */
        product(!p->trans_a, false, k, n, m, p->alpha, a, lda, gy, n, gb);
    else /* dB = dQ^T = alpha gY^T P */
        product(true, p->trans_a, n, k, m, p->alpha, gy, n, a, lda, gb);
}

/* dC = beta gY summed over C's broadcast axes (the inverse of fill_c). */
static void grad_c(const evm_tensor *c, float beta, const float *gy, int64_t m, int64_t n,
                   float *gc) {
    bool per_row = c->rank == 2 && c->dims[0] != 1;
    bool per_col = c->rank >= 1 && c->dims[c->rank - 1] != 1;
    if (per_col) {
        memset(gc, 0, sizeof(float) * c->count);
        for (int64_t i = 0; i < m; i++) {
            float *d = gc + (per_row ? i * n : 0);
            for (int64_t j = 0; j < n; j++)
                d[j] += beta * gy[i * n + j];
        }
        return;
    }
    double total = 0.0;
    for (int64_t i = 0; i < m; i++) {
        double row = 0.0;
        for (int64_t j = 0; j < n; j++)
            row += gy[i * n + j];
        if (per_row)
            gc[i] = (float)(beta * row);
        total += row;
    }
    if (!per_row)
        gc[0] = (float)(beta * total);
}

static void gemm_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                          const evm_tensor *grad_out, evm_tensor *const *grad_in,
                          float *workspace) {
    (void)out;
    (void)workspace;
    const gemm_params *p = node->params;
    int64_t m, n, k, kb;
    gemm_dims(p, in, &m, &n, &k, &kb);
    const float *gy = evm_f32(grad_out);
    /* empty gradients may have no buffer */
    if (grad_in[0] && grad_in[0]->count)
        grad_a(p, in, gy, m, n, k, evm_f32(grad_in[0]));
    if (grad_in[1] && grad_in[1]->count)
        grad_b(p, in, gy, m, n, k, evm_f32(grad_in[1]));
    if (grad_in[2] && grad_in[2]->count)
        grad_c(in[2], p->beta, gy, m, n, evm_f32(grad_in[2]));
}

static double gemm_macs(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out) {
    (void)out;
    int64_t m, n, k, kb;
    gemm_dims(node->params, in, &m, &n, &k, &kb);
    return (double)m * (double)n * (double)k;
}

const evm_op_def evm_op_gemm = {
    .name = "Gemm",
    .min_inputs = 2,
    .max_inputs = 3,
    .init = gemm_init,
    .infer = gemm_infer,
    .forward = gemm_forward,
    .macs = gemm_macs,
    .grad_inputs = 1u << 0 | 1u << 1 | 1u << 2,
    .backward = gemm_backward,
    .kinks = EVM_KINKS_NONE,
};
