/*
 * Samplers: accessors, shape checks and draw dispatch common to every kind,
 * and the two simple kinds, marginal (copy the window from reference image s)
 * and constant (one fill value per channel). The sampler object itself
 * (allocation, argument checks) is sampler_object.c; the conditional Gaussian
 * lives in sampler_conditional.c, its file format in sampler_file.c. A sampler is immutable once
 * made, so one sampler may be drawn from by many threads, each with its own rng and scratch.
 */
#include "sampler_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/tensor.h"

/* ---- marginal ---- */

evmap_status evm_sampler_create_marginal(const evm_image_stack *refs, int window, evm_sampler **out,
                                         evmap_error *err) {
    *out = NULL;
    size_t floats = 0;
    evmap_status st = evm_sampler_check_stack("marginal", refs, &floats, err);
    if (st != EVMAP_OK)
        return st;
    st = evm_sampler_check_channels_window("marginal", refs->channels, window, err);
    if (st != EVMAP_OK)
        return st;
    if (window > refs->height || window > refs->width)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "marginal sampler: window %d does not fit reference images of %dx%d; "
                        "choose a smaller window",
                        window, refs->width, refs->height);
    evm_sampler *s = NULL;
    st = evm_sampler_alloc(EVM_SAMPLER_MARGINAL, refs->channels, window, &s, err);
    if (st != EVMAP_OK)
        return st;
    s->refs = malloc(floats * sizeof *s->refs);
    if (!s->refs) {
        st = evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY,
                      "marginal sampler: out of memory copying %zu reference images", refs->n);
        goto fail;
    }
    memcpy(s->refs, refs->data, floats * sizeof *s->refs);
    s->n_refs = refs->n;
    s->ref_height = refs->height;
    s->ref_width = refs->width;
    *out = s;
    return EVMAP_OK;
fail:
    evm_sampler_free(s);
    return st;
}

/* Copies the window at (y, x) of reference image `index`. */
static void marginal_copy(const evm_sampler *s, size_t index, int y, int x, float *out) {
    size_t k = (size_t)s->window, h = (size_t)s->ref_height, w = (size_t)s->ref_width;
    const float *img = s->refs + index * (size_t)s->channels * h * w;
    for (size_t c = 0; c < (size_t)s->channels; c++)
        for (size_t r = 0; r < k; r++)
            memcpy(out + (c * k + r) * k, img + (c * h + (size_t)y + r) * w + (size_t)x,
                   k * sizeof *out);
}

/* Averages in double: there may be tens of thousands of references. */
static void marginal_mean(const evm_sampler *s, int y, int x, float *out) {
    size_t k = (size_t)s->window, h = (size_t)s->ref_height, w = (size_t)s->ref_width;
    size_t image_floats = (size_t)s->channels * h * w;
    for (size_t c = 0; c < (size_t)s->channels; c++)
        for (size_t r = 0; r < k; r++)
            for (size_t j = 0; j < k; j++) {
                size_t at = (c * h + (size_t)y + r) * w + (size_t)x + j;
                double sum = 0.0;
                for (size_t i = 0; i < s->n_refs; i++)
                    sum += s->refs[i * image_floats + at];
                out[(c * k + r) * k + j] = (float)(sum / (double)s->n_refs);
            }
}

/* ---- constant ---- */

evmap_status evm_sampler_create_constant(const float *fill, int channels, int window,
                                         evm_sampler **out, evmap_error *err) {
    *out = NULL;
    evmap_status st = evm_sampler_check_channels_window("constant", channels, window, err);
    if (st != EVMAP_OK)
        return st;
    if (!fill)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "constant sampler: no fill values");
    for (int c = 0; c < channels; c++)
        if (!isfinite(fill[c]))
            return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                            "constant sampler: fill value of channel %d is not finite", c);
    st = evm_sampler_alloc(EVM_SAMPLER_CONSTANT, channels, window, out, err);
    if (st != EVMAP_OK)
        return st;
    memcpy((*out)->fill, fill, (size_t)channels * sizeof *fill);
    return EVMAP_OK;
}

static void constant_fill(const evm_sampler *s, float *out) {
    size_t kk = (size_t)s->window * (size_t)s->window;
    for (int c = 0; c < s->channels; c++)
        for (size_t i = 0; i < kk; i++)
            out[(size_t)c * kk + i] = s->fill[c];
}

/* ---- accessors ---- */

evm_sampler_kind evm_sampler_get_kind(const evm_sampler *sampler) {
    return sampler->kind;
}
int evm_sampler_window(const evm_sampler *sampler) {
    return sampler->window;
}
int evm_sampler_pad(const evm_sampler *sampler) {
    return sampler->pad;
}
int evm_sampler_channels(const evm_sampler *sampler) {
    return sampler->channels;
}
bool evm_sampler_joint(const evm_sampler *sampler) {
    return sampler->joint;
}
size_t evm_sampler_patches(const evm_sampler *sampler) {
    return sampler->patches;
}

size_t evm_sampler_max_samples(const evm_sampler *sampler) {
    switch (sampler->kind) {
    case EVM_SAMPLER_MARGINAL: return sampler->n_refs;
    case EVM_SAMPLER_CONSTANT: return 1;
    case EVM_SAMPLER_CONDITIONAL: break;
    }
    return SIZE_MAX;
}

/* The conditional needs the ring deviations and, per group, the window mean
 * and one vector of normals; the other kinds need none (1 keeps malloc sane). */
size_t evm_sampler_scratch_floats(const evm_sampler *sampler) {
    if (sampler->kind != EVM_SAMPLER_CONDITIONAL)
        return 1;
    return sampler->ring_dim + 2 * sampler->window_dim;
}

/* ---- checks and drawing ---- */

static const char *kind_name(evm_sampler_kind kind) {
    switch (kind) {
    case EVM_SAMPLER_CONDITIONAL: return "conditional";
    case EVM_SAMPLER_MARGINAL: return "marginal";
    case EVM_SAMPLER_CONSTANT: return "constant";
    }
    return "unknown";
}

evmap_status evm_sampler_check(const evm_sampler *sampler, int channels, int height, int width,
                               evmap_error *err) {
    const char *what = kind_name(sampler->kind);
    if (channels != sampler->channels)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "%s sampler has %d channels but the image has %d; use a sampler made "
                        "for this model's input",
                        what, sampler->channels, channels);
    if (height < sampler->window || width < sampler->window)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "%s sampler: window %d is larger than the %dx%d image; choose a "
                        "smaller window",
                        what, sampler->window, width, height);
    if (sampler->kind == EVM_SAMPLER_CONDITIONAL &&
        (height < sampler->patch || width < sampler->patch))
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "conditional sampler: patch %dx%d (window %d + 2 x pad %d) is larger "
                        "than the %dx%d image; use a smaller window or pad",
                        sampler->patch, sampler->patch, sampler->window, sampler->pad, width,
                        height);
    if (sampler->kind == EVM_SAMPLER_MARGINAL &&
        (height != sampler->ref_height || width != sampler->ref_width))
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "marginal sampler: reference images are %dx%d but the image is %dx%d; "
                        "give references preprocessed to the model's input size",
                        sampler->ref_width, sampler->ref_height, width, height);
    return EVMAP_OK;
}

void evm_sampler_draw(const evm_sampler *sampler, const float *image, int height, int width, int y,
                      int x, int count, size_t first_sample, evm_rng *rng, float *scratch,
                      float *out) {
    size_t k = (size_t)sampler->window;
    size_t per_sample = (size_t)sampler->channels * k * k;
    switch (sampler->kind) {
    case EVM_SAMPLER_CONDITIONAL:
        evm_conditional_draw(sampler, image, height, width, y, x, count, rng, scratch, out);
        return;
    case EVM_SAMPLER_MARGINAL:
        /* Wrapping keeps an over-long request in bounds; callers ask for at most
         * evm_sampler_max_samples draws. */
        for (int i = 0; i < count; i++)
            marginal_copy(sampler, (first_sample + (size_t)i) % sampler->n_refs, y, x,
                          out + (size_t)i * per_sample);
        return;
    case EVM_SAMPLER_CONSTANT:
        for (int i = 0; i < count; i++)
            constant_fill(sampler, out + (size_t)i * per_sample);
        return;
    }
}

/* For marginal, the mean over the reference windows (what the draws average
 * to); for constant, the fill. */
void evm_sampler_conditional_mean(const evm_sampler *sampler, const float *image, int height,
                                  int width, int y, int x, float *scratch, float *out) {
    switch (sampler->kind) {
    case EVM_SAMPLER_CONDITIONAL:
        evm_conditional_mean(sampler, image, height, width, y, x, scratch, out);
        return;
    case EVM_SAMPLER_MARGINAL: marginal_mean(sampler, y, x, out); return;
    case EVM_SAMPLER_CONSTANT: constant_fill(sampler, out); return;
    }
}
