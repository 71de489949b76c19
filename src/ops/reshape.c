/*
 * Reshape: y has the shape given by input 1 and x's data, unchanged. The
 * shape input must be a constant 1-D int64 tensor (an initializer or the
 * result of a folded Shape/Gather/Concat chain). In it, 0 copies x's size on
 * the same axis (unless allowzero=1, opset 14+, where 0 is a real 0) and one
 * -1 is inferred from the element count. float32 and int64.
 */
#include <stdlib.h>
#include <string.h>

#include "op.h"

typedef struct reshape_params {
    bool allowzero;  /* a 0 in the shape means size 0, not "copy" */
    bool batch_axis; /* the shape's leading 1 is the batch (evm_reshape_mark_batch) */
} reshape_params;

static evmap_status reshape_init(evm_node *node, evmap_error *err) {
    reshape_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    if (evm_node_attr(node, "shape"))
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "the 'shape' attribute (opset < 5) is not supported; the shape must "
                             "be input 1");
    int64_t allowzero;
    evmap_status st = evm_attr_int(node, "allowzero", 0, &allowzero, err);
    if (st != EVMAP_OK)
        return st;
    if (allowzero != 0 && allowzero != 1)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "attribute 'allowzero' is %lld; it must be 0 or 1",
                             (long long)allowzero);
    p->allowzero = allowzero == 1;
    return EVMAP_OK;
}

/* Resolves the requested shape (0 and -1 entries) into dims. */
static evmap_status resolve_shape(const evm_node *node, const evm_tensor *x, const int64_t *req,
                                  int rank, bool allowzero, int64_t *dims, evmap_error *err) {
    char sx[EVM_SHAPE_STR_SIZE];
    int infer_at = -1;
    size_t known = 1; /* product of every size but the -1 */
    for (int d = 0; d < rank; d++) {
        int64_t v = req[d];
        if (v == -1) {
            if (infer_at >= 0)
                return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                     "the shape has more than one -1 (axes %d and %d)", infer_at,
                                     d);
            infer_at = d;
            continue;
        }
        if (v < -1)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "the shape has the invalid size %lld at axis %d", (long long)v, d);
        if (v == 0 && !allowzero) {
            if (d >= x->rank)
                return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                                     "the shape has 0 (copy) at axis %d, but the input %s has "
                                     "only %d axes",
                                     d, evm_shape_str(x, sx, sizeof sx), x->rank);
            v = x->dims[d];
        }
        dims[d] = v;
        if (!evm_mul_size(known, (size_t)v, &known) || known > EVM_MAX_TENSOR_ELEMENTS)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "the shape is too large");
    }
    if (infer_at >= 0) {
        if (known == 0 || x->count % known != 0)
            return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                                 "cannot infer the -1 at axis %d: the input %s has %zu elements, "
                                 "the other sizes multiply to %zu",
                                 infer_at, evm_shape_str(x, sx, sizeof sx), x->count, known);
        dims[infer_at] = (int64_t)(x->count / known);
        known = x->count;
    }
    if (known != x->count)
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "cannot reshape the input %s (%zu elements) to a shape of %zu "
                             "elements",
                             evm_shape_str(x, sx, sizeof sx), x->count, known);
    return EVMAP_OK;
}

static evmap_status reshape_infer(const evm_node *node, evm_tensor *const *in,
                                  evm_tensor *const *out, evmap_error *err) {
    const evm_tensor *x = in[0], *shape = in[1];
    if (evm_dtype_size(x->dtype) == 0)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "input 0 has data type %s; only float32, int64 and bool are supported",
                             evm_dtype_name(x->dtype));
    evmap_status st = evm_op_require_const(node, in, 1, err);
    if (st != EVMAP_OK)
        return st;
    if (shape->dtype != EVM_DTYPE_INT64 || shape->rank != 1)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "input 1 (shape) must be a 1-D int64 tensor; it is %s of rank %d",
                             evm_dtype_name(shape->dtype), shape->rank);
    if (shape->count > EVM_MAX_RANK)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "the target shape has %zu axes; at most %d are supported",
                             shape->count, EVM_MAX_RANK);
    const reshape_params *p = node->params;
    int rank = (int)shape->count;
    int64_t req[EVM_MAX_RANK], dims[EVM_MAX_RANK];
    memcpy(req, evm_i64(shape), sizeof(int64_t) * (size_t)rank);
    if (p->batch_axis && rank >= 1 && req[0] == 1 && x->rank >= 1)
        req[0] = x->dims[0]; /* the batch the plan runs, where the file says 1 */
    st = resolve_shape(node, x, req, rank, p->allowzero, dims, err);
    if (st != EVMAP_OK)
        return st;
    out[0]->dtype = x->dtype;
    return evm_tensor_set_shape(out[0], rank, dims, err);
}

void evm_reshape_mark_batch(evm_node *node) {
    reshape_params *p = node->params;
    p->batch_axis = true;
}

const evm_op_def evm_op_reshape = {
    .name = "Reshape",
    .min_inputs = 2,
    .max_inputs = 2,
    .init = reshape_init,
    .infer = reshape_infer,
    .forward = evm_op_forward_copy,
    .grad_inputs = 1u << 0,
    .backward = evm_op_backward_copy,
    .kinks = EVM_KINKS_NONE,
};
