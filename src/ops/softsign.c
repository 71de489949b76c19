/* Softsign: y = x / (1 + |x|), element-wise on float32. Its derivative
 * 1 / (1 + |x|)^2 is continuous (|x|'s kink only reaches the second
 * derivative), so there is no kink to declare. */
#include <math.h>

#include "unary.h"

static inline float softsign_value(float x) {
    return x / (1.0f + fabsf(x));
}

static inline float softsign_slope(float x, float y) {
    (void)y;
    float d = 1.0f + fabsf(x);
    return 1.0f / (d * d);
}

EVM_UNARY_KERNELS(softsign, softsign_value, softsign_slope)

const evm_op_def evm_op_softsign = {
    .name = "Softsign",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = softsign_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = softsign_backward,
    .kinks = EVM_KINKS_NONE,
};
