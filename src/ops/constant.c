/*
 * Constant: no inputs; the output is the node's single value attribute:
 * 'value' (a tensor, float32 or int64), 'value_float' / 'value_int' (scalars)
 * or 'value_floats' / 'value_ints' (1-D). Sparse and string values are not
 * supported. Having no inputs, it is evaluated once when the plan is made.
 * The attribute is looked up again in infer and forward (a few string
 * compares) rather than kept as a pointer, so params stay trivially safe.
 */
#include <string.h>

#include "op.h"

static const char *const value_attrs[] = {"value",        "value_float",  "value_floats",
                                          "value_int",    "value_ints",   "sparse_value",
                                          "value_string", "value_strings"};
enum { N_VALUE_ATTRS = sizeof value_attrs / sizeof value_attrs[0] };

/* The one value attribute (init checked there is exactly one). */
static const evm_attr *value_attr(const evm_node *node) {
    for (int i = 0; i < N_VALUE_ATTRS; i++) {
        const evm_attr *a = evm_node_attr(node, value_attrs[i]);
        if (a)
            return a;
    }
    return NULL;
}

static evmap_status constant_init(evm_node *node, evmap_error *err) {
    const evm_attr *found = NULL;
    for (int i = 0; i < N_VALUE_ATTRS; i++) {
        const evm_attr *a = evm_node_attr(node, value_attrs[i]);
        if (!a)
            continue;
        if (found)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "has both '%s' and '%s'; exactly one value attribute is allowed",
                                 found->name, a->name);
        found = a;
    }
    if (!found)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "has no value attribute ('value', 'value_float', ...)");
    const char *name = found->name;
    evm_attr_type want = !strcmp(name, "value")          ? EVM_ATTR_TENSOR
                         : !strcmp(name, "value_float")  ? EVM_ATTR_FLOAT
                         : !strcmp(name, "value_floats") ? EVM_ATTR_FLOATS
                         : !strcmp(name, "value_int")    ? EVM_ATTR_INT
                         : !strcmp(name, "value_ints")   ? EVM_ATTR_INTS
                                                         : EVM_ATTR_OTHER;
    if (want == EVM_ATTR_OTHER)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "attribute '%s' is not supported; only dense float32/int64 values "
                             "are",
                             name);
    if (found->type != want)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "attribute '%s' has the wrong type",
                             name);
    if (want == EVM_ATTR_TENSOR && evm_dtype_size(found->t.dtype) == 0)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "attribute 'value' has an unsupported data type; only float32 and "
                             "int64 are supported");
    if (want == EVM_ATTR_TENSOR && found->t.count && !found->t.data)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "attribute 'value' has no data");
    return EVMAP_OK;
}

static evmap_status constant_infer(const evm_node *node, evm_tensor *const *in,
                                   evm_tensor *const *out, evmap_error *err) {
    (void)in;
    const evm_attr *a = value_attr(node);
    int64_t n = (int64_t)a->n;
    switch (a->type) {
    case EVM_ATTR_TENSOR:
        out[0]->dtype = a->t.dtype;
        return evm_tensor_set_shape(out[0], a->t.rank, a->t.dims, err);
    case EVM_ATTR_FLOAT:
    case EVM_ATTR_INT:
        out[0]->dtype = a->type == EVM_ATTR_FLOAT ? EVM_DTYPE_FLOAT : EVM_DTYPE_INT64;
        return evm_tensor_set_shape(out[0], 0, NULL, err);
    default: /* FLOATS or INTS, as init checked */
        out[0]->dtype = a->type == EVM_ATTR_FLOATS ? EVM_DTYPE_FLOAT : EVM_DTYPE_INT64;
        return evm_tensor_set_shape(out[0], 1, &n, err);
    }
}

static void constant_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                             float *workspace) {
    (void)in;
    (void)workspace;
    const evm_attr *a = value_attr(node);
    evm_tensor *y = out[0];
    switch (a->type) {
    case EVM_ATTR_TENSOR:
        if (y->count)
            memcpy(y->data, a->t.data, y->count * evm_dtype_size(y->dtype));
        break;
    case EVM_ATTR_FLOAT: evm_f32(y)[0] = a->f; break;
    case EVM_ATTR_INT: evm_i64(y)[0] = a->i; break;
    case EVM_ATTR_FLOATS:
        if (a->n)
            memcpy(y->data, a->floats, a->n * sizeof(float));
        break;
    default:
        if (a->n)
            memcpy(y->data, a->ints, a->n * sizeof(int64_t));
        break;
    }
}

const evm_op_def evm_op_constant = {
    .name = "Constant",
    .min_inputs = 0,
    .max_inputs = 0,
    .init = constant_init,
    .infer = constant_infer,
    .forward = constant_forward,
};
