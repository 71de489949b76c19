/* Exp: y = e^x; dy/dx = y. Element-wise on float32. */
#include <math.h>

#include "unary.h"

static inline float exp_value(float x) {
    return expf(x);
}

static inline float exp_slope(float x, float y) {
    (void)x;
    return y;
}

EVM_UNARY_KERNELS(exp, exp_value, exp_slope)

const evm_op_def evm_op_exp = {
    .name = "Exp",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = exp_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = exp_backward,
    .kinks = EVM_KINKS_NONE,
};
