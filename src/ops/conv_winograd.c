/*
 * Conv's Winograd kernel, F(2x2, 3x3), for 3x3 stride-1 convolutions with
 * enough channels and tiles (evm_conv_wino_suits).
 */
#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "conv_internal.h"
#include "base/sgemm.h"

/* F(2x2, 3x3): each 2x2 output tile comes from a 4x4 input tile with 16
 * multiplications instead of 36, as 16 independent sgemms, one per position
 * xi of the transformed 4x4 tile:
 *   U[xi] (mg x cg) = (G g G^T)[xi]   weights, transformed on every forward
 *   V[xi] (cg x nt) = (B^T d B)[xi]   input tiles of the current block
 *   M[xi] (mg x nt) = U[xi] V[xi]
 *   y tile (2 x 2)  = A^T M A + bias
 * Tiles are numbered across the batch row by row (tile row R = n * th + ty)
 * and processed in blocks of whole tile rows: wide enough that sgemm's
 * packing of U is repaid, small enough to keep V and M near the caches. The
 * transforms work along tile rows on contiguous temporaries so that they
 * vectorise, and are split over threads by channel.
 * The transforms only add, subtract and halve, so the result is about as
 * accurate as the direct sum (test_conv checks it against the reference). */

/* Kronecker square of G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]: row xi = 4i+j
 * turns a row-major 3x3 kernel into (G g G^T)[i][j]. */
/* clang-format off */
static const float wino_gg[16 * 9] = {
    1.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,
    0.5f, 0.5f, 0.5f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,
    0.5f, -0.5f, 0.5f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,
    0.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,
    0.5f, 0.0f, 0.0f, 0.5f, 0.0f, 0.0f, 0.5f, 0.0f, 0.0f,
    0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f,
    0.25f, -0.25f, 0.25f, 0.25f, -0.25f, 0.25f, 0.25f, -0.25f, 0.25f,
    0.0f, 0.0f, 0.5f, 0.0f, 0.0f, 0.5f, 0.0f, 0.0f, 0.5f,
    0.5f, 0.0f, 0.0f, -0.5f, 0.0f, 0.0f, 0.5f, 0.0f, 0.0f,
    0.25f, 0.25f, 0.25f, -0.25f, -0.25f, -0.25f, 0.25f, 0.25f, 0.25f,
    0.25f, -0.25f, 0.25f, -0.25f, 0.25f, -0.25f, 0.25f, -0.25f, 0.25f,
    0.0f, 0.0f, 0.5f, 0.0f, 0.0f, -0.5f, 0.0f, 0.0f, 0.5f,
    0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1.0f, 0.0f, 0.0f,
    0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.5f, 0.5f, 0.5f,
    0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.5f, -0.5f, 0.5f,
    0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1.0f,
};
/* clang-format on */

typedef struct wino_geom {
    int cg, mg;     /* channels per group, in and out */
    int th, tw;     /* tile rows and tiles per row, per image */
    int rows;       /* tile rows over the whole batch: n * th */
    int block_rows; /* tile rows per block */
    int lp;         /* padded input row length the tiles of a row read: 2 * tw + 2 */
    size_t temp;    /* scratch floats per thread for the row transforms */
} wino_geom;

static wino_geom wino_geometry(const evm_conv2d_shape *s) {
    wino_geom g;
    g.cg = s->c / s->group;
    g.mg = s->m / s->group;
    g.th = (s->oh + 1) / 2;
    g.tw = (s->ow + 1) / 2;
    g.rows = s->n * g.th;
    g.lp = 2 * g.tw + 2;
    size_t want = WINO_BLOCK_TILES;
    size_t br = (want + (size_t)g.tw - 1) / (size_t)g.tw;
    g.block_rows = br < 1 ? 1 : br > (size_t)g.rows ? g.rows : (int)br;
    /* a padded row, the even and odd columns of 4 rows and their row
     * combinations; or the 4 outputs of each tile of a row */
    g.temp = (size_t)g.lp + 16 * (size_t)(g.tw + 1);
    return g;
}

bool evm_conv_wino_suits(const evm_conv2d_shape *s) {
    const evm_window2d *k = &s->win;
    if (k->kernel[0] != 3 || k->kernel[1] != 3 || k->stride[0] != 1 || k->stride[1] != 1 ||
        k->dilation[0] != 1 || k->dilation[1] != 1)
        return false;
    /* Channels first: with mg >= 64 the output's 2^34 limit keeps the
     * geometry's int products (n * th, 2 * tw + 2) far from overflowing. */
    if (s->c / s->group < WINO_MIN_CHANNELS || s->m / s->group < WINO_MIN_CHANNELS)
        return false;
    wino_geom g = wino_geometry(s);
    return (size_t)g.rows * g.tw >= WINO_MIN_TILES && (size_t)g.mg * g.cg <= INT_MAX;
}

size_t evm_conv_wino_workspace(const evm_conv2d_shape *s) {
    wino_geom g = wino_geometry(s);
    size_t nt = (size_t)g.block_rows * g.tw;
    return 16 * ((size_t)g.mg * g.cg + (size_t)g.cg * nt + (size_t)g.mg * nt) +
           CONV_MAX_THREADS * g.temp;
}

/* Input rows y0..y0+3 of one channel plane, columns -pad_left .. lp-1-pad_left,
 * zero outside the image, split into even and odd columns: ev and od are
 * 4 x (tw + 1) each. row is a scratch row of lp floats. */
static void wino_load_rows(const evm_conv2d_shape *s, const wino_geom *g, const float *plane,
                           int y0, float *row, float *restrict ev, float *restrict od) {
    int pl = s->win.pad_begin[1], half = g->tw + 1;
    int lo = pl < g->lp ? pl : g->lp;               /* columns before the image */
    int hi = s->w + pl < g->lp ? s->w + pl : g->lp; /* one past the image */
    for (int a = 0; a < 4; a++) {
        float *e = ev + (size_t)a * half, *o = od + (size_t)a * half;
        int yy = y0 + a;
        if (yy < 0 || yy >= s->h || hi <= lo) {
            memset(e, 0, sizeof(float) * (size_t)half);
            memset(o, 0, sizeof(float) * (size_t)half);
            continue;
        }
        memset(row, 0, sizeof(float) * (size_t)lo);
        memcpy(row + lo, plane + (size_t)yy * s->w + (lo - pl), sizeof(float) * (size_t)(hi - lo));
        memset(row + hi, 0, sizeof(float) * (size_t)(g->lp - hi));
        for (int i = 0; i < half; i++) {
            e[i] = row[2 * i];
            o[i] = row[2 * i + 1];
        }
    }
}

/* Four rows of V from one row r of B^T d, given as its even (re) and odd (ro)
 * columns: tile t reads columns 2t .. 2t+3 = re[t], ro[t], re[t+1], ro[t+1]. */
static void wino_cols(int tw, const float *restrict re, const float *restrict ro,
                      float *restrict w0, float *restrict w1, float *restrict w2,
                      float *restrict w3) {
    for (int t = 0; t < tw; t++) {
        w0[t] = re[t] - re[t + 1];
        w1[t] = ro[t] + re[t + 1];
        w2[t] = re[t + 1] - ro[t];
        w3[t] = ro[t] - ro[t + 1];
    }
}

/* The rows of B^T d: (r0 - r2, r1 + r2, r2 - r1, r1 - r3), for n columns. */
static void wino_rows(int n, const float *restrict r, float *restrict q) {
    const float *r0 = r, *r1 = r + n, *r2 = r + 2 * n, *r3 = r + 3 * n;
    for (int i = 0; i < n; i++) {
        q[i] = r0[i] - r2[i];
        q[n + i] = r1[i] + r2[i];
        q[2 * n + i] = r2[i] - r1[i];
        q[3 * n + i] = r1[i] - r3[i];
    }
}

/* V[xi][c][t] = (B^T d B)[xi] for the tw tiles of one tile row, from the even
 * and odd columns of its 4 input rows; q is scratch of the same size. */
static void wino_input_row(int tw, const float *ev, const float *od, float *qe, float *qo, float *v,
                           size_t stride) {
    int half = tw + 1;
    wino_rows(half, ev, qe);
    wino_rows(half, od, qo);
    for (int a = 0; a < 4; a++) {
        float *w = v + (size_t)(4 * a) * stride;
        wino_cols(tw, qe + (size_t)a * half, qo + (size_t)a * half, w, w + stride, w + 2 * stride,
                  w + 3 * stride);
    }
}

typedef struct wino_job {
    const evm_conv2d_shape *s;
    const wino_geom *g;
    const float *x, *bias;
    float *y;
    int gi;     /* group */
    int r0, nr; /* tile rows of the block */
    float *v, *mo, *temp;
} wino_job;

/* V for the block, split over input channels. */
static void wino_input_part(void *ctx, int part, int parts) {
    const wino_job *j = ctx;
    const evm_conv2d_shape *s = j->s;
    const wino_geom *g = j->g;
    size_t nt = (size_t)j->nr * g->tw, stride = (size_t)g->cg * nt;
    size_t plane = (size_t)s->h * s->w, rows4 = 4 * (size_t)(g->tw + 1);
    float *row = j->temp + (size_t)part * g->temp;
    float *ev = row + g->lp, *od = ev + rows4, *qe = od + rows4, *qo = qe + rows4;
    size_t lo, hi;
    evm_conv_items_range((size_t)g->cg, part, parts, &lo, &hi);
    for (size_t c = lo; c < hi; c++)
        for (int r = 0; r < j->nr; r++) {
            int n = (j->r0 + r) / g->th, ty = (j->r0 + r) % g->th;
            const float *src = j->x + ((size_t)n * s->c + (size_t)j->gi * g->cg + c) * plane;
            wino_load_rows(s, g, src, 2 * ty - s->win.pad_begin[0], row, ev, od);
            wino_input_row(g->tw, ev, od, qe, qo, j->v + c * nt + (size_t)r * g->tw, stride);
        }
}

/* y = A^T M A + bias for the tw tiles of one tile row of one output channel,
 * into output rows y0 and y1 (y1 NULL past the bottom). e (4 x tw) holds the
 * four outputs of each tile before they interleave. */
static void wino_output_row(int ow, int tw, const float *restrict mo, size_t stride, float bias,
                            float *restrict e, float *y0, float *y1) {
    const float *restrict p0 = mo, *restrict p1 = mo + stride, *restrict p2 = mo + 2 * stride,
                          *restrict p3 = mo + 3 * stride, *restrict p4 = mo + 4 * stride,
                          *restrict p5 = mo + 5 * stride, *restrict p6 = mo + 6 * stride,
                          *restrict p7 = mo + 7 * stride, *restrict p8 = mo + 8 * stride,
                          *restrict p9 = mo + 9 * stride, *restrict p10 = mo + 10 * stride,
                          *restrict p11 = mo + 11 * stride, *restrict p12 = mo + 12 * stride,
                          *restrict p13 = mo + 13 * stride, *restrict p14 = mo + 14 * stride,
                          *restrict p15 = mo + 15 * stride;
    float *restrict e00 = e, *restrict e01 = e + tw, *restrict e10 = e + 2 * tw,
                    *restrict e11 = e + 3 * tw;
    for (int t = 0; t < tw; t++) {
        /* A^T M: rows (r0 + r1 + r2, r1 - r2 - r3), per column */
        float a0 = p0[t] + p4[t] + p8[t], a1 = p1[t] + p5[t] + p9[t];
        float a2 = p2[t] + p6[t] + p10[t], a3 = p3[t] + p7[t] + p11[t];
        float b0 = p4[t] - p8[t] - p12[t], b1 = p5[t] - p9[t] - p13[t];
        float b2 = p6[t] - p10[t] - p14[t], b3 = p7[t] - p11[t] - p15[t];
        /* (A^T M) A: the same combinations of columns */
        e00[t] = a0 + a1 + a2 + bias;
        e01[t] = a1 - a2 - a3 + bias;
        e10[t] = b0 + b1 + b2 + bias;
        e11[t] = b1 - b2 - b3 + bias;
    }
    int pairs = ow / 2;
    for (int t = 0; t < pairs; t++) {
        y0[2 * t] = e00[t];
        y0[2 * t + 1] = e01[t];
    }
    if (ow & 1)
        y0[2 * pairs] = e00[pairs];
    if (!y1)
        return;
    for (int t = 0; t < pairs; t++) {
        y1[2 * t] = e10[t];
        y1[2 * t + 1] = e11[t];
    }
    if (ow & 1)
        y1[2 * pairs] = e10[pairs];
}

/* The block's outputs, split over output channels. */
static void wino_output_part(void *ctx, int part, int parts) {
    const wino_job *j = ctx;
    const evm_conv2d_shape *s = j->s;
    const wino_geom *g = j->g;
    size_t nt = (size_t)j->nr * g->tw, stride = (size_t)g->mg * nt;
    size_t plane = (size_t)s->oh * s->ow;
    float *e = j->temp + (size_t)part * g->temp;
    size_t lo, hi;
    evm_conv_items_range((size_t)g->mg, part, parts, &lo, &hi);
    for (size_t mi = lo; mi < hi; mi++) {
        size_t m = (size_t)j->gi * g->mg + mi;
        float b = j->bias ? j->bias[m] : 0.0f;
        for (int r = 0; r < j->nr; r++) {
            int n = (j->r0 + r) / g->th, ty = (j->r0 + r) % g->th;
            float *out = j->y + ((size_t)n * s->m + m) * plane + (size_t)(2 * ty) * s->ow;
            float *out1 = 2 * ty + 1 < s->oh ? out + s->ow : NULL;
            wino_output_row(s->ow, g->tw, j->mo + mi * nt + (size_t)r * g->tw, stride, b, e, out,
                            out1);
        }
    }
}

void evm_conv_winograd(const evm_conv2d_shape *s, const float *x, const float *w, const float *bias,
                       float *y, float *work) {
    wino_geom g = wino_geometry(s);
    size_t nb = (size_t)g.block_rows * g.tw;
    size_t ukc = (size_t)g.mg * g.cg;
    float *u = work;
    float *v = u + 16 * ukc;
    float *mo = v + 16 * (size_t)g.cg * nb;
    float *temp = mo + 16 * (size_t)g.mg * nb;
    for (int gi = 0; gi < s->group; gi++) {
        /* U (16 x mg*cg) = wino_gg (16 x 9) * W_g^T, W_g viewed as (mg*cg x 9) */
        evm_sgemm(false, true, 16, (int)ukc, 9, 1.0f, wino_gg, 9, w + gi * ukc * 9, 9, 0.0f, u,
                  (int)ukc);
        for (int r0 = 0; r0 < g.rows; r0 += g.block_rows) {
            int nr = g.rows - r0 < g.block_rows ? g.rows - r0 : g.block_rows;
            int nt = nr * g.tw;
            wino_job j = {s, &g, x, bias, y, gi, r0, nr, v, mo, temp};
            evm_conv_parallel(wino_input_part, &j, 16 * (size_t)g.cg * nt);
            for (int xi = 0; xi < 16; xi++)
                evm_sgemm(false, false, g.mg, nt, g.cg, 1.0f, u + xi * ukc, g.cg,
                          v + (size_t)xi * g.cg * nt, nt, 0.0f, mo + (size_t)xi * g.mg * nt, nt);
            evm_conv_parallel(wino_output_part, &j, 16 * (size_t)g.mg * nt);
        }
    }
}
