/* Reciprocal: y = 1 / x; dy/dx = -1 / x^2 = -y^2. Element-wise on float32. */
#include <math.h>

#include "unary.h"

static inline float reciprocal_value(float x) {
    return 1.0f / x;
}

static inline float reciprocal_slope(float x, float y) {
    (void)x;
    return -y * y;
}

EVM_UNARY_KERNELS(reciprocal, reciprocal_value, reciprocal_slope)

const evm_op_def evm_op_reciprocal = {
    .name = "Reciprocal",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = reciprocal_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = reciprocal_backward,
    .kinks = EVM_KINKS_NONE,
};
