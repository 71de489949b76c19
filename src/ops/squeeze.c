/*
 * Squeeze: removes size-1 axes: those listed, or every size-1 axis when no
 * axes are given. Opset < 13: optional 'axes' attribute; opset >= 13:
 * optional input 1, which must be a constant 1-D int64 tensor. Axes index
 * the input, negative ones count from its end; each must have size 1.
 * Data is copied unchanged; float32 and int64.
 */
#include <stdlib.h>
#include <string.h>

#include "op.h"

typedef struct squeeze_params {
    bool axes_are_input;        /* opset >= 13 */
    int n_axes;                 /* opset < 13: 0 = squeeze every size-1 axis */
    int64_t axes[EVM_MAX_RANK]; /* opset < 13: the 'axes' attribute */
} squeeze_params;

static evmap_status squeeze_init(evm_node *node, evmap_error *err) {
    squeeze_params *p = evm_node_alloc_params(node, sizeof *p, err);
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
    if (n > EVM_MAX_RANK)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "attribute 'axes' has %zu values, more than any supported rank (%d)",
                             n, EVM_MAX_RANK);
    if (n)
        memcpy(p->axes, axes, n * sizeof *axes);
    p->n_axes = (int)n;
    return EVMAP_OK;
}

/* The axes to squeeze; *n = 0 means "every size-1 axis". */
static evmap_status get_axes(const evm_node *node, evm_tensor *const *in, const int64_t **axes,
                             size_t *n, evmap_error *err) {
    const squeeze_params *p = node->params;
    *axes = p->axes;
    *n = (size_t)p->n_axes;
    if (!p->axes_are_input) {
        if (node->n_inputs > 1)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "has %d inputs; before opset 13 axes are an attribute",
                                 node->n_inputs);
        return EVMAP_OK;
    }
    if (node->n_inputs < 2 || !in[1])
        return EVMAP_OK;
    evmap_status st = evm_op_require_const(node, in, 1, err);
    if (st != EVMAP_OK)
        return st;
    if (in[1]->dtype != EVM_DTYPE_INT64 || in[1]->rank > 1)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "input 1 (axes) must be a 1-D int64 tensor");
    *axes = evm_i64(in[1]);
    *n = in[1]->count;
    return EVMAP_OK;
}

static evmap_status squeeze_infer(const evm_node *node, evm_tensor *const *in,
                                  evm_tensor *const *out, evmap_error *err) {
    const evm_tensor *x = in[0];
    if (evm_dtype_size(x->dtype) == 0)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "input 0 has data type %s; only float32, int64 and bool are supported",
                             evm_dtype_name(x->dtype));
    const int64_t *axes;
    size_t n;
    evmap_status st = get_axes(node, in, &axes, &n, err);
    if (st != EVMAP_OK)
        return st;
    bool drop[EVM_MAX_RANK] = {false};
    if (n == 0) {
        for (int d = 0; d < x->rank; d++)
            drop[d] = x->dims[d] == 1;
    }
    for (size_t i = 0; i < n; i++) {
        int a;
        st = evm_op_axis(node, axes[i], x->rank, &a, err);
        if (st != EVMAP_OK)
            return st;
        if (drop[a])
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "axis %d is given twice (value %lld)", a, (long long)axes[i]);
        if (x->dims[a] != 1) {
            char s[EVM_SHAPE_STR_SIZE];
            return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                                 "cannot squeeze axis %d of the input %s: its size is %lld, not 1",
                                 a, evm_shape_str(x, s, sizeof s), (long long)x->dims[a]);
        }
        drop[a] = true;
    }
    int64_t dims[EVM_MAX_RANK];
    int rank = 0;
    for (int d = 0; d < x->rank; d++)
        if (!drop[d])
            dims[rank++] = x->dims[d];
    out[0]->dtype = x->dtype;
    return evm_tensor_set_shape(out[0], rank, dims, err);
}

const evm_op_def evm_op_squeeze = {
    .name = "Squeeze",
    .min_inputs = 1,
    .max_inputs = 2,
    .init = squeeze_init,
    .infer = squeeze_infer,
    .forward = evm_op_forward_copy,
    .grad_inputs = 1u << 0,
    .backward = evm_op_backward_copy,
    .kinks = EVM_KINKS_NONE,
};
