/* Relu: y = max(x, 0). Element-wise, so its receptive field is the identity. */
#include "op.h"

static void relu_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         float *workspace) {
    (void)node;
    (void)workspace;
    const float *x = evm_f32(in[0]);
    float *y = evm_f32(out[0]);
    for (size_t i = 0; i < in[0]->count; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

const evm_op_def evm_op_relu = {
    .name = "Relu",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = relu_forward,
    .elementwise = true,
};
