/*
 * Upsample, opsets 7 to 9 (deprecated since 10, read as opset 9 when a
 * newer model carries it), modes 'nearest' and 'linear' (bilinear over the
 * last two axes); the kernel is resize_common.c. Opset 7/8: the 'scales'
 * attribute; opset 9: scales is input 1, known when the plan is made. Every
 * scale is >= 1 (the spec's requirement); coordinates are 'asymmetric'
 * (x = o / scale) and nearest takes floor(x), as ONNX Runtime does.
 */
#include <string.h>

#include "resize.h"

static evmap_status upsample_init(evm_node *node, evmap_error *err) {
    evm_resize_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    if (node->opset < 7)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "Upsample before opset 7 (opset %d) is not supported", node->opset);
    const char *mode;
    evmap_status st = evm_attr_string(node, "mode", "nearest", &mode, err);
    if (st != EVMAP_OK)
        return st;
    if (strcmp(mode, "nearest") == 0)
        p->mode = EVM_RESIZE_NEAREST;
    else if (strcmp(mode, "linear") == 0)
        p->mode = EVM_RESIZE_LINEAR;
    else
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "mode '%s' is not supported; only 'nearest' and 'linear' are", mode);
    p->coord = EVM_RESIZE_ASYMMETRIC;
    p->nearest = EVM_NEAREST_SIMPLE;
    p->sizes_input = -1;
    p->scales_input = node->opset >= 9 ? 1 : -1;
    if (node->opset >= 9)
        return EVMAP_OK;
    const float *scales;
    size_t n;
    st = evm_attr_floats(node, "scales", &scales, &n, err);
    if (st != EVMAP_OK)
        return st;
    if (!evm_node_attr(node, "scales") || n == 0 || n > EVM_MAX_RANK)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "attribute 'scales' is required: one value per axis (at most %d)",
                             EVM_MAX_RANK);
    memcpy(p->attr_scales, scales, n * sizeof *scales);
    p->n_attr_scales = (int)n;
    return EVMAP_OK;
}

static evmap_status upsample_infer(const evm_node *node, evm_tensor *const *in,
                                   evm_tensor *const *out, evmap_error *err) {
    const evm_resize_params *p = node->params;
    int want = p->scales_input < 0 ? 1 : 2;
    if (node->n_inputs != want || (want == 2 && !in[1]))
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "has %d inputs; at opset %d Upsample takes %s", node->n_inputs,
                             node->opset, want == 2 ? "X and scales" : "X only");
    if (want == 2) {
        evmap_status st = evm_op_require_const(node, in, 1, err);
        if (st == EVMAP_OK)
            st = evm_op_require_float(node, in, 1, err);
        if (st != EVMAP_OK)
            return st;
    }
    size_t n = want == 2 ? in[1]->count : (size_t)p->n_attr_scales;
    for (size_t i = 0; i < n; i++) {
        float s = want == 2 ? evm_f32(in[1])[i] : p->attr_scales[i];
        if (!(s >= 1.0f))
            return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                                 "scale %g for axis %zu is below 1; Upsample only enlarges",
                                 (double)s, i);
    }
    return evm_resize_infer(node, in, out, err);
}

const evm_op_def evm_op_upsample = {
    .name = "Upsample",
    .min_inputs = 1,
    .max_inputs = 2,
    .init = upsample_init,
    .infer = upsample_infer,
    .workspace = evm_resize_workspace,
    .forward = evm_resize_forward,
    .grad_inputs = 1u << 0,
    .backward = evm_resize_backward,
    .backward_workspace = evm_resize_workspace,
    .kinks = EVM_KINKS_NONE,
};
