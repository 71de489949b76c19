/* PDA's evidence arithmetic, shared by exact PDA (pda.c) and the efficient
 * method's expansions (pda_expansion.c): the window grid, the weight of
 * evidence in log2 odds, and each window's evidence spread over its pixels. */
#include <math.h>
#include <string.h>

#include "pda_internal.h"

double pda_log2_odds(double p, double q, double laplace_n, int k) {
    if (laplace_n > 0) {
        p = (p * laplace_n + 1.0) / (laplace_n + k);
        q = (q * laplace_n + (k - 1)) / (laplace_n + k);
    }
    return log2(p) - log2(q);
}

size_t pda_window_grid(int h, int w, int k, int stride, const int roi[4], pda_window *out) {
    if (stride < 1)
        return 0;
    /* int64: y + stride and the roi's ends may exceed an int */
    bool whole = roi[2] <= 0;
    int64_t x0 = whole ? 0 : roi[0], y0 = whole ? 0 : roi[1];
    int64_t x1 = whole ? w : (int64_t)roi[0] + roi[2], y1 = whole ? h : (int64_t)roi[1] + roi[3];
    size_t n = 0;
    for (int64_t y = 0; y + k <= h; y += stride)
        for (int64_t x = 0; x + k <= w; x += stride)
            if (y >= y0 && x >= x0 && y + k <= y1 && x + k <= x1) {
                if (out)
                    out[n] = (pda_window){(int)y, (int)x}; /* < h, w */
                n++;
            }
    return n;
}

void pda_add_evidence(pda_run *r, pda_window w, const double *we) {
    size_t pixels = (size_t)r->h * (size_t)r->w;
    if (r->ext && r->ext->window_we)
        memcpy(r->ext->window_we + r->evaluated * (size_t)r->n_targets, we,
               sizeof(double) * (size_t)r->n_targets);
    r->evaluated++;
    for (int t = 0; t < r->n_targets; t++) {
        double *sum = r->sum + (size_t)t * pixels;
        for (int dy = 0; dy < r->k; dy++)
            for (int dx = 0; dx < r->k; dx++)
                sum[(size_t)(w.y + dy) * (size_t)r->w + (size_t)(w.x + dx)] += we[t];
    }
    for (int dy = 0; dy < r->k; dy++)
        for (int dx = 0; dx < r->k; dx++)
            r->count[(size_t)(w.y + dy) * (size_t)r->w + (size_t)(w.x + dx)]++;
}
