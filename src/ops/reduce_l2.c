/* ReduceL2: sqrt of the sum of squares over the reduced axes (reduce.h),
 * summed in double (so that squares of small values do not underflow: the
 * norm is 0 only where every element is 0). Axes are an attribute before
 * opset 18, input 1 from then on; the noop form is the identity.
 * Backward: x / norm, and 0 where the norm is 0 (as PyTorch's norm). The
 * norm is not differentiable at 0, but that point is reached only by exact
 * zeros, on which float32 and float64 references agree, so no kink is
 * declared. */
#include <math.h>

#include "reduce.h"

static evmap_status reduce_l2_init(evm_node *node, evmap_error *err) {
    return evm_reduce_init(node, 18, err);
}

static double sum_squares(const evm_reduce_layout *l, const float *x, int64_t base) {
    int64_t ii[EVM_MAX_RANK] = {0}, off = 0;
    double acc = 0;
    for (size_t k = 0; k < l->inner_count; k++) {
        double v = x[base + off];
        acc += v * v;
        off = evm_reduce_next(&l->inner, ii, off);
    }
    return acc;
}

static void reduce_l2_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              float *workspace) {
    evm_reduce_layout l;
    evm_reduce_layout_make(node, in, &l);
    if (l.noop) {
        evm_op_forward_copy(node, in, out, workspace);
        return;
    }
    const float *x = evm_f32(in[0]);
    float *y = evm_f32(out[0]);
    int64_t oi[EVM_MAX_RANK] = {0}, base = 0;
    for (size_t o = 0; o < l.outer_count; o++) {
        y[o] = (float)sqrt(sum_squares(&l, x, base));
        base = evm_reduce_next(&l.outer, oi, base);
    }
}

static void reduce_l2_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               const evm_tensor *grad_out, evm_tensor *const *grad_in,
                               float *workspace) {
    evm_reduce_layout l;
    evm_reduce_layout_make(node, in, &l);
    if (l.noop) {
        evm_op_backward_copy(node, in, out, grad_out, grad_in, workspace);
        return;
    }
    const float *x = evm_f32(in[0]), *gy = evm_f32(grad_out);
    float *gx = evm_f32(grad_in[0]);
    int64_t oi[EVM_MAX_RANK] = {0}, base = 0;
    for (size_t o = 0; o < l.outer_count; o++) {
        double norm = sqrt(sum_squares(&l, x, base));
        double scale = norm > 0 ? gy[o] / norm : 0.0;
        int64_t ii[EVM_MAX_RANK] = {0}, off = 0;
        for (size_t k = 0; k < l.inner_count; k++) {
            gx[base + off] = (float)(x[base + off] * scale);
            off = evm_reduce_next(&l.inner, ii, off);
        }
        base = evm_reduce_next(&l.outer, oi, base);
    }
}

const evm_op_def evm_op_reduce_l2 = {
    .name = "ReduceL2",
    .min_inputs = 1,
    .max_inputs = 2,
    .init = reduce_l2_init,
    .infer = evm_reduce_infer,
    .forward = reduce_l2_forward,
    .grad_inputs = 1u << 0,
    .backward = reduce_l2_backward,
    .kinks = EVM_KINKS_NONE,
};
