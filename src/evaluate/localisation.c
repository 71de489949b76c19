/*
 * Localisation metrics: how much of a map's evidence lies on the object,
 * given the object's mask (docs/evaluate.md). Pointing game (Zhang et al.
 * 2018), relevance-mass and relevance-rank accuracy (Arras et al. 2022) and
 * the IoU of the map's top pixels with the mask.
 *
 * Ties are shared, never broken by position: where several pixels hold the
 * maximum or straddle a top-K cut, each counts in proportion, which is the
 * expectation over random tie-breaking. A constant map therefore scores
 * exactly the uniform baselines, and a blocky map (the efficient method's
 * windows) is not helped or hurt by raster order.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

/* The map value as a ranking key: NaN ranks below every number. */
static double key_of(float v) {
    return isnan(v) ? -INFINITY : (double)v;
}

static int compare_descending(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a < b) - (a > b);
}

/* mask dilated by a disc of radius r (Euclidean), via per-row prefix counts:
 * out[y][x] = 1 when a mask pixel lies within r. */
static void dilate(const unsigned char *mask, int h, int w, int r, unsigned char *out,
                   int *prefix) {
    for (int y = 0; y < h; y++) {
        int *p = prefix + (size_t)y * (size_t)(w + 1);
        p[0] = 0;
        for (int x = 0; x < w; x++)
            p[x + 1] = p[x] + (mask[(size_t)y * (size_t)w + (size_t)x] != 0);
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            unsigned char hit = 0;
            for (int dy = -r; dy <= r && !hit; dy++) {
                int yy = y + dy;
                if (yy < 0 || yy >= h)
                    continue;
                int half = (int)floor(sqrt((double)r * r - (double)dy * dy));
                int x0 = x - half < 0 ? 0 : x - half;
                int x1 = x + half + 1 > w ? w : x + half + 1;
                const int *p = prefix + (size_t)yy * (size_t)(w + 1);
                hit = p[x1] > p[x0];
            }
            out[(size_t)y * (size_t)w + (size_t)x] = hit;
        }
}

/* Expected mask pixels among the top `top` pixels by key, ties shared.
 * sorted holds the keys in descending order. */
static double top_inside(const double *keys, const double *sorted, const unsigned char *mask,
                         size_t n, size_t top) {
    double cut = sorted[top - 1];
    size_t above = 0, tied = 0, above_in = 0, tied_in = 0;
    for (size_t i = 0; i < n; i++) {
        int in = mask[i] != 0;
        if (keys[i] > cut) {
            above++;
            above_in += (size_t)in;
        } else if (keys[i] == cut) {
            tied++;
            tied_in += (size_t)in;
        }
    }
    return (double)above_in + (double)(top - above) * (double)tied_in / (double)tied;
}

static double pointing_game(const double *keys, const double *sorted, const unsigned char *near,
                            size_t n) {
    if (sorted[0] == -INFINITY)
        return NAN; /* no finite value */
    size_t best = 0, best_in = 0;
    for (size_t i = 0; i < n; i++)
        if (keys[i] == sorted[0]) {
            best++;
            best_in += near[i] != 0;
        }
    return (double)best_in / (double)best;
}

static double relevance_mass(const float *map, const unsigned char *mask, size_t n) {
    double inside = 0, total = 0;
    for (size_t i = 0; i < n; i++)
        if (map[i] > 0) { /* NaN and negative evidence count as 0 */
            total += map[i];
            inside += mask[i] ? map[i] : 0;
        }
    return total > 0 ? inside / total : NAN;
}

static evmap_status check_arguments(const float *map, const unsigned char *mask, int height,
                                    int width, int tolerance, double top_fraction,
                                    const evmap_localisation *out, evmap_error *err) {
    if (!map || !mask || !out || height < 1 || width < 1 ||
        (size_t)height * (size_t)width > (1u << 30))
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "evmap_eval_localisation: needs a map, a mask, an output and a size of "
                        "1 to 2^30 pixels (got %d x %d)",
                        height, width);
    if (tolerance < 0 || tolerance > 4096)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "evmap_eval_localisation: tolerance %d is not 0 to 4096 pixels", tolerance);
    if (!(top_fraction > 0 && top_fraction <= 1))
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "evmap_eval_localisation: top fraction %g is not in (0, 1]", top_fraction);
    return EVMAP_OK;
}

evmap_status evmap_eval_localisation(const float *map, const unsigned char *mask, int height,
                                     int width, int tolerance, double top_fraction,
                                     evmap_localisation *out, evmap_error *err) {
    evmap_status st = check_arguments(map, mask, height, width, tolerance, top_fraction, out, err);
    if (st != EVMAP_OK)
        return st;
    size_t n = (size_t)height * (size_t)width, area = 0;
    for (size_t i = 0; i < n; i++)
        area += mask[i] != 0;
    if (area == 0)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "evmap_eval_localisation: the mask has no object pixel");
    double *keys = malloc(sizeof(double) * n * 2);
    unsigned char *near = malloc(n);
    int *prefix = malloc(sizeof(int) * (size_t)height * (size_t)(width + 1));
    if (!keys || !near || !prefix) {
        free(keys);
        free(near);
        free(prefix);
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory for localisation metrics");
    }
    double *sorted = keys + n;
    for (size_t i = 0; i < n; i++)
        sorted[i] = keys[i] = key_of(map[i]);
    qsort(sorted, n, sizeof(double), compare_descending);
    dilate(mask, height, width, tolerance, near, prefix);
    size_t near_area = 0;
    for (size_t i = 0; i < n; i++)
        near_area += near[i];

    size_t top = (size_t)llround(top_fraction * (double)n);
    top = top < 1 ? 1 : top;
    double a = (double)area / (double)n, q = (double)top / (double)n;
    double both = top_inside(keys, sorted, mask, n, top);
    out->pointing = pointing_game(keys, sorted, near, n);
    out->mass = relevance_mass(map, mask, n);
    out->rank = top_inside(keys, sorted, mask, n, area) / (double)area;
    out->iou = both / ((double)top + (double)area - both);
    out->area = a;
    out->pointing_uniform = (double)near_area / (double)n;
    out->iou_uniform = q * a / (q + a - q * a);
    free(keys);
    free(near);
    free(prefix);
    return EVMAP_OK;
}
