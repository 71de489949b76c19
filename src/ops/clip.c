/*
 * Clip: y = min(max(x, lo), hi), element-wise on float32.
 * Opset < 11 takes lo/hi from the 'min'/'max' attributes; from opset 11 they
 * are optional inputs 1 and 2, each a single float32 value. Those inputs are
 * read on every run (they are usually constants, but need not be), so the
 * node keeps no per-plan state. Omitted bounds are the float32 limits, as in
 * the ONNX spec. When lo > hi every element becomes hi (as numpy.clip), and
 * NaN inputs stay NaN.
 */
#include <float.h>
#include <stdlib.h>

#include "base/pool.h"
#include "op.h"

typedef struct clip_params {
    bool bounds_are_inputs; /* opset >= 11: lo/hi come from inputs 1 and 2 */
    float lo, hi;           /* opset < 11: the 'min'/'max' attributes */
} clip_params;

static evmap_status clip_init(evm_node *node, evmap_error *err) {
    clip_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    p->bounds_are_inputs = node->opset >= 11;
    if (p->bounds_are_inputs) {
        /* Silently ignoring them would clip with the wrong bounds. */
        if (evm_node_attr(node, "min") || evm_node_attr(node, "max"))
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "attributes 'min'/'max' are not valid from opset 11 on (opset "
                                 "%d); the bounds are inputs 1 and 2",
                                 node->opset);
        return EVMAP_OK;
    }
    evmap_status st = evm_attr_float(node, "min", -FLT_MAX, &p->lo, err);
    if (st == EVMAP_OK)
        st = evm_attr_float(node, "max", FLT_MAX, &p->hi, err);
    return st;
}

static evmap_status clip_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               evmap_error *err) {
    const clip_params *p = node->params;
    if (!p->bounds_are_inputs && node->n_inputs > 1)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "has %d inputs; before opset 11 the bounds are attributes",
                             node->n_inputs);
    for (int i = 1; i < node->n_inputs && i < 3; i++) {
        if (!in[i])
            continue; /* omitted optional bound */
        evmap_status st = evm_op_require_float(node, in, i, err);
        if (st != EVMAP_OK)
            return st;
        if (in[i]->count != 1) {
            char s[EVM_SHAPE_STR_SIZE];
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "input %d ('%s') has shape %s; it must be a single value", i,
                                 i == 1 ? "min" : "max", evm_shape_str(in[i], s, sizeof s));
        }
    }
    return evm_op_infer_same(node, in, out, err);
}

/* The bounds for this run: the attributes, or inputs 1 and 2. */
static void get_bounds(const evm_node *node, evm_tensor *const *in, float *lo, float *hi) {
    const clip_params *p = node->params;
    *lo = p->lo;
    *hi = p->hi;
    if (p->bounds_are_inputs) {
        *lo = node->n_inputs > 1 && in[1] ? evm_f32(in[1])[0] : -FLT_MAX;
        *hi = node->n_inputs > 2 && in[2] ? evm_f32(in[2])[0] : FLT_MAX;
    }
}

typedef struct clip_job {
    const float *x;
    float *y;
    float lo, hi;
} clip_job;

static void clip_range(void *ctx, size_t first, size_t end) {
    const clip_job *j = ctx;
    const float *x = j->x; /* y may be x (in_place) */
    float *y = j->y;
    float lo = j->lo, hi = j->hi;
    for (size_t i = first; i < end; i++) {
        float v = x[i] < lo ? lo : x[i];
        y[i] = v > hi ? hi : v;
    }
}

static void clip_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         float *workspace) {
    (void)workspace;
    clip_job j = {evm_f32(in[0]), evm_f32(out[0]), 0, 0};
    get_bounds(node, in, &j.lo, &j.hi);
    evm_parallel_range(in[0]->count, EVM_PARALLEL_ELEMENTS, clip_range, &j);
}

/* The gradient passes where lo <= x <= hi (bounds included, as PyTorch's
 * clamp), so none passes when lo > hi and every output is hi. NaN inputs
 * compare false and get none. Only x is differentiated; the bounds are
 * almost always constants. */
static void clip_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                          const evm_tensor *grad_out, evm_tensor *const *grad_in,
                          float *workspace) {
    (void)out;
    (void)workspace;
    float lo, hi;
    get_bounds(node, in, &lo, &hi);
    const float *restrict x = evm_f32(in[0]), *restrict gy = evm_f32(grad_out);
    float *restrict gx = evm_f32(grad_in[0]);
    for (size_t i = 0; i < in[0]->count; i++) {
        float g = gy[i]; /* loaded unconditionally: a select, not a branch */
        gx[i] = x[i] >= lo && x[i] <= hi ? g : 0.0f;
    }
}

const evm_op_def evm_op_clip = {
    .name = "Clip",
    .min_inputs = 1,
    .max_inputs = 3,
    .init = clip_init,
    .infer = clip_infer,
    .forward = clip_forward,
    .elementwise = true,
    .in_place = true,
    .grad_inputs = 1u << 0,
    .backward = clip_backward,
    .kinks = EVM_KINKS_BOUNDS,
};
