/*
 * GlobalMaxPool: the maximum of each channel over all spatial positions,
 * N x C x D1 x ... x Dk -> N x C x 1 x ... x 1 (any k >= 1), float32.
 */
#include <float.h>

#include "op.h"

static void global_max_pool_forward(const evm_node *node, evm_tensor *const *in,
                                    evm_tensor *const *out, float *workspace) {
    (void)node;
    (void)workspace;
    size_t planes = out[0]->count;
    size_t plane = planes ? in[0]->count / planes : 0;
    const float *x = evm_f32(in[0]);
    float *y = evm_f32(out[0]);
    for (size_t i = 0; i < planes; i++) {
        const float *p = x + i * plane;
        float m = -FLT_MAX; /* an empty plane, as ONNX Runtime's lowest float */
        for (size_t j = 0; j < plane; j++)
            m = p[j] > m ? p[j] : m;
        y[i] = m;
    }
}

const evm_op_def evm_op_global_max_pool = {
    .name = "GlobalMaxPool",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = evm_global_pool_infer,
    .forward = global_max_pool_forward,
};
