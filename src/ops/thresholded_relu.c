/* ThresholdedRelu: y = x where x > alpha, 0 elsewhere (alpha defaults to
 * 1). Element-wise on float32. The value jumps at alpha; backward passes
 * the gradient where x > alpha (EVM_KINKS_THRESHOLD). */
#include <math.h>

#include "op.h"

typedef struct thresholded_relu_params {
    float alpha;
} thresholded_relu_params;

static evmap_status thresholded_relu_init(evm_node *node, evmap_error *err) {
    thresholded_relu_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    evmap_status st = evm_attr_float(node, "alpha", 1.0f, &p->alpha, err);
    if (st != EVMAP_OK)
        return st;
    if (isnan(p->alpha))
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "attribute 'alpha' is NaN; it must be a number (the threshold)");
    return EVMAP_OK;
}

static void thresholded_relu_forward(const evm_node *node, evm_tensor *const *in,
                                     evm_tensor *const *out, float *workspace) {
    (void)workspace;
    const float alpha = ((const thresholded_relu_params *)node->params)->alpha;
    const float *restrict x = evm_f32(in[0]);
    float *restrict y = evm_f32(out[0]);
    for (size_t i = 0; i < in[0]->count; i++)
        y[i] = x[i] > alpha ? x[i] : 0.0f;
}

static void thresholded_relu_backward(const evm_node *node, evm_tensor *const *in,
                                      evm_tensor *const *out, const evm_tensor *grad_out,
                                      evm_tensor *const *grad_in, float *workspace) {
    (void)out;
    (void)workspace;
    const float alpha = ((const thresholded_relu_params *)node->params)->alpha;
    const float *restrict x = evm_f32(in[0]), *restrict gy = evm_f32(grad_out);
    float *restrict gx = evm_f32(grad_in[0]);
    for (size_t i = 0; i < in[0]->count; i++) {
        float g = gy[i]; /* loaded unconditionally: a select, not a branch */
        gx[i] = x[i] > alpha ? g : 0.0f;
    }
}

const evm_op_def evm_op_thresholded_relu = {
    .name = "ThresholdedRelu",
    .min_inputs = 1,
    .max_inputs = 1,
    .init = thresholded_relu_init,
    .infer = evm_op_infer_same,
    .forward = thresholded_relu_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = thresholded_relu_backward,
    .kinks = EVM_KINKS_THRESHOLD,
};
