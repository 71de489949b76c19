/* Softplus: y = log(1 + exp(x)), element-wise on float32, computed as
 * max(x, 0) + log1p(exp(-|x|)) so that it neither overflows for large x nor
 * loses small values for very negative x. Smooth: dy/dx = sigmoid(x). */
#include <math.h>

#include "unary.h"

static inline float softplus_value(float x) {
    return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
}

static inline float softplus_slope(float x, float y) {
    (void)y;
    return 1.0f / (1.0f + expf(-x));
}

EVM_UNARY_KERNELS(softplus, softplus_value, softplus_slope)

const evm_op_def evm_op_softplus = {
    .name = "Softplus",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = softplus_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = softplus_backward,
    .kinks = EVM_KINKS_NONE,
};
