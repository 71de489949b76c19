/* evmap evaluate --masks: the object masks of the localisation metrics,
 * matched to the images by name (stem) or else by order, and brought to the
 * model's input size by the images' own preprocessing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evaluate.h"

/* The mask named like image i, or SIZE_MAX. Linear search: a few thousand
 * images at most, once each. */
static size_t mask_named(const evmap_image_set *masks, size_t count, const char *name) {
    for (size_t j = 0; j < count; j++)
        if (!strcmp(evmap_image_set_name(masks, j), name))
            return j;
    return (size_t)-1;
}

/* By name when every image has a mask of its name, else by order when there
 * are enough masks; otherwise says which image lacks one. */
static evmap_status match_masks(const eval_options *o, eval_state *s, evmap_error *err) {
    size_t count = evmap_image_set_count(s->masks);
    size_t missing = (size_t)-1;
    for (size_t i = 0; i < s->n_images; i++) {
        s->mask_of[i] = mask_named(s->masks, count, evmap_image_set_name(s->set, i));
        if (s->mask_of[i] == (size_t)-1 && missing == (size_t)-1)
            missing = i;
    }
    if (missing == (size_t)-1)
        return EVMAP_OK;
    if (count >= s->n_images) {
        for (size_t i = 0; i < s->n_images; i++)
            s->mask_of[i] = i;
        return EVMAP_OK;
    }
    return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                    "--masks '%s': no mask is named like image '%s', and its %zu masks are too few "
                    "to match the %zu images by order; give one mask per image, named like the "
                    "image or in the same order",
                    o->masks, evmap_image_set_name(s->set, missing), count, s->n_images);
}

evmap_status eval_open_masks(const eval_options *o, eval_state *s, evmap_error *err) {
    if (!o->masks)
        return EVMAP_OK;
    size_t plane = (size_t)s->info.height * (size_t)s->info.width;
    s->mask_of = malloc(sizeof(size_t) * s->n_images);
    s->mask = malloc(plane);
    s->mask_floats = malloc(sizeof(float) * plane);
    if (!s->mask_of || !s->mask || !s->mask_floats)
        return cli_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory for the masks");
    evmap_status st = evmap_image_set_create(&s->masks, err);
    evmap_image_set_limit_memory(s->masks, o->input.max_memory);
    if (st == EVMAP_OK)
        st = evmap_image_set_add(s->masks, o->masks, err);
    if (st == EVMAP_OK)
        st = match_masks(o, s, err);
    /* Zhang et al.'s 15 px at 224 x 224, scaled to the input's shorter side. */
    int side = s->info.height < s->info.width ? s->info.height : s->info.width;
    s->tolerance =
        o->pointing_tolerance >= 0 ? o->pointing_tolerance : (int)(15.0 * side / 224.0 + 0.5);
    return st;
}

/* Image i's mask at the model's input size in s->mask (1 = object). */
evmap_status eval_load_mask(const eval_options *o, eval_state *s, size_t i, evmap_error *err) {
    size_t j = s->mask_of[i];
    evmap_image *image = NULL, *mask = NULL;
    evmap_status st = evmap_image_set_load(s->set, i, &image, err);
    if (st == EVMAP_OK)
        st = evmap_image_set_load(s->masks, j, &mask, err);
    if (st == EVMAP_OK && (mask->width != image->width || mask->height != image->height))
        st = cli_fail(
            err, EVMAP_ERR_INVALID_ARGUMENT,
            "mask '%s' (from '%s') is %dx%d but image '%s' is %dx%d; a mask must have its "
            "image's size",
            evmap_image_set_name(s->masks, j), evmap_image_set_path(s->masks, j), mask->width,
            mask->height, evmap_image_set_name(s->set, i), image->width, image->height);
    /* The images' resize and crop (a model with a free side: the resize to
     * its size, as cli_load_input), without their normalisation. */
    evmap_preprocess geometry = o->input.preprocess;
    if (s->info.free_height || s->info.free_width) {
        evmap_preprocess_init(&geometry, EVMAP_PREPROCESS_CUSTOM);
        geometry.width = s->info.width;
        geometry.height = s->info.height;
    }
    for (int c = 0; c < 3; c++) {
        geometry.mean[c] = 0;
        geometry.std[c] = 1;
    }
    if (st == EVMAP_OK)
        st = evmap_preprocess_image(mask, &geometry, 1, s->info.height, s->info.width,
                                    s->mask_floats, err);
    size_t plane = (size_t)s->info.height * (size_t)s->info.width, area = 0;
    for (size_t p = 0; st == EVMAP_OK && p < plane; p++)
        area += s->mask[p] = s->mask_floats[p] > 0.5f;
    if (st == EVMAP_OK && area == 0)
        st = cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                      "mask '%s' (from '%s') has no object pixel (white = object) at the model's "
                      "input size; every image needs its object",
                      evmap_image_set_name(s->masks, j), evmap_image_set_path(s->masks, j));
    evmap_image_free(image);
    evmap_image_free(mask);
    return st;
}
