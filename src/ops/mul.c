/* Mul: y = a * b with numpy broadcasting (opset < 7: the legacy 'broadcast'
 * and 'axis' attributes). float32, and int64 for shape arithmetic. */
#include "broadcast.h"

static void mul_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace) {
    (void)workspace;
    evm_binary_forward(node, EVM_BINARY_MUL, in, out);
}

static void mul_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace) {
    (void)out;
    (void)workspace;
    evm_binary_backward(node, EVM_BINARY_MUL, in, grad_out, grad_in);
}

const evm_op_def evm_op_mul = {
    .name = "Mul",
    .min_inputs = 2,
    .max_inputs = 2,
    .init = evm_binary_init,
    .infer = evm_binary_infer,
    .forward = mul_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0 | 1u << 1,
    .backward = mul_backward,
    .kinks = EVM_KINKS_NONE,
};
