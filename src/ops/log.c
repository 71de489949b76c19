/* Log: y = ln x (-inf at 0, NaN below); dy/dx = 1 / x. Element-wise on float32. */
#include <math.h>

#include "unary.h"

static inline float log_value(float x) {
    return logf(x);
}

static inline float log_slope(float x, float y) {
    (void)y;
    return 1.0f / x;
}

EVM_UNARY_KERNELS(log, log_value, log_slope)

const evm_op_def evm_op_log = {
    .name = "Log",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_op_infer_same,
    .forward = log_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = log_backward,
    .kinks = EVM_KINKS_NONE,
};
