/*
 * Unsqueeze: inserts size-1 axes at the given positions of the output.
 * Opset < 13: 'axes' attribute; opset >= 13: axes is input 1, which must be a
 * constant 1-D int64 tensor. Axes index the output (rank r + len(axes)),
 * negative ones count from its end, and may come in any order but not twice.
 * Data is copied unchanged; float32 and int64.
 */
#include <stdlib.h>
#include <string.h>

#include "op.h"

typedef struct unsqueeze_params {
    bool axes_are_input;        /* opset >= 13 */
    int n_axes;                 /* opset < 13: number of values in 'axes' */
    int64_t axes[EVM_MAX_RANK]; /* opset < 13: the 'axes' attribute */
} unsqueeze_params;

static evmap_status unsqueeze_init(evm_node *node, evmap_error *err) {
    unsqueeze_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    p->axes_are_input = node->opset >= 13;
    if (p->axes_are_input)
        return EVMAP_OK;
    const int64_t *axes;
    size_t n;
    evmap_status st = evm_attr_ints(node, "axes", &axes, &n, err);
    if (st != EVMAP_OK)
        return st;
    if (n == 0)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "attribute 'axes' is required");
    if (n > EVM_MAX_RANK)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "attribute 'axes' has %zu values; the output rank is limited to %d", n,
                             EVM_MAX_RANK);
    memcpy(p->axes, axes, n * sizeof *axes);
    p->n_axes = (int)n;
    return EVMAP_OK;
}

static evmap_status unsqueeze_infer(const evm_node *node, evm_tensor *const *in,
                                    evm_tensor *const *out, evmap_error *err) {
    const unsqueeze_params *p = node->params;
    const evm_tensor *x = in[0];
    if (evm_dtype_size(x->dtype) == 0)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "input 0 has data type %s; only float32, int64 and bool are supported",
                             evm_dtype_name(x->dtype));
    const int64_t *axes = p->axes;
    size_t n = (size_t)p->n_axes;
    if (p->axes_are_input) {
        if (node->n_inputs < 2 || !in[1])
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "input 1 (axes) is required");
        evmap_status st = evm_op_require_const(node, in, 1, err);
        if (st != EVMAP_OK)
            return st;
        if (in[1]->dtype != EVM_DTYPE_INT64 || in[1]->rank > 1)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "input 1 (axes) must be a 1-D int64 tensor");
        axes = evm_i64(in[1]);
        n = in[1]->count;
    } else if (node->n_inputs > 1) {
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "has %d inputs; before opset 13 axes are an attribute",
                             node->n_inputs);
    }
    size_t rank = (size_t)x->rank + n;
    if (rank > EVM_MAX_RANK)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "the output would have rank %zu; at most %d is supported", rank,
                             EVM_MAX_RANK);
    bool inserted[EVM_MAX_RANK] = {false};
    for (size_t i = 0; i < n; i++) {
        int a;
        evmap_status st = evm_op_axis(node, axes[i], (int)rank, &a, err);
        if (st != EVMAP_OK)
            return st;
        if (inserted[a])
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "output axis %d is given twice (value %lld)", a,
                                 (long long)axes[i]);
        inserted[a] = true;
    }
    int64_t dims[EVM_MAX_RANK];
    for (size_t d = 0, k = 0; d < rank; d++)
        dims[d] = inserted[d] ? 1 : x->dims[k++];
    out[0]->dtype = x->dtype;
    return evm_tensor_set_shape(out[0], (int)rank, dims, err);
}

const evm_op_def evm_op_unsqueeze = {
    .name = "Unsqueeze",
    .min_inputs = 1,
    .max_inputs = 2,
    .init = unsqueeze_init,
    .infer = unsqueeze_infer,
    .forward = evm_op_forward_copy,
    .grad_inputs = 1u << 0,
    .backward = evm_op_backward_copy,
    .kinks = EVM_KINKS_NONE,
};
