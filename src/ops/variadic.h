/*
 * The shared body of the variadic element-wise operators Sum, Mean, Max and
 * Min: 1..N inputs broadcast together (numpy rules from opset 8; equal
 * shapes before), folded left to right with one binary kernel.
 */
#ifndef EVM_VARIADIC_H
#define EVM_VARIADIC_H

#include "broadcast.h"

/* Checks that every input is present, float32 (or int64 when allow_int64),
 * all of one type, and that the shapes broadcast; sets the output. */
evmap_status evm_variadic_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                bool allow_int64, evmap_error *err);

/* out[0] = k(...k(k(in[0], in[1]), in[2])..., in[n-1]); a copy of in[0] for
 * a single input. */
void evm_variadic_forward(const evm_node *node, const evm_row_kernels *k, evm_tensor *const *in,
                          evm_tensor *const *out);

/* Backward of y = scale * (in[0] + ... + in[n-1]): each requested gradient
 * is scale * grad_out summed over the axes its input was broadcast along. */
void evm_variadic_backward_sum(const evm_node *node, float scale, evm_tensor *const *in,
                               const evm_tensor *grad_out, evm_tensor *const *grad_in);

/* Backward of Max and Min (EVM_KINKS_SELECT): each output element's
 * gradient goes to the first input, in input order, whose value equals the
 * output there (ties to the first input); none where the output is NaN.
 * Needs evm_variadic_select_workspace floats. */
size_t evm_variadic_select_workspace(const evm_node *node, evm_tensor *const *in,
                                     evm_tensor *const *out);
void evm_variadic_backward_select(const evm_node *node, evm_tensor *const *in,
                                  evm_tensor *const *out, const evm_tensor *grad_out,
                                  evm_tensor *const *grad_in, float *workspace);

#endif
