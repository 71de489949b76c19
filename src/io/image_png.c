/*
 * PNG decoding with libpng. Every colour type and bit depth is accepted:
 * palettes are expanded to RGB, 1/2/4-bit gray is scaled to 8 bits, alpha
 * (and tRNS transparency) is dropped, interlacing is undone by libpng, and
 * 16-bit samples keep their full precision (divided by 65535).
 *
 * libpng reports errors by longjmp. All state that must survive the jump
 * lives in a png_ctx owned by the caller of the setjmp function, so no local
 * variable of that function is modified after setjmp (C11 7.13.2.1p3).
 */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "image_internal.h"
#include "base/tensor.h"

typedef struct png_ctx {
    const uint8_t *data; /* the whole file */
    size_t size;
    size_t pos;          /* next byte libpng reads */
    const char *what;    /* for messages */
    char message[200];   /* libpng's error text */
    evmap_status status; /* set when the failure is ours, not libpng's */
    evmap_error *err;
    uint64_t max_memory; /* 0: no limit */
    png_structp png;
    png_infop info;
    uint8_t *rows; /* decoded rows, height × rowbytes */
    png_bytep *row_ptrs;
    evmap_image *image;
} png_ctx;

static void on_error(png_structp png, png_const_charp msg) {
    png_ctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->message, sizeof ctx->message, "%s", msg);
    png_longjmp(png, 1);
}

/* Warnings (bad sRGB profiles, unknown chunks) do not affect pixels; a
 * library must not print them. */
static void on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void read_bytes(png_structp png, png_bytep out, png_size_t n) {
    png_ctx *ctx = png_get_io_ptr(png);
    if (n > ctx->size - ctx->pos)
        png_error(png, "file ends early (truncated)");
    memcpy(out, ctx->data + ctx->pos, n);
    ctx->pos += n;
}

/* Asks libpng for 8- or 16-bit gray or RGB samples without alpha. */
static void set_transforms(png_structp png, png_infop info) {
    int color = png_get_color_type(png, info);
    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    /* Unconditional: palette expansion also turns a tRNS chunk into alpha. */
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
}

/* Converts decoded interleaved rows into the planar float image. */
static void rows_to_planar(const png_ctx *ctx, int channels, int bytes_per_sample) {
    evmap_image *img = ctx->image;
    size_t plane = (size_t)img->width * (size_t)img->height;
    size_t rowbytes = png_get_rowbytes(ctx->png, ctx->info);
    /* Division, not multiplication by a reciprocal: the result is then the
     * correctly rounded v / max that other decoders (ToTensor) produce. */
    float max = bytes_per_sample == 2 ? 65535.0f : 255.0f;
    for (int y = 0; y < img->height; y++) {
        const uint8_t *row = ctx->rows + (size_t)y * rowbytes;
        float *dst = img->pixels + (size_t)y * (size_t)img->width;
        for (int x = 0; x < img->width; x++) {
            for (int c = 0; c < channels; c++) {
                const uint8_t *s =
                    row + ((size_t)x * (size_t)channels + (size_t)c) * (size_t)bytes_per_sample;
                unsigned v = bytes_per_sample == 2 ? (unsigned)s[0] << 8 | s[1] : s[0];
                dst[(size_t)c * plane + (size_t)x] = (float)v / max;
            }
        }
    }
}

/* Sets up buffers once the header is known; fails on our limits. */
static int alloc_buffers(png_ctx *ctx, png_uint_32 width, png_uint_32 height, int channels) {
    ctx->status = evm_image_check_size(width, height, ctx->max_memory, ctx->what, ctx->err);
    if (ctx->status != EVMAP_OK)
        return 0;
    size_t rowbytes = png_get_rowbytes(ctx->png, ctx->info), total;
    if (!evm_mul_size(rowbytes, height, &total)) {
        ctx->status = evm_fail(ctx->err, EVMAP_ERR_TOO_LARGE, "%s is too large", ctx->what);
        return 0;
    }
    ctx->status = evm_image_alloc((int)width, (int)height, channels == 1 ? 1 : 3, 0, ctx->what,
                                  &ctx->image, ctx->err);
    if (ctx->status != EVMAP_OK)
        return 0;
    ctx->rows = malloc(total);
    ctx->row_ptrs = malloc(sizeof(png_bytep) * height);
    if (!ctx->rows || !ctx->row_ptrs) {
        ctx->status = evm_fail(ctx->err, EVMAP_ERR_OUT_OF_MEMORY,
                               "cannot allocate %zu bytes to decode %s", total, ctx->what);
        return 0;
    }
    for (png_uint_32 y = 0; y < height; y++)
        ctx->row_ptrs[y] = ctx->rows + (size_t)y * rowbytes;
    return 1;
}

/* Runs libpng; returns 0 on failure (libpng's message or ctx->status set).
 * Only ctx (not modified itself) is touched after setjmp. */
static int decode_with_libpng(png_ctx *ctx) {
    if (setjmp(png_jmpbuf(ctx->png)))
        return 0;
    png_set_read_fn(ctx->png, ctx, read_bytes);
    png_read_info(ctx->png, ctx->info);
    set_transforms(ctx->png, ctx->info);
    int channels = png_get_channels(ctx->png, ctx->info);
    int depth = png_get_bit_depth(ctx->png, ctx->info);
    if ((channels != 1 && channels != 3) || (depth != 8 && depth != 16)) {
        ctx->status =
            evm_fail(ctx->err, EVMAP_ERR_INTERNAL, "libpng produced %d channels of %d bits for %s",
                     channels, depth, ctx->what);
        return 0;
    }
    if (!alloc_buffers(ctx, png_get_image_width(ctx->png, ctx->info),
                       png_get_image_height(ctx->png, ctx->info), channels))
        return 0;
    png_read_image(ctx->png, ctx->row_ptrs);
    png_read_end(ctx->png, NULL); /* checks the CRCs of chunks after the pixels */
    rows_to_planar(ctx, channels, depth / 8);
    return 1;
}

evmap_status evm_png_decode(const uint8_t *data, size_t size, uint64_t max_memory, const char *what,
                            evmap_image **out, evmap_error *err) {
    *out = NULL;
    png_ctx ctx = {.data = data, .size = size, .what = what, .err = err, .max_memory = max_memory};
    evmap_status st = EVMAP_OK;
    ctx.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_error, on_warning);
    if (ctx.png)
        ctx.info = png_create_info_struct(ctx.png);
    if (!ctx.png || !ctx.info) {
        st = evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "cannot create a PNG decoder for %s", what);
        goto done;
    }
    if (!decode_with_libpng(&ctx)) {
        st = ctx.status != EVMAP_OK
                 ? ctx.status
                 : evm_fail(err, EVMAP_ERR_BAD_FILE,
                            "%s is a corrupt or truncated PNG (libpng: %s); re-export the image",
                            what, ctx.message);
        goto done;
    }
    *out = ctx.image;
    ctx.image = NULL;
done:
    png_destroy_read_struct(ctx.png ? &ctx.png : NULL, ctx.info ? &ctx.info : NULL, NULL);
    free(ctx.rows);
    free(ctx.row_ptrs);
    evmap_image_free(ctx.image);
    return st;
}
