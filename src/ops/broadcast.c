/*
 * Broadcasting machinery for the binary element-wise operators.
 *
 * A call is planned from the shapes alone (cheap, on the stack, so forward
 * needs no state): both operands are aligned to the output rank, every axis
 * gets an element stride per operand (0 where that operand is broadcast),
 * size-1 output axes are dropped and neighbouring axes that are laid out
 * alike in both operands are merged. After merging, the innermost axis has
 * stride 1 or 0 for each operand, so the work is a loop over contiguous
 * output rows with one of three vectorizable kernels: vector-vector,
 * vector-scalar or scalar-vector. The common cases fall out as fast paths:
 * same shapes merge into a single row; a scalar operand is one row with a
 * stride-0 operand; a per-channel operand ([C,1,1] against [N,C,H,W]) becomes
 * N*C rows of H*W with one scalar each.
 */
#include "broadcast.h"

#include "base/pool.h"

#include <stdlib.h>
#include <string.h>

bool evm_broadcast_shape(int rank_a, const int64_t *dims_a, int rank_b, const int64_t *dims_b,
                         int *rank, int64_t *dims, int *bad_axis) {
    int r = rank_a > rank_b ? rank_a : rank_b;
    if (rank_a < 0 || rank_b < 0 || r > EVM_MAX_RANK) {
        *bad_axis = -1;
        return false;
    }
    for (int d = 0; d < r; d++) {
        /* Shapes are aligned at their last axis; missing leading axes are 1. */
        int ia = d - (r - rank_a), ib = d - (r - rank_b);
        int64_t na = ia >= 0 ? dims_a[ia] : 1;
        int64_t nb = ib >= 0 ? dims_b[ib] : 1;
        if (na != nb && na != 1 && nb != 1) {
            *bad_axis = d;
            return false;
        }
        dims[d] = na == 1 ? nb : na;
    }
    *rank = r;
    return true;
}

/* ------------------------------------------------------------- planning */

typedef struct bcast_plan {
    int rank;                   /* axes left after dropping and merging; >= 1 */
    int64_t dims[EVM_MAX_RANK]; /* output sizes of those axes */
    int64_t sa[EVM_MAX_RANK];   /* element strides into a; 0 where broadcast */
    int64_t sb[EVM_MAX_RANK];   /* element strides into b; 0 where broadcast */
} bcast_plan;

/* Strides of operand t aligned to output rank r (0 along broadcast axes).
 * Products of t's dims: at most 2^34 (evm_tensor_set_shape). */
static void aligned_strides(const evm_tensor *t, int r, int64_t *strides) {
    int64_t s = 1;
    for (int d = r - 1; d >= 0; d--) {
        int i = d - (r - t->rank);
        int64_t n = i >= 0 ? t->dims[i] : 1;
        strides[d] = n == 1 ? 0 : s;
        s *= n;
    }
}

static void make_plan(const evm_tensor *a, const evm_tensor *b, const evm_tensor *y,
                      bcast_plan *p) {
    int64_t sa[EVM_MAX_RANK], sb[EVM_MAX_RANK];
    aligned_strides(a, y->rank, sa);
    aligned_strides(b, y->rank, sb);
    p->rank = 0;
    for (int d = 0; d < y->rank; d++) {
        if (y->dims[d] == 1)
            continue; /* both operands have size 1 here: the axis changes nothing */
        int k = p->rank;
        /* Merge with the previous axis when, in both operands, stepping the
         * previous axis equals stepping over all of this one (both strides 0
         * included): the two axes then act as one longer axis. */
        if (k > 0 && p->sa[k - 1] == sa[d] * y->dims[d] && p->sb[k - 1] == sb[d] * y->dims[d]) {
            p->dims[k - 1] *= y->dims[d];
            p->sa[k - 1] = sa[d];
            p->sb[k - 1] = sb[d];
            continue;
        }
        p->dims[k] = y->dims[d];
        p->sa[k] = sa[d];
        p->sb[k] = sb[d];
        p->rank++;
    }
    if (p->rank == 0) { /* a single element */
        p->rank = 1;
        p->dims[0] = 1;
        p->sa[0] = p->sb[0] = 0;
    }
}

/* --------------------------------------------------------------- kernels */

/* Signed overflow is undefined in C, so int64 arithmetic wraps through uint64
 * (what every other runtime does for shape arithmetic anyway). */
#define ADD_F(x, y) ((x) + (y))
#define MUL_F(x, y) ((x) * (y))
#define ADD_I(x, y) ((int64_t)((uint64_t)(x) + (uint64_t)(y)))
#define MUL_I(x, y) ((int64_t)((uint64_t)(x) * (uint64_t)(y)))

#define DEFINE_ROWS(name, T, OP)                                                                   \
    static void name##_vv(void *yv, const void *av, const void *bv, size_t n) {                    \
        T *restrict y = yv;                                                                        \
        const T *restrict a = av, *restrict b = bv;                                                \
        for (size_t i = 0; i < n; i++)                                                             \
            y[i] = OP(a[i], b[i]);                                                                 \
    }                                                                                              \
    static void name##_vs(void *yv, const void *av, const void *bv, size_t n) {                    \
        T *restrict y = yv;                                                                        \
        const T *restrict a = av;                                                                  \
        const T s = *(const T *)bv;                                                                \
        for (size_t i = 0; i < n; i++)                                                             \
            y[i] = OP(a[i], s);                                                                    \
    }                                                                                              \
    static void name##_sv(void *yv, const void *av, const void *bv, size_t n) {                    \
        T *restrict y = yv;                                                                        \
        const T *restrict b = bv;                                                                  \
        const T s = *(const T *)av;                                                                \
        for (size_t i = 0; i < n; i++)                                                             \
            y[i] = OP(s, b[i]);                                                                    \
    }

DEFINE_ROWS(add_f32, float, ADD_F)
DEFINE_ROWS(mul_f32, float, MUL_F)
DEFINE_ROWS(add_i64, int64_t, ADD_I)
DEFINE_ROWS(mul_i64, int64_t, MUL_I)

/* [op][is_int64] */
static const evm_row_kernels row_table[EVM_BINARY_OP_COUNT][2] = {
    [EVM_BINARY_ADD] = {{add_f32_vv, add_f32_vs, add_f32_sv}, {add_i64_vv, add_i64_vs, add_i64_sv}},
    [EVM_BINARY_MUL] = {{mul_f32_vv, mul_f32_vs, mul_f32_sv}, {mul_i64_vv, mul_i64_vs, mul_i64_sv}},
};

/* Operands of y's own shape: one row over every element, split across the
 * pool (element-wise, so any split gives the same bits). */
typedef struct same_shape_job {
    evm_row_fn row;
    const char *a, *b;
    char *y;
    size_t elem;
} same_shape_job;

static void same_shape_range(void *ctx, size_t lo, size_t hi) {
    const same_shape_job *j = ctx;
    j->row(j->y + lo * j->elem, j->a + lo * j->elem, j->b + lo * j->elem, hi - lo);
}

void evm_broadcast_rows(const evm_row_kernels *k, const evm_tensor *a, const evm_tensor *b,
                        evm_tensor *y) {
    if (y->count == 0)
        return;
    /* equal counts under broadcasting mean equal shapes, so equal layouts */
    if (a->count == y->count && b->count == y->count && a->dtype == y->dtype &&
        b->dtype == y->dtype && y->count >= EVM_PARALLEL_ELEMENTS) {
        same_shape_job j = {k->vv, a->data, b->data, y->data, evm_dtype_size(y->dtype)};
        evm_parallel_range(y->count, EVM_PARALLEL_ELEMENTS, same_shape_range, &j);
        return;
    }
    bcast_plan p;
    make_plan(a, b, y, &p);
    int last = p.rank - 1;
    size_t n = (size_t)p.dims[last];
    /* Innermost strides are 1 or 0. Both are 0 for a single element, where
     * the vector-vector kernel reads a[0] and b[0] as wanted, or when y is
     * larger than both operands (variadic ops): then one value fills the row. */
    bool fill = p.sa[last] == 0 && p.sb[last] == 0 && n > 1;
    evm_row_fn row = p.sa[last] == 0 && p.sb[last] != 0   ? k->sv
                     : p.sb[last] == 0 && p.sa[last] != 0 ? k->vs
                                                          : k->vv;

    size_t ea = evm_dtype_size(a->dtype), eb = evm_dtype_size(b->dtype);
    size_t ey = evm_dtype_size(y->dtype);
    const char *pa = a->data, *pb = b->data;
    char *py = y->data;
    size_t rows = y->count / n;
    int64_t idx[EVM_MAX_RANK] = {0};
    int64_t oa = 0, ob = 0; /* element offsets of the current row */
    for (size_t r = 0; r < rows; r++) {
        char *yr = py + r * n * ey;
        row(yr, pa + (size_t)oa * ea, pb + (size_t)ob * eb, fill ? 1 : n);
        if (fill)
            for (size_t i = 1; i < n; i++)
                memcpy(yr + i * ey, yr, ey);
        /* Odometer over the outer axes, innermost first. */
        for (int d = last - 1; d >= 0; d--) {
            oa += p.sa[d];
            ob += p.sb[d];
            if (++idx[d] < p.dims[d])
                break;
            oa -= p.sa[d] * p.dims[d];
            ob -= p.sb[d] * p.dims[d];
            idx[d] = 0;
        }
    }
}

void evm_broadcast_apply(evm_binary_op op, const evm_tensor *a, const evm_tensor *b,
                         evm_tensor *y) {
    evm_broadcast_rows(&row_table[op][y->dtype == EVM_DTYPE_INT64], a, b, y);
}

/* ------------------------------------------------------------ reduction */

/* One row of the reduction: d[j * sd] += g[j] * o[j * so], sd and so 0 or 1.
 * Where dst is broadcast along the row (sd = 0) the row is summed first, in
 * double, since it may be long (a bias over a whole map). */
static void reduce_row(float *restrict d, int64_t sd, const float *restrict g,
                       const float *restrict o, int64_t so, size_t n) {
    if (sd == 0) {
        double acc = 0;
        for (size_t j = 0; j < n; j++)
            acc += (double)g[j] * o[(int64_t)j * so];
        *d += (float)acc;
        return;
    }
    for (size_t j = 0; j < n; j++)
        d[j] += g[j] * o[(int64_t)j * so];
}

void evm_broadcast_reduce(const evm_tensor *g, const evm_tensor *other, evm_tensor *dst) {
    static const float one = 1.0f;
    const evm_tensor unit = {.dtype = EVM_DTYPE_FLOAT, .count = 1, .data = (void *)&one};
    if (!other)
        other = &unit; /* a rank-0 operand: broadcast everywhere */
    if (dst->count == g->count && (other->count == 1 || other->count == g->count)) {
        /* Nothing is reduced (broadcasting only inserts 1s, so equal counts
         * mean equal layouts): the common residual Add, in one pass. */
        const float *pg = evm_f32(g), *po = evm_f32(other);
        float *pd = evm_f32(dst);
        if (other == &unit)
            memcpy(pd, pg, g->count * sizeof(float));
        else if (other->count == 1)
            for (size_t i = 0; i < g->count; i++)
                pd[i] = pg[i] * po[0];
        else
            for (size_t i = 0; i < g->count; i++)
                pd[i] = pg[i] * po[i];
        return;
    }
    if (dst->count)
        memset(dst->data, 0, dst->count * sizeof(float));
    if (g->count == 0)
        return; /* an empty output: dst (maybe not empty if broadcast) gets 0 */
    bcast_plan p;
    make_plan(dst, other, g, &p);
    int last = p.rank - 1;
    size_t n = (size_t)p.dims[last], rows = g->count / n;
    const float *pg = evm_f32(g), *po = evm_f32(other);
    float *pd = evm_f32(dst);
    int64_t idx[EVM_MAX_RANK] = {0};
    int64_t od = 0, oo = 0; /* element offsets of the current row */
    for (size_t r = 0; r < rows; r++) {
        reduce_row(pd + od, p.sa[last], pg + r * n, po + oo, p.sb[last], n);
        /* The same odometer as evm_broadcast_apply. */
        for (int d = last - 1; d >= 0; d--) {
            od += p.sa[d];
            oo += p.sb[d];
            if (++idx[d] < p.dims[d])
                break;
            od -= p.sa[d] * p.dims[d];
            oo -= p.sb[d] * p.dims[d];
            idx[d] = 0;
        }
    }
}

/* ------------------------------------------------------- Add/Mul bodies */

typedef struct binary_params {
    bool legacy;    /* opset < 7: B is broadcast onto A only, if at all */
    bool broadcast; /* legacy: attribute 'broadcast' = 1; else shapes must match */
    bool has_axis;  /* legacy: attribute 'axis' given */
    int64_t axis;   /* legacy: axis of A where B's first axis lines up */
} binary_params;

evmap_status evm_binary_init(evm_node *node, evmap_error *err) {
    binary_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    p->legacy = node->opset < 7;
    if (!p->legacy)
        return EVMAP_OK;
    int64_t broadcast;
    evmap_status st = evm_attr_int(node, "broadcast", 0, &broadcast, err);
    if (st != EVMAP_OK)
        return st;
    if (broadcast != 0 && broadcast != 1)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "attribute 'broadcast' is %lld; it must be 0 or 1",
                             (long long)broadcast);
    p->broadcast = broadcast == 1;
    p->has_axis = evm_node_attr(node, "axis") != NULL;
    return evm_attr_int(node, "axis", 0, &p->axis, err);
}

/* The shape B takes part in the broadcast with: itself under numpy rules; in
 * legacy mode with an axis, B's dims moved to start at that axis of A (by
 * appending 1s), so that numpy rules then line them up as the old spec did. */
evmap_status evm_binary_view_b(const evm_node *node, const evm_tensor *a, const evm_tensor *b,
                               evm_tensor *view, evmap_error *err) {
    const binary_params *p = node->params;
    *view = *b;
    if (!p || !p->legacy || !p->broadcast || !p->has_axis)
        return EVMAP_OK;
    int64_t axis = p->axis < 0 ? p->axis + a->rank : p->axis;
    if (axis < 0 || axis > a->rank - b->rank) /* not axis + rank: axis is any int64 */
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "axis %lld does not fit a second input of rank %d into a first input "
                             "of rank %d",
                             (long long)p->axis, b->rank, a->rank);
    for (int d = b->rank; d < a->rank - (int)axis; d++)
        view->dims[d] = 1;
    view->rank = a->rank - (int)axis;
    return EVMAP_OK;
}

evmap_status evm_binary_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              evmap_error *err) {
    const evm_tensor *a = in[0], *b = in[1];
    if (!a || !b)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "needs two inputs");
    for (int i = 0; i < 2; i++)
        if (in[i]->dtype != EVM_DTYPE_FLOAT && in[i]->dtype != EVM_DTYPE_INT64)
            return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                                 "input %d has data type %s; only float32 and int64 are supported",
                                 i, evm_dtype_name(in[i]->dtype));
    if (a->dtype != b->dtype)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "inputs have different data types (%s and %s)",
                             evm_dtype_name(a->dtype), evm_dtype_name(b->dtype));
    return evm_binary_infer_shape(node, in, out, err);
}

evmap_status evm_binary_infer_shape(const evm_node *node, evm_tensor *const *in,
                                    evm_tensor *const *out, evmap_error *err) {
    const evm_tensor *a = in[0], *b = in[1];
    if (!a || !b)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "needs two inputs");
    evm_tensor bv;
    evmap_status st = evm_binary_view_b(node, a, b, &bv, err);
    if (st != EVMAP_OK)
        return st;

    char sa[EVM_SHAPE_STR_SIZE], sb[EVM_SHAPE_STR_SIZE];
    const binary_params *p = node->params;
    int rank, bad;
    int64_t dims[EVM_MAX_RANK];
    if (!evm_broadcast_shape(a->rank, a->dims, bv.rank, bv.dims, &rank, dims, &bad))
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "input shapes %s and %s cannot be broadcast together (output axis %d)",
                             evm_shape_str(a, sa, sizeof sa), evm_shape_str(b, sb, sizeof sb), bad);
    /* Before opset 7 only B could be stretched, and only when asked for. */
    bool legacy_ok =
        !p || !p->legacy ||
        (p->broadcast ? rank == a->rank && !memcmp(dims, a->dims, sizeof(int64_t) * (size_t)rank)
                      : evm_same_shape(a, b));
    if (!legacy_ok)
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "input shapes %s and %s do not match under opset %d broadcasting "
                             "(broadcast=%d)",
                             evm_shape_str(a, sa, sizeof sa), evm_shape_str(b, sb, sizeof sb),
                             node->opset, p->broadcast);
    out[0]->dtype = a->dtype;
    return evm_tensor_set_shape(out[0], rank, dims, err);
}

void evm_binary_forward(const evm_node *node, evm_binary_op op, evm_tensor *const *in,
                        evm_tensor *const *out) {
    evm_tensor bv;
    /* Cannot fail here: infer ran the same check on the same shapes. */
    (void)evm_binary_view_b(node, in[0], in[1], &bv, NULL);
    evm_broadcast_apply(op, in[0], &bv, out[0]);
}

void evm_binary_backward(const evm_node *node, evm_binary_op op, evm_tensor *const *in,
                         const evm_tensor *grad_out, evm_tensor *const *grad_in) {
    evm_tensor bv;
    (void)evm_binary_view_b(node, in[0], in[1], &bv, NULL); /* checked by infer */
    bool mul = op == EVM_BINARY_MUL;
    /* d(a op b)/da is 1 (Add) or b (Mul), and the other way round. */
    if (grad_in[0])
        evm_broadcast_reduce(grad_out, mul ? &bv : NULL, grad_in[0]);
    if (grad_in[1]) {
        /* B's gradient, viewed with the shape B was broadcast with (legacy
         * axis: trailing 1s appended; same layout). */
        evm_tensor gb = *grad_in[1];
        gb.rank = bv.rank;
        memcpy(gb.dims, bv.dims, sizeof gb.dims);
        evm_broadcast_reduce(grad_out, mul ? in[0] : NULL, &gb);
    }
}

void evm_binary_forward_rows(const evm_node *node, const evm_row_kernels *k, evm_tensor *const *in,
                             evm_tensor *const *out) {
    evm_tensor bv;
    (void)evm_binary_view_b(node, in[0], in[1], &bv, NULL); /* checked by infer */
    evm_broadcast_rows(k, in[0], &bv, out[0]);
}

size_t evm_binary_backward_workspace(const evm_node *node, evm_tensor *const *in,
                                     evm_tensor *const *out) {
    (void)node;
    (void)in;
    return out[0]->count;
}

void evm_binary_backward_rows(const evm_node *node, const evm_row_kernels *const *dk,
                              evm_tensor *const *in, const evm_tensor *grad_out,
                              evm_tensor *const *grad_in, float *workspace) {
    evm_tensor bv;
    (void)evm_binary_view_b(node, in[0], in[1], &bv, NULL); /* checked by infer */
    /* The local derivative dy/d(input j) at every output element. */
    evm_tensor d = *grad_out;
    d.owns_data = false;
    d.data = workspace;
    for (int j = 0; j < 2; j++) {
        if (!grad_in[j])
            continue;
        evm_tensor gj = *grad_in[j];
        if (j == 1) { /* B's gradient, viewed with the shape B was broadcast with */
            gj.rank = bv.rank;
            memcpy(gj.dims, bv.dims, sizeof gj.dims);
        }
        if (in[j]->dtype != EVM_DTYPE_FLOAT) { /* not differentiable: never asked for */
            memset(gj.data, 0, gj.count * sizeof(float));
            continue;
        }
        evm_broadcast_rows(dk[j], in[0], &bv, &d);
        evm_broadcast_reduce(grad_out, &d, &gj);
    }
}
