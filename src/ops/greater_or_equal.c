/* GreaterOrEqual: element-wise x >= y with numpy broadcasting (opset 12 on), a bool
 * output (see compare.h); false where either value is NaN. */
#include "compare.h"

static void greater_or_equal_forward(const evm_node *node, evm_tensor *const *in,
                                     evm_tensor *const *out, float *workspace) {
    (void)node;
    (void)workspace;
    evm_compare_forward(EVM_COMPARE_GREATER_OR_EQUAL, in, out);
}

const evm_op_def evm_op_greater_or_equal = {
    .name = "GreaterOrEqual",
    .min_inputs = 2,
    .max_inputs = 2,
    .init = evm_compare_init,
    .infer = evm_compare_infer,
    .forward = greater_or_equal_forward,
};
