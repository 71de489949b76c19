/* Tensor shapes, checked size arithmetic and storage. */
#include "tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "error.h"

/* Tensors from this size on are mapped (evm_tensor_alloc), except under
 * AddressSanitizer, which guards only what malloc returns. */
#if defined(__SANITIZE_ADDRESS__)
#define TENSOR_MAP_BYTES SIZE_MAX
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TENSOR_MAP_BYTES SIZE_MAX
#endif
#endif
#ifndef TENSOR_MAP_BYTES
#define TENSOR_MAP_BYTES ((size_t)1 << 20)
#endif

bool evm_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a)
        return false;
    *out = a * b;
    return true;
}

evmap_status evm_tensor_set_shape(evm_tensor *t, int rank, const int64_t *dims, evmap_error *err) {
    if (rank < 0 || rank > EVM_MAX_RANK)
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED, "tensor rank %d is above the limit of %d", rank,
                        EVM_MAX_RANK);
    /* span: the product of the non-zero dims. Bounding it rather than the
     * count also bounds every partial product of an empty tensor's dims. */
    size_t span = 1;
    bool empty = false;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0)
            return evm_fail(err, EVMAP_ERR_BAD_FILE, "tensor dimension %d is negative (%lld)", i,
                            (long long)dims[i]);
        empty |= dims[i] == 0;
        if (dims[i] &&
            (!evm_mul_size(span, (size_t)dims[i], &span) || span > EVM_MAX_TENSOR_ELEMENTS))
            return evm_fail(err, EVMAP_ERR_TOO_LARGE, "tensor of more than %zu elements requested",
                            (size_t)EVM_MAX_TENSOR_ELEMENTS);
    }
    size_t count = empty ? 0 : span;
    t->rank = rank;
    for (int i = 0; i < rank; i++)
        t->dims[i] = dims[i];
    for (int i = rank; i < EVM_MAX_RANK; i++)
        t->dims[i] = 0;
    t->count = count;
    return EVMAP_OK;
}

size_t evm_dtype_size(evm_dtype dtype) {
    switch (dtype) {
    case EVM_DTYPE_FLOAT: return 4;
    case EVM_DTYPE_INT64: return 8;
    case EVM_DTYPE_BOOL: return 1;
    default: return 0;
    }
}

const char *evm_dtype_name(evm_dtype dtype) {
    switch (dtype) {
    case EVM_DTYPE_FLOAT: return "float32";
    case EVM_DTYPE_INT64: return "int64";
    case EVM_DTYPE_BOOL: return "bool";
    default: return "undefined";
    }
}

evmap_status evm_tensor_alloc(evm_tensor *t, evmap_error *err) {
    size_t elem = evm_dtype_size(t->dtype);
    if (elem == 0)
        return evm_fail(err, EVMAP_ERR_INTERNAL, "allocating a tensor without a data type");
    size_t bytes;
    if (!evm_mul_size(t->count ? t->count : 1, elem, &bytes))
        return evm_fail(err, EVMAP_ERR_TOO_LARGE, "tensor size overflows");
    /* Large buffers come straight from the kernel: their zero pages cost
     * no memory until written (calloc may reuse and clear freed heap
     * memory), and the locality engine leaves most of its maps unwritten. */
    bool map = bytes >= TENSOR_MAP_BYTES;
    void *data = map ? mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                     : calloc(1, bytes);
    if (map && data == MAP_FAILED)
        data = NULL;
    if (!data)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes for a tensor",
                        bytes);
    evm_tensor_release(t);
    t->data = data;
    t->owns_data = true;
    t->mapped = map ? bytes : 0;
    return EVMAP_OK;
}

void evm_tensor_release(evm_tensor *t) {
    if (!t)
        return;
    if (t->owns_data && t->mapped)
        munmap(t->data, t->mapped);
    else if (t->owns_data)
        free(t->data);
    t->data = NULL;
    t->owns_data = false;
    t->mapped = 0;
}

const char *evm_shape_str(const evm_tensor *t, char *buf, size_t size) {
    size_t used = 0;
    used += (size_t)snprintf(buf + used, size - used, "[");
    for (int i = 0; i < t->rank && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? "," : "",
                                 (long long)t->dims[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
    return buf;
}

bool evm_same_shape(const evm_tensor *a, const evm_tensor *b) {
    if (a->rank != b->rank)
        return false;
    return memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->rank) == 0;
}
