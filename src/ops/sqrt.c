/* Sqrt: y = sqrt(x), NaN for x < 0; dy/dx = 1 / (2 y), infinite at 0. Element-wise on float32. */
#include <math.h>

#include "unary.h"

static inline float sqrt_value(float x) {
    return sqrtf(x);
}

static inline float sqrt_slope(float x, float y) {
    (void)x;
    return 0.5f / y;
}

EVM_UNARY_KERNELS(sqrt, sqrt_value, sqrt_slope)

const evm_op_def evm_op_sqrt = {
    .name = "Sqrt",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = sqrt_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = sqrt_backward,
    .kinks = EVM_KINKS_NONE,
};
