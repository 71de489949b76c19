/* Helpers shared by several operators: axes, type checks, window arithmetic. */
#include <limits.h>
#include <string.h>

#include "op.h"

evmap_status evm_op_axis(const evm_node *node, int64_t axis, int rank, int *out, evmap_error *err) {
    if (axis < -(int64_t)rank || axis >= (int64_t)rank)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "axis %lld is out of range for rank %d",
                             (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return EVMAP_OK;
}

evmap_status evm_op_require_float(const evm_node *node, evm_tensor *const *in, int i,
                                  evmap_error *err) {
    if (!in[i])
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "input %d is missing", i);
    if (in[i]->dtype != EVM_DTYPE_FLOAT)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "input %d has data type %s; only float32 is supported here", i,
                             evm_dtype_name(in[i]->dtype));
    return EVMAP_OK;
}

evmap_status evm_op_require_const(const evm_node *node, evm_tensor *const *in, int i,
                                  evmap_error *err) {
    if (!in[i])
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "input %d is missing", i);
    if (!in[i]->is_const || !in[i]->data)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "input %d must be a constant (an initializer or computable from "
                             "shapes alone)",
                             i);
    return EVMAP_OK;
}

void evm_op_forward_copy(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                         float *workspace) {
    (void)node;
    (void)workspace;
    if (in[0]->count)
        memcpy(out[0]->data, in[0]->data, in[0]->count * evm_dtype_size(in[0]->dtype));
}

void evm_op_backward_copy(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                          const evm_tensor *grad_out, evm_tensor *const *grad_in,
                          float *workspace) {
    (void)node;
    (void)in;
    (void)out;
    (void)workspace;
    if (grad_in[0] && grad_out->count)
        memcpy(grad_in[0]->data, grad_out->data, grad_out->count * sizeof(float));
}

evmap_status evm_op_infer_same(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               evmap_error *err) {
    evmap_status st = evm_op_require_float(node, in, 0, err);
    if (st != EVMAP_OK)
        return st;
    out[0]->dtype = in[0]->dtype;
    return evm_tensor_set_shape(out[0], in[0]->rank, in[0]->dims, err);
}

static evmap_status read_pair(const evm_node *node, const char *name, int fallback, int *pair,
                              evmap_error *err) {
    const int64_t *v;
    size_t n;
    evmap_status st = evm_attr_ints(node, name, &v, &n, err);
    if (st != EVMAP_OK)
        return st;
    if (n == 0) {
        pair[0] = pair[1] = fallback;
        return EVMAP_OK;
    }
    if (n != 2)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "attribute '%s' has %zu values; only 2-D (images) is supported", name,
                             n);
    for (int i = 0; i < 2; i++) {
        if (v[i] < 1 || v[i] > 65536)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "attribute '%s' value %lld is out of range", name,
                                 (long long)v[i]);
        pair[i] = (int)v[i];
    }
    return EVMAP_OK;
}

evmap_status evm_window2d_parse(const evm_node *node, evm_window2d *w, bool need_kernel_shape,
                                bool allow_dilations, bool allow_ceil_mode, evmap_error *err) {
    memset(w, 0, sizeof *w);
    evmap_status st = read_pair(node, "kernel_shape", 0, w->kernel, err);
    if (st == EVMAP_OK && need_kernel_shape && w->kernel[0] == 0)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "attribute 'kernel_shape' is required");
    if (st == EVMAP_OK)
        st = read_pair(node, "strides", 1, w->stride, err);
    if (st == EVMAP_OK)
        st = read_pair(node, "dilations", 1, w->dilation, err);
    if (st != EVMAP_OK)
        return st;
    if (!allow_dilations && (w->dilation[0] != 1 || w->dilation[1] != 1))
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "dilations other than 1 are not supported");

    const int64_t *pads;
    size_t n_pads;
    st = evm_attr_ints(node, "pads", &pads, &n_pads, err);
    if (st != EVMAP_OK)
        return st;
    if (n_pads != 0 && n_pads != 4)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "attribute 'pads' has %zu values; only 2-D (4 values) is supported",
                             n_pads);
    for (size_t i = 0; i < n_pads; i++)
        if (pads[i] < 0 || pads[i] > 65536)
            return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                                 "pad value %lld is not supported", (long long)pads[i]);
    if (n_pads == 4) {
        w->pad_begin[0] = (int)pads[0];
        w->pad_begin[1] = (int)pads[1];
        w->pad_end[0] = (int)pads[2];
        w->pad_end[1] = (int)pads[3];
    }

    const char *auto_pad;
    st = evm_attr_string(node, "auto_pad", "NOTSET", &auto_pad, err);
    if (st != EVMAP_OK)
        return st;
    if (strcmp(auto_pad, "NOTSET") == 0)
        w->auto_pad = EVM_AUTO_PAD_NOTSET;
    else if (strcmp(auto_pad, "VALID") == 0)
        w->auto_pad = EVM_AUTO_PAD_VALID;
    else if (strcmp(auto_pad, "SAME_UPPER") == 0)
        w->auto_pad = EVM_AUTO_PAD_SAME_UPPER;
    else if (strcmp(auto_pad, "SAME_LOWER") == 0)
        w->auto_pad = EVM_AUTO_PAD_SAME_LOWER;
    else
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED, "auto_pad '%s' is not supported",
                             auto_pad);
    if (w->auto_pad != EVM_AUTO_PAD_NOTSET && n_pads)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "both 'pads' and 'auto_pad' are set");

    int64_t ceil_mode = 0;
    if (allow_ceil_mode) {
        st = evm_attr_int(node, "ceil_mode", 0, &ceil_mode, err);
        if (st != EVMAP_OK)
            return st;
        if (ceil_mode != 0 && ceil_mode != 1)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "ceil_mode must be 0 or 1");
    }
    w->ceil_mode = (int)ceil_mode;
    return EVMAP_OK;
}

/* Output size along one axis; resolves SAME padding in place. */
static evmap_status axis_output(const evm_node *node, evm_window2d *w, int axis, int64_t in,
                                int64_t *out, evmap_error *err) {
    /* k < 2^31 (int), s, d <= 65536 (read_pair): no int64 product overflows. */
    int64_t k = w->kernel[axis], s = w->stride[axis], d = w->dilation[axis];
    int64_t extent = (k - 1) * d + 1;
    /* Keeps the resolved pads (below extent / 2 + 1) and the kernels' int
     * tap offsets (ky * dilation - pad) inside int. */
    if (extent > INT_MAX)
        return evm_node_fail(err, node, EVMAP_ERR_TOO_LARGE, "dilated window of %lld is too large",
                             (long long)extent);
    if (w->auto_pad == EVM_AUTO_PAD_VALID) {
        w->pad_begin[axis] = w->pad_end[axis] = 0;
    } else if (w->auto_pad == EVM_AUTO_PAD_SAME_UPPER || w->auto_pad == EVM_AUTO_PAD_SAME_LOWER) {
        int64_t target = (in + s - 1) / s;
        int64_t total = (target - 1) * s + extent - in; /* < extent: (target - 1) * s < in */
        if (total < 0)
            total = 0;
        int64_t small = total / 2, large = total - small;
        bool upper = w->auto_pad == EVM_AUTO_PAD_SAME_UPPER;
        w->pad_begin[axis] = (int)(upper ? small : large);
        w->pad_end[axis] = (int)(upper ? large : small);
        *out = target;
        return EVMAP_OK;
    }
    int64_t span = in + w->pad_begin[axis] + w->pad_end[axis] - extent;
    if (span < 0)
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "window of %lld exceeds the padded input of %lld", (long long)extent,
                             (long long)(in + w->pad_begin[axis] + w->pad_end[axis]));
    int64_t o = w->ceil_mode ? (span + s - 1) / s + 1 : span / s + 1;
    /* ceil_mode: the last window must start inside the input or left padding. */
    if (w->ceil_mode && (o - 1) * s >= in + w->pad_begin[axis])
        o--;
    *out = o;
    return EVMAP_OK;
}

evmap_status evm_window2d_output(const evm_node *node, const evm_window2d *w, int64_t in_h,
                                 int64_t in_w, evm_window2d *resolved, int64_t *out_h,
                                 int64_t *out_w, evmap_error *err) {
    *resolved = *w;
    evmap_status st = axis_output(node, resolved, 0, in_h, out_h, err);
    if (st == EVMAP_OK)
        st = axis_output(node, resolved, 1, in_w, out_w, err);
    if (st == EVMAP_OK && (*out_h < 1 || *out_w < 1))
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT, "output would be empty");
    return st;
}

evmap_status evm_pool2d_infer(const evm_node *node, const evm_window2d *window,
                              evm_tensor *const *in, evm_tensor *const *out, evmap_error *err) {
    evmap_status st = evm_op_require_float(node, in, 0, err);
    if (st != EVMAP_OK)
        return st;
    const evm_tensor *x = in[0];
    if (x->rank != 4) {
        char buf[EVM_SHAPE_STR_SIZE];
        return evm_node_fail(err, node,
                             x->rank >= 3 ? EVMAP_ERR_UNSUPPORTED : EVMAP_ERR_INVALID_ARGUMENT,
                             "input has shape %s; only 2-D pooling of N x C x H x W is supported",
                             evm_shape_str(x, buf, sizeof buf));
    }
    evm_window2d resolved;
    int64_t dims[4] = {x->dims[0], x->dims[1], 0, 0};
    st = evm_window2d_output(node, window, x->dims[2], x->dims[3], &resolved, &dims[2], &dims[3],
                             err);
    if (st != EVMAP_OK)
        return st;
    out[0]->dtype = EVM_DTYPE_FLOAT;
    return evm_tensor_set_shape(out[0], 4, dims, err);
}

void evm_window_valid_range(int64_t n_out, int64_t stride, int64_t offset, int64_t size,
                            int64_t *lo, int64_t *hi) {
    int64_t a = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    int64_t last = size - 1 - offset;
    int64_t b = last < 0 ? 0 : last / stride + 1;
    a = a < n_out ? a : n_out;
    b = b < n_out ? b : n_out;
    *lo = a;
    *hi = b > a ? b : a;
}

evmap_status evm_global_pool_infer(const evm_node *node, evm_tensor *const *in,
                                   evm_tensor *const *out, evmap_error *err) {
    evmap_status st = evm_op_require_float(node, in, 0, err);
    if (st != EVMAP_OK)
        return st;
    const evm_tensor *x = in[0];
    if (x->rank < 3) {
        char buf[EVM_SHAPE_STR_SIZE];
        return evm_node_fail(err, node, EVMAP_ERR_INVALID_ARGUMENT,
                             "input has shape %s; expected N x C x spatial dims",
                             evm_shape_str(x, buf, sizeof buf));
    }
    int64_t dims[EVM_MAX_RANK];
    for (int i = 0; i < x->rank; i++)
        dims[i] = i < 2 ? x->dims[i] : 1;
    out[0]->dtype = EVM_DTYPE_FLOAT;
    return evm_tensor_set_shape(out[0], x->rank, dims, err);
}

evm_region evm_pool2d_field(const evm_node *node, const evm_window2d *window, evm_tensor *const *in,
                            const evm_region *in_region) {
    evm_window2d resolved;
    int64_t oh, ow;
    evm_window2d_output(node, window, in[0]->dims[2], in[0]->dims[3], &resolved, &oh, &ow, NULL);
    return evm_window2d_field(&resolved, oh, ow, in_region);
}

evm_region evm_pool2d_reads(const evm_node *node, const evm_window2d *window, evm_tensor *const *in,
                            const evm_region *r) {
    evm_window2d resolved;
    int64_t oh, ow;
    evm_window2d_output(node, window, in[0]->dims[2], in[0]->dims[3], &resolved, &oh, &ow, NULL);
    return evm_window2d_reads(&resolved, in[0]->dims[2], in[0]->dims[3], r);
}
