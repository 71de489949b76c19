/*
 * ConstantOfShape: a tensor of the shape given by input 0 (a 1-D int64
 * constant; empty gives a scalar) filled with 'value', a one-element tensor
 * attribute (float32, int64 or bool; default float32 0).
 */
#include <string.h>

#include "strided.h"

typedef struct cos_params {
    evm_dtype dtype;
    unsigned char value[8];
} cos_params;

static evmap_status cos_init(evm_node *node, evmap_error *err) {
    cos_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    p->dtype = EVM_DTYPE_FLOAT; /* value 0.0f: the zeroed bytes */
    const evm_attr *a = evm_node_attr(node, "value");
    if (!a)
        return EVMAP_OK;
    if (a->type != EVM_ATTR_TENSOR)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "attribute 'value' is not a tensor");
    if (a->t.count != 1)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "attribute 'value' has %zu elements; it must have one", a->t.count);
    p->dtype = a->t.dtype;
    memcpy(p->value, a->t.data, evm_dtype_size(a->t.dtype));
    return EVMAP_OK;
}

static evmap_status cos_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              evmap_error *err) {
    const int64_t *shape;
    size_t n;
    evmap_status st = evm_op_const_ints(node, in, 0, "shape", &shape, &n, err);
    if (st != EVMAP_OK)
        return st;
    if (n > EVM_MAX_RANK)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "the shape has %zu axes; at most %d are supported", n, EVM_MAX_RANK);
    out[0]->dtype = ((const cos_params *)node->params)->dtype;
    st = evm_tensor_set_shape(out[0], (int)n, shape, err);
    if (st != EVMAP_OK)
        evm_error_prefix(err, "node '%s' (ConstantOfShape)", node->name);
    return st;
}

static void cos_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace) {
    (void)in;
    (void)workspace;
    const cos_params *p = node->params;
    size_t elem = evm_dtype_size(p->dtype);
    for (size_t i = 0; i < out[0]->count; i++)
        memcpy((char *)out[0]->data + i * elem, p->value, elem);
}

const evm_op_def evm_op_constant_of_shape = {
    .name = "ConstantOfShape",
    .min_inputs = 1,
    .max_inputs = 1,
    .init = cos_init,
    .infer = cos_infer,
    .forward = cos_forward,
};
