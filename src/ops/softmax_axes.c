/* The normalised axes of Softmax and LogSoftmax (softmax_axes.h). */
#include "softmax_axes.h"

evmap_status evm_softmax_axes_init(evm_node *node, evmap_error *err) {
    evm_softmax_axes *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    p->coerce_2d = node->opset < 13;
    return evm_attr_int(node, "axis", p->coerce_2d ? 1 : -1, &p->axis, err);
}

evmap_status evm_softmax_axes_infer(const evm_node *node, evm_tensor *const *in,
                                    evm_tensor *const *out, evmap_error *err) {
    const evm_softmax_axes *p = node->params;
    evmap_status st = evm_op_require_float(node, in, 0, err);
    if (st != EVMAP_OK)
        return st;
    /* A rank-0 input has no axis; numpy treats it as one value. */
    if (in[0]->rank > 0) {
        int axis;
        st = evm_op_axis(node, p->axis, in[0]->rank, &axis, err);
        if (st != EVMAP_OK)
            return st;
    }
    return evm_op_infer_same(node, in, out, err);
}

void evm_softmax_axes_split(const evm_softmax_axes *p, const evm_tensor *x, size_t *outer,
                            size_t *n, size_t *inner) {
    int axis = (int)(p->axis < 0 ? p->axis + x->rank : p->axis);
    *outer = *n = *inner = 1;
    for (int d = 0; d < x->rank; d++) {
        size_t s = (size_t)x->dims[d];
        if (d < axis)
            *outer *= s;
        else if (d == axis || p->coerce_2d)
            *n *= s;
        else
            *inner *= s;
    }
}
