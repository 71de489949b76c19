/*
 * Shape: a 1-D int64 tensor holding x's dimensions, optionally only those in
 * [start, end) (opset 15; negative values count from the end, out-of-range
 * values are clamped). It reads no data, so it is marked shape_only and is
 * evaluated when the plan is made: this is what lets the Shape -> Gather ->
 * Concat -> Reshape chains of exporters fold into constants.
 */
#include <stdlib.h>

#include "op.h"

typedef struct shape_params {
    int64_t start; /* as written; resolved against the rank by shape_range */
    int64_t end;
    bool has_end; /* 'end' given (otherwise: up to the rank) */
} shape_params;

static evmap_status shape_init(evm_node *node, evmap_error *err) {
    shape_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    p->has_end = evm_node_attr(node, "end") != NULL;
    evmap_status st = evm_attr_int(node, "start", 0, &p->start, err);
    if (st == EVMAP_OK)
        st = evm_attr_int(node, "end", 0, &p->end, err);
    return st;
}

/* Resolves one bound: negative counts from the end, then clamp to [0, rank]. */
static int64_t resolve(int64_t v, int rank) {
    if (v < 0)
        v += rank;
    return v < 0 ? 0 : v > rank ? rank : v;
}

static void shape_range(const shape_params *p, int rank, int *begin, int *end) {
    *begin = (int)resolve(p->start, rank);
    *end = p->has_end ? (int)resolve(p->end, rank) : rank;
    if (*end < *begin)
        *end = *begin; /* an empty range gives an empty shape */
}

static evmap_status shape_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                evmap_error *err) {
    int begin, end;
    shape_range(node->params, in[0]->rank, &begin, &end);
    int64_t n = end - begin;
    out[0]->dtype = EVM_DTYPE_INT64;
    return evm_tensor_set_shape(out[0], 1, &n, err);
}

static void shape_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                          float *workspace) {
    (void)workspace;
    int begin, end;
    shape_range(node->params, in[0]->rank, &begin, &end);
    int64_t *y = evm_i64(out[0]);
    for (int d = begin; d < end; d++)
        y[d - begin] = in[0]->dims[d];
}

const evm_op_def evm_op_shape = {
    .name = "Shape",
    .min_inputs = 1,
    .max_inputs = 1,
    .shape_only = true,
    .init = shape_init,
    .infer = shape_infer,
    .forward = shape_forward,
};
