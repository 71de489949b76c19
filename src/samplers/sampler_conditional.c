/*
 * The conditional Gaussian sampler of PDA (Zintgraf et al.): fitting on
 * random reference patches, precomputing the conditional of every window
 * offset, and drawing.
 *
 * Fitting draws patch positions with evm_patch_cursor (uniform over images
 * and positions, seeded), and estimates mean and covariance in two passes
 * over the same positions (mean first, then the centred Gram matrix through
 * dsyrk in chunks), in double, with the unbiased 1/(P−1) normalisation.
 *
 * For window offset (oy, ox) in the patch, with w the window and r the ring:
 *   A = Σ_wr Σ_rr⁻¹, Σ_w|r = Σ_ww − A Σ_rw = L Lᵀ,
 * computed as B = Σ_wr L_r⁻ᵀ (L_r the Cholesky factor of Σ_rr), Σ_w|r =
 * Σ_ww − B Bᵀ and A = B L_r⁻¹. A draw is μ_w + A (x_r − μ_r) + L z, clipped to
 * the per-channel data range of the references. Drawing allocates nothing.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/linalg.h"
#include "sampler_internal.h"
#include "base/tensor.h"

/* Rows of centred patches handed to dsyrk at once. */
#define GRAM_CHUNK 256

/* ---- patch positions ---- */

void evm_patch_cursor_init(evm_patch_cursor *cur, size_t n, int height, int width, int patch,
                           uint64_t seed) {
    evm_rng_seed(&cur->rng, seed);
    cur->columns = width - patch + 1;
    cur->per_image = (size_t)(height - patch + 1) * (size_t)cur->columns;
    cur->total = n * cur->per_image;
}

evm_patch_pos evm_patch_cursor_next(evm_patch_cursor *cur) {
    uint64_t t = evm_rng_below(&cur->rng, cur->total);
    size_t within = (size_t)(t % cur->per_image);
    evm_patch_pos p = {(size_t)(t / cur->per_image), (int)(within / (size_t)cur->columns),
                       (int)(within % (size_t)cur->columns)};
    return p;
}

/* ---- sizes ---- */

evmap_status evm_conditional_check_params(int channels, int window, int pad, bool joint,
                                          evmap_status status, evmap_error *err) {
    if (channels != 1 && channels != 3)
        return evm_fail(err, status,
                        "conditional sampler: %d channels; images must have 1 (gray) or 3 (RGB)",
                        channels);
    if (window < 1 || window > EVM_SAMPLER_MAX_WINDOW)
        return evm_fail(err, status,
                        "conditional sampler: window %d is outside 1..%d; choose another window",
                        window, EVM_SAMPLER_MAX_WINDOW);
    if (pad < 0 || pad > EVM_SAMPLER_MAX_PAD)
        return evm_fail(err, status,
                        "conditional sampler: pad %d is outside 0..%d; choose another pad", pad,
                        EVM_SAMPLER_MAX_PAD);
    size_t l = (size_t)window + 2 * (size_t)pad, k = (size_t)window;
    size_t group_channels = joint ? (size_t)channels : 1;
    size_t dim = group_channels * l * l, wd = group_channels * k * k, rd = dim - wd;
    if (dim > EVM_SAMPLER_MAX_DIM)
        return evm_fail(err, status,
                        "conditional sampler: a %zu-dimensional Gaussian (patch %zux%zu%s) "
                        "exceeds the limit of %d; use a smaller window or pad%s",
                        dim, l, l, joint ? ", joint channels" : "", EVM_SAMPLER_MAX_DIM,
                        joint ? ", or per-channel Gaussians" : "");
    /* Small enough now that these products cannot overflow. */
    size_t side = 2 * (size_t)pad + 1;
    size_t groups = joint ? 1 : (size_t)channels;
    size_t factors = groups * side * side * (wd + rd + wd * rd + wd * wd);
    if (factors > EVM_SAMPLER_MAX_FACTORS)
        return evm_fail(err, status,
                        "conditional sampler: window %d with pad %d needs %zu MB of "
                        "precomputed factors (limit %zu MB); use a smaller window or pad",
                        window, pad, factors * sizeof(double) >> 20,
                        EVM_SAMPLER_MAX_FACTORS * sizeof(double) >> 20);
    return EVMAP_OK;
}

evmap_status evm_conditional_alloc_gaussians(evm_sampler *s, evmap_error *err) {
    size_t k = (size_t)s->window;
    size_t group_channels = s->joint ? (size_t)s->channels : 1;
    s->patch = s->window + 2 * s->pad;
    s->side = 2 * s->pad + 1;
    s->groups = s->joint ? 1 : s->channels;
    s->dim = group_channels * (size_t)s->patch * (size_t)s->patch;
    s->window_dim = group_channels * k * k;
    s->ring_dim = s->dim - s->window_dim;
    /* dim ≤ EVM_SAMPLER_MAX_DIM (checked before), so dim² · groups fits. */
    s->mean = calloc((size_t)s->groups * s->dim, sizeof *s->mean);
    s->cov = calloc((size_t)s->groups * s->dim * s->dim, sizeof *s->cov);
    if (!s->mean || !s->cov)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY,
                        "conditional sampler: out of memory for %d Gaussians of dimension %zu",
                        s->groups, s->dim);
    return EVMAP_OK;
}

/* ---- precomputation ---- */

/* Index sets of the window at (oy, ox) and of the ring, as positions in the
 * group vector (channel-major, then row-major over the patch). */
static void offset_indices(const evm_sampler *s, int oy, int ox, size_t *window_idx,
                           size_t *ring_idx, evm_patch_pixel *ring) {
    size_t l = (size_t)s->patch, nw = 0, nr = 0;
    size_t group_channels = s->dim / (l * l);
    for (size_t c = 0; c < group_channels; c++)
        for (size_t r = 0; r < l; r++)
            for (size_t col = 0; col < l; col++) {
                size_t v = (c * l + r) * l + col;
                bool in_window = r >= (size_t)oy && r < (size_t)(oy + s->window) &&
                                 col >= (size_t)ox && col < (size_t)(ox + s->window);
                if (in_window) {
                    window_idx[nw++] = v;
                } else {
                    ring[nr] = (evm_patch_pixel){(uint8_t)c, (uint8_t)r, (uint8_t)col};
                    ring_idx[nr++] = v;
                }
            }
}

/* Work buffers for one factorization; sized for the largest block. */
typedef struct prep_work {
    size_t *window_idx; /* window_dim */
    size_t *ring_idx;   /* ring_dim */
    double *ring_chol;  /* ring_dim²: Σ_rr, then its factor L_r */
    double *copy;       /* max(ring_dim, window_dim)²: evm_cholesky_ridge's copy */
} prep_work;

/* Fills cond for one group and offset from the group's mean and cov; block
 * is its part of cond_data. Returns false when a factorization failed. */
static bool prepare_one(const evm_sampler *s, int group, const prep_work *w, double *block,
                        evm_conditional *cond) {
    size_t n = s->dim, wd = s->window_dim, rd = s->ring_dim;
    const double *mean = s->mean + (size_t)group * n;
    const double *cov = s->cov + (size_t)group * n * n;
    double *mean_window = block, *mean_ring = mean_window + wd;
    double *gain = mean_ring + rd, *chol = gain + wd * rd;
    for (size_t i = 0; i < wd; i++)
        mean_window[i] = mean[w->window_idx[i]];
    for (size_t i = 0; i < rd; i++)
        mean_ring[i] = mean[w->ring_idx[i]];
    for (size_t i = 0; i < rd; i++)
        for (size_t j = 0; j < rd; j++)
            w->ring_chol[i * rd + j] = cov[w->ring_idx[i] * n + w->ring_idx[j]];
    if (!evm_cholesky_ridge(w->ring_chol, rd, w->copy, &cond->ridge_ring))
        return false;
    for (size_t i = 0; i < wd; i++)
        for (size_t j = 0; j < rd; j++)
            gain[i * rd + j] = cov[w->window_idx[i] * n + w->ring_idx[j]];
    evm_solve_rows_lower_t(w->ring_chol, rd, gain, wd); /* B = Σ_wr L_r⁻ᵀ */
    for (size_t i = 0; i < wd; i++)
        for (size_t j = 0; j < wd; j++)
            chol[i * wd + j] = cov[w->window_idx[i] * n + w->window_idx[j]];
    evm_sub_outer(chol, gain, wd, rd); /* Σ_ww − B Bᵀ */
    if (!evm_cholesky_ridge(chol, wd, w->copy, &cond->ridge_window))
        return false;
    evm_solve_rows_lower(w->ring_chol, rd, gain, wd); /* A = B L_r⁻¹ */
    cond->mean_window = mean_window;
    cond->mean_ring = mean_ring;
    cond->gain = gain;
    cond->chol = chol;
    return true;
}

evmap_status evm_conditional_prepare(evm_sampler *s, bool from_file, evmap_error *err) {
    evmap_status st = EVMAP_OK;
    size_t wd = s->window_dim, rd = s->ring_dim, big = wd > rd ? wd : rd;
    size_t offsets = (size_t)s->side * (size_t)s->side;
    size_t per = wd + rd + wd * rd + wd * wd; /* bounded by evm_conditional_check_params */
    prep_work w = {malloc((wd + 1) * sizeof(size_t)), malloc((rd + 1) * sizeof(size_t)),
                   malloc((rd * rd + 1) * sizeof(double)),
                   malloc((big * big + 1) * sizeof(double))};
    s->ring = malloc((offsets * rd + 1) * sizeof *s->ring);
    s->cond = calloc(offsets * (size_t)s->groups, sizeof *s->cond);
    s->cond_data = malloc(offsets * (size_t)s->groups * per * sizeof *s->cond_data);
    if (!w.window_idx || !w.ring_idx || !w.ring_chol || !w.copy || !s->ring || !s->cond ||
        !s->cond_data) {
        st =
            evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY,
                     "conditional sampler: out of memory precomputing %zu window offsets", offsets);
        goto done;
    }
    for (size_t o = 0; o < offsets; o++) {
        int oy = (int)(o / (size_t)s->side), ox = (int)(o % (size_t)s->side);
        offset_indices(s, oy, ox, w.window_idx, w.ring_idx, s->ring + o * rd);
        for (int g = 0; g < s->groups; g++) {
            size_t at = (size_t)g * offsets + o;
            if (!prepare_one(s, g, &w, s->cond_data + at * per, &s->cond[at])) {
                st = evm_fail(err, from_file ? EVMAP_ERR_BAD_FILE : EVMAP_ERR_INTERNAL,
                              "conditional sampler: the covariance of %s %d is not positive "
                              "semi-definite (window offset %d,%d)%s",
                              s->joint ? "the joint Gaussian" : "channel", s->joint ? 0 : g, oy, ox,
                              from_file ? "; refit the sampler" : "");
                goto done;
            }
        }
    }
done:
    free(w.window_idx);
    free(w.ring_idx);
    free(w.ring_chol);
    free(w.copy);
    return st;
}

/* ---- fitting ---- */

/* Copies the group's part of the patch at p into v (dim doubles). */
static void gather_patch(const evm_sampler *s, const evm_image_stack *refs, evm_patch_pos p,
                         int group, double *v) {
    size_t l = (size_t)s->patch, h = (size_t)refs->height, w = (size_t)refs->width;
    size_t first = s->joint ? 0 : (size_t)group, count = s->dim / (l * l);
    const float *img = refs->data + p.image * (size_t)refs->channels * h * w;
    for (size_t c = first; c < first + count; c++)
        for (size_t r = 0; r < l; r++) {
            const float *row = img + (c * h + (size_t)p.y + r) * w + (size_t)p.x;
            for (size_t col = 0; col < l; col++)
                *v++ = row[col];
        }
}

static void data_range(evm_sampler *s, const evm_image_stack *refs) {
    size_t plane = (size_t)refs->height * (size_t)refs->width;
    for (int c = 0; c < refs->channels; c++) {
        float lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < refs->n; i++) {
            const float *p = refs->data + (i * (size_t)refs->channels + (size_t)c) * plane;
            for (size_t j = 0; j < plane; j++) {
                lo = p[j] < lo ? p[j] : lo;
                hi = p[j] > hi ? p[j] : hi;
            }
        }
        s->lo[c] = lo;
        s->hi[c] = hi;
    }
}

/* Two passes over the same positions (the cursor is reseeded): the mean,
 * then the Gram matrix of centred patches, chunk by chunk. */
static evmap_status fit_moments(evm_sampler *s, const evm_image_stack *refs, uint64_t seed,
                                evmap_error *err) {
    size_t n = s->dim, groups = (size_t)s->groups;
    double *rows = malloc(GRAM_CHUNK * groups * n * sizeof *rows);
    if (!rows)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "conditional sampler: out of memory");
    evm_patch_cursor cur;
    evm_patch_cursor_init(&cur, refs->n, refs->height, refs->width, s->patch, seed);
    for (size_t p = 0; p < s->patches; p++) {
        evm_patch_pos pos = evm_patch_cursor_next(&cur);
        for (size_t g = 0; g < groups; g++) {
            gather_patch(s, refs, pos, (int)g, rows);
            for (size_t i = 0; i < n; i++)
                s->mean[g * n + i] += rows[i];
        }
    }
    for (size_t i = 0; i < groups * n; i++)
        s->mean[i] /= (double)s->patches;

    evm_patch_cursor_init(&cur, refs->n, refs->height, refs->width, s->patch, seed);
    for (size_t done = 0; done < s->patches;) {
        size_t chunk = s->patches - done < GRAM_CHUNK ? s->patches - done : GRAM_CHUNK;
        for (size_t p = 0; p < chunk; p++) {
            evm_patch_pos pos = evm_patch_cursor_next(&cur);
            for (size_t g = 0; g < groups; g++) {
                double *v = rows + (g * GRAM_CHUNK + p) * n;
                gather_patch(s, refs, pos, (int)g, v);
                for (size_t i = 0; i < n; i++)
                    v[i] -= s->mean[g * n + i];
            }
        }
        for (size_t g = 0; g < groups; g++)
            evm_add_gram(s->cov + g * n * n, rows + g * GRAM_CHUNK * n, chunk, n);
        done += chunk;
    }
    for (size_t g = 0; g < groups; g++) {
        double *cov = s->cov + g * n * n;
        evm_mirror_lower(cov, n);
        for (size_t i = 0; i < n * n; i++)
            cov[i] /= (double)(s->patches - 1);
    }
    free(rows);
    return EVMAP_OK;
}

evmap_status evm_sampler_fit_conditional(const evm_image_stack *refs, int window, int pad,
                                         bool joint_channels, size_t patches, uint64_t seed,
                                         evm_sampler **out, evmap_error *err) {
    *out = NULL;
    size_t floats = 0;
    evmap_status st = evm_sampler_check_stack("conditional", refs, &floats, err);
    if (st != EVMAP_OK)
        return st;
    st = evm_conditional_check_params(refs->channels, window, pad, joint_channels,
                                      EVMAP_ERR_INVALID_ARGUMENT, err);
    if (st != EVMAP_OK)
        return st;
    int l = window + 2 * pad;
    if (l > refs->height || l > refs->width)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "conditional sampler: patch %dx%d (window %d + 2 x pad %d) does not fit "
                        "reference images of %dx%d; use a smaller window or pad",
                        l, l, window, pad, refs->width, refs->height);
    if (patches < 2 || patches > EVM_SAMPLER_MAX_PATCHES)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "conditional sampler: %zu patches is outside 2..%u; 20000 is typical",
                        patches, EVM_SAMPLER_MAX_PATCHES);
    size_t positions;
    if (!evm_mul_size(refs->n, (size_t)(refs->height - l + 1) * (size_t)(refs->width - l + 1),
                      &positions))
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "conditional sampler: too many reference images (%zu)", refs->n);

    evm_sampler *s = NULL;
    st = evm_sampler_alloc(EVM_SAMPLER_CONDITIONAL, refs->channels, window, &s, err);
    if (st != EVMAP_OK)
        return st;
    s->pad = pad;
    s->joint = joint_channels;
    s->patches = patches;
    st = evm_conditional_alloc_gaussians(s, err);
    if (st == EVMAP_OK) {
        data_range(s, refs);
        st = fit_moments(s, refs, seed, err);
    }
    if (st == EVMAP_OK)
        st = evm_conditional_prepare(s, false, err);
    if (st != EVMAP_OK)
        goto fail;
    *out = s;
    return EVMAP_OK;
fail:
    evm_sampler_free(s);
    return st;
}

/* ---- drawing ---- */

void evm_conditional_patch_origin(const evm_sampler *s, int height, int width, int y, int x,
                                  int *py, int *px) {
    int top = y - s->pad, left = x - s->pad;
    top = top < 0 ? 0 : top > height - s->patch ? height - s->patch : top;
    left = left < 0 ? 0 : left > width - s->patch ? width - s->patch : left;
    *py = top;
    *px = left;
}

/* Computes, for one group, the ring deviations x_r − μ_r and the conditional
 * mean μ_w + A (x_r − μ_r) into mean_out (window_dim floats). */
static void group_mean(const evm_sampler *s, const evm_conditional *cond,
                       const evm_patch_pixel *ring, const float *image, int height, int width,
                       int group, int py, int px, float *deviation, float *mean_out) {
    size_t wd = s->window_dim, rd = s->ring_dim, h = (size_t)height, w = (size_t)width;
    size_t first = s->joint ? 0 : (size_t)group;
    for (size_t i = 0; i < rd; i++) {
        size_t c = first + ring[i].channel;
        float v = image[(c * h + (size_t)py + ring[i].row) * w + (size_t)px + ring[i].col];
        deviation[i] = (float)((double)v - cond->mean_ring[i]);
    }
    for (size_t i = 0; i < wd; i++) {
        const double *a = cond->gain + i * rd;
        double sum = cond->mean_window[i];
        for (size_t j = 0; j < rd; j++)
            sum += a[j] * (double)deviation[j];
        mean_out[i] = (float)sum;
    }
}

/* Finds the offset of the window at (y, x) in its (shifted) patch. */
static size_t window_offset(const evm_sampler *s, int height, int width, int y, int x, int *py,
                            int *px) {
    evm_conditional_patch_origin(s, height, width, y, x, py, px);
    return (size_t)(y - *py) * (size_t)s->side + (size_t)(x - *px);
}

/* Random-number order: groups in turn; within a group, sample by sample,
 * window_dim normals each. */
void evm_conditional_draw(const evm_sampler *s, const float *image, int height, int width, int y,
                          int x, int count, evm_rng *rng, float *scratch, float *out) {
    int py, px;
    size_t o = window_offset(s, height, width, y, x, &py, &px);
    size_t offsets = (size_t)s->side * (size_t)s->side, wd = s->window_dim;
    size_t kk = (size_t)s->window * (size_t)s->window;
    size_t per_sample = (size_t)s->channels * kk;
    size_t group_channels = wd / kk;
    float *deviation = scratch, *mean = scratch + s->ring_dim, *z = mean + wd;
    for (int g = 0; g < s->groups; g++) {
        const evm_conditional *cond = &s->cond[(size_t)g * offsets + o];
        group_mean(s, cond, s->ring + o * s->ring_dim, image, height, width, g, py, px, deviation,
                   mean);
        for (int n = 0; n < count; n++) {
            for (size_t i = 0; i < wd; i++)
                z[i] = (float)evm_rng_normal(rng);
            float *dst = out + (size_t)n * per_sample + (size_t)g * wd;
            for (size_t gc = 0; gc < group_channels; gc++) {
                size_t c = s->joint ? gc : (size_t)g;
                for (size_t u = 0; u < kk; u++) {
                    size_t i = gc * kk + u;
                    const double *row = cond->chol + i * wd;
                    double v = mean[i];
                    for (size_t j = 0; j <= i; j++)
                        v += row[j] * (double)z[j];
                    float f = (float)v;
                    dst[i] = f < s->lo[c] ? s->lo[c] : f > s->hi[c] ? s->hi[c] : f;
                }
            }
        }
    }
}

/* Unclipped: the Gaussian's conditional mean, which the efficient method
 * linearises around. */
void evm_conditional_mean(const evm_sampler *s, const float *image, int height, int width, int y,
                          int x, float *scratch, float *out) {
    int py, px;
    size_t o = window_offset(s, height, width, y, x, &py, &px);
    size_t offsets = (size_t)s->side * (size_t)s->side;
    for (int g = 0; g < s->groups; g++)
        group_mean(s, &s->cond[(size_t)g * offsets + o], s->ring + o * s->ring_dim, image, height,
                   width, g, py, px, scratch, out + (size_t)g * s->window_dim);
}
