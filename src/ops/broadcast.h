/*
 * Numpy-style multidirectional broadcasting for the binary element-wise
 * operators (Add, Mul). Shapes are aligned at their last axis; along each axis
 * the sizes must match or one of them must be 1. Works on float32 and int64
 * (int64 for the shape arithmetic that exporters emit).
 *
 * Invariant used by the kernels: a, b and y share one dtype and y already has
 * the broadcast shape of a and b (checked by evm_binary_infer).
 */
#ifndef EVM_BROADCAST_H
#define EVM_BROADCAST_H

#include <stdbool.h>
#include <stdint.h>

#include "op.h"

typedef enum evm_binary_op { EVM_BINARY_ADD, EVM_BINARY_MUL, EVM_BINARY_OP_COUNT } evm_binary_op;

/* Broadcast shape of a (rank_a, dims_a) and b into *rank and dims (room for
 * EVM_MAX_RANK). Returns false when an axis has two sizes that differ and
 * neither is 1; *bad_axis is then that axis of the output (counted from the
 * front of the longer shape). Ranks above EVM_MAX_RANK are not accepted. */
bool evm_broadcast_shape(int rank_a, const int64_t *dims_a, int rank_b, const int64_t *dims_b,
                         int *rank, int64_t *dims, int *bad_axis);

/* Row kernels of one element-wise binary operation over n elements:
 * vv: y[i] = op(a[i], b[i]); vs: op(a[i], b[0]); sv: op(a[0], b[i]). y may
 * be the same array as a (the variadic ops accumulate in place), so they
 * take no restrict. Each operand has its own element type. */
typedef void (*evm_row_fn)(void *y, const void *a, const void *b, size_t n);
typedef struct evm_row_kernels {
    evm_row_fn vv, vs, sv;
} evm_row_kernels;

/* Defines `static const evm_row_kernels name` computing y = OP(a, b), with
 * y, a and b of the C types TY, TA and TB. */
#define EVM_DEFINE_ROW_KERNELS(name, TY, TA, TB, OP)                                               \
    static void name##_vv(void *yv, const void *av, const void *bv, size_t n) {                    \
        TY *y = yv;                                                                                \
        const TA *a = av;                                                                          \
        const TB *b = bv;                                                                          \
        for (size_t i = 0; i < n; i++)                                                             \
            y[i] = OP(a[i], b[i]);                                                                 \
    }                                                                                              \
    static void name##_vs(void *yv, const void *av, const void *bv, size_t n) {                    \
        TY *y = yv;                                                                                \
        const TA *a = av;                                                                          \
        const TB s = *(const TB *)bv;                                                              \
        for (size_t i = 0; i < n; i++)                                                             \
            y[i] = OP(a[i], s);                                                                    \
    }                                                                                              \
    static void name##_sv(void *yv, const void *av, const void *bv, size_t n) {                    \
        TY *y = yv;                                                                                \
        const TB *b = bv;                                                                          \
        const TA s = *(const TA *)av;                                                              \
        for (size_t i = 0; i < n; i++)                                                             \
            y[i] = OP(s, b[i]);                                                                    \
    }                                                                                              \
    static const evm_row_kernels name = {name##_vv, name##_vs, name##_sv};

/* y = k(a, b), broadcasting a and b to y's shape (which may be larger than
 * their broadcast shape: every operand is aligned to y). */
void evm_broadcast_rows(const evm_row_kernels *k, const evm_tensor *a, const evm_tensor *b,
                        evm_tensor *y);

/* y = a op b, broadcasting a and b to y's shape. */
void evm_broadcast_apply(evm_binary_op op, const evm_tensor *a, const evm_tensor *b, evm_tensor *y);

/* Gradient of a broadcast operand (float32 only): dst = g * other summed over
 * the axes along which dst was broadcast to g's shape, with other broadcast
 * too (NULL: 1). dst and other are broadcastable to g; every element of dst
 * is written. */
void evm_broadcast_reduce(const evm_tensor *g, const evm_tensor *other, evm_tensor *dst);

/* ---- the shared body of the binary operators (Add, Mul, Sub, Div, Pow) ---- */

/* Parses the opset < 7 'broadcast'/'axis' attributes (legacy broadcasting). */
evmap_status evm_binary_init(evm_node *node, evmap_error *err);

/* Checks dtypes (both float32 or both int64) and shapes; sets the output. */
evmap_status evm_binary_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              evmap_error *err);

/* The shapes only (dtypes are the caller's): broadcasts, legacy rules
 * included, and sets out[0]'s shape. */
evmap_status evm_binary_infer_shape(const evm_node *node, evm_tensor *const *in,
                                    evm_tensor *const *out, evmap_error *err);

/* B as it takes part in the broadcast: itself, or under opset < 7 with an
 * 'axis', its dims moved to line up at that axis of A (same data). */
evmap_status evm_binary_view_b(const evm_node *node, const evm_tensor *a, const evm_tensor *b,
                               evm_tensor *view, evmap_error *err);

/* out[0] = k(in[0], in[1]) with the node's broadcasting. */
void evm_binary_forward_rows(const evm_node *node, const evm_row_kernels *k, evm_tensor *const *in,
                             evm_tensor *const *out);

/* Backward of a binary operator from its local derivatives: dk[j] writes
 * d y / d input j (float) at each output element from (a, b); grad_in[j] is
 * grad_out times that, summed over the axes input j was broadcast along.
 * Needs evm_binary_backward_workspace floats (one output's worth). */
size_t evm_binary_backward_workspace(const evm_node *node, evm_tensor *const *in,
                                     evm_tensor *const *out);
void evm_binary_backward_rows(const evm_node *node, const evm_row_kernels *const *dk,
                              evm_tensor *const *in, const evm_tensor *grad_out,
                              evm_tensor *const *grad_in, float *workspace);

void evm_binary_forward(const evm_node *node, evm_binary_op op, evm_tensor *const *in,
                        evm_tensor *const *out);

/* Backward of Add and Mul (float32): the gradient of each requested input,
 * legacy broadcasting included. */
void evm_binary_backward(const evm_node *node, evm_binary_op op, evm_tensor *const *in,
                         const evm_tensor *grad_out, evm_tensor *const *grad_in);

#endif
