/* Less: element-wise comparison with numpy broadcasting, a bool output
 * (see compare.h). */
#include "compare.h"

static void less_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         float *workspace) {
    (void)node;
    (void)workspace;
    evm_compare_forward(EVM_COMPARE_LESS, in, out);
}

const evm_op_def evm_op_less = {
    .name = "Less",
    .min_inputs = 2,
    .max_inputs = 2,
    .init = evm_compare_init,
    .infer = evm_compare_infer,
    .forward = less_forward,
};
