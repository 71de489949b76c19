/*
 * Concat: joins its inputs along one axis (attribute 'axis', required,
 * negative counts from the end). All inputs share dtype (float32 or int64)
 * and rank, and agree in size on every other axis. Forward copies, for each
 * index of the axes before 'axis', one contiguous block from each input.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"

typedef struct concat_params {
    int64_t axis; /* as written; normalised against the rank in infer */
} concat_params;

static evmap_status concat_init(evm_node *node, evmap_error *err) {
    concat_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    if (!evm_node_attr(node, "axis"))
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "attribute 'axis' is required");
    return evm_attr_int(node, "axis", 0, &p->axis, err);
}

static evmap_status concat_infer(const evm_node *node, evm_tensor *const *in,
                                 evm_tensor *const *out, evmap_error *err) {
    const evm_tensor *first = in[0];
    for (int i = 0; i < node->n_inputs; i++)
        if (!in[i])
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "input %d is missing", i);
    if (evm_dtype_size(first->dtype) == 0)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "input 0 has data type %s; only float32, int64 and bool are supported",
                             evm_dtype_name(first->dtype));
    if (first->rank == 0)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "cannot concatenate scalars");
    int axis;
    evmap_status st =
        evm_op_axis(node, ((const concat_params *)node->params)->axis, first->rank, &axis, err);
    if (st != EVMAP_OK)
        return st;
    int64_t dims[EVM_MAX_RANK];
    memcpy(dims, first->dims, sizeof dims);
    for (int i = 1; i < node->n_inputs; i++) {
        const evm_tensor *t = in[i];
        char s0[EVM_SHAPE_STR_SIZE], si[EVM_SHAPE_STR_SIZE];
        if (t->dtype != first->dtype)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "input %d has data type %s, input 0 has %s", i,
                                 evm_dtype_name(t->dtype), evm_dtype_name(first->dtype));
        bool ok = t->rank == first->rank;
        for (int d = 0; ok && d < t->rank; d++)
            ok = d == axis || t->dims[d] == first->dims[d];
        if (!ok)
            return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                                 "input %d has shape %s, which does not match input 0 %s except "
                                 "along axis %d",
                                 i, evm_shape_str(t, si, sizeof si),
                                 evm_shape_str(first, s0, sizeof s0), axis);
        dims[axis] += t->dims[axis];
        if (dims[axis] > (int64_t)EVM_MAX_TENSOR_ELEMENTS) /* keeps the sum from overflowing */
            return evm_node_fail(err, node, EVMAP_ERR_OUT_OF_MEMORY,
                                 "the output is too large along axis %d", axis);
    }
    out[0]->dtype = first->dtype;
    return evm_tensor_set_shape(out[0], first->rank, dims, err);
}

static void concat_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                           float *workspace) {
    (void)workspace;
    evm_tensor *y = out[0];
    if (y->count == 0)
        return;
    int axis = (int)((const concat_params *)node->params)->axis;
    if (axis < 0)
        axis += y->rank;
    size_t elem = evm_dtype_size(y->dtype);
    size_t outer = 1, inner = elem; /* inner: bytes per unit of the concat axis */
    for (int d = 0; d < axis; d++)
        outer *= (size_t)y->dims[d];
    for (int d = axis + 1; d < y->rank; d++)
        inner *= (size_t)y->dims[d];
    char *dst = y->data;
    for (size_t o = 0; o < outer; o++) {
        for (int i = 0; i < node->n_inputs; i++) {
            size_t bytes = (size_t)in[i]->dims[axis] * inner;
            if (bytes)
                memcpy(dst, (const char *)in[i]->data + o * bytes, bytes);
            dst += bytes;
        }
    }
}

/* Each input's gradient is its slice of the output gradient: the forward's
 * copies run the other way. Float only (every input shares the dtype). */
static void concat_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                            const evm_tensor *grad_out, evm_tensor *const *grad_in,
                            float *workspace) {
    (void)workspace;
    const evm_tensor *y = out[0];
    int axis = (int)((const concat_params *)node->params)->axis;
    if (axis < 0)
        axis += y->rank;
    size_t outer = 1, inner = 1; /* inner: floats per unit of the concat axis */
    for (int d = 0; d < axis; d++)
        outer *= (size_t)y->dims[d];
    for (int d = axis + 1; d < y->rank; d++)
        inner *= (size_t)y->dims[d];
    const float *src = evm_f32(grad_out);
    for (size_t o = 0; o < outer; o++) {
        for (int i = 0; i < node->n_inputs; i++) {
            size_t n = (size_t)in[i]->dims[axis] * inner;
            if (grad_in[i] && n)
                memcpy(evm_f32(grad_in[i]) + o * n, src, n * sizeof(float));
            src += n;
        }
    }
}

/* Along channels (axis 1 of 4-D maps) every pixel stays in place: the union
 * of the inputs' regions. Along any other axis the op is global. */
static evm_region concat_field(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               const evm_region *in_regions) {
    int64_t axis = ((const concat_params *)node->params)->axis;
    evm_region r = {.kind = EVM_REGION_NONE};
    if (out[0]->rank != 4 || out[0]->dtype != EVM_DTYPE_FLOAT || (axis != 1 && axis != -3))
        return (evm_region){.kind = EVM_REGION_ALL};
    for (int i = 0; i < node->n_inputs; i++)
        r = evm_region_union(r, in_regions[i]);
    (void)in;
    return r;
}

static void concat_forward_region(const evm_node *node, evm_tensor *const *in,
                                  evm_tensor *const *out, const evm_region *r, float *workspace) {
    (void)workspace;
    const evm_tensor *y = out[0];
    int64_t n = y->dims[0], h = y->dims[2], w = y->dims[3];
    size_t plane = (size_t)(h * w), len = (size_t)(r->x1 - r->x0);
    float *dst = evm_f32(y);
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < node->n_inputs; j++) {
            int64_t c = in[j]->dims[1];
            const float *src = evm_f32(in[j]) + (size_t)(i * c) * plane;
            for (int64_t ch = 0; ch < c; ch++, dst += plane, src += plane)
                for (int64_t yy = r->y0; yy < r->y1; yy++)
                    memcpy(dst + yy * w + r->x0, src + yy * w + r->x0, sizeof(float) * len);
        }
}

const evm_op_def evm_op_concat = {
    .name = "Concat",
    .min_inputs = 1,
    .max_inputs = INT_MAX, /* variadic */
    .init = concat_init,
    .infer = concat_infer,
    .forward = concat_forward,
    .field = concat_field,
    .forward_region = concat_forward_region,
    .grad_inputs = ~0u, /* every input (the mask has bits for the first 32) */
    .backward = concat_backward,
    .kinks = EVM_KINKS_NONE,
};
