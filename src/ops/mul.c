/* Mul: y = a * b with numpy broadcasting (opset < 7: the legacy 'broadcast'
 * and 'axis' attributes). float32, and int64 for shape arithmetic. */
#include "broadcast.h"

static void mul_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace) {
    (void)workspace;
    evm_binary_forward(node, EVM_BINARY_MUL, in, out);
}

const evm_op_def evm_op_mul = {
    .name = "Mul",
    .min_inputs = 2,
    .max_inputs = 2,
    .init = evm_binary_init,
    .infer = evm_binary_infer,
    .forward = mul_forward,
    .elementwise = true,
};
