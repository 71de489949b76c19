/*
 * Naive reference 2-D convolution (NCHW, grouped, strided, padded, dilated):
 * the definition the fast Conv kernel is tested against. Slow on purpose:
 * one direct loop nest with no tricks, so it is easy to check by eye.
 */
#ifndef EVM_CONV_REFERENCE_H
#define EVM_CONV_REFERENCE_H

#include "op.h"

/* Shapes of one 2-D convolution; win must already be resolved (no SAME_*
 * left: pad_begin/pad_end hold the actual padding). */
typedef struct evm_conv2d_shape {
    int n, c, h, w; /* input: batch, channels, height, width */
    int m;          /* output channels */
    int group;      /* c and m are both divisible by group */
    int oh, ow;     /* output height and width */
    evm_window2d win;
} evm_conv2d_shape;

/* y[n][m][oh][ow] = bias[m] + sum over the group's input channels and the
 * kernel window of x * w; taps in the padding contribute zero. w has shape
 * (m, c/group, kh, kw); bias may be NULL. */
void evm_conv2d_reference(const evm_conv2d_shape *s, const float *x, const float *w,
                          const float *bias, float *y);

#endif
