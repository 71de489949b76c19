/* Abs: y = |x|, element-wise on float32, and on int64 for shape arithmetic
 * (wrapping: |INT64_MIN| is INT64_MIN). Kinked at 0: backward takes the
 * slope sign(x), 0 at x = 0 (as PyTorch), EVM_KINKS_SIGNUM. */
#include <math.h>

#include "op.h"

static evmap_status abs_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              evmap_error *err) {
    if (in[0] && in[0]->dtype == EVM_DTYPE_INT64) {
        out[0]->dtype = EVM_DTYPE_INT64;
        return evm_tensor_set_shape(out[0], in[0]->rank, in[0]->dims, err);
    }
    return evm_op_infer_same(node, in, out, err);
}

static void abs_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace) {
    (void)node;
    (void)workspace;
    size_t n = in[0]->count;
    if (in[0]->dtype == EVM_DTYPE_INT64) {
        const int64_t *x = evm_i64(in[0]);
        int64_t *y = evm_i64(out[0]);
        for (size_t i = 0; i < n; i++)
            y[i] = x[i] < 0 ? (int64_t)(0 - (uint64_t)x[i]) : x[i];
        return;
    }
    const float *restrict x = evm_f32(in[0]);
    float *restrict y = evm_f32(out[0]);
    for (size_t i = 0; i < n; i++)
        y[i] = fabsf(x[i]);
}

static void abs_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace) {
    (void)node;
    (void)out;
    (void)workspace;
    const float *restrict x = evm_f32(in[0]), *restrict gy = evm_f32(grad_out);
    float *restrict gx = evm_f32(grad_in[0]);
    for (size_t i = 0; i < in[0]->count; i++) {
        float g = gy[i]; /* loaded unconditionally: selects, not branches */
        gx[i] = x[i] > 0.0f ? g : x[i] < 0.0f ? -g : 0.0f;
    }
}

const evm_op_def evm_op_abs = {
    .name = "Abs",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = abs_infer,
    .forward = abs_forward,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = abs_backward,
    .kinks = EVM_KINKS_SIGNUM,
};
