/* Sigmoid: y = 1 / (1 + exp(-x)), element-wise on float32. For very negative
 * x, exp(-x) overflows to +inf and y correctly becomes 0 (never NaN). */
#include <math.h>

#include "unary.h"

static inline float sigmoid_value(float x) {
    return 1.0f / (1.0f + expf(-x));
}

static inline float sigmoid_slope(float x, float y) {
    (void)x;
    return y * (1.0f - y);
}

EVM_UNARY_KERNELS(sigmoid, sigmoid_value, sigmoid_slope)

const evm_op_def evm_op_sigmoid = {
    .name = "Sigmoid",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = sigmoid_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = sigmoid_backward,
    .kinks = EVM_KINKS_NONE,
};
