/*
 * LogSoftmax on float32: y = x - m - log(sum(exp(x - m))) along the
 * normalised axes, m their maximum (so that large inputs do not overflow;
 * the sum in double). The axes follow Softmax's rule (softmax.c):
 * opset < 13 views x as 2-D [prod(dims[:axis]), prod(dims[axis:])] (axis
 * defaults to 1) and normalises each row; from opset 13 on a single axis
 * (default -1). Both are "outer x n x inner" blocks normalised over n, an
 * inner position's values inner floats apart.
 */
#include <math.h>

#include "op.h"

typedef struct log_softmax_params {
    int64_t axis;   /* as written (or the opset's default) */
    bool coerce_2d; /* opset < 13: normalise over all axes from axis on */
} log_softmax_params;

static evmap_status log_softmax_init(evm_node *node, evmap_error *err) {
    log_softmax_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    p->coerce_2d = node->opset < 13;
    return evm_attr_int(node, "axis", p->coerce_2d ? 1 : -1, &p->axis, err);
}

static void log_softmax_split(const log_softmax_params *p, const evm_tensor *x, size_t *outer,
                              size_t *n, size_t *inner) {
    int axis = (int)(p->axis < 0 ? p->axis + x->rank : p->axis);
    *outer = *n = *inner = 1;
    for (int d = 0; d < x->rank; d++) {
        size_t s = (size_t)x->dims[d];
        if (d < axis)
            *outer *= s;
        else if (d == axis || p->coerce_2d)
            *n *= s;
        else
            *inner *= s;
    }
}

static evmap_status log_softmax_infer(const evm_node *node, evm_tensor *const *in,
                                      evm_tensor *const *out, evmap_error *err) {
    const log_softmax_params *p = node->params;
    evmap_status st = evm_op_require_float(node, in, 0, err);
    if (st != EVMAP_OK)
        return st;
    /* A rank-0 input has no axis: one value, normalised on its own. */
    if (in[0]->rank > 0) {
        int axis;
        st = evm_op_axis(node, p->axis, in[0]->rank, &axis, err);
        if (st != EVMAP_OK)
            return st;
    }
    return evm_op_infer_same(node, in, out, err);
}

static void log_softmax_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                                float *workspace) {
    (void)workspace;
    size_t outer, n, inner;
    log_softmax_split(node->params, in[0], &outer, &n, &inner);
    if (in[0]->count == 0)
        return;
    const float *x = evm_f32(in[0]);
    float *y = evm_f32(out[0]);
    for (size_t o = 0; o < outer; o++)
        for (size_t j = 0; j < inner; j++) {
            size_t base = o * n * inner + j;
            float m = x[base];
            for (size_t k = 1; k < n; k++)
                m = x[base + k * inner] > m ? x[base + k * inner] : m;
            double sum = 0.0;
            for (size_t k = 0; k < n; k++)
                sum += exp((double)x[base + k * inner] - m);
            double shift = m + log(sum);
            for (size_t k = 0; k < n; k++)
                y[base + k * inner] = (float)(x[base + k * inner] - shift);
        }
}

/* gx = g - softmax(x) * sum(g) along the normalised axes, softmax(x) =
 * exp(y); the sum in double. */
static void log_softmax_backward(const evm_node *node, evm_tensor *const *in,
                                 evm_tensor *const *out, const evm_tensor *grad_out,
                                 evm_tensor *const *grad_in, float *workspace) {
    (void)workspace;
    size_t outer, n, inner;
    log_softmax_split(node->params, in[0], &outer, &n, &inner);
    if (in[0]->count == 0)
        return;
    const float *y = evm_f32(out[0]), *g = evm_f32(grad_out);
    float *gx = evm_f32(grad_in[0]);
    for (size_t o = 0; o < outer; o++)
        for (size_t j = 0; j < inner; j++) {
            size_t base = o * n * inner + j;
            double sum = 0.0;
            for (size_t k = 0; k < n; k++)
                sum += g[base + k * inner];
            for (size_t k = 0; k < n; k++)
                gx[base + k * inner] =
                    (float)(g[base + k * inner] - exp((double)y[base + k * inner]) * sum);
        }
}

const evm_op_def evm_op_log_softmax = {
    .name = "LogSoftmax",
    .min_inputs = 1,
    .max_inputs = 1,
    .init = log_softmax_init,
    .infer = log_softmax_infer,
    .forward = log_softmax_forward,
    .grad_inputs = 1u << 0,
    .backward = log_softmax_backward,
    .kinks = EVM_KINKS_NONE,
};
