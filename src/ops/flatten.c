/*
 * Flatten: reshapes x to 2-D [prod(dims[:axis]), prod(dims[axis:])]. axis is
 * in [0, rank] (negative from opset 11, counted from the end). Data is copied
 * unchanged; float32 and int64.
 */
#include <stdlib.h>
#include <string.h>

#include "op.h"

typedef struct flatten_params {
    int64_t axis; /* as written; normalised against the rank in infer */
} flatten_params;

static evmap_status flatten_init(evm_node *node, evmap_error *err) {
    flatten_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    evmap_status st = evm_attr_int(node, "axis", 1, &p->axis, err);
    if (st == EVMAP_OK && p->axis < 0 && node->opset < 11)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "negative axis %lld is only valid from opset 11 (model has opset %d)",
                             (long long)p->axis, node->opset);
    return st;
}

static evmap_status flatten_infer(const evm_node *node, evm_tensor *const *in,
                                  evm_tensor *const *out, evmap_error *err) {
    const evm_tensor *x = in[0];
    if (evm_dtype_size(x->dtype) == 0)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "input has data type %s; only float32, int64 and bool are supported",
                             evm_dtype_name(x->dtype));
    int64_t axis = ((const flatten_params *)node->params)->axis;
    /* Unlike most axes, rank itself is valid here (everything goes to the rows). */
    if (axis < -(int64_t)x->rank || axis > x->rank)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "axis %lld is out of range for an input of rank %d", (long long)axis,
                             x->rank);
    if (axis < 0)
        axis += x->rank;
    int64_t dims[2] = {1, 1};
    for (int d = 0; d < x->rank; d++)
        dims[d >= axis] *= x->dims[d];
    out[0]->dtype = x->dtype;
    return evm_tensor_set_shape(out[0], 2, dims, err);
}

const evm_op_def evm_op_flatten = {
    .name = "Flatten",
    .min_inputs = 1,
    .max_inputs = 1,
    .init = flatten_init,
    .infer = flatten_infer,
    .forward = evm_op_forward_copy,
    .grad_inputs = 1u << 0,
    .backward = evm_op_backward_copy,
    .kinks = EVM_KINKS_NONE,
};
