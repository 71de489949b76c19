/* Axes, shapes and layout shared by the Reduce* operators (reduce.h). */
#include "reduce.h"

#include <string.h>

typedef struct reduce_params {
    bool axes_are_input; /* opset >= the op's axes_input_opset */
    bool keepdims;
    bool noop_with_empty_axes;  /* input form only */
    int n_axes;                 /* attribute form; 0: every axis */
    int64_t axes[EVM_MAX_RANK]; /* attribute form */
} reduce_params;

evmap_status evm_reduce_init(evm_node *node, int axes_input_opset, evmap_error *err) {
    reduce_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    int64_t keepdims;
    evmap_status st = evm_attr_int(node, "keepdims", 1, &keepdims, err);
    if (st != EVMAP_OK)
        return st;
    if (keepdims != 0 && keepdims != 1)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "attribute 'keepdims' is %lld; it must be 0 or 1",
                             (long long)keepdims);
    p->keepdims = keepdims == 1;
    p->axes_are_input = node->opset >= axes_input_opset;
    if (p->axes_are_input) {
        if (evm_node_attr(node, "axes"))
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "attribute 'axes' is not valid from opset %d on (opset %d); the "
                                 "axes are input 1",
                                 axes_input_opset, node->opset);
        int64_t noop;
        st = evm_attr_int(node, "noop_with_empty_axes", 0, &noop, err);
        if (st != EVMAP_OK)
            return st;
        if (noop != 0 && noop != 1)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "attribute 'noop_with_empty_axes' is %lld; it must be 0 or 1",
                                 (long long)noop);
        p->noop_with_empty_axes = noop == 1;
        return EVMAP_OK;
    }
    const int64_t *axes;
    size_t n;
    st = evm_attr_ints(node, "axes", &axes, &n, err);
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

/* The axes as given: *n = 0 when none or empty. */
static evmap_status get_axes(const evm_node *node, evm_tensor *const *in, const int64_t **axes,
                             size_t *n, evmap_error *err) {
    const reduce_params *p = node->params;
    *axes = p->axes;
    *n = (size_t)p->n_axes;
    if (!p->axes_are_input) {
        if (node->n_inputs > 1)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "has %d inputs; before opset %d axes are an attribute",
                                 node->n_inputs, node->kind == EVM_OP_REDUCE_SUM ? 13 : 18);
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

/* Which axes of x are reduced; *noop when none is and the op is the identity. */
static evmap_status reduced_axes(const evm_node *node, evm_tensor *const *in, bool *reduced,
                                 bool *noop, evmap_error *err) {
    const reduce_params *p = node->params;
    const int64_t *axes;
    size_t n;
    evmap_status st = get_axes(node, in, &axes, &n, err);
    if (st != EVMAP_OK)
        return st;
    int rank = in[0]->rank;
    *noop = n == 0 && p->noop_with_empty_axes;
    for (int d = 0; d < rank; d++)
        reduced[d] = n == 0 && !*noop;
    if (n > (size_t)rank)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "has %zu axes for an input of rank %d",
                             n, rank);
    for (size_t i = 0; i < n; i++) {
        int a;
        st = evm_op_axis(node, axes[i], rank, &a, err);
        if (st != EVMAP_OK)
            return st;
        if (reduced[a])
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "axis %d is given twice (value %lld)", a, (long long)axes[i]);
        reduced[a] = true;
    }
    return EVMAP_OK;
}

evmap_status evm_reduce_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              evmap_error *err) {
    evmap_status st = evm_op_require_float(node, in, 0, err);
    if (st != EVMAP_OK)
        return st;
    bool reduced[EVM_MAX_RANK], noop;
    st = reduced_axes(node, in, reduced, &noop, err);
    if (st != EVMAP_OK)
        return st;
    const evm_tensor *x = in[0];
    bool keepdims = ((const reduce_params *)node->params)->keepdims;
    int64_t dims[EVM_MAX_RANK];
    int rank = 0;
    for (int d = 0; d < x->rank; d++) {
        if (!reduced[d])
            dims[rank++] = x->dims[d];
        else if (keepdims)
            dims[rank++] = 1;
    }
    out[0]->dtype = EVM_DTYPE_FLOAT;
    return evm_tensor_set_shape(out[0], rank, dims, err);
}

/* Appends an axis of size n and stride s to ix, merged with the last one
 * when that one steps over exactly this axis (neighbours of one kind). */
static void push_axis(evm_reduce_axes_ix *ix, int64_t n, int64_t s) {
    if (n == 1)
        return;
    if (ix->n > 0 && ix->strides[ix->n - 1] == s * n) {
        ix->dims[ix->n - 1] *= n;
        ix->strides[ix->n - 1] = s;
        return;
    }
    ix->dims[ix->n] = n;
    ix->strides[ix->n] = s;
    ix->n++;
}

void evm_reduce_layout_make(const evm_node *node, evm_tensor *const *in, evm_reduce_layout *l) {
    bool reduced[EVM_MAX_RANK];
    (void)reduced_axes(node, in, reduced, &l->noop, NULL); /* checked by infer */
    const evm_tensor *x = in[0];
    int64_t strides[EVM_MAX_RANK], s = 1;
    for (int d = x->rank - 1; d >= 0; d--) {
        strides[d] = s;
        s *= x->dims[d];
    }
    l->outer.n = l->inner.n = 0;
    l->outer_count = l->inner_count = 1;
    for (int d = 0; d < x->rank; d++) {
        evm_reduce_axes_ix *ix = reduced[d] ? &l->inner : &l->outer;
        push_axis(ix, x->dims[d], strides[d]);
        if (reduced[d])
            l->inner_count *= (size_t)x->dims[d];
        else
            l->outer_count *= (size_t)x->dims[d];
    }
}

void evm_reduce_sum_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                            bool mean) {
    evm_reduce_layout l;
    evm_reduce_layout_make(node, in, &l);
    const float *x = evm_f32(in[0]);
    float *y = evm_f32(out[0]);
    int64_t oi[EVM_MAX_RANK] = {0}, base = 0;
    for (size_t o = 0; o < l.outer_count; o++) {
        int64_t ii[EVM_MAX_RANK] = {0}, off = 0;
        double acc = 0;
        for (size_t k = 0; k < l.inner_count; k++) {
            acc += x[base + off];
            off = evm_reduce_next(&l.inner, ii, off);
        }
        /* the mean of nothing: 0 / 0, NaN */
        y[o] = (float)(mean ? acc / (double)l.inner_count : acc);
        base = evm_reduce_next(&l.outer, oi, base);
    }
}

void evm_reduce_sum_backward(const evm_node *node, evm_tensor *const *in,
                             const evm_tensor *grad_out, evm_tensor *const *grad_in, bool mean) {
    evm_reduce_layout l;
    evm_reduce_layout_make(node, in, &l);
    const float *gy = evm_f32(grad_out);
    float *gx = evm_f32(grad_in[0]);
    int64_t oi[EVM_MAX_RANK] = {0}, base = 0;
    for (size_t o = 0; o < l.outer_count; o++) {
        int64_t ii[EVM_MAX_RANK] = {0}, off = 0;
        const float g = mean ? (float)(gy[o] / (double)l.inner_count) : gy[o];
        for (size_t k = 0; k < l.inner_count; k++) {
            gx[base + off] = g;
            off = evm_reduce_next(&l.inner, ii, off);
        }
        base = evm_reduce_next(&l.outer, oi, base);
    }
}

size_t evm_reduce_group_workspace(const evm_node *node, evm_tensor *const *in,
                                  evm_tensor *const *out) {
    (void)out;
    evm_reduce_layout l;
    evm_reduce_layout_make(node, in, &l);
    return 2 * l.inner_count;
}

/* Copies output o's group (base: its first element) into v. */
static void gather_group(const evm_reduce_layout *l, const float *x, int64_t base, float *v) {
    int64_t ii[EVM_MAX_RANK] = {0}, off = 0;
    for (size_t k = 0; k < l->inner_count; k++) {
        v[k] = x[base + off];
        off = evm_reduce_next(&l->inner, ii, off);
    }
}

void evm_reduce_group_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              float *workspace, evm_reduce_value_fn value) {
    evm_reduce_layout l;
    evm_reduce_layout_make(node, in, &l);
    if (l.noop) {
        evm_op_forward_copy(node, in, out, workspace);
        return;
    }
    const float *x = evm_f32(in[0]);
    float *y = evm_f32(out[0]);
    int64_t oi[EVM_MAX_RANK] = {0}, base = 0;
    for (size_t o = 0; o < l.outer_count; o++) {
        gather_group(&l, x, base, workspace);
        y[o] = value(workspace, l.inner_count);
        base = evm_reduce_next(&l.outer, oi, base);
    }
}

void evm_reduce_group_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               const evm_tensor *grad_out, evm_tensor *const *grad_in,
                               float *workspace, evm_reduce_slope_fn slope) {
    evm_reduce_layout l;
    evm_reduce_layout_make(node, in, &l);
    if (l.noop) {
        evm_op_backward_copy(node, in, out, grad_out, grad_in, workspace);
        return;
    }
    if (l.inner_count == 0)
        return; /* the input is empty: no gradient to write */
    const float *x = evm_f32(in[0]), *gy = evm_f32(grad_out);
    float *gx = evm_f32(grad_in[0]);
    float *v = workspace, *gv = workspace + l.inner_count;
    int64_t oi[EVM_MAX_RANK] = {0}, base = 0;
    for (size_t o = 0; o < l.outer_count; o++) {
        gather_group(&l, x, base, v);
        slope(v, l.inner_count, gy[o], gv);
        int64_t ii[EVM_MAX_RANK] = {0}, off = 0;
        for (size_t k = 0; k < l.inner_count; k++) {
            gx[base + off] = gv[k];
            off = evm_reduce_next(&l.inner, ii, off);
        }
        base = evm_reduce_next(&l.outer, oi, base);
    }
}
