/*
 * Declarations shared by the image files (image.c, image_png.c, image_jpeg.c,
 * image_idx.c, image_set.c). Decoders work on bytes in memory and take a
 * `what` string (a path, or "image in memory") used only in error messages.
 * Invariant: every evmap_image made here passed evm_image_check_size, so
 * width * height * channels floats fit in memory arithmetic without overflow.
 */
#ifndef EVM_IMAGE_INTERNAL_H
#define EVM_IMAGE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "evmap.h"

/* Limits applied before any pixel buffer is allocated, so that a hostile
 * header cannot request gigabytes. */
#define EVM_IMAGE_MAX_SIDE 65535u
#define EVM_IMAGE_MAX_PIXELS ((uint64_t)1 << 28)
/* Bytes per pixel a decode may take at most: three float channels plus the
 * decoder's 16-bit RGBA rows. Checked against the caller's memory limit. */
#define EVM_IMAGE_DECODE_BYTES_PER_PIXEL 20u
/* Images one IDX file may hold (Fashion-MNIST's training set has 60000). */
#define EVM_IDX_MAX_IMAGES (1u << 24)

/* Fails with EVMAP_ERR_TOO_LARGE (a limit) or EVMAP_ERR_BAD_FILE (zero
 * size) unless width × height is an image evmap accepts and its decode fits
 * in max_memory bytes (0: no memory limit). */
evmap_status evm_image_check_size(uint64_t width, uint64_t height, uint64_t max_memory,
                                  const char *what, evmap_error *err);

/* Allocates an image with zeroed pixels after evm_image_check_size. */
evmap_status evm_image_alloc(int width, int height, int channels, uint64_t max_memory,
                             const char *what, evmap_image **out, evmap_error *err);

/* Loads a PNG or JPEG file whose decode fits in max_memory (0: no limit). */
evmap_status evm_image_load_limited(const char *path, uint64_t max_memory, evmap_image **out,
                                    evmap_error *err);

/* Reads a whole file into a malloc'd buffer (never NULL on success, even for
 * an empty file). Fails with EVMAP_ERR_IO naming the path, or
 * EVMAP_ERR_TOO_LARGE for a regular file above max_bytes (0: no limit). */
evmap_status evm_read_file(const char *path, uint64_t max_bytes, uint8_t **data, size_t *size,
                           evmap_error *err);

/* Magic-number tests on the first bytes of a file. */
int evm_is_png(const uint8_t *data, size_t size);
int evm_is_jpeg(const uint8_t *data, size_t size);
int evm_is_gzip(const uint8_t *data, size_t size);
/* An IDX header: two zero bytes, a type byte and a dimension count 1..3. */
int evm_is_idx(const uint8_t *data, size_t size);
/* Names an image format evmap does not read (GIF, BMP, WebP, TIFF), so a
 * message can say "convert it" rather than "corrupt"; NULL otherwise. */
const char *evm_other_image_format(const uint8_t *data, size_t size);

/* Decoders: data/size is the complete file; max_memory as above. */
evmap_status evm_png_decode(const uint8_t *data, size_t size, uint64_t max_memory, const char *what,
                            evmap_image **out, evmap_error *err);
evmap_status evm_jpeg_decode(const uint8_t *data, size_t size, uint64_t max_memory,
                             const char *what, evmap_image **out, evmap_error *err);

/* A parsed IDX file held in memory (decompressed when it was gzip). */
typedef struct evm_idx {
    int ndims;        /* 1 (labels) or 3 (images) */
    uint32_t dims[3]; /* dims[0] is the entry count */
    uint8_t *data;    /* the unsigned bytes after the header, exactly as declared */
    size_t size;      /* bytes in data == product of dims */
} evm_idx;

/* Reads an IDX file of unsigned bytes (type 0x08), gunzipping when it starts
 * with the gzip magic. The data length must equal what the header declares,
 * which must fit in max_memory bytes (0: no limit) before anything is read. */
evmap_status evm_idx_read(const char *path, uint64_t max_memory, evm_idx *idx, evmap_error *err);
void evm_idx_release(evm_idx *idx);

/* Copies entry `index` of a 3-D IDX file into a new 1-channel image. */
evmap_status evm_idx_image(const evm_idx *idx, size_t index, const char *what, evmap_image **out,
                           evmap_error *err);

#endif
