/* Sub: y = a - b with numpy broadcasting (opset < 7: the legacy 'broadcast'
 * and 'axis' attributes). float32, and int64 for shape arithmetic. */
#include "broadcast.h"

/* int64 wraps through uint64, as Add's does (signed overflow is undefined). */
#define SUB_F(x, y) ((x) - (y))
#define SUB_I(x, y) ((int64_t)((uint64_t)(x) - (uint64_t)(y)))
#define ONE(x, y) ((void)(x), (void)(y), 1.0f)
#define MINUS_ONE(x, y) ((void)(x), (void)(y), -1.0f)

EVM_DEFINE_ROW_KERNELS(sub_f32, float, float, float, SUB_F)
EVM_DEFINE_ROW_KERNELS(sub_i64, int64_t, int64_t, int64_t, SUB_I)
EVM_DEFINE_ROW_KERNELS(d_a, float, float, float, ONE)
EVM_DEFINE_ROW_KERNELS(d_b, float, float, float, MINUS_ONE)

static void sub_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace) {
    (void)workspace;
    evm_binary_forward_rows(node, in[0]->dtype == EVM_DTYPE_INT64 ? &sub_i64 : &sub_f32, in, out);
}

static void sub_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace) {
    (void)out;
    static const evm_row_kernels *const dk[2] = {&d_a, &d_b};
    evm_binary_backward_rows(node, dk, in, grad_out, grad_in, workspace);
}

const evm_op_def evm_op_sub = {
    .name = "Sub",
    .min_inputs = 2,
    .max_inputs = 2,
    .init = evm_binary_init,
    .infer = evm_binary_infer,
    .forward = sub_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0 | 1u << 1,
    .backward = sub_backward,
    .backward_workspace = evm_binary_backward_workspace,
    .kinks = EVM_KINKS_NONE,
};
