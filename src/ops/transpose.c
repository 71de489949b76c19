/*
 * Transpose: y.dims[i] = x.dims[perm[i]] and y[..., j_i, ...] = x[..., at
 * axis perm[i] j_i, ...]. perm defaults to the reversed axes. float32,
 * int64 and bool. Forward walks y in order (contiguous writes) and gathers each output
 * row from x with a fixed stride.
 */
#include <stdlib.h>
#include <string.h>

#include "op.h"

typedef struct transpose_params {
    int n_perm;             /* 0: reverse the axes */
    int perm[EVM_MAX_RANK]; /* a permutation of 0..n_perm-1 */
} transpose_params;

static evmap_status transpose_init(evm_node *node, evmap_error *err) {
    transpose_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    const int64_t *perm;
    size_t n;
    evmap_status st = evm_attr_ints(node, "perm", &perm, &n, err);
    if (st != EVMAP_OK)
        return st;
    if (n > EVM_MAX_RANK)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "attribute 'perm' has %zu axes; at most %d are supported", n,
                             EVM_MAX_RANK);
    bool seen[EVM_MAX_RANK] = {false};
    for (size_t i = 0; i < n; i++) {
        if (perm[i] < 0 || perm[i] >= (int64_t)n || seen[perm[i]])
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "attribute 'perm' is not a permutation of 0..%zu (value %lld at "
                                 "position %zu)",
                                 n - 1, (long long)perm[i], i);
        seen[perm[i]] = true;
        p->perm[i] = (int)perm[i];
    }
    p->n_perm = (int)n;
    return EVMAP_OK;
}

/* The permutation for rank r (the default one when perm was not given). */
static void get_perm(const transpose_params *p, int r, int *perm) {
    for (int i = 0; i < r; i++)
        perm[i] = p->n_perm ? p->perm[i] : r - 1 - i;
}

static evmap_status transpose_infer(const evm_node *node, evm_tensor *const *in,
                                    evm_tensor *const *out, evmap_error *err) {
    const evm_tensor *x = in[0];
    const transpose_params *p = node->params;
    if (evm_dtype_size(x->dtype) == 0)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "input has data type %s; only float32, int64 and bool are supported",
                             evm_dtype_name(x->dtype));
    if (p->n_perm && p->n_perm != x->rank)
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "attribute 'perm' has %d axes but the input has rank %d", p->n_perm,
                             x->rank);
    int perm[EVM_MAX_RANK];
    int64_t dims[EVM_MAX_RANK];
    get_perm(p, x->rank, perm);
    for (int i = 0; i < x->rank; i++)
        dims[i] = x->dims[perm[i]];
    out[0]->dtype = x->dtype;
    return evm_tensor_set_shape(out[0], x->rank, dims, err);
}

/* Copies the rows of y; T is the element type (only its size matters). */
#define DEFINE_TRANSPOSE(name, T)                                                                  \
    static void name(const T *restrict x, T *restrict y, int r, const int64_t *ydims,              \
                     const int64_t *xstride, size_t count) {                                       \
        int64_t n = ydims[r - 1], s = xstride[r - 1];                                              \
        int64_t idx[EVM_MAX_RANK] = {0};                                                           \
        int64_t off = 0; /* x offset of the current row's first element */                         \
        for (size_t o = 0; o < count; o += (size_t)n) {                                            \
            for (int64_t j = 0; j < n; j++)                                                        \
                y[o + (size_t)j] = x[off + j * s];                                                 \
            for (int d = r - 2; d >= 0; d--) {                                                     \
                off += xstride[d];                                                                 \
                if (++idx[d] < ydims[d])                                                           \
                    break;                                                                         \
                off -= xstride[d] * ydims[d];                                                      \
                idx[d] = 0;                                                                        \
            }                                                                                      \
        }                                                                                          \
    }

DEFINE_TRANSPOSE(transpose_8, uint8_t)
DEFINE_TRANSPOSE(transpose_32, uint32_t)
DEFINE_TRANSPOSE(transpose_64, uint64_t)

/* y = x with its axes permuted: y.dims[i] = x.dims[perm[i]]. */
static void permute(const evm_tensor *x, evm_tensor *y, const int *perm) {
    if (x->count == 0)
        return;
    size_t elem = evm_dtype_size(x->dtype);
    if (x->rank < 2) { /* nothing moves */
        memcpy(y->data, x->data, x->count * elem);
        return;
    }
    /* Stride in x of each y axis. */
    int64_t contiguous[EVM_MAX_RANK], xstride[EVM_MAX_RANK];
    contiguous[x->rank - 1] = 1;
    for (int d = x->rank - 2; d >= 0; d--)
        contiguous[d] = contiguous[d + 1] * x->dims[d + 1];
    for (int i = 0; i < x->rank; i++)
        xstride[i] = contiguous[perm[i]];
    /* One copy loop per element size: bool is 1 byte, float32 4, int64 8. */
    if (elem == 1)
        transpose_8(x->data, y->data, x->rank, y->dims, xstride, y->count);
    else if (elem == 4)
        transpose_32(x->data, y->data, x->rank, y->dims, xstride, y->count);
    else
        transpose_64(x->data, y->data, x->rank, y->dims, xstride, y->count);
}

static void transpose_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              float *workspace) {
    (void)workspace;
    int perm[EVM_MAX_RANK];
    get_perm(node->params, in[0]->rank, perm);
    permute(in[0], out[0], perm);
}

/* The Jacobian is a permutation matrix, and its transpose is the inverse
 * permutation: the gradient is grad_out with its axes permuted back. */
static void transpose_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               const evm_tensor *grad_out, evm_tensor *const *grad_in,
                               float *workspace) {
    (void)out;
    (void)workspace;
    int perm[EVM_MAX_RANK], inverse[EVM_MAX_RANK];
    get_perm(node->params, in[0]->rank, perm);
    for (int i = 0; i < in[0]->rank; i++)
        inverse[perm[i]] = i;
    permute(grad_out, grad_in[0], inverse);
}

const evm_op_def evm_op_transpose = {
    .name = "Transpose",
    .min_inputs = 1,
    .max_inputs = 1,
    .init = transpose_init,
    .infer = transpose_infer,
    .forward = transpose_forward,
    .grad_inputs = 1u << 0,
    .backward = transpose_backward,
    .kinks = EVM_KINKS_NONE,
};
