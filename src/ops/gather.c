/*
 * Gather: picks slices of data along 'axis' (default 0) at the given
 * indices; y.shape = data.shape[:axis] + indices.shape + data.shape[axis+1:].
 * data is float32 or int64; indices are int64 and negative ones count from
 * the end. The indices must be constant (initializers or folded values, as
 * exporters produce): forward cannot report an error, so every index is
 * range-checked in infer and forward relies on that.
 */
#include <stdlib.h>
#include <string.h>

#include "op.h"

typedef struct gather_params {
    int64_t axis; /* as written; normalised against data's rank in infer */
} gather_params;

static evmap_status gather_init(evm_node *node, evmap_error *err) {
    gather_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    return evm_attr_int(node, "axis", 0, &p->axis, err);
}

static evmap_status gather_infer(const evm_node *node, evm_tensor *const *in,
                                 evm_tensor *const *out, evmap_error *err) {
    const evm_tensor *data = in[0], *idx = in[1];
    if (evm_dtype_size(data->dtype) == 0)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "input 0 has data type %s; only float32, int64 and bool are supported",
                             evm_dtype_name(data->dtype));
    if (!idx)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "input 1 (indices) is missing");
    if (idx->dtype != EVM_DTYPE_INT64)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "input 1 (indices) has data type %s; only int64 is supported",
                             evm_dtype_name(idx->dtype));
    if (!idx->is_const || !idx->data)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "input 1 (indices) must be a constant (an initializer or computable "
                             "from shapes alone) so that every index can be checked in advance");
    if (data->rank == 0)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "input 0 (data) must have rank >= 1");
    int axis;
    evmap_status st =
        evm_op_axis(node, ((const gather_params *)node->params)->axis, data->rank, &axis, err);
    if (st != EVMAP_OK)
        return st;
    int64_t n = data->dims[axis];
    for (size_t i = 0; i < idx->count; i++) {
        int64_t v = evm_i64(idx)[i];
        if (v < -n || v >= n)
            return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                                 "index %lld (at position %zu) is out of range for axis %d of "
                                 "size %lld",
                                 (long long)v, i, axis, (long long)n);
    }
    int rank = data->rank - 1 + idx->rank;
    if (rank > EVM_MAX_RANK)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "the output would have rank %d; at most %d is supported", rank,
                             EVM_MAX_RANK);
    int64_t dims[EVM_MAX_RANK];
    int r = 0;
    for (int d = 0; d < axis; d++)
        dims[r++] = data->dims[d];
    for (int d = 0; d < idx->rank; d++)
        dims[r++] = idx->dims[d];
    for (int d = axis + 1; d < data->rank; d++)
        dims[r++] = data->dims[d];
    out[0]->dtype = data->dtype;
    return evm_tensor_set_shape(out[0], rank, dims, err);
}

static void gather_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                           float *workspace) {
    (void)workspace;
    const evm_tensor *data = in[0], *idx = in[1];
    if (out[0]->count == 0)
        return;
    int axis = (int)((const gather_params *)node->params)->axis;
    if (axis < 0)
        axis += data->rank;
    size_t outer = 1, block = evm_dtype_size(data->dtype); /* block: bytes per index */
    for (int d = 0; d < axis; d++)
        outer *= (size_t)data->dims[d];
    for (int d = axis + 1; d < data->rank; d++)
        block *= (size_t)data->dims[d];
    int64_t n = data->dims[axis];
    const int64_t *ix = evm_i64(idx);
    const char *src = data->data;
    char *dst = out[0]->data;
    for (size_t o = 0; o < outer; o++) {
        const char *slab = src + o * (size_t)n * block;
        for (size_t i = 0; i < idx->count; i++) {
            int64_t k = ix[i] < 0 ? ix[i] + n : ix[i]; /* in range: checked by infer */
            memcpy(dst, slab + (size_t)k * block, block);
            dst += block;
        }
    }
}

/* The transpose of a gather is a scatter-add: every gathered slice's
 * gradient goes back to the slice it was read from, summed where an index
 * repeats; slices never read get 0. Only data (float) is differentiated; the
 * indices are int64 constants. */
static void gather_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                            const evm_tensor *grad_out, evm_tensor *const *grad_in,
                            float *workspace) {
    (void)out;
    (void)workspace;
    const evm_tensor *data = in[0], *idx = in[1];
    float *gd = evm_f32(grad_in[0]);
    if (data->count)
        memset(gd, 0, data->count * sizeof(float));
    if (grad_out->count == 0)
        return;
    int axis = (int)((const gather_params *)node->params)->axis;
    if (axis < 0)
        axis += data->rank;
    size_t outer = 1, block = 1; /* block: floats per index */
    for (int d = 0; d < axis; d++)
        outer *= (size_t)data->dims[d];
    for (int d = axis + 1; d < data->rank; d++)
        block *= (size_t)data->dims[d];
    int64_t n = data->dims[axis];
    const int64_t *ix = evm_i64(idx);
    const float *src = evm_f32(grad_out);
    for (size_t o = 0; o < outer; o++) {
        float *slab = gd + o * (size_t)n * block;
        for (size_t i = 0; i < idx->count; i++, src += block) {
            float *dst = slab + (size_t)(ix[i] < 0 ? ix[i] + n : ix[i]) * block;
            for (size_t j = 0; j < block; j++)
                dst[j] += src[j];
        }
    }
}

const evm_op_def evm_op_gather = {
    .name = "Gather",
    .min_inputs = 2,
    .max_inputs = 2,
    .init = gather_init,
    .infer = gather_infer,
    .forward = gather_forward,
    .grad_inputs = 1u << 0,
    .backward = gather_backward,
    .kinks = EVM_KINKS_NONE,
};
