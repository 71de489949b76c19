/*
 * PRelu: y = x for x >= 0, slope * x otherwise, element-wise on float32.
 * From opset 7 the slope (input 1) is broadcast onto x's shape (numpy rules,
 * in one direction: the output has x's shape). Before opset 7 a 1-D slope
 * of x's channel count holds one value per channel (axis 1), as PyTorch
 * exported it then; any other slope follows the numpy rules.
 * Backward: x's gradient (slope 1 where x > 0, EVM_KINKS_SIGN) and the
 * slope's (the sum of grad * x over x < 0, reduced to the slope's shape).
 */
#include <string.h>

#include "broadcast.h"

/* The slope as broadcast onto x: itself, or before opset 7 a per-channel
 * [C] turned into [C,1,...,1] (same data). */
static void slope_view(const evm_node *node, const evm_tensor *x, const evm_tensor *slope,
                       evm_tensor *view) {
    *view = *slope;
    view->owns_data = false;
    if (node->opset < 7 && slope->rank == 1 && x->rank >= 2 && slope->count > 1 &&
        slope->dims[0] == x->dims[1]) {
        view->rank = x->rank - 1;
        for (int d = 1; d < view->rank; d++)
            view->dims[d] = 1;
    }
}

static evmap_status prelu_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                evmap_error *err) {
    evmap_status st = evm_op_require_float(node, in, 0, err);
    if (st == EVMAP_OK)
        st = evm_op_require_float(node, in, 1, err);
    if (st != EVMAP_OK)
        return st;
    evm_tensor view;
    slope_view(node, in[0], in[1], &view);
    int rank, bad;
    int64_t dims[EVM_MAX_RANK];
    if (!evm_broadcast_shape(in[0]->rank, in[0]->dims, view.rank, view.dims, &rank, dims, &bad) ||
        rank != in[0]->rank || memcmp(dims, in[0]->dims, sizeof(int64_t) * (size_t)rank) != 0) {
        char sx[EVM_SHAPE_STR_SIZE], ss[EVM_SHAPE_STR_SIZE];
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "slope shape %s cannot be broadcast to the input shape %s",
                             evm_shape_str(in[1], ss, sizeof ss),
                             evm_shape_str(in[0], sx, sizeof sx));
    }
    return evm_op_infer_same(node, in, out, err);
}

static void prelu_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                          float *workspace) {
    (void)workspace;
    evm_tensor view;
    slope_view(node, in[0], in[1], &view);
    evm_broadcast_apply(EVM_BINARY_MUL, in[0], &view, out[0]); /* slope * x everywhere */
    const float *restrict x = evm_f32(in[0]);
    float *restrict y = evm_f32(out[0]);
    for (size_t i = 0; i < in[0]->count; i++)
        y[i] = x[i] < 0.0f ? y[i] : x[i]; /* NaN stays NaN */
}

static size_t prelu_backward_workspace(const evm_node *node, evm_tensor *const *in,
                                       evm_tensor *const *out) {
    (void)node;
    (void)out;
    return in[0]->count; /* x where x < 0, else 0: the slope's factor */
}

static void prelu_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                           const evm_tensor *grad_out, evm_tensor *const *grad_in,
                           float *workspace) {
    (void)out;
    evm_tensor view;
    slope_view(node, in[0], in[1], &view);
    const float *restrict x = evm_f32(in[0]), *restrict gy = evm_f32(grad_out);
    size_t n = in[0]->count;
    if (grad_in[0]) {
        evm_broadcast_apply(EVM_BINARY_MUL, grad_out, &view, grad_in[0]); /* slope * g */
        float *restrict gx = evm_f32(grad_in[0]);
        for (size_t i = 0; i < n; i++)
            gx[i] = x[i] > 0.0f ? gy[i] : gx[i];
    }
    if (grad_in[1]) {
        evm_tensor neg = *in[0];
        neg.owns_data = false;
        neg.data = workspace;
        for (size_t i = 0; i < n; i++)
            workspace[i] = x[i] < 0.0f ? x[i] : 0.0f;
        evm_tensor gs = *grad_in[1]; /* viewed with the broadcast shape (same layout) */
        gs.owns_data = false;
        gs.rank = view.rank;
        memcpy(gs.dims, view.dims, sizeof gs.dims);
        evm_broadcast_reduce(grad_out, &neg, &gs);
    }
}

const evm_op_def evm_op_prelu = {
    .name = "PRelu",
    .min_inputs = 2,
    .max_inputs = 2,
    .infer = prelu_infer,
    .forward = prelu_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0 | 1u << 1,
    .backward = prelu_backward,
    .backward_workspace = prelu_backward_workspace,
    .kinks = EVM_KINKS_SIGN,
};
