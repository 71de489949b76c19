/*
 * The kernel Resize and Upsample share (resize_common.c): each op's init
 * fills an evm_resize_params in node->params; infer, workspace, forward and
 * backward are common.
 *
 * Output size along axis d: floor(in_d * scale_d) for scales (the 'scales'
 * input or Upsample-7's attribute), or sizes_d. Output coordinate o maps to
 * the input coordinate x(o) of the coordinate transformation mode, with
 * scale = the given scale, or out_d / in_d for sizes, and length_resized =
 * in_d * scale_d (before flooring; sizes_d for sizes):
 *   half_pixel           (o + 0.5) / scale - 0.5
 *   half_pixel_symmetric (1 - floor(length) / length) * in / 2
 *                        + (o + 0.5) / scale - 0.5
 *   pytorch_half_pixel   length > 1 ? (o + 0.5) / scale - 0.5 : 0
 *   align_corners        length > 1 ? o * (in - 1) / (length - 1) : 0
 *   asymmetric           o / scale
 *   tf_half_pixel_for_nn (o + 0.5) / scale
 * in double precision. Nearest takes input index round_prefer_floor(x) (the
 * nearest integer, the lower on a tie), round_prefer_ceil, floor or ceil, or
 * (Resize-10, Upsample: nearest_mode 'simple', as ONNX Runtime) floor(x)
 * where the axis grows or keeps its size and ceil(x) where it shrinks;
 * indices are clamped to [0, in - 1]. Linear interpolates the last two axes
 * (all others must keep scale 1) between floor(x) and floor(x) + 1 with x
 * clamped to [0, in - 1] (what edge padding gives).
 *
 * Cubic (Resize-11 on) also interpolates the last two axes only, with Keys'
 * cubic convolution kernel of parameter a (cubic_coeff_a, default -0.75):
 *   W(s) = (a + 2)|s|^3 - (a + 3)|s|^2 + 1          for |s| <= 1
 *          a|s|^3 - 5a|s|^2 + 8a|s| - 4a             for 1 < |s| < 2
 *          0                                         otherwise
 * over the four taps i = floor(x) - 1 .. floor(x) + 2 of the unclamped x,
 * with t = x - floor(x): weights W(1 + t), W(t), W(1 - t), W(2 - t). A tap
 * outside [0, in - 1] reads the nearest edge element (edge padding), or,
 * with exclude_outside = 1, gets weight 0 and the remaining weights are
 * divided by their sum. Weights are worked out in double, stored in float.
 *
 * All modes are linear in the input with weights fixed by the shapes:
 * backward scatters each output's gradient back with the forward's weights.
 */
#ifndef EVM_OPS_RESIZE_H
#define EVM_OPS_RESIZE_H

#include "op.h"

typedef enum evm_resize_mode {
    EVM_RESIZE_NEAREST,
    EVM_RESIZE_LINEAR,
    EVM_RESIZE_CUBIC,
} evm_resize_mode;

typedef enum evm_resize_coord {
    EVM_RESIZE_HALF_PIXEL,
    EVM_RESIZE_HALF_PIXEL_SYMMETRIC,
    EVM_RESIZE_PYTORCH_HALF_PIXEL,
    EVM_RESIZE_ALIGN_CORNERS,
    EVM_RESIZE_ASYMMETRIC,
    EVM_RESIZE_TF_HALF_PIXEL_FOR_NN,
} evm_resize_coord;

typedef enum evm_resize_nearest {
    EVM_NEAREST_ROUND_PREFER_FLOOR,
    EVM_NEAREST_ROUND_PREFER_CEIL,
    EVM_NEAREST_FLOOR,
    EVM_NEAREST_CEIL,
    EVM_NEAREST_SIMPLE, /* Resize-10, Upsample: floor growing, ceil shrinking */
} evm_resize_nearest;

typedef struct evm_resize_params {
    evm_resize_mode mode;
    evm_resize_coord coord;
    evm_resize_nearest nearest;
    float cubic_a;        /* cubic: Keys' parameter a */
    bool exclude_outside; /* cubic: taps outside the input get weight 0 */
    int scales_input;     /* input holding the scales, or -1 */
    int sizes_input;      /* input holding the sizes, or -1 */
    int n_attr_scales;    /* Upsample-7: the 'scales' attribute (else 0) */
    float attr_scales[EVM_MAX_RANK];
    int n_axes; /* Resize-18: the 'axes' attribute; 0: every axis */
    int64_t axes[EVM_MAX_RANK];
} evm_resize_params;

evmap_status evm_resize_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              evmap_error *err);
size_t evm_resize_workspace(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out);
void evm_resize_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace);
void evm_resize_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace);

#endif
