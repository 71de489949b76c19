/* The DepthToSpace / SpaceToDepth rearrangement (see space_depth.h). */
#include <stddef.h>

#include "space_depth.h"

void evm_space_depth_move(const evm_space_depth *g, const float *restrict src, float *restrict dst,
                          bool to_space) {
    const int64_t b = g->b, c = g->c, h = g->h, w = g->w, sw = w * b;
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t k = 0; k < c; k++)
            for (int64_t i = 0; i < b; i++)
                for (int64_t j = 0; j < b; j++) {
                    int64_t chan = g->crd ? (k * b + i) * b + j : (i * b + j) * c + k;
                    const int64_t d0 = (n * c * b * b + chan) * h * w;
                    const int64_t s0 = (n * c + k) * h * b * sw + i * sw + j;
                    for (int64_t y = 0; y < h; y++) {
                        const int64_t d = d0 + y * w, s = s0 + y * b * sw;
                        if (to_space)
                            for (int64_t x = 0; x < w; x++)
                                dst[s + x * b] = src[d + x];
                        else
                            for (int64_t x = 0; x < w; x++)
                                dst[d + x] = src[s + x * b];
                    }
                }
}
