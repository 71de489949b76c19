/*
 * The rearrangement DepthToSpace and SpaceToDepth share (space_depth.c).
 * A "depth" tensor N x C x H x W with C = c * b * b and a "space" tensor
 * N x c x (H * b) x (W * b) hold the same elements:
 *   space[n, k, h * b + i, w * b + j] = depth[n, chan, h, w]
 * with chan = (i * b + j) * c + k (DCR: depth, column, row; SpaceToDepth's
 * order) or k * b * b + i * b + j (CRD).
 */
#ifndef EVM_OPS_SPACE_DEPTH_H
#define EVM_OPS_SPACE_DEPTH_H

#include <stdbool.h>
#include <stdint.h>

typedef struct evm_space_depth {
    int64_t n, c, h, w; /* c channels of the space tensor; h, w of the depth tensor */
    int64_t b;          /* blocksize */
    bool crd;
} evm_space_depth;

/* Copies depth into space (to_space) or space into depth. */
void evm_space_depth_move(const evm_space_depth *g, const float *restrict src, float *restrict dst,
                          bool to_space);

#endif
