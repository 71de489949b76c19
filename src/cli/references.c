/* Reference images for samplers: loading a stack and describing preprocessing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

evmap_status cli_load_stack(char **sources, int n_sources, size_t limit,
                            const cli_input_options *input, const evmap_model_info *shape,
                            float **out, size_t *count, evmap_error *err) {
    *out = NULL;
    *count = 0;
    evmap_image_set *set = NULL;
    const evmap_preprocess *pre = &input->preprocess;
    evmap_status st = evmap_image_set_create(&set, err);
    evmap_image_set_limit_memory(set, input->max_memory);
    for (int i = 0; st == EVMAP_OK && i < n_sources; i++)
        st = evmap_image_set_add(set, sources[i], err);
    size_t n = st == EVMAP_OK ? evmap_image_set_count(set) : 0;
    if (st == EVMAP_OK && n == 0) {
        err->status = st = EVMAP_ERR_INVALID_ARGUMENT;
        snprintf(err->message, sizeof err->message, "the reference sources hold no images");
    }
    if (n > limit)
        n = limit;
    size_t per_image = (size_t)shape->channels * (size_t)shape->height * (size_t)shape->width;
    float *stack = st == EVMAP_OK ? malloc(sizeof(float) * per_image * n) : NULL;
    if (st == EVMAP_OK && !stack) {
        err->status = st = EVMAP_ERR_OUT_OF_MEMORY;
        snprintf(err->message, sizeof err->message, "out of memory loading %zu reference images",
                 n);
    }
    for (size_t i = 0; st == EVMAP_OK && i < n; i++)
        st = cli_load_input(set, i, pre, shape, stack + per_image * i, err);
    evmap_image_set_free(set);
    if (st != EVMAP_OK) {
        free(stack);
        return st;
    }
    *out = stack;
    *count = n;
    return EVMAP_OK;
}

void cli_preprocess_tag(const evmap_preprocess *p, const evmap_model_info *shape, char *buf,
                        size_t size) {
    const char *name = p->preset == EVMAP_PREPROCESS_NONE       ? "none"
                       : p->preset == EVMAP_PREPROCESS_IMAGENET ? "imagenet"
                                                                : "custom";
    /* a free side is "*": a sampler fitted at one size serves every size */
    char h[16] = "*", w[16] = "*";
    if (!shape->free_height)
        snprintf(h, sizeof h, "%d", shape->height);
    if (!shape->free_width)
        snprintf(w, sizeof w, "%d", shape->width);
    int used = snprintf(buf, size, "preprocess=%s input=%dx%sx%s", name, shape->channels, h, w);
    evmap_preprocess preset;
    evmap_preprocess_init(&preset, p->preset);
    bool other_norm = memcmp(p->mean, preset.mean, sizeof p->mean) != 0 ||
                      memcmp(p->std, preset.std, sizeof p->std) != 0;
    if (p->preset == EVMAP_PREPROCESS_CUSTOM && used > 0 && (size_t)used < size)
        snprintf(buf + used, size - (size_t)used, " mean=%g,%g,%g std=%g,%g,%g size=%dx%d",
                 (double)p->mean[0], (double)p->mean[1], (double)p->mean[2], (double)p->std[0],
                 (double)p->std[1], (double)p->std[2], p->width, p->height);
    else if (other_norm && used > 0 && (size_t)used < size) /* imagenet, own mean/std */
        snprintf(buf + used, size - (size_t)used, " mean=%g,%g,%g std=%g,%g,%g", (double)p->mean[0],
                 (double)p->mean[1], (double)p->mean[2], (double)p->std[0], (double)p->std[1],
                 (double)p->std[2]);
}
