/*
 * Index arithmetic shared by the data-movement operators (Slice, Expand,
 * Tile, Where, the comparisons): offsets into a tensor read through strides,
 * numpy broadcasting included, and reading the constant int64 lists (starts,
 * repeats, shapes) that these operators take as inputs.
 */
#ifndef EVM_STRIDED_H
#define EVM_STRIDED_H

#include <stddef.h>
#include <stdint.h>

#include "op.h"

/* Element strides of t read as if broadcast (numpy rules) to rank x dims:
 * 0 along the axes t lacks or has size 1. The shapes must broadcast. */
void evm_broadcast_strides(const evm_tensor *t, int rank, const int64_t *dims, int64_t *strides);

/* Offset, under strides, of element i (row-major) of a rank x dims tensor. */
static inline int64_t evm_strided_offset(size_t i, int rank, const int64_t *dims,
                                         const int64_t *strides) {
    int64_t off = 0;
    for (int d = rank - 1; d >= 0; d--) {
        size_t n = (size_t)dims[d];
        off += (int64_t)(i % n) * strides[d];
        i /= n;
    }
    return off;
}

/* Input i as a constant 1-D int64 list (what: its name in errors). *n is
 * its length; *v is NULL when it is empty. */
evmap_status evm_op_const_ints(const evm_node *node, evm_tensor *const *in, int i, const char *what,
                               const int64_t **v, size_t *n, evmap_error *err);

/* Broadcast shape of several tensors (NULL entries skipped) into *rank and
 * dims; an error naming the node when they do not broadcast. */
evmap_status evm_op_broadcast_all(const evm_node *node, evm_tensor *const *ts, int n, int *rank,
                                  int64_t *dims, evmap_error *err);

#endif
