/* Tanh: y = tanh(x), element-wise on float32. */
#include <math.h>

#include "unary.h"

static inline float tanh_value(float x) {
    return tanhf(x);
}

static inline float tanh_slope(float x, float y) {
    (void)x;
    return 1.0f - y * y;
}

EVM_UNARY_KERNELS(tanh, tanh_value, tanh_slope)

const evm_op_def evm_op_tanh = {
    .name = "Tanh",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = tanh_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = tanh_backward,
    .kinks = EVM_KINKS_NONE,
};
