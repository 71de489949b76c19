/*
 * Slice: y = x[starts:ends:steps] along the given axes (numpy semantics).
 * Opset < 10 takes 'starts', 'ends' and optional 'axes' as attributes (step
 * 1); from opset 10 they are inputs 1..4 (starts, ends, axes?, steps?), which
 * must be int64 constants since they decide the output's shape. Negative
 * starts/ends count from the end and are clamped into range (to [0, dim] for
 * positive steps, [-1, dim - 1] for negative ones), so out-of-range values
 * are allowed; repeated axes and zero steps are errors. Any dtype is copied;
 * float data gets a backward (slices of images).
 */
#include <string.h>

#include "strided.h"

typedef struct slice_params {
    bool attr_form; /* opset < 10 */
    const int64_t *starts, *ends, *axes;
    size_t n_starts, n_ends, n_axes;
} slice_params;

static evmap_status slice_init(evm_node *node, evmap_error *err) {
    slice_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    p->attr_form = node->opset < 10;
    if (!p->attr_form)
        return EVMAP_OK; /* attributes left unread are refused as unknown */
    evmap_status st = evm_attr_ints(node, "starts", &p->starts, &p->n_starts, err);
    if (st == EVMAP_OK)
        st = evm_attr_ints(node, "ends", &p->ends, &p->n_ends, err);
    if (st == EVMAP_OK)
        st = evm_attr_ints(node, "axes", &p->axes, &p->n_axes, err);
    if (st == EVMAP_OK && !evm_node_attr(node, "starts"))
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "attribute 'starts' is required");
    if (st == EVMAP_OK && !evm_node_attr(node, "ends"))
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "attribute 'ends' is required");
    return st;
}

/* The resolved slice: per axis of x, first index, step and output size. */
typedef struct slice_view {
    int64_t start[EVM_MAX_RANK], step[EVM_MAX_RANK], dims[EVM_MAX_RANK];
} slice_view;

/* Works out the view; every check lives here, so forward and backward can
 * call it with err == NULL on shapes infer accepted. */
static evmap_status resolve(const evm_node *node, evm_tensor *const *in, slice_view *v,
                            evmap_error *err) {
    const slice_params *p = node->params;
    const evm_tensor *x = in[0];
    const int64_t *starts = p->starts, *ends = p->ends, *axes = p->axes, *steps = NULL;
    size_t n = p->n_starts, n_ends = p->n_ends, n_axes = p->n_axes, n_steps = 0;
    evmap_status st = EVMAP_OK;
    if (!p->attr_form) {
        if (node->n_inputs < 3)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "needs inputs 'starts' and 'ends' (opset %d)", node->opset);
        st = evm_op_const_ints(node, in, 1, "starts", &starts, &n, err);
        if (st == EVMAP_OK)
            st = evm_op_const_ints(node, in, 2, "ends", &ends, &n_ends, err);
        if (st == EVMAP_OK && node->n_inputs > 3 && in[3])
            st = evm_op_const_ints(node, in, 3, "axes", &axes, &n_axes, err);
        else
            n_axes = 0, axes = NULL;
        if (st == EVMAP_OK && node->n_inputs > 4 && in[4])
            st = evm_op_const_ints(node, in, 4, "steps", &steps, &n_steps, err);
        if (st != EVMAP_OK)
            return st;
    }
    bool has_axes = p->attr_form ? evm_node_attr(node, "axes") != NULL : axes != NULL;
    if (n_ends != n || (has_axes && n_axes != n) || (steps && n_steps != n))
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "starts, ends, axes and steps must have the same length (%zu, %zu, "
                             "%zu, %zu)",
                             n, n_ends, has_axes ? n_axes : n, steps ? n_steps : n);
    if (n > (size_t)x->rank)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "slices %zu axes of an input of rank %d", n, x->rank);
    bool seen[EVM_MAX_RANK] = {false};
    for (int d = 0; d < x->rank; d++) {
        v->start[d] = 0;
        v->step[d] = 1;
        v->dims[d] = x->dims[d];
    }
    for (size_t i = 0; i < n; i++) {
        int axis = (int)i;
        if (has_axes && (st = evm_op_axis(node, axes[i], x->rank, &axis, err)) != EVMAP_OK)
            return st;
        if (seen[axis])
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "axis %d is sliced twice", axis);
        seen[axis] = true;
        int64_t step = steps ? steps[i] : 1, dim = x->dims[axis];
        if (step == 0)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "step %zu is 0", i);
        int64_t s = starts[i], e = ends[i];
        if (s < 0)
            s += dim; /* no overflow: s < 0 < dim */
        if (e < 0)
            e += dim;
        int64_t count;
        if (step > 0) {
            s = s < 0 ? 0 : s > dim ? dim : s;
            e = e < 0 ? 0 : e > dim ? dim : e;
            count = e > s ? (e - s - 1) / step + 1 : 0;
        } else {
            s = s < 0 ? 0 : s > dim - 1 ? dim - 1 : s;
            e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
            /* -INT64_MIN would overflow; that step takes at most one element */
            count = s <= e ? 0 : step == INT64_MIN ? 1 : (s - e - 1) / -step + 1;
        }
        v->start[axis] = count ? s : 0;
        v->step[axis] = step;
        v->dims[axis] = count;
    }
    return EVMAP_OK;
}

static evmap_status slice_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                evmap_error *err) {
    const slice_params *p = node->params;
    if (evm_dtype_size(in[0]->dtype) == 0)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED, "input 0 has data type %s",
                             evm_dtype_name(in[0]->dtype));
    if (p->attr_form && node->n_inputs > 1)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "has %d inputs; before opset 10 starts and ends are attributes",
                             node->n_inputs);
    slice_view v;
    evmap_status st = resolve(node, in, &v, err);
    if (st != EVMAP_OK)
        return st;
    out[0]->dtype = in[0]->dtype;
    return evm_tensor_set_shape(out[0], in[0]->rank, v.dims, err);
}

/* Offset of the first element and the strides of the view into x. */
static int64_t view_strides(const evm_node *node, evm_tensor *const *in, int64_t *strides) {
    slice_view v;
    resolve(node, in, &v, NULL); /* accepted by infer */
    const evm_tensor *x = in[0];
    int64_t base = 0, s = 1;
    for (int d = x->rank - 1; d >= 0; d--) {
        base += v.start[d] * s;
        strides[d] = v.step[d] * s;
        s *= x->dims[d];
    }
    return base;
}

static void slice_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                          float *workspace) {
    (void)workspace;
    const evm_tensor *y = out[0];
    if (y->count == 0)
        return;
    int64_t strides[EVM_MAX_RANK];
    int64_t base = view_strides(node, in, strides);
    size_t elem = evm_dtype_size(y->dtype);
    const char *src = in[0]->data;
    char *dst = y->data;
    for (size_t i = 0; i < y->count; i++)
        memcpy(dst + i * elem,
               src + (base + evm_strided_offset(i, y->rank, y->dims, strides)) * (int64_t)elem,
               elem);
}

/* Scatter: every output element came from one distinct input element; the
 * rest of x gets 0. */
static void slice_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                           const evm_tensor *grad_out, evm_tensor *const *grad_in,
                           float *workspace) {
    (void)workspace;
    float *gx = evm_f32(grad_in[0]);
    if (in[0]->count)
        memset(gx, 0, in[0]->count * sizeof(float));
    const evm_tensor *y = out[0];
    if (y->count == 0)
        return;
    int64_t strides[EVM_MAX_RANK];
    int64_t base = view_strides(node, in, strides);
    const float *g = evm_f32(grad_out);
    for (size_t i = 0; i < y->count; i++)
        gx[base + evm_strided_offset(i, y->rank, y->dims, strides)] = g[i];
}

const evm_op_def evm_op_slice = {
    .name = "Slice",
    .min_inputs = 1,
    .max_inputs = 5,
    .init = slice_init,
    .infer = slice_infer,
    .forward = slice_forward,
    .grad_inputs = 1u << 0,
    .backward = slice_backward,
    .kinks = EVM_KINKS_NONE,
};
