/*
 * Cast: converts x to the element type 'to', among those evmap holds:
 * float32, int64 and bool (other targets are refused when the model loads).
 * float -> int64 truncates toward zero (NaN gives 0, values beyond int64
 * saturate); anything -> bool is "!= 0" (NaN is true); bool -> number is
 * 0 or 1. 'saturate' (opset 19) only concerns float8 targets, which evmap
 * refuses, so it is read and has no effect. float -> float is the identity
 * and has a backward; other casts leave float and stop gradients.
 * CastLike (castlike.c) converts with the same forward.
 */
#include <math.h>
#include <string.h>

#include "op.h"

typedef struct cast_params {
    evm_dtype to;
} cast_params;

static const char *const onnx_type_names[] = {
    "undefined", "float32", "uint8",     "int8",       "uint16",  "int16",
    "int32",     "int64",   "string",    "bool",       "float16", "double",
    "uint32",    "uint64",  "complex64", "complex128", "bfloat16"};

static evmap_status cast_init(evm_node *node, evmap_error *err) {
    cast_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    int64_t to = 0, saturate = 1;
    evmap_status st = evm_attr_int(node, "to", 0, &to, err);
    if (st == EVMAP_OK && node->opset >= 19)
        st = evm_attr_int(node, "saturate", 1, &saturate, err);
    if (st != EVMAP_OK)
        return st;
    if (!evm_node_attr(node, "to"))
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "attribute 'to' is required");
    if (to == 1)
        p->to = EVM_DTYPE_FLOAT;
    else if (to == 7)
        p->to = EVM_DTYPE_INT64;
    else if (to == 9)
        p->to = EVM_DTYPE_BOOL;
    else
        return evm_node_fail(
            err, node, EVMAP_ERR_UNSUPPORTED, "casts to %s; evmap supports float32, int64 and bool",
            to >= 0 && to < (int64_t)(sizeof onnx_type_names / sizeof *onnx_type_names)
                ? onnx_type_names[to]
                : "an unknown type");
    return EVMAP_OK;
}

static evmap_status cast_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               evmap_error *err) {
    if (evm_dtype_size(in[0]->dtype) == 0)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED, "input has data type %s",
                             evm_dtype_name(in[0]->dtype));
    out[0]->dtype = ((const cast_params *)node->params)->to;
    return evm_tensor_set_shape(out[0], in[0]->rank, in[0]->dims, err);
}

static int64_t float_to_i64(float v) {
    if (isnan(v))
        return 0;
    if (v >= 9.2233720368547758e18f)
        return INT64_MAX;
    if (v <= -9.2233720368547758e18f)
        return INT64_MIN;
    return (int64_t)v;
}

void evm_cast_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                      float *workspace) {
    (void)node;
    (void)workspace;
    const evm_tensor *x = in[0], *y = out[0];
    if (x->dtype == y->dtype) {
        if (x->count)
            memcpy(y->data, x->data, x->count * evm_dtype_size(x->dtype));
        return;
    }
    for (size_t i = 0; i < x->count; i++) {
        /* read as double: exact for float and bool, and for int64 -> bool */
        double d = 0;
        int64_t iv = 0;
        switch (x->dtype) {
        case EVM_DTYPE_FLOAT:
            d = evm_f32(x)[i];
            iv = float_to_i64(evm_f32(x)[i]);
            break;
        case EVM_DTYPE_INT64:
            iv = evm_i64(x)[i];
            d = (double)iv;
            break;
        default:
            iv = evm_bool(x)[i];
            d = (double)iv;
            break;
        }
        if (y->dtype == EVM_DTYPE_FLOAT)
            evm_f32(y)[i] = x->dtype == EVM_DTYPE_INT64 ? (float)iv : (float)d;
        else if (y->dtype == EVM_DTYPE_INT64)
            evm_i64(y)[i] = iv;
        else
            evm_bool(y)[i] = x->dtype == EVM_DTYPE_INT64 ? iv != 0 : d != 0 || isnan(d);
    }
}

const evm_op_def evm_op_cast = {
    .name = "Cast",
    .min_inputs = 1,
    .max_inputs = 1,
    .init = cast_init,
    .infer = cast_infer,
    .forward = evm_cast_forward,
    .grad_inputs = 1u << 0,
    .backward = evm_op_backward_copy, /* float -> float only: no other gets a gradient */
    .kinks = EVM_KINKS_NONE,
};
