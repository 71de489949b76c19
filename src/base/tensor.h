/*
 * Tensors: a dtype, a shape and a pointer to contiguous row-major data.
 * Activations are float32 NCHW; int64 and bool tensors exist only for the
 * shape arithmetic and masks that exporters emit (usually evaluated when a
 * plan is made).
 * Invariant: count == product of dims (1 for rank 0), checked for overflow.
 */
#ifndef EVM_TENSOR_H
#define EVM_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evmap.h"

#define EVM_MAX_RANK 8

typedef enum evm_dtype {
    EVM_DTYPE_UNDEFINED = 0,
    EVM_DTYPE_FLOAT, /* float32 */
    EVM_DTYPE_INT64,
    EVM_DTYPE_BOOL, /* one byte per element, 0 or 1: comparison results and masks */
} evm_dtype;

typedef struct evm_tensor {
    evm_dtype dtype;
    int rank;
    int64_t dims[EVM_MAX_RANK];
    size_t count;   /* number of elements */
    void *data;     /* count elements of dtype, or NULL before allocation */
    bool owns_data; /* data is freed with the tensor */
    size_t mapped;  /* bytes of data when evm_tensor_alloc mapped it (0: malloc'd) */
    bool is_const;  /* value known when the plan is made (initializer or folded) */
} evm_tensor;

/* Limit on any single tensor, so that hostile files cannot request absurd sizes. */
#define EVM_MAX_TENSOR_ELEMENTS ((size_t)1 << 34)

/* a * b into *out; false on overflow. */
bool evm_mul_size(size_t a, size_t b, size_t *out);

/* Sets rank and dims and recomputes count; fails on negative dims, rank above
 * EVM_MAX_RANK or a product of the non-zero dims above EVM_MAX_TENSOR_ELEMENTS.
 * So the product of any subset of a tensor's dims is at most 2^34, empty
 * tensors included: size arithmetic on dims cannot overflow 64 bits. */
evmap_status evm_tensor_set_shape(evm_tensor *t, int rank, const int64_t *dims, evmap_error *err);

size_t evm_dtype_size(evm_dtype dtype);
const char *evm_dtype_name(evm_dtype dtype);

/* Allocates zeroed data for the current shape (owned). */
evmap_status evm_tensor_alloc(evm_tensor *t, evmap_error *err);
/* Frees owned data; the tensor keeps its shape. Safe on NULL. */
void evm_tensor_release(evm_tensor *t);

static inline float *evm_f32(const evm_tensor *t) {
    return (float *)t->data;
}
static inline int64_t *evm_i64(const evm_tensor *t) {
    return (int64_t *)t->data;
}
static inline uint8_t *evm_bool(const evm_tensor *t) {
    return (uint8_t *)t->data;
}

/* Writes "[1,3,224,224]" into buf. */
const char *evm_shape_str(const evm_tensor *t, char *buf, size_t size);
#define EVM_SHAPE_STR_SIZE 128

bool evm_same_shape(const evm_tensor *a, const evm_tensor *b);

#endif
