/* The shared body of Equal, Less, Greater, LessOrEqual and GreaterOrEqual
 * (see compare.h). */
#include "compare.h"

#include "strided.h"

evmap_status evm_compare_init(evm_node *node, evmap_error *err) {
    int64_t broadcast = 0, axis = 0;
    evmap_status st = evm_attr_int(node, "broadcast", 0, &broadcast, err);
    if (st == EVMAP_OK)
        st = evm_attr_int(node, "axis", 0, &axis, err);
    if (st == EVMAP_OK && (broadcast || evm_node_attr(node, "axis")))
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "legacy (opset < 7) broadcasting is not supported; re-export the "
                             "model with opset 7 or later");
    return st;
}

evmap_status evm_compare_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               evmap_error *err) {
    const evm_tensor *a = in[0], *b = in[1];
    if (!a || !b)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "needs two inputs");
    bool bool_ok = node->kind == EVM_OP_EQUAL;
    for (int i = 0; i < 2; i++)
        if (in[i]->dtype != EVM_DTYPE_FLOAT && in[i]->dtype != EVM_DTYPE_INT64 &&
            !(bool_ok && in[i]->dtype == EVM_DTYPE_BOOL))
            return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                                 "input %d has data type %s; only float32 and int64%s are "
                                 "supported",
                                 i, evm_dtype_name(in[i]->dtype), bool_ok ? " and bool" : "");
    if (a->dtype != b->dtype)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "inputs have different data types (%s and %s)",
                             evm_dtype_name(a->dtype), evm_dtype_name(b->dtype));
    int rank;
    int64_t dims[EVM_MAX_RANK];
    evmap_status st = evm_op_broadcast_all(node, in, 2, &rank, dims, err);
    if (st != EVMAP_OK)
        return st;
    out[0]->dtype = EVM_DTYPE_BOOL;
    return evm_tensor_set_shape(out[0], rank, dims, err);
}

void evm_compare_forward(evm_compare_op op, evm_tensor *const *in, evm_tensor *const *out) {
    const evm_tensor *a = in[0], *b = in[1], *y = out[0];
    int64_t sa[EVM_MAX_RANK], sb[EVM_MAX_RANK];
    evm_broadcast_strides(a, y->rank, y->dims, sa);
    evm_broadcast_strides(b, y->rank, y->dims, sb);
    uint8_t *r = evm_bool(y);
    for (size_t i = 0; i < y->count; i++) {
        int64_t ia = evm_strided_offset(i, y->rank, y->dims, sa);
        int64_t ib = evm_strided_offset(i, y->rank, y->dims, sb);
        int c; /* -1, 0, 1; 2 when unordered (NaN): every comparison is false */
        if (a->dtype == EVM_DTYPE_FLOAT) {
            float u = evm_f32(a)[ia], v = evm_f32(b)[ib];
            c = u < v ? -1 : u > v ? 1 : u == v ? 0 : 2;
        } else if (a->dtype == EVM_DTYPE_INT64) {
            int64_t u = evm_i64(a)[ia], v = evm_i64(b)[ib];
            c = u < v ? -1 : u > v;
        } else {
            int u = evm_bool(a)[ia], v = evm_bool(b)[ib];
            c = u < v ? -1 : u > v;
        }
        switch (op) {
        case EVM_COMPARE_EQUAL: r[i] = c == 0; break;
        case EVM_COMPARE_LESS: r[i] = c == -1; break;
        case EVM_COMPARE_GREATER: r[i] = c == 1; break;
        case EVM_COMPARE_LESS_OR_EQUAL: r[i] = c == -1 || c == 0; break;
        default: r[i] = c == 1 || c == 0; break; /* GreaterOrEqual */
        }
    }
}
