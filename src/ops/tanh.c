/* Tanh: y = tanh(x), element-wise on float32. */
#include <math.h>

#include "op.h"

static void tanh_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         float *workspace) {
    (void)node;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]);
    float *restrict y = evm_f32(out[0]);
    for (size_t i = 0; i < in[0]->count; i++)
        y[i] = tanhf(x[i]);
}

const evm_op_def evm_op_tanh = {
    .name = "Tanh",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = tanh_forward,
    .elementwise = true,
};
