/*
 * Range: start, start + delta, ... up to (not including) limit; the three
 * inputs are scalars of one dtype (float32 or int64) and must be constants,
 * since they decide the output's length: max(ceil((limit - start) / delta),
 * 0) elements. A zero delta is an error.
 */
#include <math.h>

#include "op.h"

static evmap_status range_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                evmap_error *err) {
    static const char *const names[] = {"start", "limit", "delta"};
    for (int i = 0; i < 3; i++) {
        const evm_tensor *t = in[i];
        if (!t)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "input %d (%s) is missing", i,
                                 names[i]);
        if (t->dtype != EVM_DTYPE_FLOAT && t->dtype != EVM_DTYPE_INT64)
            return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                                 "input %d (%s) has data type %s; only float32 and int64 are "
                                 "supported",
                                 i, names[i], evm_dtype_name(t->dtype));
        if (t->dtype != in[0]->dtype)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "inputs have different data types (%s and %s)",
                                 evm_dtype_name(in[0]->dtype), evm_dtype_name(t->dtype));
        if (t->count != 1)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "input %d (%s) has %zu elements; it must be a scalar", i, names[i],
                                 t->count);
        evmap_status st = evm_op_require_const(node, in, i, err);
        if (st != EVMAP_OK)
            return st;
    }
    double n;
    if (in[0]->dtype == EVM_DTYPE_FLOAT) {
        float s = evm_f32(in[0])[0], l = evm_f32(in[1])[0], d = evm_f32(in[2])[0];
        if (d == 0 || !isfinite(s) || !isfinite(l) || !isfinite(d))
            return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                                 "start, limit and delta must be finite and delta non-zero");
        n = ceil(((double)l - s) / d);
    } else {
        int64_t s = evm_i64(in[0])[0], l = evm_i64(in[1])[0], d = evm_i64(in[2])[0];
        if (d == 0)
            return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT, "delta is 0");
        n = ceil(((double)l - (double)s) / (double)d);
        if (n > 0 && n < 1e15) { /* exact count in integers */
            __int128 diff = (__int128)l - s;
            __int128 q = diff / d + (diff % d != 0);
            n = (double)q;
        }
    }
    if (!(n >= 0))
        n = 0;
    if (n > (double)EVM_MAX_TENSOR_ELEMENTS)
        return evm_node_fail(err, node, EVMAP_ERR_TOO_LARGE,
                             "the range has %.0f elements, above evmap's limit", n);
    int64_t dim = (int64_t)n;
    out[0]->dtype = in[0]->dtype;
    return evm_tensor_set_shape(out[0], 1, &dim, err);
}

static void range_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                          float *workspace) {
    (void)node;
    (void)workspace;
    const evm_tensor *y = out[0];
    if (y->dtype == EVM_DTYPE_FLOAT) {
        float s = evm_f32(in[0])[0], d = evm_f32(in[2])[0];
        for (size_t i = 0; i < y->count; i++)
            evm_f32(y)[i] = s + (float)i * d;
    } else {
        int64_t s = evm_i64(in[0])[0], d = evm_i64(in[2])[0];
        for (size_t i = 0; i < y->count; i++)
            evm_i64(y)[i] = (int64_t)((uint64_t)s + (uint64_t)i * (uint64_t)d);
    }
}

const evm_op_def evm_op_range = {
    .name = "Range",
    .min_inputs = 3,
    .max_inputs = 3,
    .infer = range_infer,
    .forward = range_forward,
};
