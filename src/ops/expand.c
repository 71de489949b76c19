/*
 * Expand: broadcasts x (numpy rules, in both directions) against the shape
 * given by input 1, an int64 constant; y has the broadcast shape. Any dtype
 * is copied; float data gets a backward (the sum over the broadcast axes).
 */
#include <string.h>

#include "broadcast.h"
#include "strided.h"

static evmap_status expand_infer(const evm_node *node, evm_tensor *const *in,
                                 evm_tensor *const *out, evmap_error *err) {
    const evm_tensor *x = in[0];
    if (evm_dtype_size(x->dtype) == 0)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED, "input 0 has data type %s",
                             evm_dtype_name(x->dtype));
    const int64_t *shape;
    size_t n;
    evmap_status st = evm_op_const_ints(node, in, 1, "shape", &shape, &n, err);
    if (st != EVMAP_OK)
        return st;
    if (n > EVM_MAX_RANK)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "the shape has %zu axes; at most %d are supported", n, EVM_MAX_RANK);
    for (size_t i = 0; i < n; i++)
        if (shape[i] < 0)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "the shape has a negative size");
    int rank, bad;
    int64_t dims[EVM_MAX_RANK];
    if (!evm_broadcast_shape(x->rank, x->dims, (int)n, shape, &rank, dims, &bad)) {
        char s[EVM_SHAPE_STR_SIZE];
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "input 0's shape %s cannot be expanded to the given shape (output "
                             "axis %d)",
                             evm_shape_str(x, s, sizeof s), bad);
    }
    out[0]->dtype = x->dtype;
    return evm_tensor_set_shape(out[0], rank, dims, err);
}

static void expand_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                           float *workspace) {
    (void)node;
    (void)workspace;
    const evm_tensor *x = in[0], *y = out[0];
    int64_t strides[EVM_MAX_RANK];
    evm_broadcast_strides(x, y->rank, y->dims, strides);
    size_t elem = evm_dtype_size(x->dtype);
    for (size_t i = 0; i < y->count; i++)
        memcpy((char *)y->data + i * elem,
               (const char *)x->data +
                   (size_t)evm_strided_offset(i, y->rank, y->dims, strides) * elem,
               elem);
}

static void expand_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                            const evm_tensor *grad_out, evm_tensor *const *grad_in,
                            float *workspace) {
    (void)node;
    (void)workspace;
    const evm_tensor *x = in[0], *y = out[0];
    float *gx = evm_f32(grad_in[0]);
    if (x->count)
        memset(gx, 0, x->count * sizeof(float));
    int64_t strides[EVM_MAX_RANK];
    evm_broadcast_strides(x, y->rank, y->dims, strides);
    const float *g = evm_f32(grad_out);
    for (size_t i = 0; i < y->count; i++)
        gx[evm_strided_offset(i, y->rank, y->dims, strides)] += g[i];
}

const evm_op_def evm_op_expand = {
    .name = "Expand",
    .min_inputs = 2,
    .max_inputs = 2,
    .infer = expand_infer,
    .forward = expand_forward,
    .grad_inputs = 1u << 0,
    .backward = expand_backward,
    .kinks = EVM_KINKS_NONE,
};
