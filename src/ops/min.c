/* Min: the smallest of 1..N inputs, element by element, with numpy
 * broadcasting from opset 8 (equal shapes before). float32 (NaN wins, as in
 * numpy), and int64 for shape arithmetic. Backward: to the first input equal
 * to the output (EVM_KINKS_SELECT). */
#include <limits.h>

#include "variadic.h"

#define MIN_F(x, y) ((x) < (y) || (x) != (x) ? (x) : (y))
#define MIN_I(x, y) ((x) < (y) ? (x) : (y))

EVM_DEFINE_ROW_KERNELS(min_f32, float, float, float, MIN_F)
EVM_DEFINE_ROW_KERNELS(min_i64, int64_t, int64_t, int64_t, MIN_I)

static evmap_status min_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              evmap_error *err) {
    return evm_variadic_infer(node, in, out, true, err);
}

static void min_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace) {
    (void)workspace;
    evm_variadic_forward(node, in[0]->dtype == EVM_DTYPE_INT64 ? &min_i64 : &min_f32, in, out);
}

const evm_op_def evm_op_min = {
    .name = "Min",
    .min_inputs = 1,
    .max_inputs = INT_MAX, /* variadic */
    .infer = min_infer,
    .forward = min_forward,
    .elementwise = true,
    .grad_inputs = ~0u,
    .backward = evm_variadic_backward_select,
    .backward_workspace = evm_variadic_select_workspace,
    .kinks = EVM_KINKS_SELECT,
};
