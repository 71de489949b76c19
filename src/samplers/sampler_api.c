/* Public sampler handles over the internal samplers (src/sampler.h). */
#include <stdlib.h>

#include "base/error.h"
#include "sampler.h"
#include "sampler_api.h"

void evmap_sampler_fit_options_init(evmap_sampler_fit_options *options) {
    options->window = 4;
    options->pad = 2;
    options->joint_channels = 0;
    options->patches = 20000;
    options->seed = 0;
}

static evmap_status wrap(evm_sampler *impl, evmap_status st, evmap_sampler **out,
                         evmap_error *err) {
    if (st != EVMAP_OK)
        return st;
    evmap_sampler *s = malloc(sizeof *s);
    if (!s) {
        evm_sampler_free(impl);
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
    }
    s->impl = impl;
    *out = s;
    return EVMAP_OK;
}

static evmap_status check_stack(const float *images, size_t n, int channels, int height, int width,
                                evmap_error *err) {
    if (!images || n == 0)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "no reference images given");
    if ((channels != 1 && channels != 3) || height < 1 || width < 1)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "reference images must be 1 or 3 channels of positive size");
    return EVMAP_OK;
}

evmap_status evmap_sampler_fit(const float *images, size_t n, int channels, int height, int width,
                               const evmap_sampler_fit_options *options, evmap_sampler **out,
                               evmap_error *err) {
    *out = NULL;
    evmap_status st = check_stack(images, n, channels, height, width, err);
    if (st != EVMAP_OK)
        return st;
    evm_image_stack refs = {images, n, channels, height, width};
    evm_sampler *impl = NULL;
    st = evm_sampler_fit_conditional(&refs, options->window, options->pad,
                                     options->joint_channels != 0, options->patches, options->seed,
                                     &impl, err);
    return wrap(impl, st, out, err);
}

evmap_status evmap_sampler_marginal(const float *images, size_t n, int channels, int height,
                                    int width, int window, evmap_sampler **out, evmap_error *err) {
    *out = NULL;
    evmap_status st = check_stack(images, n, channels, height, width, err);
    if (st != EVMAP_OK)
        return st;
    evm_image_stack refs = {images, n, channels, height, width};
    evm_sampler *impl = NULL;
    st = evm_sampler_create_marginal(&refs, window, &impl, err);
    return wrap(impl, st, out, err);
}

evmap_status evmap_sampler_constant(const float *fill, int channels, int window,
                                    evmap_sampler **out, evmap_error *err) {
    *out = NULL;
    evm_sampler *impl = NULL;
    evmap_status st = evm_sampler_create_constant(fill, channels, window, &impl, err);
    return wrap(impl, st, out, err);
}

evmap_status evmap_sampler_save(const evmap_sampler *sampler, const char *tag, const char *path,
                                evmap_error *err) {
    return evm_sampler_save(sampler->impl, tag, path, err);
}

evmap_status evmap_sampler_load(const char *path, evmap_sampler **out, char *tag, size_t tag_size,
                                evmap_error *err) {
    *out = NULL;
    evm_sampler *impl = NULL;
    evmap_status st = evm_sampler_load(path, &impl, tag, tag_size, err);
    return wrap(impl, st, out, err);
}

void evmap_sampler_free(evmap_sampler *sampler) {
    if (!sampler)
        return;
    evm_sampler_free(sampler->impl);
    free(sampler);
}

int evmap_sampler_window(const evmap_sampler *sampler) {
    return evm_sampler_window(sampler->impl);
}

int evmap_sampler_pad(const evmap_sampler *sampler) {
    return evm_sampler_pad(sampler->impl);
}

const char *evmap_sampler_kind_name(const evmap_sampler *sampler) {
    switch (evm_sampler_get_kind(sampler->impl)) {
    case EVM_SAMPLER_CONDITIONAL: return "conditional";
    case EVM_SAMPLER_MARGINAL: return "marginal";
    default: return "constant";
    }
}
