/* ReduceMax: the largest value over the reduced axes (reduce.h); -inf for
 * an empty set. Axes are an attribute before opset 18, input 1 from then
 * on. Backward sends each output's gradient to the first maximum in
 * row-major order of the reduced axes (EVM_KINKS_ARGMAX); NaN inputs are
 * never taken as a maximum unless first. */
#include <math.h>
#include <string.h>

#include "reduce.h"

static evmap_status reduce_max_init(evm_node *node, evmap_error *err) {
    return evm_reduce_init(node, 18, err);
}

/* Offset of the first maximum of output o's group (base: its first element). */
static int64_t first_max(const evm_reduce_layout *l, const float *x, int64_t base) {
    int64_t ii[EVM_MAX_RANK] = {0}, off = 0, best_off = 0;
    float best = x[base];
    for (size_t k = 0; k < l->inner_count; k++) {
        if (x[base + off] > best) {
            best = x[base + off];
            best_off = off;
        }
        off = evm_reduce_next(&l->inner, ii, off);
    }
    return base + best_off;
}

static void reduce_max_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               float *workspace) {
    (void)workspace;
    evm_reduce_layout l;
    evm_reduce_layout_make(node, in, &l);
    const float *x = evm_f32(in[0]);
    float *y = evm_f32(out[0]);
    int64_t oi[EVM_MAX_RANK] = {0}, base = 0;
    for (size_t o = 0; o < l.outer_count; o++) {
        y[o] = l.inner_count ? x[first_max(&l, x, base)] : -INFINITY;
        base = evm_reduce_next(&l.outer, oi, base);
    }
}

static void reduce_max_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                const evm_tensor *grad_out, evm_tensor *const *grad_in,
                                float *workspace) {
    (void)out;
    (void)workspace;
    evm_reduce_layout l;
    evm_reduce_layout_make(node, in, &l);
    const float *x = evm_f32(in[0]), *gy = evm_f32(grad_out);
    float *gx = evm_f32(grad_in[0]);
    if (in[0]->count)
        memset(gx, 0, in[0]->count * sizeof *gx);
    if (l.inner_count == 0)
        return;
    int64_t oi[EVM_MAX_RANK] = {0}, base = 0;
    for (size_t o = 0; o < l.outer_count; o++) {
        gx[first_max(&l, x, base)] = gy[o];
        base = evm_reduce_next(&l.outer, oi, base);
    }
}

const evm_op_def evm_op_reduce_max = {
    .name = "ReduceMax",
    .min_inputs = 1,
    .max_inputs = 2,
    .init = reduce_max_init,
    .infer = evm_reduce_infer,
    .forward = reduce_max_forward,
    .grad_inputs = 1u << 0,
    .backward = reduce_max_backward,
    .kinks = EVM_KINKS_ARGMAX,
};
