/* Selu: y = gamma * x for x > 0, gamma * alpha * (exp(x) - 1) otherwise,
 * element-wise on float32; alpha and gamma default to the self-normalising
 * constants of the ONNX spec (PyTorch's, rounded to float32). */
#include <math.h>

#include "op.h"

typedef struct selu_params {
    float alpha, gamma;
} selu_params;

static evmap_status selu_init(evm_node *node, evmap_error *err) {
    selu_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    evmap_status st = evm_attr_float(node, "alpha", 1.67326319217681884765625f, &p->alpha, err);
    if (st == EVMAP_OK)
        st = evm_attr_float(node, "gamma", 1.05070102214813232421875f, &p->gamma, err);
    return st;
}

static void selu_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         float *workspace) {
    (void)workspace;
    const selu_params *p = node->params;
    const float ga = p->gamma * p->alpha, gamma = p->gamma;
    const float *restrict x = evm_f32(in[0]);
    float *restrict y = evm_f32(out[0]);
    for (size_t i = 0; i < in[0]->count; i++)
        y[i] = x[i] > 0.0f ? gamma * x[i] : ga * expm1f(x[i]);
}

/* Slope gamma for x > 0, gamma alpha exp(x) otherwise: at the kink x = 0
 * gamma alpha, as PyTorch (EVM_KINKS_SIGN). */
static void selu_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                          const evm_tensor *grad_out, evm_tensor *const *grad_in,
                          float *workspace) {
    (void)out;
    (void)workspace;
    const selu_params *p = node->params;
    const float ga = p->gamma * p->alpha, gamma = p->gamma;
    const float *restrict x = evm_f32(in[0]), *restrict gy = evm_f32(grad_out);
    float *restrict gx = evm_f32(grad_in[0]);
    for (size_t i = 0; i < in[0]->count; i++)
        gx[i] = x[i] > 0.0f ? gamma * gy[i] : gy[i] * ga * expf(x[i]);
}

const evm_op_def evm_op_selu = {
    .name = "Selu",
    .min_inputs = 1,
    .max_inputs = 1,
    .init = selu_init,
    .infer = evm_op_infer_same,
    .forward = selu_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = selu_backward,
    .kinks = EVM_KINKS_SIGN,
};
