/*
 * GlobalAveragePool: the mean of each channel over all spatial positions,
 * N x C x D1 x ... x Dk -> N x C x 1 x ... x 1 (any k >= 1), float32.
 * Sums in double so that large planes do not lose precision.
 */
#include "op.h"

static evmap_status global_average_pool_infer(const evm_node *node, evm_tensor *const *in,
                                              evm_tensor *const *out, evmap_error *err) {
    evmap_status st = evm_op_require_float(node, in, 0, err);
    if (st != EVMAP_OK)
        return st;
    const evm_tensor *x = in[0];
    if (x->rank < 3) {
        char buf[EVM_SHAPE_STR_SIZE];
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "input has shape %s; expected N x C x spatial dims",
                             evm_shape_str(x, buf, sizeof buf));
    }
    int64_t dims[EVM_MAX_RANK];
    for (int i = 0; i < x->rank; i++)
        dims[i] = i < 2 ? x->dims[i] : 1;
    out[0]->dtype = EVM_DTYPE_FLOAT;
    return evm_tensor_set_shape(out[0], x->rank, dims, err);
}

static void global_average_pool_forward(const evm_node *node, evm_tensor *const *in,
                                        evm_tensor *const *out, float *workspace) {
    (void)node;
    (void)workspace;
    size_t planes = out[0]->count;
    size_t plane = planes ? in[0]->count / planes : 0;
    const float *x = evm_f32(in[0]);
    float *y = evm_f32(out[0]);
    for (size_t i = 0; i < planes; i++) {
        const float *p = x + i * plane;
        double sum = 0.0;
        for (size_t j = 0; j < plane; j++)
            sum += p[j];
        y[i] = plane ? (float)(sum / (double)plane) : 0.0f;
    }
}

const evm_op_def evm_op_global_average_pool = {
    .name = "GlobalAveragePool",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = global_average_pool_infer,
    .forward = global_average_pool_forward,
};
