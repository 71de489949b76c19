/* Floor: y = the largest integer <= x (NaN and infinities unchanged). Piecewise
 * constant: the slope is 0 on both sides of every step, so the gradient
 * (0, as PyTorch's) does not depend on which side a value falls, and no
 * kink is declared. Element-wise on float32. */
#include <math.h>

#include "unary.h"

static inline float floor_value(float x) {
    return floorf(x);
}

static inline float floor_slope(float x, float y) {
    (void)x;
    (void)y;
    return 0.0f;
}

EVM_UNARY_KERNELS(floor, floor_value, floor_slope)

const evm_op_def evm_op_floor = {
    .name = "Floor",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = floor_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = floor_backward,
    .kinks = EVM_KINKS_NONE,
};
