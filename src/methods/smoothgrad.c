/*
 * SmoothGrad (Smilkov et al. 2017): the saliency map (max over channels of
 * |df/dx|) averaged over noisy copies x + N(0, σ²), σ = noise · (max − min
 * of the image). The copies are batched; one forward pass per batch serves
 * every target, and every target sees the same noise.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/rng.h"
#include "gradient_internal.h"

static double image_range(const float *x, size_t n) {
    float lo = x[0], hi = x[0];
    for (size_t i = 1; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    return (double)hi - lo;
}

static void fill_noisy(grad_run *r, const float *x, double sigma, int count, evm_rng *rng) {
    float *in = grad_run_input(r);
    for (int b = 0; b < count; b++)
        for (size_t i = 0; i < r->image_floats; i++)
            in[(size_t)b * r->image_floats + i] = (float)(x[i] + sigma * evm_rng_normal(rng));
    memset(in + (size_t)count * r->image_floats, 0,
           sizeof(float) * r->image_floats * (size_t)(r->batch - count));
}

static void add_saliency(const grad_run *r, const float *g, int count, double *sum) {
    size_t plane = (size_t)r->h * (size_t)r->w;
    for (int b = 0; b < count; b++) {
        const float *row = g + (size_t)b * r->image_floats;
        for (size_t i = 0; i < plane; i++) {
            double v = 0;
            for (int ch = 0; ch < r->c; ch++)
                v = fmax(v, fabs((double)row[(size_t)ch * plane + i]));
            sum[i] += v;
        }
    }
}

evmap_status grad_smooth_maps(grad_run *r, const evmap_gradient_options *o, const float *input,
                              float *maps, evmap_error *err) {
    size_t plane = (size_t)r->h * (size_t)r->w;
    double sigma = o->noise * image_range(input, r->image_floats);
    double *sums = calloc(plane * (size_t)r->n_targets, sizeof(double)); /* < 2^32 * 2^31 */
    if (!sums)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
    evm_rng rng;
    evm_rng_seed(&rng, o->seed);
    evmap_status st = EVMAP_OK;
    r->total = (size_t)r->n_targets * (size_t)((o->samples + r->batch - 1) / r->batch);
    for (int first = 0; st == EVMAP_OK && first < o->samples; first += r->batch) {
        int count = o->samples - first < r->batch ? o->samples - first : r->batch;
        st = grad_run_resize(r, count, err);
        if (st == EVMAP_OK) {
            fill_noisy(r, input, sigma, count, &rng);
            st = grad_run_forward(r, err);
        }
        for (int t = 0; st == EVMAP_OK && t < r->n_targets; t++) {
            st = grad_run_backward(r, t, count, NULL, err);
            if (st == EVMAP_OK)
                add_saliency(r, evm_f32(grad_run_result(r)), count, sums + (size_t)t * plane);
        }
    }
    for (size_t i = 0; st == EVMAP_OK && i < plane * (size_t)r->n_targets; i++)
        maps[i] = (float)(sums[i] / o->samples);
    free(sums);
    return st;
}
