/*
 * Evidence-map metrics (docs/evaluate.md): the orders in which deletion,
 * insertion and AOPC perturb pixels, the perturbed images, the reductions
 * of the model's probabilities to areas and averages, the fill images and
 * max-sensitivity's noise and map distance. Nothing here runs a model, so
 * every function can be checked against a hand computation.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/blur.h"
#include "base/error.h"
#include "base/rng.h"

/* One entry to sort: a key (NaN-free rank) and a tie-breaking index. */
typedef struct ranked {
    double key; /* larger first */
    int nan;    /* 1: after every number */
    int index;  /* raster position: smaller first among equals */
} ranked;

static int compare_ranked(const void *pa, const void *pb) {
    const ranked *a = pa, *b = pb;
    if (a->nan != b->nan)
        return a->nan - b->nan;
    if (!a->nan && a->key != b->key)
        return a->key > b->key ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

static evmap_status check_map(const float *map, int height, int width, const void *out,
                              const char *what, evmap_error *err) {
    if (!map || !out || height < 1 || width < 1 || (size_t)height * (size_t)width > (1u << 30))
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "%s: needs a map, an output and a size of 1 to 2^30 pixels (got %d x %d)",
                        what, height, width);
    return EVMAP_OK;
}

evmap_status evmap_eval_pixel_order(const float *map, int height, int width, int *order,
                                    evmap_error *err) {
    evmap_status st = check_map(map, height, width, order, "evmap_eval_pixel_order", err);
    if (st != EVMAP_OK)
        return st;
    size_t n = (size_t)height * (size_t)width;
    ranked *r = malloc(sizeof(ranked) * n);
    if (!r)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory ranking %zu pixels", n);
    for (size_t i = 0; i < n; i++) {
        r[i].nan = isnan(map[i]) != 0;
        r[i].key = r[i].nan ? 0.0 : (double)map[i];
        r[i].index = (int)i;
    }
    qsort(r, n, sizeof(ranked), compare_ranked);
    for (size_t i = 0; i < n; i++)
        order[i] = r[i].index;
    free(r);
    return EVMAP_OK;
}

size_t evmap_eval_step_pixels(size_t n, int steps, int t) {
    if (steps < 1 || t <= 0)
        return 0;
    if (t >= steps)
        return n;
    /* Exact in integers: images have at most 2^30 pixels and t < steps. */
    return n * (size_t)t / (size_t)steps;
}

void evmap_eval_replace(const float *image, const float *fill, int channels, int height, int width,
                        const int *order, size_t count, float *out) {
    size_t plane = (size_t)height * (size_t)width;
    memcpy(out, image, sizeof(float) * plane * (size_t)channels);
    if (count > plane)
        count = plane;
    for (int c = 0; c < channels; c++) {
        const float *src = fill + (size_t)c * plane;
        float *dst = out + (size_t)c * plane;
        for (size_t i = 0; i < count; i++)
            dst[order[i]] = src[order[i]];
    }
}

double evmap_eval_auc(const double *x, const double *y, int points) {
    double area = 0;
    for (int i = 1; i < points; i++)
        area += 0.5 * (x[i] - x[i - 1]) * (y[i] + y[i - 1]);
    return area;
}

int evmap_eval_region_count(int height, int width, int k) {
    if (k < 1 || height < 1 || width < 1)
        return 0;
    /* not height + k - 1, and the product in 64 bits: 0 when it exceeds an
     * int (never for the 2^30 pixels the order functions accept) */
    int64_t n = (int64_t)((height - 1) / k + 1) * ((width - 1) / k + 1);
    return n > INT_MAX ? 0 : (int)n;
}

/* Sum of the finite values of region r (raster index over the tiles). */
static ranked rank_region(const float *map, int width, int height, int k, int r) {
    int tiles_x = (width - 1) / k + 1;
    int y0 = r / tiles_x * k, x0 = r % tiles_x * k;
    int y1 = y0 + k < height ? y0 + k : height, x1 = x0 + k < width ? x0 + k : width;
    ranked out = {.key = 0, .nan = 1, .index = r};
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            float v = map[(size_t)y * (size_t)width + (size_t)x];
            if (isfinite(v)) {
                out.key += v;
                out.nan = 0;
            }
        }
    return out;
}

/* Appends region r's pixels to order at *at. */
static void list_region(int width, int height, int k, int r, int *order, size_t *at) {
    int tiles_x = (width - 1) / k + 1;
    int y0 = r / tiles_x * k, x0 = r % tiles_x * k;
    int y1 = y0 + k < height ? y0 + k : height, x1 = x0 + k < width ? x0 + k : width;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            order[(*at)++] = y * width + x;
}

evmap_status evmap_eval_region_order(const float *map, int height, int width, int k, int *order,
                                     size_t *region_end, evmap_error *err) {
    evmap_status st = check_map(map, height, width, order, "evmap_eval_region_order", err);
    if (st != EVMAP_OK)
        return st;
    if (k < 1 || !region_end)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "evmap_eval_region_order: region size %d must be at least 1 and "
                        "region_end given",
                        k);
    int n = evmap_eval_region_count(height, width, k);
    ranked *r = malloc(sizeof(ranked) * (size_t)n);
    if (!r)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory ranking %d regions", n);
    for (int i = 0; i < n; i++)
        r[i] = rank_region(map, width, height, k, i);
    qsort(r, (size_t)n, sizeof(ranked), compare_ranked);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        list_region(width, height, k, r[i].index, order, &at);
        region_end[i] = at;
    }
    free(r);
    return EVMAP_OK;
}

double evmap_eval_aopc(double p0, const double *p, int regions) {
    if (regions < 1)
        return NAN;
    double sum = 0;
    for (int l = 0; l < regions; l++)
        sum += p0 - p[l];
    return sum / regions;
}

evmap_status evmap_eval_fill(const float *image, int channels, int height, int width,
                             evmap_baseline kind, float *out, evmap_error *err) {
    if (!image || !out || channels < 1 || height < 1 || width < 1)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "evmap_eval_fill: needs an image, an output and a positive size");
    size_t plane = (size_t)height * (size_t)width;
    if (kind == EVMAP_BASELINE_BLUR)
        return evm_blur_image(image, channels, height, width, out, err);
    for (int c = 0; c < channels; c++) {
        double sum = 0;
        for (size_t i = 0; kind == EVMAP_BASELINE_MEAN && i < plane; i++)
            sum += image[(size_t)c * plane + i];
        float v = kind == EVMAP_BASELINE_MEAN ? (float)(sum / (double)plane) : 0.0f;
        for (size_t i = 0; i < plane; i++)
            out[(size_t)c * plane + i] = v;
    }
    return EVMAP_OK;
}

void evmap_eval_uniform_noise(const float *image, size_t n, float radius, uint64_t seed,
                              float *out) {
    evm_rng rng;
    evm_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++)
        out[i] = image[i] + (float)((2.0 * evm_rng_uniform(&rng) - 1.0) * radius);
}

static double finite_or_zero(float v) {
    return isnan(v) ? 0.0 : (double)v;
}

double evmap_eval_map_distance(const float *a, const float *b, size_t n) {
    double na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        na += finite_or_zero(a[i]) * finite_or_zero(a[i]);
        nb += finite_or_zero(b[i]) * finite_or_zero(b[i]);
    }
    if (na == 0 || nb == 0 || !isfinite(na) || !isfinite(nb))
        return NAN;
    na = sqrt(na);
    nb = sqrt(nb);
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        double diff = finite_or_zero(a[i]) / na - finite_or_zero(b[i]) / nb;
        d += diff * diff;
    }
    return sqrt(d);
}
