/* Add: y = a + b with numpy broadcasting (opset < 7: the legacy 'broadcast'
 * and 'axis' attributes). float32, and int64 for shape arithmetic. */
#include "broadcast.h"

static void add_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace) {
    (void)workspace;
    evm_binary_forward(node, EVM_BINARY_ADD, in, out);
}

static void add_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace) {
    (void)out;
    (void)workspace;
    evm_binary_backward(node, EVM_BINARY_ADD, in, grad_out, grad_in);
}

const evm_op_def evm_op_add = {
    .name = "Add",
    .min_inputs = 2,
    .max_inputs = 2,
    .init = evm_binary_init,
    .infer = evm_binary_infer,
    .forward = add_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0 | 1u << 1,
    .backward = add_backward,
    .kinks = EVM_KINKS_NONE,
};
