/*
 * Split: cuts x along 'axis' (default 0) into consecutive pieces, one per
 * output. The piece sizes come from the 'split' attribute (opset < 13) or
 * the optional int64 constant input 1 (opset 13 on); without them the axis
 * is cut into equal parts, one per output, or from opset 18 into
 * 'num_outputs' parts of ceil(dim / num_outputs), the last one smaller. Any
 * dtype is copied; float data gets a backward through every output.
 */
#include <string.h>

#include "strided.h"

typedef struct split_params {
    int64_t axis;
    const int64_t *split; /* the attribute form */
    size_t n_split;
    bool has_split_attr;
    int64_t num_outputs; /* 0: not given */
} split_params;

static evmap_status split_init(evm_node *node, evmap_error *err) {
    split_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    evmap_status st = evm_attr_int(node, "axis", 0, &p->axis, err);
    if (st == EVMAP_OK && node->opset < 13) {
        p->has_split_attr = evm_node_attr(node, "split") != NULL;
        st = evm_attr_ints(node, "split", &p->split, &p->n_split, err);
    }
    if (st == EVMAP_OK && node->opset >= 18) {
        st = evm_attr_int(node, "num_outputs", 0, &p->num_outputs, err);
        if (st == EVMAP_OK && evm_node_attr(node, "num_outputs") &&
            (p->num_outputs < 1 || p->num_outputs != node->n_outputs))
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "num_outputs is %lld but the node has %d outputs",
                                 (long long)p->num_outputs, node->n_outputs);
    }
    return st;
}

/* Piece sizes into sizes[n_outputs]; the checks shared by infer, forward and
 * backward (which pass err == NULL after infer accepted). */
static evmap_status piece_sizes(const evm_node *node, evm_tensor *const *in, int axis,
                                int64_t *sizes, evmap_error *err) {
    const split_params *p = node->params;
    int n_out = node->n_outputs;
    int64_t dim = in[0]->dims[axis];
    const int64_t *split = p->split;
    size_t n_split = p->n_split;
    bool given = p->has_split_attr;
    if (node->opset >= 13 && node->n_inputs > 1 && in[1]) {
        evmap_status st = evm_op_const_ints(node, in, 1, "split", &split, &n_split, err);
        if (st != EVMAP_OK)
            return st;
        given = true;
    }
    if (given) {
        if (n_split != (size_t)n_out)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "'split' has %zu sizes for %d outputs", n_split, n_out);
        int64_t sum = 0;
        for (int j = 0; j < n_out; j++) {
            if (split[j] < 0 || split[j] > dim - sum)
                return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                     "the split sizes do not add up to the axis size %lld",
                                     (long long)dim);
            sizes[j] = split[j];
            sum += split[j];
        }
        if (sum != dim)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "the split sizes add up to %lld, not the axis size %lld",
                                 (long long)sum, (long long)dim);
        return EVMAP_OK;
    }
    if (p->num_outputs > 0) {
        int64_t piece = (dim + n_out - 1) / n_out, left = dim;
        for (int j = 0; j < n_out; j++) {
            sizes[j] = piece < left ? piece : left;
            left -= sizes[j];
        }
        return EVMAP_OK;
    }
    if (dim % n_out)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "an axis of size %lld cannot be split into %d equal parts",
                             (long long)dim, n_out);
    for (int j = 0; j < n_out; j++)
        sizes[j] = dim / n_out;
    return EVMAP_OK;
}

#define MAX_PIECES 4096

static evmap_status split_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                evmap_error *err) {
    const split_params *p = node->params;
    const evm_tensor *x = in[0];
    if (evm_dtype_size(x->dtype) == 0)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED, "input 0 has data type %s",
                             evm_dtype_name(x->dtype));
    if (node->opset < 13 && node->n_inputs > 1)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "has %d inputs; before opset 13 'split' is an attribute",
                             node->n_inputs);
    if (node->n_outputs > MAX_PIECES)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED, "has %d outputs; at most %d",
                             node->n_outputs, MAX_PIECES);
    int axis;
    evmap_status st = evm_op_axis(node, p->axis, x->rank, &axis, err);
    if (st != EVMAP_OK)
        return st;
    int64_t sizes[MAX_PIECES];
    if ((st = piece_sizes(node, in, axis, sizes, err)) != EVMAP_OK)
        return st;
    for (int j = 0; j < node->n_outputs && st == EVMAP_OK; j++) {
        int64_t dims[EVM_MAX_RANK];
        memcpy(dims, x->dims, sizeof dims);
        dims[axis] = sizes[j];
        out[j]->dtype = x->dtype;
        st = evm_tensor_set_shape(out[j], x->rank, dims, err);
    }
    return st;
}

/* Bytes per step along the axis (inner), and the number of outer blocks. */
static void layout(const evm_node *node, const evm_tensor *x, size_t elem, int *axis, size_t *outer,
                   size_t *inner) {
    int64_t a = ((const split_params *)node->params)->axis;
    *axis = (int)(a < 0 ? a + x->rank : a);
    *outer = 1;
    *inner = elem;
    for (int d = 0; d < *axis; d++)
        *outer *= (size_t)x->dims[d];
    for (int d = *axis + 1; d < x->rank; d++)
        *inner *= (size_t)x->dims[d];
}

static void split_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                          float *workspace) {
    (void)workspace;
    const evm_tensor *x = in[0];
    int axis;
    size_t outer, inner;
    layout(node, x, evm_dtype_size(x->dtype), &axis, &outer, &inner);
    size_t row = (size_t)x->dims[axis] * inner, at = 0; /* at: bytes into a row */
    for (int j = 0; j < node->n_outputs; j++) {
        size_t piece = (size_t)out[j]->dims[axis] * inner;
        for (size_t o = 0; piece && o < outer; o++)
            memcpy((char *)out[j]->data + o * piece, (const char *)x->data + o * row + at, piece);
        at += piece;
    }
}

/* Each output's gradient goes back to its piece; pieces of outputs no
 * gradient flows into get 0. */
static void split_backward_outputs(const evm_node *node, evm_tensor *const *in,
                                   evm_tensor *const *out, const evm_tensor *const *grad_outs,
                                   evm_tensor *const *grad_in, float *workspace) {
    (void)workspace;
    const evm_tensor *x = in[0];
    int axis;
    size_t outer, inner;
    layout(node, x, sizeof(float), &axis, &outer, &inner);
    size_t row = (size_t)x->dims[axis] * inner, at = 0;
    char *gx = grad_in[0]->data;
    for (int j = 0; j < node->n_outputs; j++) {
        size_t piece = (size_t)out[j]->dims[axis] * inner;
        for (size_t o = 0; piece && o < outer; o++) {
            if (grad_outs[j])
                memcpy(gx + o * row + at, (const char *)grad_outs[j]->data + o * piece, piece);
            else
                memset(gx + o * row + at, 0, piece);
        }
        at += piece;
    }
}

static void split_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                           const evm_tensor *grad_out, evm_tensor *const *grad_in,
                           float *workspace) {
    const evm_tensor *g[MAX_PIECES] = {grad_out};
    split_backward_outputs(node, in, out, g, grad_in, workspace);
}

const evm_op_def evm_op_split = {
    .name = "Split",
    .min_inputs = 1,
    .max_inputs = 2,
    .init = split_init,
    .infer = split_infer,
    .forward = split_forward,
    .grad_inputs = 1u << 0,
    .backward = split_backward,
    .backward_outputs = split_backward_outputs,
    .kinks = EVM_KINKS_NONE,
};
