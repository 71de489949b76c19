/* The body shared by fuzz_png.c and fuzz_jpeg.c. */
#ifndef EVM_FUZZ_IMAGE_H
#define EVM_FUZZ_IMAGE_H

#include "fuzz_common.h"

/* Images up to this many pixels are also preprocessed. */
#define FUZZ_PREPROCESS_PIXELS (1 << 16)
/* Images above this many pixels are also loaded under a memory limit just
 * below what their decode needs (the --max-memory check), which must refuse. */
#define FUZZ_LIMIT_PIXELS (1 << 10)

static inline void evm_fuzz_image_limit(const uint8_t *data, size_t size, const evmap_image *img) {
    uint64_t need = (uint64_t)img->width * (uint64_t)img->height * 20u; /* bytes per pixel */
    char path[64];
    evm_fuzz_file(data, size, path, sizeof path);
    evmap_image_set *set = NULL;
    evmap_error err = {0};
    if (evmap_image_set_create(&set, &err) != EVMAP_OK)
        abort();
    evmap_image_set_limit_memory(set, need - 1);
    evmap_status st = evmap_image_set_add(set, path, &err);
    evm_fuzz_check_error(st, &err);
    evmap_image *again = NULL;
    if (st == EVMAP_OK) {
        st = evmap_image_set_load(set, 0, &again, &err);
        evm_fuzz_check_error(st, &err);
        if (st != EVMAP_ERR_TOO_LARGE)
            abort(); /* decoded although the limit is below its need */
    }
    evmap_image_free(again);
    evmap_image_set_free(set);
}

static inline void evm_fuzz_image(const uint8_t *data, size_t size) {
    evmap_image *img = NULL;
    evmap_error err = {0};
    evmap_status st = evmap_image_load_memory(data, size, &img, &err);
    evm_fuzz_check_error(st, &err);
    if (st != EVMAP_OK)
        return;
    if (!img || img->width < 1 || img->height < 1 || (img->channels != 1 && img->channels != 3))
        abort();
    size_t n = (size_t)img->width * (size_t)img->height * (size_t)img->channels;
    for (size_t i = 0; i < n; i++)
        if (!(img->pixels[i] >= 0.0f && img->pixels[i] <= 1.0f))
            abort();
    if ((size_t)img->width * (size_t)img->height <= FUZZ_PREPROCESS_PIXELS) {
        evmap_preprocess p;
        evmap_preprocess_init(&p, EVMAP_PREPROCESS_IMAGENET);
        float *out = malloc(3 * 224 * 224 * sizeof(float));
        if (out) {
            st = evmap_preprocess_image(img, &p, 3, 224, 224, out, &err);
            evm_fuzz_check_error(st, &err);
        }
        free(out);
    }
    if ((size_t)img->width * (size_t)img->height > FUZZ_LIMIT_PIXELS)
        evm_fuzz_image_limit(data, size, img);
    evmap_image_free(img);
}

#endif
