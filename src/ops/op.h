/*
 * The operator interface. Each operator lives in one file under src/ops/ and
 * fills one evm_op_def: attribute parsing, shape inference, workspace size,
 * forward kernel, receptive field and backward. The table in registry.c maps
 * every evm_op_kind to its definition; a compile-time check there makes a
 * half-added operator impossible.
 *
 * Calling order, per node: init once when the model loads; infer and
 * workspace once per plan (fixed input shapes); forward on every run;
 * backward after a forward run, in reverse step order.
 * In infer, inputs that are known when the plan is made (initializers,
 * constant-folded values) have is_const set and data filled; others only
 * carry a shape. Omitted optional inputs are NULL.
 */
#ifndef EVM_OP_H
#define EVM_OP_H

#include <stddef.h>

#include "base/error.h"
#include "engine/graph.h"
#include "base/tensor.h"

/* A changed part of a 4-D N x C x H x W activation (DESIGN.md 1.2): the same
 * rectangle, rows [y0, y1) x columns [x0, x1), of every image and channel;
 * nothing; or everything (also for tensors that are not 4-D images). */
typedef enum evm_region_kind { EVM_REGION_NONE, EVM_REGION_RECT, EVM_REGION_ALL } evm_region_kind;

typedef struct evm_region {
    evm_region_kind kind;
    int64_t y0, y1, x0, x1; /* RECT only; non-empty and inside the map */
} evm_region;

/* Kinks of an operator's derivative (see evm_op_def.kinks). */
typedef enum evm_kinks {
    EVM_KINKS_UNDECLARED = 0, /* an op with a backward must say */
    EVM_KINKS_NONE,           /* differentiable everywhere it is differentiated */
    EVM_KINKS_SIGN,           /* slope changes at input 0; backward: slope 1 where x > 0 */
    EVM_KINKS_BOUNDS,         /* Clip: gradient passes where lo <= x <= hi */
    EVM_KINKS_ARGMAX,         /* max pools, ReduceMax: to each window's (each reduced
                                 group's) first maximum, in row-major order */
    /* HardSigmoid, HardSwish: pieces of v = alpha * x + beta, computed in
     * float32 with alpha * x rounded before beta is added (no fused
     * multiply-add): v < 0, 0 <= v <= 1, v > 1. Backward takes the middle
     * piece at both bounds (as Clip). */
    EVM_KINKS_HARD,
    EVM_KINKS_SIGNUM, /* Abs, ReduceL1: slope sign(x): 1 where x > 0, -1 where x < 0, 0 at 0 */
    EVM_KINKS_SELECT, /* Max/Min: to the first input (input order) equal to the output */
    EVM_KINKS_ARGMIN, /* ReduceMin: to each reduced group's first minimum, in row-major order */
    /* ThresholdedRelu: the value jumps at alpha; backward: slope 1 where x > alpha */
    EVM_KINKS_THRESHOLD,
} evm_kinks;

const char *evm_kinks_name(evm_kinks kinks);

typedef struct evm_op_def {
    const char *name; /* ONNX op_type */
    int min_inputs;
    int max_inputs;
    /* True when forward reads only the input shapes (Shape): the output is
     * then known when the plan is made, whatever the input data. */
    bool shape_only;
    /* Parses and validates attributes into node->params (malloc'd, freed by
     * the graph). NULL when the op has no attributes. Unsupported attribute
     * values are EVMAP_ERR_UNSUPPORTED errors naming the node. */
    evmap_status (*init)(evm_node *node, evmap_error *err);
    /* Sets each output's dtype and shape (evm_tensor_set_shape). May read the
     * data of const inputs. Must validate everything forward relies on. */
    evmap_status (*infer)(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                          evmap_error *err);
    /* Scratch floats forward needs for these shapes; NULL means none. */
    size_t (*workspace)(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out);
    /* Computes outputs into preallocated buffers. Must not allocate or fail:
     * everything that can fail was checked by infer. */
    void (*forward)(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                    float *workspace);

    /* ---- exact locality (DESIGN.md 1.2); all optional ----
     * An op without a receptive field is global: once an input changes, its
     * output changes everywhere and the op runs in full. */
    /* Element-wise with numpy broadcasting (Relu, Add, Clip, ...): output
     * element i depends on element i of same-shaped inputs, scalars and
     * per-channel ([C,1,1]) operands only. The receptive field is then the
     * union of the inputs' regions and a region is computed by calling
     * forward on contiguous row segments (plan_local.c), so the op needs
     * nothing else. */
    bool elementwise;
    /* forward and forward_region may write output 0 over input 0 (same
     * shape): every element is read before it is written, in the same place
     * (Relu, Clip, BatchNormalization). The locality engine then keeps one
     * buffer for a chain like Conv -> BatchNormalization -> Relu. */
    bool in_place;
    /* Receptive field: the region of output 0 that can change when input j
     * changes over in_regions[j] (NONE for unchanged inputs; at least one is
     * not NONE). Shapes as in forward. */
    evm_region (*field)(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        const evm_region *in_regions);
    /* Scratch floats forward_region needs for output region r; NULL: none. */
    size_t (*region_workspace)(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               const evm_region *r);
    /* Computes output 0 inside the RECT region r only, for every image and
     * channel, from inputs that are valid everywhere; leaves the rest of the
     * output untouched. Must not allocate or fail. */
    void (*forward_region)(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                           const evm_region *r, float *workspace);
    /* The region of input 0 that forward_region reads for output region r
     * (RECT); the other inputs are read whole. The locality engine fills
     * only what some region reads from the cache. NULL: r itself, for every
     * input with the output's height and width (ops that read their maps at
     * the output's own positions). */
    evm_region (*reads)(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        const evm_region *r);
    /* Multiply-adds of one full forward (Conv, Gemm, MatMul), for reporting
     * the arithmetic that locality saves; NULL: negligible. */
    double (*macs)(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out);

    /* ---- backward (vector-Jacobian product; backward.c); optional ----
     * Inputs the op can differentiate with respect to, as a bit mask (bit j:
     * input j). A gradient that must flow through another input, or through
     * an op without backward, is refused when the backward pass is made. */
    unsigned grad_inputs;
    /* For every input j with grad_in[j] != NULL, writes (overwrites, every
     * element) grad_in[j] = J_j^T grad_out, where J_j = d out[0] / d in[j]
     * and grad_in[j] has in[j]'s shape. in and out hold the values of the
     * forward run being differentiated. Must not allocate or fail. */
    void (*backward)(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                     const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace);
    /* Ops with several differentiable outputs (Split) set this as well as
     * backward: the same, but grad_outs[j] is output j's gradient, NULL for
     * outputs no gradient flows into (all of whose grad_in must still be
     * written in full). Without it, a gradient flowing into any output but
     * output 0 is refused when the backward pass is made. */
    void (*backward_outputs)(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                             const evm_tensor *const *grad_outs, evm_tensor *const *grad_in,
                             float *workspace);
    /* Scratch floats backward needs for these shapes; NULL means none. */
    size_t (*backward_workspace)(const evm_node *node, evm_tensor *const *in,
                                 evm_tensor *const *out);
    /* Where the derivative jumps, and which side backward takes there. Every
     * op with a backward declares it: gradient references in the tests must
     * follow evmap's forward decisions at each kink to be exact on any CPU,
     * and they take the list of kinked operators from here. */
    evm_kinks kinks;
} evm_op_def;

/* The definition for a kind (never NULL for kinds below EVM_OP_KIND_COUNT). */
const evm_op_def *evm_op_get(evm_op_kind kind);

/* Kind for an ONNX op_type in the default domain; false when unsupported. */
bool evm_op_lookup(const char *op_type, evm_op_kind *out);

/* Comma-separated list of supported op_types, for error messages. */
const char *evm_op_supported_list(void);

/* Every operator's definition, one per file. */
extern const evm_op_def evm_op_conv;
extern const evm_op_def evm_op_gemm;
extern const evm_op_def evm_op_matmul;
extern const evm_op_def evm_op_relu;
extern const evm_op_def evm_op_leaky_relu;
extern const evm_op_def evm_op_sigmoid;
extern const evm_op_def evm_op_tanh;
extern const evm_op_def evm_op_clip;
extern const evm_op_def evm_op_max_pool;
extern const evm_op_def evm_op_average_pool;
extern const evm_op_def evm_op_global_average_pool;
extern const evm_op_def evm_op_global_max_pool;
extern const evm_op_def evm_op_batch_normalization;
extern const evm_op_def evm_op_lrn;
extern const evm_op_def evm_op_add;
extern const evm_op_def evm_op_mul;
extern const evm_op_def evm_op_concat;
extern const evm_op_def evm_op_flatten;
extern const evm_op_def evm_op_reshape;
extern const evm_op_def evm_op_transpose;
extern const evm_op_def evm_op_softmax;
extern const evm_op_def evm_op_dropout;
extern const evm_op_def evm_op_identity;
extern const evm_op_def evm_op_pad;
extern const evm_op_def evm_op_constant;
extern const evm_op_def evm_op_shape;
extern const evm_op_def evm_op_gather;
extern const evm_op_def evm_op_unsqueeze;
extern const evm_op_def evm_op_squeeze;
extern const evm_op_def evm_op_layer_normalization;
extern const evm_op_def evm_op_instance_normalization;
extern const evm_op_def evm_op_cast;
extern const evm_op_def evm_op_slice;
extern const evm_op_def evm_op_split;
extern const evm_op_def evm_op_expand;
extern const evm_op_def evm_op_tile;
extern const evm_op_def evm_op_constant_of_shape;
extern const evm_op_def evm_op_range;
extern const evm_op_def evm_op_where;
extern const evm_op_def evm_op_equal;
extern const evm_op_def evm_op_less;
extern const evm_op_def evm_op_greater;
extern const evm_op_def evm_op_not;
extern const evm_op_def evm_op_hard_sigmoid;
extern const evm_op_def evm_op_hard_swish;
extern const evm_op_def evm_op_prelu;
extern const evm_op_def evm_op_elu;
extern const evm_op_def evm_op_selu;
extern const evm_op_def evm_op_softplus;
extern const evm_op_def evm_op_softsign;
extern const evm_op_def evm_op_mish;
extern const evm_op_def evm_op_gelu;
extern const evm_op_def evm_op_reduce_mean;
extern const evm_op_def evm_op_reduce_sum;
extern const evm_op_def evm_op_reduce_max;
extern const evm_op_def evm_op_reduce_l2;
extern const evm_op_def evm_op_sub;
extern const evm_op_def evm_op_div;
extern const evm_op_def evm_op_pow;
extern const evm_op_def evm_op_sqrt;
extern const evm_op_def evm_op_exp;
extern const evm_op_def evm_op_log;
extern const evm_op_def evm_op_neg;
extern const evm_op_def evm_op_abs;
extern const evm_op_def evm_op_reciprocal;
extern const evm_op_def evm_op_erf;
extern const evm_op_def evm_op_min;
extern const evm_op_def evm_op_max;
extern const evm_op_def evm_op_sum;
extern const evm_op_def evm_op_mean;
extern const evm_op_def evm_op_conv_transpose;
extern const evm_op_def evm_op_resize;
extern const evm_op_def evm_op_upsample;
extern const evm_op_def evm_op_depth_to_space;
extern const evm_op_def evm_op_space_to_depth;
extern const evm_op_def evm_op_reduce_min;
extern const evm_op_def evm_op_reduce_prod;
extern const evm_op_def evm_op_reduce_l1;
extern const evm_op_def evm_op_reduce_sum_square;
extern const evm_op_def evm_op_reduce_log_sum;
extern const evm_op_def evm_op_reduce_log_sum_exp;
extern const evm_op_def evm_op_log_softmax;
extern const evm_op_def evm_op_greater_or_equal;
extern const evm_op_def evm_op_less_or_equal;
extern const evm_op_def evm_op_castlike;
extern const evm_op_def evm_op_thresholded_relu;
extern const evm_op_def evm_op_floor;
extern const evm_op_def evm_op_ceil;
extern const evm_op_def evm_op_cos;
extern const evm_op_def evm_op_sin;

/* Marks a Reshape whose constant shape starts with the literal 1 of a model
 * exported with a fixed batch of 1 (channel shuffles, flattening): that 1 is
 * then read as the batch the plan runs. The model loader decides which. */
void evm_reshape_mark_batch(evm_node *node);

/* ---- helpers shared by several operators (ops/common.c) ---- */

/* Normalises a possibly negative axis against rank; error names the node. */
evmap_status evm_op_axis(const evm_node *node, int64_t axis, int rank, int *out, evmap_error *err);

/* Requires input i to be float32 (error names node and input). */
evmap_status evm_op_require_float(const evm_node *node, evm_tensor *const *in, int i,
                                  evmap_error *err);

/* Requires input i to be present and known when the plan is made. */
evmap_status evm_op_require_const(const evm_node *node, evm_tensor *const *in, int i,
                                  evmap_error *err);

/* Output copies input's dtype and shape (element-wise unary ops). */
evmap_status evm_op_infer_same(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               evmap_error *err);

/* Forward of ops that only relabel the shape (Identity, Dropout, Flatten,
 * Reshape, Squeeze, Unsqueeze): output 0 = a copy of input 0's data. */
void evm_op_forward_copy(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         float *workspace);

/* Backward of those ops: grad_in[0] = a copy of grad_out (same element
 * order; only input 0, the data, carries a gradient). */
void evm_op_backward_copy(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                          const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace);

/* Forward of Cast and CastLike (ops/cast.c): output 0 = input 0 converted
 * to output 0's dtype (float32, int64 or bool). */
void evm_cast_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                      float *workspace);

/* Spatial window arithmetic shared by Conv and the pools (2-D, NCHW). */
typedef struct evm_window2d {
    int kernel[2]; /* kh, kw */
    int stride[2];
    int dilation[2];
    int pad_begin[2]; /* top, left (resolved from auto_pad at infer time when SAME_*) */
    int pad_end[2];   /* bottom, right */
    int auto_pad;     /* EVM_AUTO_PAD_* */
    int ceil_mode;
} evm_window2d;

enum { EVM_AUTO_PAD_NOTSET, EVM_AUTO_PAD_VALID, EVM_AUTO_PAD_SAME_UPPER, EVM_AUTO_PAD_SAME_LOWER };

/* Reads kernel_shape (or takes kernel from the weights when kernel_given),
 * strides, dilations, pads, auto_pad, ceil_mode; rejects non-2-D windows. */
evmap_status evm_window2d_parse(const evm_node *node, evm_window2d *w, bool need_kernel_shape,
                                bool allow_dilations, bool allow_ceil_mode, evmap_error *err);

/* Output size along one spatial axis for input size in; resolves SAME padding
 * into pad_begin/pad_end of a copy. Fails when the output would be empty. */
evmap_status evm_window2d_output(const evm_node *node, const evm_window2d *w, int64_t in_h,
                                 int64_t in_w, evm_window2d *resolved, int64_t *out_h,
                                 int64_t *out_w, evmap_error *err);

/* Shape inference shared by MaxPool and AveragePool: N×C×H×W in, the
 * window's output size out. */
evmap_status evm_pool2d_infer(const evm_node *node, const evm_window2d *window,
                              evm_tensor *const *in, evm_tensor *const *out, evmap_error *err);

/* Shape inference of GlobalAveragePool and GlobalMaxPool: N×C×D1…Dk (k ≥ 1)
 * in, N×C×1…1 out. */
evmap_status evm_global_pool_infer(const evm_node *node, evm_tensor *const *in,
                                   evm_tensor *const *out, evmap_error *err);

/* Output positions o in [0, n_out) whose tap o * stride + offset lies inside
 * [0, size): the half-open range [*lo, *hi). Lets window loops skip bounds
 * checks in their interior. */
void evm_window_valid_range(int64_t n_out, int64_t stride, int64_t offset, int64_t size,
                            int64_t *lo, int64_t *hi);

/* ---- receptive fields (ops/region.c) ---- */

/* Bounding box of two regions (NONE is the identity, ALL absorbs). */
evm_region evm_region_union(evm_region a, evm_region b);

/* Rows [y0, y1) x columns [x0, x1) clipped to an h x w map: NONE when
 * empty, ALL when it covers the whole map, RECT otherwise. */
evm_region evm_region_clip(int64_t y0, int64_t y1, int64_t x0, int64_t x1, int64_t h, int64_t w);

/* Receptive field of a resolved 2-D window (Conv, pools): the outputs of an
 * out_h x out_w map whose window (kernel, stride, dilation, padding) touches
 * the changed input region. A bounding box: with dilation > 1 it may hold
 * outputs whose taps step over the change. */
evm_region evm_window2d_field(const evm_window2d *resolved, int64_t out_h, int64_t out_w,
                              const evm_region *in);

/* The inverse: the input region (of an in_h x in_w map) whose values the
 * outputs in region out read through a resolved 2-D window, padding taps
 * left out. */
evm_region evm_window2d_reads(const evm_window2d *resolved, int64_t in_h, int64_t in_w,
                              const evm_region *out);

/* Input region MaxPool/AveragePool with this (unresolved) window read for
 * output region r. */
evm_region evm_pool2d_reads(const evm_node *node, const evm_window2d *window, evm_tensor *const *in,
                            const evm_region *r);

/* Receptive field of MaxPool/AveragePool with this (unresolved) window on
 * input 0's shape; infer has validated it, so resolving cannot fail. */
evm_region evm_pool2d_field(const evm_node *node, const evm_window2d *window, evm_tensor *const *in,
                            const evm_region *in_region);

/* Field of ops that keep every pixel in place but mix channels or take
 * per-channel parameters (LRN, BatchNormalization): input 0's region when
 * only input 0 changes and it is 4-D; ALL otherwise. */
evm_region evm_field_pointwise(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               const evm_region *in_regions);

#endif
