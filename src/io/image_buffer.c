/* Decoded images in memory: the size limits every decoder checks before it
 * allocates (side, pixel count, memory), allocation and release. The
 * decoders (image_png.c, image_jpeg.c, image_idx.c) and the loader
 * (image.c) build on it. */
#include <stdlib.h>

#include "base/budget.h"
#include "base/error.h"
#include "base/tensor.h"
#include "image_internal.h"

evmap_status evm_image_check_size(uint64_t width, uint64_t height, uint64_t max_memory,
                                  const char *what, evmap_error *err) {
    if (width == 0 || height == 0)
        return evm_fail(err, EVMAP_ERR_BAD_FILE,
                        "%s declares an empty image (%llu x %llu pixels); the file is corrupt",
                        what, (unsigned long long)width, (unsigned long long)height);
    if (width > EVM_IMAGE_MAX_SIDE || height > EVM_IMAGE_MAX_SIDE ||
        width * height > EVM_IMAGE_MAX_PIXELS)
        return evm_fail(err, EVMAP_ERR_TOO_LARGE,
                        "%s is %llu x %llu pixels, above evmap's limit of %u per side and "
                        "%llu pixels in all; downscale it first",
                        what, (unsigned long long)width, (unsigned long long)height,
                        EVM_IMAGE_MAX_SIDE, (unsigned long long)EVM_IMAGE_MAX_PIXELS);
    /* Cannot overflow: at most 2^28 pixels. */
    uint64_t need = width * height * EVM_IMAGE_DECODE_BYTES_PER_PIXEL;
    char need_s[EVM_BYTES_STR_SIZE], limit_s[EVM_BYTES_STR_SIZE];
    if (max_memory && need > max_memory)
        return evm_fail(err, EVMAP_ERR_TOO_LARGE,
                        "%s is %llu x %llu pixels; decoding it takes up to %s, above the memory "
                        "limit of %s (--max-memory); downscale it or raise the limit",
                        what, (unsigned long long)width, (unsigned long long)height,
                        evm_bytes_str(need, need_s), evm_bytes_str(max_memory, limit_s));
    return EVMAP_OK;
}

evmap_status evm_image_alloc(int width, int height, int channels, uint64_t max_memory,
                             const char *what, evmap_image **out, evmap_error *err) {
    *out = NULL;
    if (width < 0 || height < 0)
        return evm_fail(err, EVMAP_ERR_INTERNAL, "negative image size for %s", what);
    evmap_status st =
        evm_image_check_size((uint64_t)width, (uint64_t)height, max_memory, what, err);
    if (st != EVMAP_OK)
        return st;
    size_t count, bytes;
    if (!evm_mul_size((size_t)width, (size_t)height, &count) ||
        !evm_mul_size(count, (size_t)channels, &count) ||
        !evm_mul_size(count, sizeof(float), &bytes))
        return evm_fail(err, EVMAP_ERR_TOO_LARGE, "image size of %s overflows", what);
    evmap_image *img = calloc(1, sizeof *img);
    float *pixels = calloc(1, bytes);
    if (!img || !pixels) {
        free(img);
        free(pixels);
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY,
                        "cannot allocate %zu bytes for the pixels of %s", bytes, what);
    }
    img->width = width;
    img->height = height;
    img->channels = channels;
    img->pixels = pixels;
    *out = img;
    return EVMAP_OK;
}

void evmap_image_free(evmap_image *image) {
    if (!image)
        return;
    free(image->pixels);
    free(image);
}
