/* Elu: y = x for x >= 0, alpha * (exp(x) - 1) otherwise (alpha defaults to
 * 1), element-wise on float32. */
#include <math.h>

#include "op.h"

typedef struct elu_params {
    float alpha;
} elu_params;

static evmap_status elu_init(evm_node *node, evmap_error *err) {
    elu_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    return evm_attr_float(node, "alpha", 1.0f, &p->alpha, err);
}

static void elu_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace) {
    (void)workspace;
    const float alpha = ((const elu_params *)node->params)->alpha;
    const float *restrict x = evm_f32(in[0]);
    float *restrict y = evm_f32(out[0]);
    for (size_t i = 0; i < in[0]->count; i++)
        y[i] = x[i] >= 0.0f ? x[i] : alpha * expm1f(x[i]);
}

/* Slope 1 for x > 0, alpha exp(x) otherwise: at the kink x = 0 (when
 * alpha != 1) alpha, as PyTorch (EVM_KINKS_SIGN). */
static void elu_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace) {
    (void)out;
    (void)workspace;
    const float alpha = ((const elu_params *)node->params)->alpha;
    const float *restrict x = evm_f32(in[0]), *restrict gy = evm_f32(grad_out);
    float *restrict gx = evm_f32(grad_in[0]);
    for (size_t i = 0; i < in[0]->count; i++)
        gx[i] = x[i] > 0.0f ? gy[i] : gy[i] * alpha * expf(x[i]);
}

const evm_op_def evm_op_elu = {
    .name = "Elu",
    .min_inputs = 1,
    .max_inputs = 1,
    .init = elu_init,
    .infer = evm_op_infer_same,
    .forward = elu_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = elu_backward,
    .kinks = EVM_KINKS_SIGN,
};
