/*
 * The sampler object every kind shares: allocation, release, and the argument
 * checks of the constructors (sampler.c, sampler_conditional.c).
 */
#include "sampler_internal.h"

#include <math.h>
#include <stdlib.h>

#include "base/error.h"
#include "base/tensor.h"

evmap_status evm_sampler_alloc(evm_sampler_kind kind, int channels, int window, evm_sampler **out,
                               evmap_error *err) {
    *out = NULL;
    evm_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "sampler: out of memory");
    s->kind = kind;
    s->channels = channels;
    s->window = window;
    *out = s;
    return EVMAP_OK;
}

void evm_sampler_free(evm_sampler *sampler) {
    if (!sampler)
        return;
    free(sampler->mean);
    free(sampler->cov);
    free(sampler->ring);
    free(sampler->cond);
    free(sampler->cond_data);
    free(sampler->refs);
    free(sampler);
}

/* ---- argument checks shared by the constructors ---- */

evmap_status evm_sampler_check_channels_window(const char *what, int channels, int window,
                                               evmap_error *err) {
    if (channels != 1 && channels != 3)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "%s sampler: %d channels; images must have 1 (gray) or 3 (RGB)", what,
                        channels);
    if (window < 1 || window > EVM_SAMPLER_MAX_WINDOW)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "%s sampler: window %d is outside 1..%d; choose another window size", what,
                        window, EVM_SAMPLER_MAX_WINDOW);
    return EVMAP_OK;
}

evmap_status evm_sampler_check_stack(const char *what, const evm_image_stack *refs, size_t *floats,
                                     evmap_error *err) {
    if (!refs || !refs->data || refs->n == 0)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "%s sampler: no reference images; give at least one", what);
    evmap_status st = evm_sampler_check_channels_window(what, refs->channels, 1, err);
    if (st != EVMAP_OK)
        return st;
    if (refs->height < 1 || refs->width < 1)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "%s sampler: reference images of size %dx%d; sizes must be positive", what,
                        refs->width, refs->height);
    size_t plane = (size_t)refs->height * (size_t)refs->width, n;
    if (!evm_mul_size(plane, (size_t)refs->channels, &n) || !evm_mul_size(n, refs->n, &n) ||
        n > EVM_MAX_TENSOR_ELEMENTS)
        return evm_fail(err, EVMAP_ERR_TOO_LARGE,
                        "%s sampler: %zu reference images of %dx%d are too many; use fewer", what,
                        refs->n, refs->width, refs->height);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(refs->data[i]))
            return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                            "%s sampler: reference image %zu holds a non-finite value; check "
                            "the images and preprocessing",
                            what, i / (plane * (size_t)refs->channels));
    *floats = n;
    return EVMAP_OK;
}
