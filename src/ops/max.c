/* Max: the largest of 1..N inputs, element by element, with numpy
 * broadcasting from opset 8 (equal shapes before). float32 (NaN wins, as in
 * numpy), and int64 for shape arithmetic. Backward: to the first input equal
 * to the output (EVM_KINKS_SELECT). */
#include <limits.h>

#include "variadic.h"

#define MAX_F(x, y) ((x) > (y) || (x) != (x) ? (x) : (y))
#define MAX_I(x, y) ((x) > (y) ? (x) : (y))

EVM_DEFINE_ROW_KERNELS(max_f32, float, float, float, MAX_F)
EVM_DEFINE_ROW_KERNELS(max_i64, int64_t, int64_t, int64_t, MAX_I)

static evmap_status max_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              evmap_error *err) {
    return evm_variadic_infer(node, in, out, true, err);
}

static void max_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace) {
    (void)workspace;
    evm_variadic_forward(node, in[0]->dtype == EVM_DTYPE_INT64 ? &max_i64 : &max_f32, in, out);
}

const evm_op_def evm_op_max = {
    .name = "Max",
    .min_inputs = 1,
    .max_inputs = INT_MAX, /* variadic */
    .infer = max_infer,
    .forward = max_forward,
    .elementwise = true,
    .grad_inputs = ~0u,
    .backward = evm_variadic_backward_select,
    .backward_workspace = evm_variadic_select_workspace,
    .kinks = EVM_KINKS_SELECT,
};
