/* Index arithmetic of the data-movement operators (see strided.h). */
#include "strided.h"

#include "broadcast.h"

void evm_broadcast_strides(const evm_tensor *t, int rank, const int64_t *dims, int64_t *strides) {
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        int td = d - (rank - t->rank);
        if (td < 0) {
            strides[d] = 0;
            continue;
        }
        strides[d] = t->dims[td] == 1 && dims[d] != 1 ? 0 : s;
        s *= t->dims[td];
    }
}

evmap_status evm_op_const_ints(const evm_node *node, evm_tensor *const *in, int i, const char *what,
                               const int64_t **v, size_t *n, evmap_error *err) {
    *v = NULL;
    *n = 0;
    if (i >= node->n_inputs || !in[i])
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "input %d (%s) is missing", i, what);
    const evm_tensor *t = in[i];
    if (t->dtype != EVM_DTYPE_INT64)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "input %d (%s) has data type %s; only int64 is supported", i, what,
                             evm_dtype_name(t->dtype));
    if (t->rank != 1)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "input %d (%s) has rank %d; it must be a 1-D list", i, what, t->rank);
    if (!t->is_const || (!t->data && t->count))
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "input %d (%s) must be a constant (an initializer or computable "
                             "from shapes alone): it decides the output's shape",
                             i, what);
    *n = t->count;
    *v = t->count ? evm_i64(t) : NULL;
    return EVMAP_OK;
}

evmap_status evm_op_broadcast_all(const evm_node *node, evm_tensor *const *ts, int n, int *rank,
                                  int64_t *dims, evmap_error *err) {
    *rank = 0;
    for (int i = 0; i < n; i++) {
        if (!ts[i])
            continue;
        int r, bad;
        int64_t d[EVM_MAX_RANK];
        if (!evm_broadcast_shape(*rank, dims, ts[i]->rank, ts[i]->dims, &r, d, &bad)) {
            char s[EVM_SHAPE_STR_SIZE];
            return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                                 "input %d's shape %s does not broadcast with the others (output "
                                 "axis %d)",
                                 i, evm_shape_str(ts[i], s, sizeof s), bad);
        }
        *rank = r;
        for (int k = 0; k < r; k++)
            dims[k] = d[k];
    }
    return EVMAP_OK;
}
