/* HardSigmoid: y = max(0, min(1, alpha * x + beta)), element-wise on
 * float32 (alpha defaults to 0.2, beta to 0.5). v = alpha * x + beta is
 * rounded as in EVM_KINKS_HARD (alpha * x first, no fused multiply-add), so
 * that gradient references can recompute evmap's decisions. NaN stays NaN. */
#include "op.h"

typedef struct hard_sigmoid_params {
    float alpha, beta;
} hard_sigmoid_params;

static evmap_status hard_sigmoid_init(evm_node *node, evmap_error *err) {
    hard_sigmoid_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    evmap_status st = evm_attr_float(node, "alpha", 0.2f, &p->alpha, err);
    if (st == EVMAP_OK)
        st = evm_attr_float(node, "beta", 0.5f, &p->beta, err);
    return st;
}

static void hard_sigmoid_forward(const evm_node *node, evm_tensor *const *in,
                                 evm_tensor *const *out, float *workspace) {
    (void)workspace;
    const hard_sigmoid_params *p = node->params;
    const float alpha = p->alpha, beta = p->beta;
    const float *restrict x = evm_f32(in[0]);
    float *restrict y = evm_f32(out[0]);
    for (size_t i = 0; i < in[0]->count; i++) {
        float ax = alpha * x[i]; /* a statement of its own: never contracted */
        float v = ax + beta;
        y[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    }
}

/* Slope alpha where 0 <= v <= 1 (both bounds included, as Clip), 0 outside. */
static void hard_sigmoid_backward(const evm_node *node, evm_tensor *const *in,
                                  evm_tensor *const *out, const evm_tensor *grad_out,
                                  evm_tensor *const *grad_in, float *workspace) {
    (void)out;
    (void)workspace;
    const hard_sigmoid_params *p = node->params;
    const float alpha = p->alpha, beta = p->beta;
    const float *restrict x = evm_f32(in[0]), *restrict gy = evm_f32(grad_out);
    float *restrict gx = evm_f32(grad_in[0]);
    for (size_t i = 0; i < in[0]->count; i++) {
        float ax = alpha * x[i];
        float v = ax + beta;
        float g = gy[i];
        gx[i] = v >= 0.0f && v <= 1.0f ? alpha * g : 0.0f;
    }
}

const evm_op_def evm_op_hard_sigmoid = {
    .name = "HardSigmoid",
    .min_inputs = 1,
    .max_inputs = 1,
    .init = hard_sigmoid_init,
    .infer = evm_op_infer_same,
    .forward = hard_sigmoid_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = hard_sigmoid_backward,
    .kinks = EVM_KINKS_HARD,
};
