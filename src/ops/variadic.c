/* Shapes, forward and backward shared by Sum, Mean, Max and Min. */
#include "variadic.h"

#include <string.h>

evmap_status evm_variadic_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                bool allow_int64, evmap_error *err) {
    int n = node->n_inputs, rank = 0;
    int64_t dims[EVM_MAX_RANK];
    if (n < 1)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "needs at least one input");
    for (int j = 0; j < n; j++) {
        if (!in[j])
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "input %d is missing", j);
        bool ok =
            in[j]->dtype == EVM_DTYPE_FLOAT || (allow_int64 && in[j]->dtype == EVM_DTYPE_INT64);
        if (!ok)
            return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                                 "input %d has data type %s; only float32%s is supported", j,
                                 evm_dtype_name(in[j]->dtype), allow_int64 ? " and int64" : "");
        if (in[j]->dtype != in[0]->dtype)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "inputs 0 and %d have different data types (%s and %s)", j,
                                 evm_dtype_name(in[0]->dtype), evm_dtype_name(in[j]->dtype));
        char s0[EVM_SHAPE_STR_SIZE], sj[EVM_SHAPE_STR_SIZE];
        if (node->opset < 8 && !evm_same_shape(in[0], in[j]))
            return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                                 "input shapes %s and %s differ, which opset %d does not allow "
                                 "(broadcasting from opset 8 on)",
                                 evm_shape_str(in[0], s0, sizeof s0),
                                 evm_shape_str(in[j], sj, sizeof sj), node->opset);
        int bad;
        if (j == 0) {
            rank = in[0]->rank;
            memcpy(dims, in[0]->dims, sizeof(int64_t) * (size_t)rank);
        } else if (!evm_broadcast_shape(rank, dims, in[j]->rank, in[j]->dims, &rank, dims, &bad)) {
            return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                                 "input %d's shape %s cannot be broadcast with inputs 0..%d "
                                 "(output axis %d)",
                                 j, evm_shape_str(in[j], sj, sizeof sj), j - 1, bad);
        }
    }
    out[0]->dtype = in[0]->dtype;
    return evm_tensor_set_shape(out[0], rank, dims, err);
}

void evm_variadic_forward(const evm_node *node, const evm_row_kernels *k, evm_tensor *const *in,
                          evm_tensor *const *out) {
    int n = node->n_inputs;
    evm_tensor *y = out[0];
    if (n == 1) {
        if (y->count)
            memcpy(y->data, in[0]->data, y->count * evm_dtype_size(y->dtype));
        return;
    }
    evm_broadcast_rows(k, in[0], in[1], y);
    for (int j = 2; j < n; j++)
        evm_broadcast_rows(k, y, in[j], y); /* in place: the kernels allow y == a */
}

void evm_variadic_backward_sum(const evm_node *node, float scale, evm_tensor *const *in,
                               const evm_tensor *grad_out, evm_tensor *const *grad_in) {
    (void)in;
    const evm_tensor s = {.dtype = EVM_DTYPE_FLOAT, .count = 1, .data = &scale};
    for (int j = 0; j < node->n_inputs; j++)
        if (grad_in[j])
            evm_broadcast_reduce(grad_out, scale == 1.0f ? NULL : &s, grad_in[j]);
}

size_t evm_variadic_select_workspace(const evm_node *node, evm_tensor *const *in,
                                     evm_tensor *const *out) {
    (void)node;
    (void)in;
    return 2 * out[0]->count;
}

#define EQ(x, y) ((x) == (y) ? 1.0f : 0.0f)
EVM_DEFINE_ROW_KERNELS(equal_f32, float, float, float, EQ)

void evm_variadic_backward_select(const evm_node *node, evm_tensor *const *in,
                                  evm_tensor *const *out, const evm_tensor *grad_out,
                                  evm_tensor *const *grad_in, float *workspace) {
    size_t count = grad_out->count;
    float *taken = workspace, *win = workspace + count; /* 1 where input j gets it */
    evm_tensor w = *grad_out;
    w.owns_data = false;
    w.data = win;
    if (count)
        memset(taken, 0, count * sizeof(float));
    for (int j = 0; j < node->n_inputs; j++) {
        evm_broadcast_rows(&equal_f32, in[j], out[0], &w);
        for (size_t i = 0; i < count; i++) {
            float v = win[i] * (1.0f - taken[i]); /* not to a later input once taken */
            win[i] = v;
            taken[i] += v;
        }
        if (grad_in[j])
            evm_broadcast_reduce(grad_out, &w, grad_in[j]);
    }
}
