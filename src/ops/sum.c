/* Sum: y = in[0] + ... + in[n-1], 1..N inputs with numpy broadcasting from
 * opset 8 (equal shapes before). float32, and int64 for shape arithmetic
 * (wrapping). */
#include <limits.h>

#include "variadic.h"

#define ADD_F(x, y) ((x) + (y))
#define ADD_I(x, y) ((int64_t)((uint64_t)(x) + (uint64_t)(y)))

EVM_DEFINE_ROW_KERNELS(sum_f32, float, float, float, ADD_F)
EVM_DEFINE_ROW_KERNELS(sum_i64, int64_t, int64_t, int64_t, ADD_I)

static evmap_status sum_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              evmap_error *err) {
    return evm_variadic_infer(node, in, out, true, err);
}

static void sum_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace) {
    (void)workspace;
    evm_variadic_forward(node, in[0]->dtype == EVM_DTYPE_INT64 ? &sum_i64 : &sum_f32, in, out);
}

static void sum_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace) {
    (void)out;
    (void)workspace;
    evm_variadic_backward_sum(node, 1.0f, in, grad_out, grad_in);
}

const evm_op_def evm_op_sum = {
    .name = "Sum",
    .min_inputs = 1,
    .max_inputs = INT_MAX, /* variadic */
    .infer = sum_infer,
    .forward = sum_forward,
    .elementwise = true,
    .grad_inputs = ~0u,
    .backward = sum_backward,
    .kinks = EVM_KINKS_NONE,
};
