/* Sin: y = sin(x); dy/dx = cos(x). Element-wise on float32. */
#include <math.h>

#include "unary.h"

static inline float sin_value(float x) {
    return sinf(x);
}

static inline float sin_slope(float x, float y) {
    (void)y;
    return cosf(x);
}

EVM_UNARY_KERNELS(sin, sin_value, sin_slope)

const evm_op_def evm_op_sin = {
    .name = "Sin",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = sin_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = sin_backward,
    .kinks = EVM_KINKS_NONE,
};
