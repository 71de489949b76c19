/* Erf: y = erf(x); dy/dx = 2 / sqrt(pi) e^(-x^2). Element-wise on float32. */
#include <math.h>

#include "unary.h"

static inline float erf_value(float x) {
    return erff(x);
}

static inline float erf_slope(float x, float y) {
    (void)y;
    return 1.1283791670955126f * expf(-x * x); /* 2 / sqrt(pi) */
}

EVM_UNARY_KERNELS(erf, erf_value, erf_slope)

const evm_op_def evm_op_erf = {
    .name = "Erf",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = erf_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = erf_backward,
    .kinks = EVM_KINKS_NONE,
};
