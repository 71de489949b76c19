/* LeakyRelu: y = x for x >= 0, alpha * x otherwise (alpha defaults to 0.01).
 * Element-wise on float32. */
#include <stdlib.h>

#include "op.h"

typedef struct leaky_relu_params {
    float alpha; /* slope for negative inputs */
} leaky_relu_params;

static evmap_status leaky_relu_init(evm_node *node, evmap_error *err) {
    leaky_relu_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    return evm_attr_float(node, "alpha", 0.01f, &p->alpha, err);
}

static void leaky_relu_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               float *workspace) {
    (void)workspace;
    const float alpha = ((const leaky_relu_params *)node->params)->alpha;
    const float *restrict x = evm_f32(in[0]);
    float *restrict y = evm_f32(out[0]);
    for (size_t i = 0; i < in[0]->count; i++)
        y[i] = x[i] >= 0.0f ? x[i] : alpha * x[i];
}

/* Slope 1 for x > 0, alpha below; at the kink x = 0 alpha, as PyTorch. */
static void leaky_relu_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                const evm_tensor *grad_out, evm_tensor *const *grad_in,
                                float *workspace) {
    (void)out;
    (void)workspace;
    const float alpha = ((const leaky_relu_params *)node->params)->alpha;
    const float *restrict x = evm_f32(in[0]), *restrict gy = evm_f32(grad_out);
    float *restrict gx = evm_f32(grad_in[0]);
    for (size_t i = 0; i < in[0]->count; i++) {
        float g = gy[i]; /* loaded unconditionally: a select, not a branch */
        gx[i] = x[i] > 0.0f ? g : alpha * g;
    }
}

const evm_op_def evm_op_leaky_relu = {
    .name = "LeakyRelu",
    .min_inputs = 1,
    .max_inputs = 1,
    .init = leaky_relu_init,
    .infer = evm_op_infer_same,
    .forward = leaky_relu_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = leaky_relu_backward,
    .kinks = EVM_KINKS_SIGN,
};
