/*
 * Broadcasting (ops/broadcast.c, Add, Mul) against a naive reference that maps
 * every output index to its operand indices one axis at a time. Covers fixed
 * shape pairs, thousands of random compatible and incompatible pairs in
 * float32 and int64, the operators' infer/forward, and opset < 7 legacy
 * broadcasting. Prints "N passed, N failed"; exits non-zero on failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/broadcast.h"

static int passed, failed;

static void check(int ok, const char *what, int iter) {
    if (ok) {
        passed++;
        return;
    }
    failed++;
    if (failed <= 20)
        printf("FAIL %s (case %d)\n", what, iter);
}

/* Deterministic xorshift so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint32_t rnd(uint32_t n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32) % n;
}

/* ------------------------------------------------------------ reference */

/* Numpy's rule, written independently of evm_broadcast_shape. */
static int ref_shape(int ra, const int64_t *a, int rb, const int64_t *b, int *r, int64_t *out) {
    *r = ra > rb ? ra : rb;
    for (int k = 1; k <= *r; k++) { /* k-th axis from the end */
        int64_t x = k <= ra ? a[ra - k] : 1, y = k <= rb ? b[rb - k] : 1;
        if (x != y && x != 1 && y != 1)
            return 0;
        out[*r - k] = x == 1 ? y : x;
    }
    return 1;
}

/* Flat index into operand t for the output multi-index idx (rank r). */
static size_t ref_offset(const evm_tensor *t, const int64_t *idx, int r) {
    size_t off = 0;
    for (int d = 0; d < t->rank; d++) {
        int64_t i = idx[r - t->rank + d];
        off = off * (size_t)t->dims[d] + (size_t)(t->dims[d] == 1 ? 0 : i);
    }
    return off;
}

/* Checks y against a op b element by element. */
static int ref_compare(evm_binary_op op, const evm_tensor *a, const evm_tensor *b,
                       const evm_tensor *y) {
    int64_t idx[EVM_MAX_RANK] = {0};
    for (size_t i = 0; i < y->count; i++) {
        size_t ia = ref_offset(a, idx, y->rank), ib = ref_offset(b, idx, y->rank);
        if (y->dtype == EVM_DTYPE_FLOAT) {
            float x = evm_f32(a)[ia], z = evm_f32(b)[ib];
            float want = op == EVM_BINARY_ADD ? x + z : x * z;
            if (evm_f32(y)[i] != want)
                return 0;
        } else {
            int64_t x = evm_i64(a)[ia], z = evm_i64(b)[ib];
            int64_t want = op == EVM_BINARY_ADD ? x + z : x * z; /* small values: no overflow */
            if (evm_i64(y)[i] != want)
                return 0;
        }
        for (int d = y->rank - 1; d >= 0; d--) {
            if (++idx[d] < y->dims[d])
                break;
            idx[d] = 0;
        }
    }
    return 1;
}

/* -------------------------------------------------------------- helpers */

static void make_tensor(evm_tensor *t, evm_dtype dtype, int rank, const int64_t *dims) {
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    if (evm_tensor_set_shape(t, rank, dims, NULL) != EVMAP_OK ||
        evm_tensor_alloc(t, NULL) != EVMAP_OK) {
        printf("cannot allocate a test tensor\n");
        exit(2);
    }
    for (size_t i = 0; i < t->count; i++) {
        if (dtype == EVM_DTYPE_FLOAT)
            evm_f32(t)[i] = (float)((int)rnd(2001) - 1000) / 64.0f;
        else
            evm_i64(t)[i] = (int64_t)rnd(2001) - 1000;
    }
}

static void make_node(evm_node *node, evm_op_kind kind, int opset, evm_attr *attrs,
                      size_t n_attrs) {
    memset(node, 0, sizeof *node);
    node->name = "test";
    node->kind = kind;
    node->opset = opset;
    node->n_inputs = 2;
    node->n_outputs = 1;
    node->attrs = attrs;
    node->n_attrs = n_attrs;
}

/* Runs a op b through the operator (init, infer, forward); returns the infer
 * status and leaves the result in y (allocated on success). */
static evmap_status run_op(evm_binary_op op, int opset, evm_attr *attrs, size_t n_attrs,
                           evm_tensor *a, evm_tensor *b, evm_tensor *y, evmap_error *err) {
    const evm_op_def *def = op == EVM_BINARY_ADD ? &evm_op_add : &evm_op_mul;
    evm_node node;
    make_node(&node, op == EVM_BINARY_ADD ? EVM_OP_ADD : EVM_OP_MUL, opset, attrs, n_attrs);
    memset(y, 0, sizeof *y);
    evm_tensor *in[2] = {a, b}, *out[1] = {y};
    evmap_status st = def->init ? def->init(&node, err) : EVMAP_OK;
    if (st == EVMAP_OK)
        st = def->infer(&node, in, out, err);
    if (st == EVMAP_OK)
        st = evm_tensor_alloc(y, err);
    if (st == EVMAP_OK)
        def->forward(&node, in, out, NULL);
    free(node.params);
    return st;
}

/* Random shape of an operand broadcastable to out (rank r): a suffix of out
 * with some axes set to 1 (sometimes all, sometimes none). */
static int random_operand(int r, const int64_t *out, int64_t *dims) {
    int rank = (int)rnd((uint32_t)r + 1);
    int ones = (int)rnd(3); /* 0: full, 1: mixed, 2: mostly ones */
    for (int d = 0; d < rank; d++) {
        int64_t n = out[r - rank + d];
        bool one = ones == 0 ? false : ones == 1 ? rnd(2) == 0 : rnd(4) != 0;
        dims[d] = one ? 1 : n;
    }
    return rank;
}

/* --------------------------------------------------------------- tests */

typedef struct shape_case {
    int ra;
    int64_t a[6];
    int rb;
    int64_t b[6];
    int ok;
    int r;
    int64_t out[6];
} shape_case;

static void test_fixed_shapes(void) {
    static const shape_case cases[] = {
        {4, {2, 3, 4, 5}, 1, {5}, 1, 4, {2, 3, 4, 5}},
        {4, {2, 3, 4, 5}, 0, {0}, 1, 4, {2, 3, 4, 5}},
        {0, {0}, 0, {0}, 1, 0, {0}},
        {4, {1, 4, 5, 1}, 4, {2, 1, 1, 3}, 1, 4, {2, 4, 5, 3}},
        {2, {2, 1}, 1, {3}, 1, 2, {2, 3}},
        {3, {8, 1, 6}, 4, {7, 1, 1, 5}, 0, 0, {0}},
        {4, {8, 1, 6, 1}, 3, {7, 1, 5}, 1, 4, {8, 7, 6, 5}},
        {2, {2, 3}, 1, {4}, 0, 0, {0}},
        {1, {0}, 1, {1}, 1, 1, {0}},
        {1, {0}, 1, {2}, 0, 0, {0}},
        {3, {1, 3, 1}, 2, {1, 1}, 1, 3, {1, 3, 1}},
        {4, {2, 3, 4, 5}, 3, {3, 1, 1}, 1, 4, {2, 3, 4, 5}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const shape_case *c = &cases[i];
        int r = -1, bad;
        int64_t out[EVM_MAX_RANK];
        bool ok = evm_broadcast_shape(c->ra, c->a, c->rb, c->b, &r, out, &bad);
        bool good = ok == (bool)c->ok;
        if (good && ok)
            good = r == c->r && memcmp(out, c->out, sizeof(int64_t) * (size_t)r) == 0;
        check(good, "fixed broadcast shape", (int)i);
        /* Broadcasting is symmetric in its shapes. */
        bool ok2 = evm_broadcast_shape(c->rb, c->b, c->ra, c->a, &r, out, &bad);
        check(ok2 == ok, "fixed broadcast shape, swapped", (int)i);
    }
}

static void test_random_values(int iterations) {
    for (int it = 0; it < iterations; it++) {
        int r = (int)rnd(7); /* output rank 0..6 */
        int64_t out[EVM_MAX_RANK], da[EVM_MAX_RANK], db[EVM_MAX_RANK];
        for (int d = 0; d < r; d++)
            out[d] = 1 + rnd(rnd(8) == 0 ? 1 : 5); /* sizes 1..5, many 1s */
        if (rnd(40) == 0 && r > 0)
            out[rnd((uint32_t)r)] = 0; /* empty tensors too */
        int ra = random_operand(r, out, da), rb = random_operand(r, out, db);
        if (rnd(2))
            ra = r, memcpy(da, out, sizeof(int64_t) * (size_t)r); /* often one is full */

        int want_r, got_r, bad;
        int64_t want[EVM_MAX_RANK], got[EVM_MAX_RANK];
        int ref_ok = ref_shape(ra, da, rb, db, &want_r, want);
        bool ok = evm_broadcast_shape(ra, da, rb, db, &got_r, got, &bad);
        check(ref_ok && ok && got_r == want_r &&
                  memcmp(got, want, sizeof(int64_t) * (size_t)got_r) == 0,
              "random broadcast shape", it);
        if (!ok)
            continue;

        evm_dtype dtype = rnd(2) ? EVM_DTYPE_FLOAT : EVM_DTYPE_INT64;
        evm_binary_op op = rnd(2) ? EVM_BINARY_ADD : EVM_BINARY_MUL;
        evm_tensor a, b, y;
        make_tensor(&a, dtype, ra, da);
        make_tensor(&b, dtype, rb, db);
        evmap_error err = {0};
        evmap_status st = run_op(op, 14, NULL, 0, &a, &b, &y, &err);
        check(st == EVMAP_OK && y.dtype == dtype && y.rank == want_r &&
                  memcmp(y.dims, want, sizeof(int64_t) * (size_t)want_r) == 0,
              st == EVMAP_OK ? "operator output shape" : err.message, it);
        if (st == EVMAP_OK)
            check(ref_compare(op, &a, &b, &y), "values against the reference", it);
        /* The direct entry point, with operands swapped. */
        if (st == EVMAP_OK) {
            evm_broadcast_apply(op, &b, &a, &y);
            check(ref_compare(op, &b, &a, &y), "values, operands swapped", it);
        }
        evm_tensor_release(&a);
        evm_tensor_release(&b);
        evm_tensor_release(&y);
    }
}

static void test_random_mismatches(int iterations) {
    for (int it = 0; it < iterations; it++) {
        int r = 1 + (int)rnd(5);
        int64_t da[EVM_MAX_RANK], db[EVM_MAX_RANK];
        for (int d = 0; d < r; d++)
            da[d] = 2 + rnd(4);
        int rb = 1 + (int)rnd((uint32_t)r);
        memcpy(db, da + (r - rb), sizeof(int64_t) * (size_t)rb);
        int k = (int)rnd((uint32_t)rb); /* spoil one axis: neither equal nor 1 */
        db[k] = db[k] + 1 + rnd(3);
        int got_r, bad;
        int64_t got[EVM_MAX_RANK];
        bool ok = evm_broadcast_shape(r, da, rb, db, &got_r, got, &bad);
        check(!ok && bad == r - rb + k, "mismatch detected at the right axis", it);

        evm_tensor a, b, y;
        make_tensor(&a, EVM_DTYPE_FLOAT, r, da);
        make_tensor(&b, EVM_DTYPE_FLOAT, rb, db);
        evmap_error err = {0};
        evmap_status st = run_op(EVM_BINARY_ADD, 14, NULL, 0, &a, &b, &y, &err);
        check(st == EVMAP_ERR_INVALID_ARGUMENT && strstr(err.message, "node 'test' (Add)"),
              "operator rejects a mismatch naming the node", it);
        evm_tensor_release(&a);
        evm_tensor_release(&b);
        evm_tensor_release(&y);
    }
}

static void test_dtype_errors(void) {
    int64_t dims[2] = {2, 3};
    evm_tensor a, b, y;
    make_tensor(&a, EVM_DTYPE_FLOAT, 2, dims);
    make_tensor(&b, EVM_DTYPE_INT64, 2, dims);
    evmap_error err = {0};
    check(run_op(EVM_BINARY_MUL, 14, NULL, 0, &a, &b, &y, &err) == EVMAP_ERR_BAD_FILE,
          "mixed dtypes rejected", 0);
    evm_tensor_release(&a);
    evm_tensor_release(&b);
    evm_tensor_release(&y);
}

/* Opset < 7: B is stretched onto A only with broadcast=1; 'axis' says where
 * B's first axis lines up with A. */
static void test_legacy(void) {
    int64_t da[4] = {2, 3, 4, 5}, db[2] = {3, 4}, dtail[1] = {5};
    evm_attr attrs[2] = {{.name = "broadcast", .type = EVM_ATTR_INT, .i = 1},
                         {.name = "axis", .type = EVM_ATTR_INT, .i = 1}};
    evm_tensor a, b, y, b4;
    make_tensor(&a, EVM_DTYPE_FLOAT, 4, da);
    make_tensor(&b, EVM_DTYPE_FLOAT, 2, db);
    evmap_error err = {0};
    evmap_status st = run_op(EVM_BINARY_ADD, 6, attrs, 2, &a, &b, &y, &err);
    check(st == EVMAP_OK && evm_same_shape(&y, &a), "legacy axis=1 shape", 0);
    /* Same values as numpy with B reshaped to [3,4,1]. */
    b4 = b;
    b4.rank = 3;
    b4.dims[2] = 1;
    if (st == EVMAP_OK)
        check(ref_compare(EVM_BINARY_ADD, &a, &b4, &y), "legacy axis=1 values", 0);
    evm_tensor_release(&y);

    /* Without broadcast=1, shapes must match exactly. */
    st = run_op(EVM_BINARY_ADD, 6, NULL, 0, &a, &b, &y, &err);
    check(st == EVMAP_ERR_INVALID_ARGUMENT, "legacy without broadcast rejects", 0);
    evm_tensor_release(&y);

    /* broadcast=1 without axis: suffix matching, as numpy. */
    evm_tensor t;
    make_tensor(&t, EVM_DTYPE_FLOAT, 1, dtail);
    st = run_op(EVM_BINARY_MUL, 6, attrs, 1, &a, &t, &y, &err);
    check(st == EVMAP_OK && ref_compare(EVM_BINARY_MUL, &a, &t, &y), "legacy suffix", 0);
    evm_tensor_release(&y);

    /* Only B may be stretched. */
    st = run_op(EVM_BINARY_MUL, 6, attrs, 1, &t, &a, &y, &err);
    check(st == EVMAP_ERR_INVALID_ARGUMENT, "legacy rejects stretching A", 0);
    evm_tensor_release(&y);
    evm_tensor_release(&t);
    evm_tensor_release(&a);
    evm_tensor_release(&b);
}

/* Large per-channel and scalar cases, where the fast paths matter. */
static void test_large(void) {
    int64_t dx[4] = {2, 16, 33, 35}, dc[3] = {16, 1, 1}, ds[1] = {1}, dr[2] = {33, 1};
    const int64_t *other[3] = {dc, ds, dr};
    int ranks[3] = {3, 1, 2};
    for (int k = 0; k < 3; k++) {
        evm_tensor a, b, y;
        make_tensor(&a, EVM_DTYPE_FLOAT, 4, dx);
        make_tensor(&b, EVM_DTYPE_FLOAT, ranks[k], other[k]);
        evmap_error err = {0};
        evmap_status st = run_op(EVM_BINARY_MUL, 14, NULL, 0, &a, &b, &y, &err);
        check(st == EVMAP_OK && ref_compare(EVM_BINARY_MUL, &a, &b, &y), "large broadcast", k);
        evm_tensor_release(&y);
        st = run_op(EVM_BINARY_ADD, 14, NULL, 0, &b, &a, &y, &err);
        check(st == EVMAP_OK && ref_compare(EVM_BINARY_ADD, &b, &a, &y), "large, swapped", k);
        evm_tensor_release(&y);
        evm_tensor_release(&a);
        evm_tensor_release(&b);
    }
}

int main(void) {
    test_fixed_shapes();
    test_random_values(3000);
    test_random_mismatches(500);
    test_dtype_errors();
    test_legacy();
    test_large();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
