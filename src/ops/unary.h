/*
 * Element-wise float32 operators y = f(x) whose derivative is a function of x
 * and y (Exp, Log, Sqrt, Tanh, Sigmoid, ...): the forward and backward loops
 * they share. An operator file defines its value and slope as static inline
 * functions and names them in EVM_UNARY_KERNELS, which defines
 * NAME_forward and NAME_backward for its evm_op_def; the compiler inlines
 * both functions into the loops.
 */
#ifndef EVM_OPS_UNARY_H
#define EVM_OPS_UNARY_H

#include "op.h"

#define EVM_UNARY_KERNELS(name, value, slope)                                                      \
    static void name##_forward(const evm_node *node, evm_tensor *const *in,                        \
                               evm_tensor *const *out, float *workspace) {                         \
        (void)node;                                                                                \
        (void)workspace;                                                                           \
        const float *restrict x = evm_f32(in[0]);                                                  \
        float *restrict y = evm_f32(out[0]);                                                       \
        for (size_t i = 0; i < in[0]->count; i++)                                                  \
            y[i] = value(x[i]);                                                                    \
    }                                                                                              \
    static void name##_backward(const evm_node *node, evm_tensor *const *in,                       \
                                evm_tensor *const *out, const evm_tensor *grad_out,                \
                                evm_tensor *const *grad_in, float *workspace) {                    \
        (void)node;                                                                                \
        (void)workspace;                                                                           \
        const float *restrict x = evm_f32(in[0]), *restrict y = evm_f32(out[0]);                   \
        const float *restrict gy = evm_f32(grad_out);                                              \
        float *restrict gx = evm_f32(grad_in[0]);                                                  \
        for (size_t i = 0; i < in[0]->count; i++)                                                  \
            gx[i] = gy[i] * slope(x[i], y[i]);                                                     \
    }

#endif
