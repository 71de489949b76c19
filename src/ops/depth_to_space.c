/*
 * DepthToSpace, opsets 1 to 13, float32 N x C x H x W: blocks of b x b
 * channels become b x b pixel blocks, N x C/(b*b) x H*b x W*b. Attribute
 * blocksize; mode (opset 11 on) 'DCR' (the default, and the only order
 * before 11) or 'CRD' (space_depth.h gives both orders). Backward moves the
 * gradient back the other way.
 */
#include <string.h>

#include "op.h"
#include "space_depth.h"

typedef struct d2s_params {
    int64_t blocksize;
    bool crd;
} d2s_params;

static evmap_status d2s_init(evm_node *node, evmap_error *err) {
    d2s_params *p = evm_node_alloc_params(node, sizeof *p, err);
    if (!p)
        return EVMAP_ERR_OUT_OF_MEMORY;
    evmap_status st = evm_attr_int(node, "blocksize", 0, &p->blocksize, err);
    if (st != EVMAP_OK)
        return st;
    if (!evm_node_attr(node, "blocksize") || p->blocksize < 1 || p->blocksize > (1 << 20))
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "attribute 'blocksize' must be given and positive");
    if (node->opset < 11)
        return EVMAP_OK;
    const char *mode;
    st = evm_attr_string(node, "mode", "DCR", &mode, err);
    if (st != EVMAP_OK)
        return st;
    if (strcmp(mode, "CRD") == 0)
        p->crd = true;
    else if (strcmp(mode, "DCR") != 0)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                             "mode '%s' is not valid; it is 'DCR' or 'CRD'", mode);
    return EVMAP_OK;
}

static evmap_status d2s_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              evmap_error *err) {
    const d2s_params *p = node->params;
    evmap_status st = evm_op_require_float(node, in, 0, err);
    if (st != EVMAP_OK)
        return st;
    const evm_tensor *x = in[0];
    char s[EVM_SHAPE_STR_SIZE];
    int64_t bb = p->blocksize * p->blocksize;
    if (x->rank != 4 || x->dims[1] % bb)
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "input 0 has shape %s; it must be N x C x H x W with C a multiple "
                             "of blocksize^2 = %lld",
                             evm_shape_str(x, s, sizeof s), (long long)bb);
    size_t h, w;
    if (!evm_mul_size((size_t)x->dims[2], (size_t)p->blocksize, &h) ||
        !evm_mul_size((size_t)x->dims[3], (size_t)p->blocksize, &w) ||
        h > EVM_MAX_TENSOR_ELEMENTS || w > EVM_MAX_TENSOR_ELEMENTS)
        return evm_node_fail(err, node, EVMAP_ERR_TOO_LARGE, "output would be too large");
    int64_t dims[4] = {x->dims[0], x->dims[1] / bb, (int64_t)h, (int64_t)w};
    out[0]->dtype = EVM_DTYPE_FLOAT;
    return evm_tensor_set_shape(out[0], 4, dims, err);
}

static evm_space_depth geometry(const evm_node *node, const evm_tensor *x) {
    const d2s_params *p = node->params;
    int64_t b = p->blocksize;
    return (evm_space_depth){x->dims[0], x->dims[1] / (b * b), x->dims[2], x->dims[3], b, p->crd};
}

static void d2s_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                        float *workspace) {
    (void)workspace;
    evm_space_depth g = geometry(node, in[0]);
    evm_space_depth_move(&g, evm_f32(in[0]), evm_f32(out[0]), true);
}

static void d2s_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace) {
    (void)out;
    (void)workspace;
    evm_space_depth g = geometry(node, in[0]);
    evm_space_depth_move(&g, evm_f32(grad_out), evm_f32(grad_in[0]), false);
}

const evm_op_def evm_op_depth_to_space = {
    .name = "DepthToSpace",
    .min_inputs = 1,
    .max_inputs = 1,
    .init = d2s_init,
    .infer = d2s_infer,
    .forward = d2s_forward,
    .grad_inputs = 1u << 0,
    .backward = d2s_backward,
    .kinks = EVM_KINKS_NONE,
};
