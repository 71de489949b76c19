/*
 * SpaceToDepth, opsets 1 to 13, float32 N x C x H x W with H and W
 * multiples of blocksize b: each b x b pixel block becomes b * b channels,
 * N x C*b*b x H/b x W/b, in DCR order (space_depth.h). Attribute blocksize.
 * Backward moves the gradient back the other way.
 */
#include "op.h"
#include "space_depth.h"

typedef struct s2d_params {
    int64_t blocksize;
} s2d_params;

static evmap_status s2d_init(evm_node *node, evmap_error *err) {
    s2d_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    evmap_status st = evm_attr_int(node, "blocksize", 0, &p->blocksize, err);
    if (st != EVMAP_OK)
        return st;
    if (!evm_node_attr(node, "blocksize") || p->blocksize < 1 || p->blocksize > (1 << 20))
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "attribute 'blocksize' must be given and positive");
    return EVMAP_OK;
}

static evmap_status s2d_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              evmap_error *err) {
    const s2d_params *p = node->params;
    evmap_status st = evm_op_require_float(node, in, 0, err);
    if (st != EVMAP_OK)
        return st;
    const evm_tensor *x = in[0];
    char s[EVM_SHAPE_STR_SIZE];
    int64_t b = p->blocksize;
    if (x->rank != 4 || x->dims[2] % b || x->dims[3] % b)
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "input 0 has shape %s; it must be N x C x H x W with H and W "
                             "multiples of blocksize %lld",
                             evm_shape_str(x, s, sizeof s), (long long)b);
    size_t c;
    if (!evm_mul_size((size_t)x->dims[1], (size_t)(b * b), &c) || c > EVM_MAX_TENSOR_ELEMENTS)
        return evm_node_fail(err, node, EVMAP_ERR_TOO_LARGE, "output would be too large");
    int64_t dims[4] = {x->dims[0], (int64_t)c, x->dims[2] / b, x->dims[3] / b};
    out[0]->dtype = EVM_DTYPE_FLOAT;
    return evm_tensor_set_shape(out[0], 4, dims, err);
}

static evm_space_depth geometry(const evm_node *node, const evm_tensor *x) {
    const s2d_params *p = node->params;
    int64_t b = p->blocksize;
    return (evm_space_depth){x->dims[0], x->dims[1], x->dims[2] / b, x->dims[3] / b, b, false};
}

static void s2d_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace) {
    (void)workspace;
    evm_space_depth g = geometry(node, in[0]);
    evm_space_depth_move(&g, evm_f32(in[0]), evm_f32(out[0]), false);
}

static void s2d_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace) {
    (void)out;
    (void)workspace;
    evm_space_depth g = geometry(node, in[0]);
    evm_space_depth_move(&g, evm_f32(grad_out), evm_f32(grad_in[0]), true);
}

const evm_op_def evm_op_space_to_depth = {
    .name = "SpaceToDepth",
    .min_inputs = 1,
    .max_inputs = 1,
    .init = s2d_init,
    .infer = s2d_infer,
    .forward = s2d_forward,
    .grad_inputs = 1u << 0,
    .backward = s2d_backward,
    .kinks = EVM_KINKS_NONE,
};
