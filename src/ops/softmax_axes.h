/* The axes Softmax and LogSoftmax normalise over (softmax_axes.c).
 * Opset < 13: x is viewed as 2-D [prod(dims[:axis]), prod(dims[axis:])]
 * (axis defaults to 1) and each row is normalised over its whole length;
 * opset >= 13: along the single axis (default -1). Both are "outer x n x
 * inner" blocks normalised over n, an inner position's values inner floats
 * apart (inner is 1 for the old rule and for the last axis). */
#ifndef EVM_OPS_SOFTMAX_AXES_H
#define EVM_OPS_SOFTMAX_AXES_H

#include "op.h"

typedef struct evm_softmax_axes {
    int64_t axis;   /* as written (or the opset's default) */
    bool coerce_2d; /* opset < 13: normalise over all axes from axis on */
} evm_softmax_axes;

/* Reads the axis attribute into the node's params (an evm_softmax_axes). */
evmap_status evm_softmax_axes_init(evm_node *node, evmap_error *err);
/* Checks the axis against the input's rank; the output has the input's shape. */
evmap_status evm_softmax_axes_infer(const evm_node *node, evm_tensor *const *in,
                                    evm_tensor *const *out, evmap_error *err);
/* Splits x's shape into outer x n x inner around the normalised axes. */
void evm_softmax_axes_split(const evm_softmax_axes *p, const evm_tensor *x, size_t *outer,
                            size_t *n, size_t *inner);

#endif
