/*
 * The shared body of the Reduce* operators (float32): ReduceMean, ReduceSum,
 * ReduceMax, ReduceMin, ReduceL1, ReduceL2, ReduceSumSquare, ReduceProd,
 * ReduceLogSum and ReduceLogSumExp.
 *
 * Axes: the 'axes' attribute before the opset in which they became input 1
 * (ReduceSum 13, the others 18), then an optional constant 1-D int64 input.
 * No axes (or an empty list) reduces every axis, unless
 * noop_with_empty_axes = 1 (read only where axes are an input, as in the
 * spec), which makes the op the identity. keepdims (default 1) keeps the
 * reduced axes with size 1. Axes may be negative; repeats are refused.
 *
 * The kernels see a reduce_layout: the kept axes (in order: the output's
 * element order) and the reduced ones, each with its element strides into
 * the input, neighbouring axes of the same kind merged and size-1 axes
 * dropped. Output element o reduces the input elements
 * outer_offset(o) + inner_offset(k), k < inner_count, k in row-major order
 * of the reduced axes.
 */
#ifndef EVM_REDUCE_H
#define EVM_REDUCE_H

#include <stdbool.h>
#include <stdint.h>

#include "op.h"

typedef struct evm_reduce_axes_ix {
    int n;
    int64_t dims[EVM_MAX_RANK];
    int64_t strides[EVM_MAX_RANK];
} evm_reduce_axes_ix;

typedef struct evm_reduce_layout {
    bool noop;                /* empty axes with noop_with_empty_axes: the identity */
    evm_reduce_axes_ix outer; /* kept axes */
    evm_reduce_axes_ix inner; /* reduced axes */
    size_t outer_count;       /* output elements */
    size_t inner_count;       /* input elements per output element */
} evm_reduce_layout;

/* Parses keepdims, 'axes' (attribute form) and noop_with_empty_axes (input
 * form); axes_input_opset: the first opset with axes as input 1. */
evmap_status evm_reduce_init(evm_node *node, int axes_input_opset, evmap_error *err);

/* Checks the data (float32) and axes; sets the output shape. */
evmap_status evm_reduce_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              evmap_error *err);

/* The layout for these inputs (infer has validated them: cannot fail). */
void evm_reduce_layout_make(const evm_node *node, evm_tensor *const *in, evm_reduce_layout *l);

/* Odometer step over ix: advances idx (row-major) and returns the element
 * offset of the next position, given the current one. */
static inline int64_t evm_reduce_next(const evm_reduce_axes_ix *ix, int64_t *idx, int64_t off) {
    for (int d = ix->n - 1; d >= 0; d--) {
        off += ix->strides[d];
        if (++idx[d] < ix->dims[d])
            return off;
        off -= ix->strides[d] * ix->dims[d];
        idx[d] = 0;
    }
    return off;
}

/* ReduceSum and ReduceMean (mean: divided by the reduced count): forward
 * summed in double, and backward, each reduced element getting its output's
 * gradient (over the count for the mean). */
void evm_reduce_sum_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                            bool mean);
void evm_reduce_sum_backward(const evm_node *node, evm_tensor *const *in,
                             const evm_tensor *grad_out, evm_tensor *const *grad_in, bool mean);

/* Operators that see one reduced group at a time as a contiguous array
 * (ReduceMin, ReduceProd, ReduceL1, ReduceSumSquare, ReduceLogSum,
 * ReduceLogSumExp): value gives the group's result (n may be 0: the empty
 * set), slope writes gv[k] = gy * d value / d v[k] for the group's n
 * values (never called for n = 0). The group is gathered into the
 * workspace (evm_reduce_group_workspace floats, for forward and backward)
 * and the gradient scattered back. The noop form is the identity, as the
 * spec says ("the output tensor would be equivalent to input tensor"), and
 * its backward a copy. */
typedef float (*evm_reduce_value_fn)(const float *v, size_t n);
typedef void (*evm_reduce_slope_fn)(const float *v, size_t n, float gy, float *gv);

size_t evm_reduce_group_workspace(const evm_node *node, evm_tensor *const *in,
                                  evm_tensor *const *out);
void evm_reduce_group_forward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                              float *workspace, evm_reduce_value_fn value);
void evm_reduce_group_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               const evm_tensor *grad_out, evm_tensor *const *grad_in,
                               float *workspace, evm_reduce_slope_fn slope);

#endif
