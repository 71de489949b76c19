/* The body shared by fuzz_png.c and fuzz_jpeg.c. */
#ifndef EVM_FUZZ_IMAGE_H
#define EVM_FUZZ_IMAGE_H

#include "fuzz_common.h"

/* Images up to this many pixels are also preprocessed. */
#define FUZZ_PREPROCESS_PIXELS (1 << 16)

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
    evmap_image_free(img);
}

#endif
