/* Div: y = a / b with numpy broadcasting (opset < 7: the legacy 'broadcast'
 * and 'axis' attributes). float32 (IEEE: x / 0 is inf or NaN), and int64 for
 * shape arithmetic: the quotient truncated toward zero, as C and ONNX
 * Runtime do; x / 0 is 0 there and INT64_MIN / -1 wraps, rather than
 * trapping. */
#include "broadcast.h"

static inline int64_t div_i64(int64_t x, int64_t y) {
    if (y == 0)
        return 0;
    if (y == -1) /* INT64_MIN / -1 overflows */
        return (int64_t)(0 - (uint64_t)x);
    return x / y;
}

#define DIV_F(x, y) ((x) / (y))
/* d(a/b)/da = 1/b; d(a/b)/db = -a/b^2 */
#define D_A(x, y) ((void)(x), 1.0f / (y))
#define D_B(x, y) (-(x) / ((y) * (y)))

EVM_DEFINE_ROW_KERNELS(div_f32, float, float, float, DIV_F)
EVM_DEFINE_ROW_KERNELS(div_i64_rows, int64_t, int64_t, int64_t, div_i64)
EVM_DEFINE_ROW_KERNELS(d_a, float, float, float, D_A)
EVM_DEFINE_ROW_KERNELS(d_b, float, float, float, D_B)

static void div_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace) {
    (void)workspace;
    evm_binary_forward_rows(node, in[0]->dtype == EVM_DTYPE_INT64 ? &div_i64_rows : &div_f32, in,
                            out);
}

static void div_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace) {
    (void)out;
    static const evm_row_kernels *const dk[2] = {&d_a, &d_b};
    evm_binary_backward_rows(node, dk, in, grad_out, grad_in, workspace);
}

const evm_op_def evm_op_div = {
    .name = "Div",
    .min_inputs = 2,
    .max_inputs = 2,
    .init = evm_binary_init,
    .infer = evm_binary_infer,
    .forward = div_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0 | 1u << 1,
    .backward = div_backward,
    .backward_workspace = evm_binary_backward_workspace,
    .kinks = EVM_KINKS_NONE,
};
