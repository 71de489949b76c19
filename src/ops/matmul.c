/*
 * MatMul with numpy semantics, float32: a 1-D A is a row vector and a 1-D B a
 * column vector (the added axis is dropped from the result); leading batch
 * dimensions broadcast. One sgemm per batch entry, or a single sgemm over
 * all of A when B has no batch (the common "activations @ weights").
 * Invariants: infer checked the inner dimensions, the batch broadcast and that
 * M, N, K fit sgemm's int arguments; forward recomputes the same layout.
 */
#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "op.h"
#include "base/sgemm.h"

/* Both operands viewed as (batch..., rows, cols) with a common batch rank. */
typedef struct mm_layout {
    int64_t m, n, k;
    int batch_rank;                /* number of broadcast batch dims */
    int64_t batch[EVM_MAX_RANK];   /* output batch dims */
    int64_t a_batch[EVM_MAX_RANK]; /* A's batch dims, padded with leading 1s */
    int64_t b_batch[EVM_MAX_RANK]; /* B's batch dims, padded with leading 1s */
    size_t batch_count;            /* product of batch */
} mm_layout;

/* Fills l from the shapes; returns false (and which dims clash in *bad, or -1
 * for the inner dimension) when they are incompatible. */
static bool mm_layout_of(const evm_tensor *a, const evm_tensor *b, mm_layout *l, int *bad) {
    memset(l, 0, sizeof *l);
    int ar = a->rank, br = b->rank;
    l->m = ar >= 2 ? a->dims[ar - 2] : 1;
    l->k = a->dims[ar - 1];
    int64_t kb = br >= 2 ? b->dims[br - 2] : b->dims[0];
    l->n = br >= 2 ? b->dims[br - 1] : 1;
    *bad = -1;
    if (kb != l->k)
        return false;
    int abr = ar > 2 ? ar - 2 : 0, bbr = br > 2 ? br - 2 : 0;
    l->batch_rank = abr > bbr ? abr : bbr;
    l->batch_count = 1;
    for (int i = 0; i < l->batch_rank; i++) {
        int ai = i - (l->batch_rank - abr), bi = i - (l->batch_rank - bbr);
        l->a_batch[i] = ai >= 0 ? a->dims[ai] : 1;
        l->b_batch[i] = bi >= 0 ? b->dims[bi] : 1;
        if (l->a_batch[i] != l->b_batch[i] && l->a_batch[i] != 1 && l->b_batch[i] != 1) {
            *bad = i;
            return false;
        }
        l->batch[i] = l->a_batch[i] > l->b_batch[i] ? l->a_batch[i] : l->b_batch[i];
        if (l->a_batch[i] == 0 || l->b_batch[i] == 0)
            l->batch[i] = 0;
        /* a product of output dims: <= 2^34 once infer set the output shape
         * (evm_tensor_set_shape); used only after that */
        l->batch_count *= (size_t)l->batch[i];
    }
    return true;
}

static evmap_status matmul_infer(const evm_node *node, evm_tensor *const *in,
                                 evm_tensor *const *out, evmap_error *err) {
    evmap_status st = evm_op_require_float(node, in, 0, err);
    if (st == EVMAP_OK)
        st = evm_op_require_float(node, in, 1, err);
    if (st != EVMAP_OK)
        return st;
    char as[EVM_SHAPE_STR_SIZE], bs[EVM_SHAPE_STR_SIZE];
    evm_shape_str(in[0], as, sizeof as);
    evm_shape_str(in[1], bs, sizeof bs);
    if (in[0]->rank < 1 || in[1]->rank < 1)
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "operands %s and %s must have rank 1 or more", as, bs);
    mm_layout l;
    int bad;
    if (!mm_layout_of(in[0], in[1], &l, &bad)) {
        if (bad < 0)
            return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                                 "A %s and B %s disagree on the inner dimension", as, bs);
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "batch dimensions of A %s and B %s do not broadcast", as, bs);
    }
    if (l.m > INT_MAX || l.n > INT_MAX || l.k > INT_MAX)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED, "operands %s and %s are too large",
                             as, bs);
    int64_t dims[EVM_MAX_RANK];
    int rank = 0;
    for (int i = 0; i < l.batch_rank; i++)
        dims[rank++] = l.batch[i];
    if (in[0]->rank >= 2)
        dims[rank++] = l.m;
    if (in[1]->rank >= 2)
        dims[rank++] = l.n;
    out[0]->dtype = EVM_DTYPE_FLOAT;
    return evm_tensor_set_shape(out[0], rank, dims, err);
}

/* B is one matrix whose product with all of A fits one sgemm (its row
 * count is an int): A's batch entries then stack into one tall matrix. */
static bool mm_stacked(const mm_layout *l, size_t b_count) {
    return b_count == 1 && l->batch_count * (size_t)l->m <= INT_MAX;
}

/* Element offset of batch entry idx in an operand with batch dims bdims
 * (broadcast dims of size 1 stay at 0). */
static size_t batch_offset(const mm_layout *l, const int64_t *bdims, const int64_t *idx,
                           size_t matrix) {
    size_t off = 0;
    for (int i = 0; i < l->batch_rank; i++)
        off = off * (size_t)bdims[i] + (size_t)(bdims[i] == 1 ? 0 : idx[i]);
    return off * matrix;
}

/* Advances a batch index over dims, last dim fastest. */
static void next_index(const mm_layout *l, int64_t *idx) {
    for (int i = l->batch_rank - 1; i >= 0; i--) {
        if (++idx[i] < l->batch[i])
            break;
        idx[i] = 0;
    }
}

static void matmul_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                           float *workspace) {
    (void)node;
    (void)workspace;
    mm_layout l;
    int bad;
    mm_layout_of(in[0], in[1], &l, &bad);
    const float *a = evm_f32(in[0]), *b = evm_f32(in[1]);
    float *y = evm_f32(out[0]);
    /* m, n, k <= INT_MAX (infer), so these int64 products cannot overflow */
    size_t mk = (size_t)(l.m * l.k), kn = (size_t)(l.k * l.n), mn = (size_t)(l.m * l.n);
    if (out[0]->count == 0)
        return;
    if (l.k == 0) { /* empty sum */
        memset(y, 0, out[0]->count * sizeof(float));
        return;
    }
    size_t b_count = 1;
    for (int i = 0; i < l.batch_rank; i++)
        b_count *= (size_t)l.b_batch[i];
    if (mm_stacked(&l, b_count)) {
        /* B is one matrix: A's batch entries stack into one tall matrix. A's
         * batch equals the output's here, since broadcasting came from A alone. */
        int rows = (int)(l.batch_count * (size_t)l.m);
        if (rows == 1) { /* a single row: sgemv streams B without packing it */
            memset(y, 0, sizeof(float) * (size_t)l.n);
            cblas_sgemv(CblasRowMajor, CblasTrans, (int)l.k, (int)l.n, 1.0f, b, (int)l.n, a, 1,
                        1.0f, y, 1);
            return;
        }
        evm_sgemm(false, false, rows, (int)l.n, (int)l.k, 1.0f, a, (int)l.k, b, (int)l.n, 0.0f, y,
                  (int)l.n);
        return;
    }
    int64_t idx[EVM_MAX_RANK] = {0};
    for (size_t e = 0; e < l.batch_count; e++) {
        const float *ae = a + batch_offset(&l, l.a_batch, idx, mk);
        const float *be = b + batch_offset(&l, l.b_batch, idx, kn);
        evm_sgemm(false, false, (int)l.m, (int)l.n, (int)l.k, 1.0f, ae, (int)l.k, be, (int)l.n,
                  0.0f, y + e * mn, (int)l.n);
        next_index(&l, idx);
    }
}

/* ---- backward: per batch entry dA = gY B^T and dB = A^T gY, summed over
 * the entries an operand was broadcast to. 1-D operands need no care: as a
 * 1 x k row or k x 1 column their data is laid out as the vector's. */

static size_t batch_product(const mm_layout *l, const int64_t *bdims) {
    size_t count = 1;
    for (int i = 0; i < l->batch_rank; i++)
        count *= (size_t)bdims[i];
    return count;
}

/* B is one matrix: A's entries stack into one tall matrix (as in forward),
 * so dA is one product and dB, the sum over entries, is another. */
static void backward_stacked(const mm_layout *l, const float *a, const float *b, const float *gy,
                             float *ga, float *gb) {
    int rows = (int)(l->batch_count * (size_t)l->m), n = (int)l->n, k = (int)l->k;
    if (ga && rows == 1) /* dA^T = B gY^T; sgemv streams B without packing it */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, k, n, 1.0f, b, n, gy, 1, 0.0f, ga, 1);
    else if (ga)
        evm_sgemm(false, true, rows, k, n, 1.0f, gy, n, b, n, 0.0f, ga, k);
    if (gb)
        evm_sgemm(true, false, k, n, rows, 1.0f, a, k, gy, n, 0.0f, gb, n);
}

/* One product per output entry; an operand's gradient accumulates (beta 1,
 * from zero) where it was broadcast. */
static void backward_batched(const mm_layout *l, const float *a, const float *b, const float *gy,
                             float *ga, float *gb) {
    size_t mk = (size_t)(l->m * l->k), kn = (size_t)(l->k * l->n), mn = (size_t)(l->m * l->n);
    size_t a_count = batch_product(l, l->a_batch), b_count = batch_product(l, l->b_batch);
    float beta_a = a_count == l->batch_count ? 0.0f : 1.0f;
    float beta_b = b_count == l->batch_count ? 0.0f : 1.0f;
    int m = (int)l->m, n = (int)l->n, k = (int)l->k;
    if (ga && beta_a != 0.0f)
        memset(ga, 0, sizeof(float) * a_count * mk);
    if (gb && beta_b != 0.0f)
        memset(gb, 0, sizeof(float) * b_count * kn);
    int64_t idx[EVM_MAX_RANK] = {0};
    for (size_t e = 0; e < l->batch_count; e++) {
        size_t ao = batch_offset(l, l->a_batch, idx, mk), bo = batch_offset(l, l->b_batch, idx, kn);
        if (ga)
            evm_sgemm(false, true, m, k, n, 1.0f, gy + e * mn, n, b + bo, n, beta_a, ga + ao, k);
        if (gb)
            evm_sgemm(true, false, k, n, m, 1.0f, a + ao, k, gy + e * mn, n, beta_b, gb + bo, n);
        next_index(l, idx);
    }
}

static void matmul_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                            const evm_tensor *grad_out, evm_tensor *const *grad_in,
                            float *workspace) {
    (void)node;
    (void)workspace;
    mm_layout l;
    int bad;
    mm_layout_of(in[0], in[1], &l, &bad);
    /* empty gradients may have no buffer */
    float *ga = grad_in[0] && grad_in[0]->count ? evm_f32(grad_in[0]) : NULL;
    float *gb = grad_in[1] && grad_in[1]->count ? evm_f32(grad_in[1]) : NULL;
    if (out[0]->count == 0) { /* empty sums; sgemm would reject the sizes */
        if (ga)
            memset(ga, 0, sizeof(float) * grad_in[0]->count);
        if (gb)
            memset(gb, 0, sizeof(float) * grad_in[1]->count);
        return;
    }
    if (!ga && !gb) /* with k == 0, both are empty */
        return;
    const float *a = evm_f32(in[0]), *b = evm_f32(in[1]), *gy = evm_f32(grad_out);
    if (mm_stacked(&l, batch_product(&l, l.b_batch)))
        backward_stacked(&l, a, b, gy, ga, gb);
    else
        backward_batched(&l, a, b, gy, ga, gb);
}

static double matmul_macs(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out) {
    (void)node;
    mm_layout l;
    int bad;
    mm_layout_of(in[0], in[1], &l, &bad);
    return (double)out[0]->count * (double)l.k;
}

const evm_op_def evm_op_matmul = {
    .name = "MatMul",
    .min_inputs = 2,
    .max_inputs = 2,
    .infer = matmul_infer,
    .forward = matmul_forward,
    .macs = matmul_macs,
    .grad_inputs = 1u << 0 | 1u << 1,
    .backward = matmul_backward,
    .kinks = EVM_KINKS_NONE,
};
