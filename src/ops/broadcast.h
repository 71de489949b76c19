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

/* y = a op b, broadcasting a and b to y's shape. */
void evm_broadcast_apply(evm_binary_op op, const evm_tensor *a, const evm_tensor *b, evm_tensor *y);

/* Gradient of a broadcast operand (float32 only): dst = g * other summed over
 * the axes along which dst was broadcast to g's shape, with other broadcast
 * too (NULL: 1). dst and other are broadcastable to g; every element of dst
 * is written. */
void evm_broadcast_reduce(const evm_tensor *g, const evm_tensor *other, evm_tensor *dst);

/* ---- the shared body of Add and Mul ---- */

/* Parses the opset < 7 'broadcast'/'axis' attributes (legacy broadcasting). */
evmap_status evm_binary_init(evm_node *node, evmap_error *err);

/* Checks dtypes (both float32 or both int64) and shapes; sets the output. */
evmap_status evm_binary_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              evmap_error *err);

void evm_binary_forward(const evm_node *node, evm_binary_op op, evm_tensor *const *in,
                        evm_tensor *const *out);

/* Backward of Add and Mul (float32): the gradient of each requested input,
 * legacy broadcasting included. */
void evm_binary_backward(const evm_node *node, evm_binary_op op, evm_tensor *const *in,
                         const evm_tensor *grad_out, evm_tensor *const *grad_in);

#endif
