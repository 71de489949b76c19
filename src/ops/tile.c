/*
 * Tile: repeats x repeats[d] times along each axis d; repeats is an int64
 * constant with one non-negative entry per axis of x. Any dtype is copied;
 * float data gets a backward (each input element sums the gradients of its
 * copies).
 */
#include <string.h>

#include "strided.h"

static evmap_status tile_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               evmap_error *err) {
    const evm_tensor *x = in[0];
    if (evm_dtype_size(x->dtype) == 0)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED, "input 0 has data type %s",
                             evm_dtype_name(x->dtype));
    const int64_t *rep;
    size_t n;
    evmap_status st = evm_op_const_ints(node, in, 1, "repeats", &rep, &n, err);
    if (st != EVMAP_OK)
        return st;
    if (n != (size_t)x->rank)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "'repeats' has %zu entries for an input of rank %d", n, x->rank);
    int64_t dims[EVM_MAX_RANK];
    for (int d = 0; d < x->rank; d++) {
        size_t size;
        if (rep[d] < 0)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "repeats[%d] is negative", d);
        if (!evm_mul_size((size_t)x->dims[d], (size_t)rep[d], &size) ||
            size > EVM_MAX_TENSOR_ELEMENTS)
            return evm_node_fail(err, node, EVMAP_ERR_TOO_LARGE,
                                 "repeats[%d] = %lld makes the output too large", d,
                                 (long long)rep[d]);
        dims[d] = (int64_t)size;
    }
    out[0]->dtype = x->dtype;
    return evm_tensor_set_shape(out[0], x->rank, dims, err);
}

/* Offset into x of element i of y: every index taken modulo x's size. */
static size_t source(size_t i, const evm_tensor *x, const evm_tensor *y) {
    size_t off = 0, s = 1;
    for (int d = y->rank - 1; d >= 0; d--) {
        size_t k = i % (size_t)y->dims[d];
        i /= (size_t)y->dims[d];
        off += (k % (size_t)x->dims[d]) * s;
        s *= (size_t)x->dims[d];
    }
    return off;
}

static void tile_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         float *workspace) {
    (void)node;
    (void)workspace;
    const evm_tensor *x = in[0], *y = out[0];
    size_t elem = evm_dtype_size(x->dtype);
    for (size_t i = 0; i < y->count; i++)
        memcpy((char *)y->data + i * elem, (const char *)x->data + source(i, x, y) * elem, elem);
}

static void tile_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                          const evm_tensor *grad_out, evm_tensor *const *grad_in,
                          float *workspace) {
    (void)node;
    (void)workspace;
    const evm_tensor *x = in[0], *y = out[0];
    float *gx = evm_f32(grad_in[0]);
    if (x->count)
        memset(gx, 0, x->count * sizeof(float));
    const float *g = evm_f32(grad_out);
    for (size_t i = 0; i < y->count; i++)
        gx[source(i, x, y)] += g[i];
}

const evm_op_def evm_op_tile = {
    .name = "Tile",
    .min_inputs = 2,
    .max_inputs = 2,
    .infer = tile_infer,
    .forward = tile_forward,
    .grad_inputs = 1u << 0,
    .backward = tile_backward,
    .kinks = EVM_KINKS_NONE,
};
