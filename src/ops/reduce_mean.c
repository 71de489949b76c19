/* ReduceMean: the mean over the reduced axes (reduce.h), summed in
 * double. Axes are an attribute before opset 18, input 1 from then on. */

#include "reduce.h"

static evmap_status reduce_mean_init(evm_node *node, evmap_error *err) {
    return evm_reduce_init(node, 18, err);
}

static void reduce_mean_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                float *workspace) {
    (void)workspace;
    evm_reduce_layout l;
    evm_reduce_layout_make(node, in, &l);
    const float *x = evm_f32(in[0]);
    float *y = evm_f32(out[0]);
    int64_t oi[EVM_MAX_RANK] = {0}, base = 0;
    for (size_t o = 0; o < l.outer_count; o++) {
        int64_t ii[EVM_MAX_RANK] = {0}, off = 0;
        double acc = 0;
        for (size_t k = 0; k < l.inner_count; k++) {
            acc += x[base + off];
            off = evm_reduce_next(&l.inner, ii, off);
        }
        y[o] = (float)(acc / (double)l.inner_count); /* 0 / 0: NaN when empty */
        base = evm_reduce_next(&l.outer, oi, base);
    }
}

/* Every reduced element gets its output's gradient over the count (the noop
 * form: the gradient itself, as the count is 1). */
static void reduce_mean_backward(const evm_node *node, evm_tensor *const *in,
                                 evm_tensor *const *out, const evm_tensor *grad_out,
                                 evm_tensor *const *grad_in, float *workspace) {
    (void)out;
    (void)workspace;
    evm_reduce_layout l;
    evm_reduce_layout_make(node, in, &l);
    const float *gy = evm_f32(grad_out);
    float *gx = evm_f32(grad_in[0]);
    int64_t oi[EVM_MAX_RANK] = {0}, base = 0;
    for (size_t o = 0; o < l.outer_count; o++) {
        int64_t ii[EVM_MAX_RANK] = {0}, off = 0;
        const float g = (float)(gy[o] / (double)l.inner_count);
        for (size_t k = 0; k < l.inner_count; k++) {
            gx[base + off] = g;
            off = evm_reduce_next(&l.inner, ii, off);
        }
        base = evm_reduce_next(&l.outer, oi, base);
    }
}

const evm_op_def evm_op_reduce_mean = {
    .name = "ReduceMean",
    .min_inputs = 1,
    .max_inputs = 2,
    .init = reduce_mean_init,
    .infer = evm_reduce_infer,
    .forward = reduce_mean_forward,
    .grad_inputs = 1u << 0,
    .backward = reduce_mean_backward,
    .kinks = EVM_KINKS_NONE,
};
