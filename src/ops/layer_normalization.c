/*
 * LayerNormalization (opset 17): each slice x[i, ...] over the axes from
 * 'axis' (default -1) on is normalised to zero mean and unit variance,
 * y = (x - mean) / sqrt(var + epsilon) * scale + bias, with scale and the
 * optional bias broadcast (numpy rules) to x's shape. The optional outputs 1
 * and 2 hold each slice's mean and 1 / sqrt(var + epsilon), shaped like x
 * with the normalised axes set to 1. Statistics are computed in double
 * whatever 'stash_type' says (at least as precise as any stash type); the
 * outputs are float32. Backward: x only (scale and bias are weights).
 */
#include <math.h>
#include <string.h>

#include "broadcast.h"
#include "strided.h"

typedef struct ln_params {
    int64_t axis;
    float epsilon;
} ln_params;

static evmap_status ln_init(evm_node *node, evmap_error *err) {
    ln_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    int64_t stash = 1;
    evmap_status st = evm_attr_int(node, "axis", -1, &p->axis, err);
    if (st == EVMAP_OK)
        st = evm_attr_float(node, "epsilon", 1e-5f, &p->epsilon, err);
    if (st == EVMAP_OK)
        st = evm_attr_int(node, "stash_type", 1, &stash, err);
    if (st == EVMAP_OK && !(p->epsilon >= 0))
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "epsilon must not be negative");
    return st;
}

static evmap_status ln_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                             evmap_error *err) {
    const evm_tensor *x = in[0];
    evmap_status st = EVMAP_OK;
    for (int i = 0; i < 3 && st == EVMAP_OK; i++)
        if (i < node->n_inputs && (i < 2 || in[i]))
            st = evm_op_require_float(node, in, i, err);
    if (st != EVMAP_OK)
        return st;
    if (node->n_outputs > 3)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "has %d outputs; at most 3",
                             node->n_outputs);
    int axis;
    if ((st = evm_op_axis(node, ((const ln_params *)node->params)->axis, x->rank, &axis, err)) !=
        EVMAP_OK)
        return st;
    for (int i = 1; i < 3 && i < node->n_inputs; i++) {
        if (!in[i])
            continue;
        int rank, bad;
        int64_t dims[EVM_MAX_RANK];
        char s[EVM_SHAPE_STR_SIZE], sx[EVM_SHAPE_STR_SIZE];
        if (!evm_broadcast_shape(x->rank, x->dims, in[i]->rank, in[i]->dims, &rank, dims, &bad) ||
            rank != x->rank || memcmp(dims, x->dims, sizeof(int64_t) * (size_t)rank))
            return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                                 "input %d's shape %s does not broadcast to x's shape %s", i,
                                 evm_shape_str(in[i], s, sizeof s),
                                 evm_shape_str(x, sx, sizeof sx));
    }
    out[0]->dtype = EVM_DTYPE_FLOAT;
    st = evm_tensor_set_shape(out[0], x->rank, x->dims, err);
    int64_t dims[EVM_MAX_RANK];
    for (int d = 0; d < x->rank; d++)
        dims[d] = d < axis ? x->dims[d] : 1;
    for (int j = 1; j < node->n_outputs && st == EVMAP_OK; j++) {
        out[j]->dtype = EVM_DTYPE_FLOAT;
        st = evm_tensor_set_shape(out[j], x->rank, dims, err);
    }
    return st;
}

/* Number of slices and elements per slice. */
static void ln_layout(const evm_node *node, const evm_tensor *x, size_t *outer, size_t *inner) {
    int64_t axis = ((const ln_params *)node->params)->axis;
    if (axis < 0)
        axis += x->rank;
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < x->rank; d++)
        *(d < axis ? outer : inner) *= (size_t)x->dims[d];
}

/* Mean and 1 / sqrt(var + epsilon) of n values. */
static void stats(const float *x, size_t n, float epsilon, double *mean, double *inv) {
    double s = 0, v = 0;
    for (size_t k = 0; k < n; k++)
        s += x[k];
    double m = n ? s / (double)n : 0;
    for (size_t k = 0; k < n; k++)
        v += ((double)x[k] - m) * ((double)x[k] - m);
    *mean = m;
    *inv = 1.0 / sqrt((n ? v / (double)n : 0) + epsilon);
}

static void ln_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                       float *workspace) {
    (void)workspace;
    const ln_params *p = node->params;
    const evm_tensor *x = in[0], *w = in[1], *b = node->n_inputs > 2 ? in[2] : NULL;
    size_t outer, inner;
    ln_layout(node, x, &outer, &inner);
    int64_t sw[EVM_MAX_RANK], sb[EVM_MAX_RANK];
    evm_broadcast_strides(w, x->rank, x->dims, sw);
    if (b)
        evm_broadcast_strides(b, x->rank, x->dims, sb);
    for (size_t o = 0; o < outer; o++) {
        const float *xs = evm_f32(x) + o * inner;
        float *ys = evm_f32(out[0]) + o * inner;
        double mean, inv;
        stats(xs, inner, p->epsilon, &mean, &inv);
        for (size_t k = 0; k < inner; k++) {
            size_t i = o * inner + k;
            double v = ((double)xs[k] - mean) * inv *
                       evm_f32(w)[evm_strided_offset(i, x->rank, x->dims, sw)];
            if (b)
                v += evm_f32(b)[evm_strided_offset(i, x->rank, x->dims, sb)];
            ys[k] = (float)v;
        }
        if (node->n_outputs > 1)
            evm_f32(out[1])[o] = (float)mean;
        if (node->n_outputs > 2)
            evm_f32(out[2])[o] = (float)inv;
    }
}

/* With h = (x - mean) * inv and gh = g * scale:
 * gx = inv * (gh - mean(gh) - h * mean(gh * h)) over each slice. */
static void ln_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace) {
    (void)out;
    (void)workspace;
    const ln_params *p = node->params;
    const evm_tensor *x = in[0], *w = in[1];
    size_t outer, inner;
    ln_layout(node, x, &outer, &inner);
    int64_t sw[EVM_MAX_RANK];
    evm_broadcast_strides(w, x->rank, x->dims, sw);
    for (size_t o = 0; o < outer; o++) {
        const float *xs = evm_f32(x) + o * inner, *g = evm_f32(grad_out) + o * inner;
        float *gx = evm_f32(grad_in[0]) + o * inner;
        double mean, inv, m1 = 0, m2 = 0;
        stats(xs, inner, p->epsilon, &mean, &inv);
        for (size_t k = 0; k < inner; k++) {
            double gh =
                g[k] * (double)evm_f32(w)[evm_strided_offset(o * inner + k, x->rank, x->dims, sw)];
            m1 += gh;
            m2 += gh * ((double)xs[k] - mean) * inv;
        }
        m1 /= (double)inner;
        m2 /= (double)inner;
        for (size_t k = 0; k < inner; k++) {
            double h = ((double)xs[k] - mean) * inv;
            double gh =
                g[k] * (double)evm_f32(w)[evm_strided_offset(o * inner + k, x->rank, x->dims, sw)];
            gx[k] = (float)(inv * (gh - m1 - h * m2));
        }
    }
}

const evm_op_def evm_op_layer_normalization = {
    .name = "LayerNormalization",
    .min_inputs = 2,
    .max_inputs = 3,
    .init = ln_init,
    .infer = ln_infer,
    .forward = ln_forward,
    .grad_inputs = 1u << 0,
    .backward = ln_backward,
    .kinks = EVM_KINKS_NONE,
};
