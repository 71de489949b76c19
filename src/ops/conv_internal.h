/*
 * What the files of the Conv operator share; private to src/ops/conv*.c.
 * conv.c has the operator and the threading, conv_gemm.c, conv_winograd.c and
 * conv_depthwise.c the forward kernels, conv_backward.c the input gradient.
 */
#ifndef EVM_CONV_INTERNAL_H
#define EVM_CONV_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "conv_reference.h"
#include "op.h"

typedef enum conv_kernel { CONV_DEPTHWISE, CONV_WINOGRAD, CONV_POINTWISE, CONV_IM2COL } conv_kernel;

/* Tuning, from VGG16 / ResNet-50 layer shapes timed with OpenBLAS 0.3.21
 * (SkylakeX kernels) on 1 and 2 cores. */
enum {
    /* sgemms narrower than this many columns take several images at once */
    CONV_MIN_COLUMNS = 1024,
    /* Winograd needs this many channels in and out per group (below, its
     * transforms cost about what it saves) ... */
    WINO_MIN_CHANNELS = 64,
    /* ... and this many tiles per forward, to repay the weight transform */
    WINO_MIN_TILES = 128,
    /* tiles per block of the Winograd pipeline (at least; whole tile rows) */
    WINO_BLOCK_TILES = 512,
    /* most threads the data movement is split over */
    CONV_MAX_THREADS = 8,
    /* floats a phase must touch before it is worth a second thread */
    CONV_PARALLEL_MIN = 1 << 16,
};

/* ---- the operator (conv.c) ---- */

/* Fills the geometry from the tensors. err may be NULL: forward calls it with
 * shapes infer already accepted, so it cannot fail there. */
evmap_status evm_conv_shape(const evm_node *node, evm_tensor *const *in, evm_conv2d_shape *s,
                            evmap_error *err);

/* The forward kernel for shape s. */
conv_kernel evm_conv_choose(const evm_conv2d_shape *s);

/* Scratch floats the chosen kernel needs for shape s. */
size_t evm_conv_kernel_workspace(const evm_conv2d_shape *s);

/* y = conv(x, w) + bias (may be NULL) with the chosen kernel; workspace holds
 * evm_conv_kernel_workspace(s) floats. */
void evm_conv_run(const evm_conv2d_shape *s, const float *x, const float *w, const float *bias,
                  float *y, float *workspace);

/* ---- threading (conv_parallel.c) ---- */

/* A phase of data movement split into parts: part i of n handles the i-th
 * n-th of the items (evm_conv_items_range). */
typedef void (*conv_part_fn)(void *ctx, int part, int parts);

/* Runs fn over all parts, on the pool's threads when the phase touches
 * enough floats (all in the caller without a pool), so this cannot fail. */
void evm_conv_parallel(conv_part_fn fn, void *ctx, size_t floats);

/* Items [*lo, *hi) of n that part `part` of `parts` handles. */
void evm_conv_items_range(size_t n, int part, int parts, size_t *lo, size_t *hi);

/* Output positions o in [0, n_out) whose tap o * stride + offset lies inside
 * [0, size): the half-open range [*lo, *hi). Empty ranges give lo == hi.
 * Inline, as it was when one file held every caller (im2col, the depthwise
 * loops, the gradient's scatter). */
static inline void evm_conv_valid_range(int n_out, int stride, int offset, int size, int *lo,
                                        int *hi) {
    /* smallest o with o * stride + offset >= 0 */
    int a = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    /* one past the largest o with o * stride + offset <= size - 1 */
    int last = size - 1 - offset;
    int b = last < 0 ? 0 : last / stride + 1;
    if (a > n_out)
        a = n_out;
    if (b > n_out)
        b = n_out;
    if (b < a)
        b = a;
    *lo = a;
    *hi = b;
}

/* ---- pointwise and im2col + sgemm (conv_gemm.c) ---- */

/* The sgemm geometry of one convolution (conv_gemm.c describes the scheme). */
typedef struct gemm_geom {
    int cg, mg; /* channels per group, in and out */
    int kdim;   /* rows of B: cg * kh * kw */
    int p;      /* output positions per image: oh * ow */
    int nb;     /* images per sgemm */
} gemm_geom;

gemm_geom evm_conv_gemm_geometry(const evm_conv2d_shape *s);

/* B for nb images (K x nb*p), then sgemm output (mg x nb*p) when nb > 1. */
size_t evm_conv_gemm_workspace(const evm_conv2d_shape *s, conv_kernel kind);

/* kind is CONV_POINTWISE or CONV_IM2COL. */
void evm_conv_gemm(const evm_conv2d_shape *s, conv_kernel kind, const float *x, const float *w,
                   const float *bias, float *y, float *work);

/* ---- Winograd F(2x2, 3x3) (conv_winograd.c) ---- */

/* Whether Winograd applies to s (3x3, stride 1, no dilation) and pays. */
bool evm_conv_wino_suits(const evm_conv2d_shape *s);

/* U, V and M of one block, then each thread's row scratch. */
size_t evm_conv_wino_workspace(const evm_conv2d_shape *s);

void evm_conv_winograd(const evm_conv2d_shape *s, const float *x, const float *w, const float *bias,
                       float *y, float *work);

/* ---- depthwise (conv_depthwise.c) ---- */

/* One image plane per channel; also the job of the depthwise input gradient
 * (conv_backward.c), where x is the output gradient and y the input's. */
typedef struct dw_job {
    const evm_conv2d_shape *s;
    const float *x, *w, *bias;
    float *y;
} dw_job;

/* Needs no workspace. */
void evm_conv_depthwise(const evm_conv2d_shape *s, const float *x, const float *w,
                        const float *bias, float *y);

/* ---- the input gradient (conv_backward.c) ---- */

/* The transpose of convolution s: gx (s's input shape) = bias (one value per
 * input channel, may be NULL) + J^T gy, where gy has s's output shape and J
 * is the Jacobian of conv(., w). Conv's input gradient, ConvTranspose's
 * forward. workspace holds evm_conv_transpose_workspace(s) floats. */
size_t evm_conv_transpose_workspace(const evm_conv2d_shape *s);

void evm_conv_transpose_run(const evm_conv2d_shape *s, const float *gy, const float *w,
                            const float *bias, float *gx, float *workspace);

/* evm_op_conv's backward hooks */

size_t evm_conv_backward_workspace(const evm_node *node, evm_tensor *const *in,
                                   evm_tensor *const *out);

void evm_conv_backward(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                       const evm_tensor *grad_out, evm_tensor *const *grad_in, float *workspace);

#endif
