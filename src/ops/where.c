/*
 * Where: y = condition ? x : y2, element-wise with numpy broadcasting of all
 * three inputs. condition is bool; x and y2 share a dtype (float32, int64 or
 * bool). Float x and y2 get a backward: the gradient goes to the input each
 * element was taken from (summed over broadcast axes). The condition is
 * discrete and gets none; the forward's choice is the backward's, so the op
 * has no kink of its own.
 */
#include <string.h>

#include "strided.h"

static evmap_status where_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                evmap_error *err) {
    for (int i = 0; i < 3; i++)
        if (!in[i])
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "input %d is missing", i);
    if (in[0]->dtype != EVM_DTYPE_BOOL)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "input 0 (condition) has data type %s; it must be bool",
                             evm_dtype_name(in[0]->dtype));
    if (evm_dtype_size(in[1]->dtype) == 0 || in[1]->dtype != in[2]->dtype)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "inputs 1 and 2 have data types %s and %s; they must be the same",
                             evm_dtype_name(in[1]->dtype), evm_dtype_name(in[2]->dtype));
    int rank;
    int64_t dims[EVM_MAX_RANK];
    evmap_status st = evm_op_broadcast_all(node, in, 3, &rank, dims, err);
    if (st != EVMAP_OK)
        return st;
    out[0]->dtype = in[1]->dtype;
    return evm_tensor_set_shape(out[0], rank, dims, err);
}

static void where_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                          float *workspace) {
    (void)node;
    (void)workspace;
    const evm_tensor *y = out[0];
    int64_t s[3][EVM_MAX_RANK];
    for (int k = 0; k < 3; k++)
        evm_broadcast_strides(in[k], y->rank, y->dims, s[k]);
    size_t elem = evm_dtype_size(y->dtype);
    const uint8_t *c = evm_bool(in[0]);
    for (size_t i = 0; i < y->count; i++) {
        int k = c[evm_strided_offset(i, y->rank, y->dims, s[0])] ? 1 : 2;
        int64_t off = evm_strided_offset(i, y->rank, y->dims, s[k]);
        memcpy((char *)y->data + i * elem, (const char *)in[k]->data + (size_t)off * elem, elem);
    }
}

static void where_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                           const evm_tensor *grad_out, evm_tensor *const *grad_in,
                           float *workspace) {
    (void)node;
    (void)workspace;
    const evm_tensor *y = out[0];
    int64_t s[3][EVM_MAX_RANK];
    for (int k = 0; k < 3; k++) {
        evm_broadcast_strides(in[k], y->rank, y->dims, s[k]);
        if (k && grad_in[k] && in[k]->count)
            memset(grad_in[k]->data, 0, in[k]->count * sizeof(float));
    }
    const uint8_t *c = evm_bool(in[0]);
    const float *g = evm_f32(grad_out);
    for (size_t i = 0; i < y->count; i++) {
        int k = c[evm_strided_offset(i, y->rank, y->dims, s[0])] ? 1 : 2;
        if (grad_in[k])
            evm_f32(grad_in[k])[evm_strided_offset(i, y->rank, y->dims, s[k])] += g[i];
    }
}

const evm_op_def evm_op_where = {
    .name = "Where",
    .min_inputs = 3,
    .max_inputs = 3,
    .infer = where_infer,
    .forward = where_forward,
    .grad_inputs = 1u << 1 | 1u << 2,
    .backward = where_backward,
    .kinks = EVM_KINKS_NONE,
};
