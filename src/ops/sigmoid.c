/* Sigmoid: y = 1 / (1 + exp(-x)), element-wise on float32. For very negative
 * x, exp(-x) overflows to +inf and y correctly becomes 0 (never NaN). */
#include <math.h>

#include "op.h"

static void sigmoid_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                            float *workspace) {
    (void)node;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]);
    float *restrict y = evm_f32(out[0]);
    for (size_t i = 0; i < in[0]->count; i++)
        y[i] = 1.0f / (1.0f + expf(-x[i]));
}

const evm_op_def evm_op_sigmoid = {
    .name = "Sigmoid",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = sigmoid_forward,
    .elementwise = true,
};
