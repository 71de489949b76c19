/*
 * PDA's perturbed images: a window's S draws from the sampler (or their
 * mean, for the efficient method's split at the input), written over the
 * image in a batch plan's rows or into the locality engine's input.
 */
#include <string.h>

#include "samplers/sampler_api.h"
#include "pda_internal.h"

/* The window's rectangle on the input. */
evm_region pda_window_region(const pda_run *r, pda_window w) {
    return evm_region_clip(w.y, w.y + r->k, w.x, w.x + r->k, r->h, r->w);
}

void pda_draw_window(pda_run *r, pda_window w, float *draws) {
    const evm_sampler *s = r->opt->sampler->impl;
    evm_sampler_draw(s, r->input, r->h, r->w, w.y, w.x, r->samples, 0, &r->rng, r->scratch, draws);
    if (!r->average_draws)
        return;
    size_t n = (size_t)r->c * (size_t)r->k * (size_t)r->k;
    for (size_t i = 0; i < n; i++) {
        double sum = 0;
        for (int d = 0; d < r->samples; d++)
            sum += draws[(size_t)d * n + i];
        draws[i] = (float)(sum / r->samples);
    }
}

/* Writes the perturbed copies of the image for window w (S, or their mean)
 * into batch rows from row. */
void pda_fill_window(pda_run *r, evm_plan *plan, pda_window w, int row) {
    float *batch = evm_f32(evm_plan_input(plan, 0));
    size_t per_image = (size_t)r->c * (size_t)r->h * (size_t)r->w;
    int k = r->k;
    pda_draw_window(r, w, r->draws);
    for (int d = 0; d < r->rows; d++) {
        float *img = batch + (size_t)(row + d) * per_image;
        memcpy(img, r->input, per_image * sizeof(float));
        const float *draw = r->draws + (size_t)d * (size_t)r->c * (size_t)(k * k);
        for (int c = 0; c < r->c; c++)
            for (int dy = 0; dy < k; dy++)
                memcpy(img + ((size_t)c * r->h + (size_t)(w.y + dy)) * (size_t)r->w + (size_t)w.x,
                       draw + ((size_t)c * k + (size_t)dy) * (size_t)k, sizeof(float) * (size_t)k);
    }
}

/* Locality: the window's S samples into the local batch, whose rows equal
 * the image outside the window (evm_local_begin restored them). */
void pda_fill_window_local(const pda_run *r, evm_local *local, pda_window w, const float *draws) {
    evm_region change = pda_window_region(r, w);
    evm_local_begin(local, &change);
    float *batch = evm_f32(evm_local_input(local));
    size_t per_image = (size_t)r->c * (size_t)r->h * (size_t)r->w;
    int k = r->k;
    for (int d = 0; d < r->local_rows; d++) {
        float *img = batch + (size_t)d * per_image;
        const float *draw = draws + (size_t)d * (size_t)r->c * (size_t)(k * k);
        for (int c = 0; c < r->c; c++)
            for (int dy = 0; dy < k; dy++)
                memcpy(img + ((size_t)c * r->h + (size_t)(w.y + dy)) * (size_t)r->w + (size_t)w.x,
                       draw + ((size_t)c * k + (size_t)dy) * (size_t)k, sizeof(float) * (size_t)k);
    }
}
