/*
 * Resize, opsets 10 to 19, modes 'nearest', 'linear' (bilinear over the
 * last two axes) and, from opset 11, 'cubic' (bicubic over the last two
 * axes, with cubic_coeff_a and exclude_outside); the kernel is
 * resize_common.c (arithmetic in resize.h).
 * Opset 10: inputs X, scales; coordinates 'asymmetric' and nearest mode
 * 'simple' (ONNX Runtime's reading of that opset). Opset 11: X, roi,
 * scales, sizes (optional), with the attributes coordinate_transformation_mode
 * (half_pixel, pytorch_half_pixel, align_corners, asymmetric,
 * tf_half_pixel_for_nn; half_pixel_symmetric from opset 19) and nearest_mode;
 * from opset 13 roi and scales may be omitted; opset 18 adds axes,
 * antialias (linear and cubic: 0 only) and keep_aspect_ratio_policy
 * ('stretch' only). Exactly one of scales and sizes is given (the other
 * omitted or empty) and it must be known when the plan is made. roi is only
 * used by 'tf_crop_and_resize', which is refused; extrapolation_value only
 * acts there. cubic_coeff_a acts in cubic mode only; exclude_outside does
 * not change nearest or linear (it drops taps outside the input, whose
 * weight linear's clamping already moves to the edge). All are read.
 */
#include <math.h>
#include <string.h>

#include "resize.h"

static evmap_status pick(const evm_node *node, const char *attr, const char *value,
                         const char *const *names, int n, int *out, evmap_error *err) {
    for (int i = 0; i < n; i++)
        if (names[i] && strcmp(value, names[i]) == 0) {
            *out = i;
            return EVMAP_OK;
        }
    return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED, "%s '%s' is not supported", attr, value);
}

static evmap_status resize_init(evm_node *node, evmap_error *err) {
    evm_resize_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    const char *mode;
    evmap_status st = evm_attr_string(node, "mode", "nearest", &mode, err);
    if (st != EVMAP_OK)
        return st;
    if (strcmp(mode, "nearest") == 0)
        p->mode = EVM_RESIZE_NEAREST;
    else if (strcmp(mode, "linear") == 0)
        p->mode = EVM_RESIZE_LINEAR;
    else if (strcmp(mode, "cubic") == 0 && node->opset >= 11)
        p->mode = EVM_RESIZE_CUBIC;
    else
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "mode '%s' is not supported%s; only 'nearest', 'linear' and 'cubic' "
                             "(from opset 11) are",
                             mode, node->opset < 11 ? " at opset 10" : "");
    if (node->opset < 11) { /* Resize-10 */
        p->coord = EVM_RESIZE_ASYMMETRIC;
        p->nearest = EVM_NEAREST_SIMPLE;
        p->scales_input = 1;
        p->sizes_input = -1;
        return EVMAP_OK;
    }
    p->scales_input = 2;
    p->sizes_input = 3;
    static const char *const coords[] = {
        [EVM_RESIZE_HALF_PIXEL] = "half_pixel",
        [EVM_RESIZE_HALF_PIXEL_SYMMETRIC] = "half_pixel_symmetric",
        [EVM_RESIZE_PYTORCH_HALF_PIXEL] = "pytorch_half_pixel",
        [EVM_RESIZE_ALIGN_CORNERS] = "align_corners",
        [EVM_RESIZE_ASYMMETRIC] = "asymmetric",
        [EVM_RESIZE_TF_HALF_PIXEL_FOR_NN] = "tf_half_pixel_for_nn",
    };
    static const char *const nearests[] = {"round_prefer_floor", "round_prefer_ceil", "floor",
                                           "ceil"};
    const char *coord, *nearest;
    int c = 0, nm = 0;
    float unused_f, cubic_a;
    int64_t exclude_outside;
    st = evm_attr_string(node, "coordinate_transformation_mode", "half_pixel", &coord, err);
    if (st == EVMAP_OK)
        st = evm_attr_string(node, "nearest_mode", "round_prefer_floor", &nearest, err);
    if (st == EVMAP_OK)
        st = evm_attr_float(node, "cubic_coeff_a", -0.75f, &cubic_a, err);
    if (st == EVMAP_OK)
        st = evm_attr_float(node, "extrapolation_value", 0.0f, &unused_f, err);
    if (st == EVMAP_OK)
        st = evm_attr_int(node, "exclude_outside", 0, &exclude_outside, err);
    if (st != EVMAP_OK)
        return st;
    if (exclude_outside != 0 && exclude_outside != 1)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "attribute 'exclude_outside' is %lld; it must be 0 or 1",
                             (long long)exclude_outside);
    if (!isfinite(cubic_a))
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "attribute 'cubic_coeff_a' is not a finite number");
    p->cubic_a = cubic_a;
    p->exclude_outside = exclude_outside == 1;
    if (strcmp(coord, "tf_crop_and_resize") == 0)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "coordinate_transformation_mode 'tf_crop_and_resize' (a region of "
                             "interest) is not supported");
    st = pick(node, "coordinate_transformation_mode", coord, coords, 6, &c, err);
    if (st == EVMAP_OK && node->opset < 19 && c == EVM_RESIZE_HALF_PIXEL_SYMMETRIC)
        st = evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                           "coordinate_transformation_mode 'half_pixel_symmetric' needs opset 19");
    if (st == EVMAP_OK)
        st = pick(node, "nearest_mode", nearest, nearests, 4, &nm, err);
    if (st != EVMAP_OK)
        return st;
    p->coord = (evm_resize_coord)c;
    p->nearest = (evm_resize_nearest)nm;
    if (node->opset < 18)
        return EVMAP_OK;
    int64_t antialias;
    const char *policy;
    const int64_t *axes;
    size_t n_axes;
    st = evm_attr_int(node, "antialias", 0, &antialias, err);
    if (st == EVMAP_OK)
        st = evm_attr_string(node, "keep_aspect_ratio_policy", "stretch", &policy, err);
    if (st == EVMAP_OK)
        st = evm_attr_ints(node, "axes", &axes, &n_axes, err);
    if (st != EVMAP_OK)
        return st;
    /* Antialiasing only filters linear and cubic downsampling. */
    if (antialias && p->mode != EVM_RESIZE_NEAREST)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED, "antialias is not supported");
    if (strcmp(policy, "stretch") != 0)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "keep_aspect_ratio_policy '%s' is not supported; only 'stretch' is",
                             policy);
    if (n_axes > EVM_MAX_RANK)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "attribute 'axes' has %zu values",
                             n_axes);
    if (n_axes) /* no attribute: axes is NULL, which memcpy must not see */
        memcpy(p->axes, axes, n_axes * sizeof *axes);
    p->n_axes = (int)n_axes;
    return EVMAP_OK;
}

static evmap_status resize_infer(const evm_node *node, evm_tensor *const *in,
                                 evm_tensor *const *out, evmap_error *err) {
    if (node->opset < 11 && node->n_inputs != 2)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "has %d inputs; at opset %d Resize takes X and scales", node->n_inputs,
                             node->opset);
    if (node->opset >= 11 && node->opset < 13 && (node->n_inputs < 3 || !in[2]))
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "input 2 (scales) is required before opset 13");
    return evm_resize_infer(node, in, out, err);
}

const evm_op_def evm_op_resize = {
    .name = "Resize",
    .min_inputs = 1,
    .max_inputs = 4,
    .init = resize_init,
    .infer = resize_infer,
    .workspace = evm_resize_workspace,
    .forward = evm_resize_forward,
    .grad_inputs = 1u << 0,
    .backward = evm_resize_backward,
    .backward_workspace = evm_resize_workspace,
    .kinks = EVM_KINKS_NONE,
};
