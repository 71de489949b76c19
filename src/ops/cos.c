/* Cos: y = cos(x); dy/dx = -sin(x). Element-wise on float32. */
#include <math.h>

#include "unary.h"

static inline float cos_value(float x) {
    return cosf(x);
}

static inline float cos_slope(float x, float y) {
    (void)y;
    return -sinf(x);
}

EVM_UNARY_KERNELS(cos, cos_value, cos_slope)

const evm_op_def evm_op_cos = {
    .name = "Cos",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = cos_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = cos_backward,
    .kinks = EVM_KINKS_NONE,
};
