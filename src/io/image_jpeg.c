/*
 * JPEG decoding with libjpeg(-turbo), default settings (accurate integer
 * DCT, fancy upsampling) so that pixels match other decoders built on the
 * same library (PIL, torchvision). Gray JPEGs give 1 channel; YCbCr and RGB
 * give 3; CMYK/YCCK are refused as unsupported.
 *
 * libjpeg's default error handler calls exit(); ours longjmps back instead,
 * and warnings that mean pixel data was lost or invented (a truncated or
 * corrupt entropy stream) are errors too. As in image_png.c, state that
 * outlives the jump sits in a jpeg_ctx owned by the caller of setjmp.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "base/error.h"
#include "image_internal.h"

/* Bounds the work a hostile progressive JPEG can cause (libjpeg-turbo's
 * TurboJPEG API uses the same kind of limit). */
#define MAX_PROGRESSIVE_SCANS 500

typedef struct jpeg_ctx {
    struct jpeg_error_mgr errmgr; /* first, so cinfo->err converts back to the ctx */
    jmp_buf jump;
    struct jpeg_decompress_struct cinfo;
    struct jpeg_progress_mgr progress;
    const char *what;
    char message[JMSG_LENGTH_MAX];
    evmap_status status; /* set when the failure is ours, not libjpeg's */
    evmap_error *err;
    uint64_t max_memory; /* 0: no limit */
    JSAMPLE *row;
    evmap_image *image;
} jpeg_ctx;

static jpeg_ctx *ctx_of(j_common_ptr cinfo) {
    return (jpeg_ctx *)(void *)cinfo->err;
}

static void on_error_exit(j_common_ptr cinfo) {
    jpeg_ctx *ctx = ctx_of(cinfo);
    cinfo->err->format_message(cinfo, ctx->message);
    /* 12- and 16-bit JPEGs are valid files this 8-bit libjpeg cannot read. */
    if (cinfo->err->msg_code == JERR_BAD_PRECISION)
        ctx->status = evm_fail(ctx->err, EVMAP_ERR_UNSUPPORTED,
                               "%s is a JPEG of %d-bit samples (libjpeg: %s); evmap reads 8-bit "
                               "JPEGs; convert it",
                               ctx->what, cinfo->err->msg_parm.i[0], ctx->message);
    longjmp(ctx->jump, 1);
}

/* Warnings after which the decoded pixels are not the file's pixels. */
static int warning_is_data_loss(int code) {
    return code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE ||
           code == JWRN_MUST_RESYNC;
}

/* level < 0: a warning; >= 0: trace output, ignored. Nothing is printed. */
static void on_message(j_common_ptr cinfo, int level) {
    if (level < 0 && warning_is_data_loss(cinfo->err->msg_code))
        on_error_exit(cinfo);
}

static void on_output(j_common_ptr cinfo) {
    (void)cinfo;
}

static void on_progress(j_common_ptr cinfo) {
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->progressive_mode && d->input_scan_number > MAX_PROGRESSIVE_SCANS) {
        jpeg_ctx *ctx = ctx_of(cinfo);
        snprintf(ctx->message, sizeof ctx->message, "more than %d progressive scans",
                 MAX_PROGRESSIVE_SCANS);
        longjmp(ctx->jump, 1);
    }
}

/* Chooses the output colour space; returns the channel count or 0 (with
 * ctx->status set) for colour spaces evmap does not read. */
static int choose_color(jpeg_ctx *ctx) {
    switch (ctx->cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE: ctx->cinfo.out_color_space = JCS_GRAYSCALE; return 1;
    case JCS_YCbCr:
    case JCS_RGB: ctx->cinfo.out_color_space = JCS_RGB; return 3;
    case JCS_CMYK:
    case JCS_YCCK:
        ctx->status = evm_fail(ctx->err, EVMAP_ERR_UNSUPPORTED,
                               "%s is a CMYK JPEG; evmap reads gray and RGB JPEGs only; convert "
                               "it to RGB",
                               ctx->what);
        return 0;
    default:
        ctx->status = evm_fail(ctx->err, EVMAP_ERR_UNSUPPORTED,
                               "%s is a JPEG with %d components in an unknown colour space; "
                               "convert it to RGB",
                               ctx->what, ctx->cinfo.num_components);
        return 0;
    }
}

/* Copies one interleaved scanline into the planar float image. */
static void scanline_to_planar(const jpeg_ctx *ctx, int y) {
    evmap_image *img = ctx->image;
    size_t plane = (size_t)img->width * (size_t)img->height;
    float *dst = img->pixels + (size_t)y * (size_t)img->width;
    for (int x = 0; x < img->width; x++)
        for (int c = 0; c < img->channels; c++)
            dst[(size_t)c * plane + (size_t)x] =
                (float)ctx->row[(size_t)x * (size_t)img->channels + (size_t)c] / 255.0f;
}

/* Runs libjpeg; returns 0 on failure (ctx->message or ctx->status set). */
static int decode_with_libjpeg(jpeg_ctx *ctx, const uint8_t *data, size_t size) {
    if (setjmp(ctx->jump))
        return 0;
    jpeg_create_decompress(&ctx->cinfo);
    ctx->progress.progress_monitor = on_progress;
    ctx->cinfo.progress = &ctx->progress;
    jpeg_mem_src(&ctx->cinfo, data, (unsigned long)size);
    jpeg_read_header(&ctx->cinfo, TRUE);
    int channels = choose_color(ctx);
    if (!channels)
        return 0;
    ctx->status = evm_image_alloc((int)ctx->cinfo.image_width, (int)ctx->cinfo.image_height,
                                  channels, ctx->max_memory, ctx->what, &ctx->image, ctx->err);
    if (ctx->status != EVMAP_OK)
        return 0;
    jpeg_start_decompress(&ctx->cinfo);
    if (ctx->cinfo.output_components != channels ||
        (int)ctx->cinfo.output_width != ctx->image->width ||
        (int)ctx->cinfo.output_height != ctx->image->height) {
        ctx->status = evm_fail(ctx->err, EVMAP_ERR_INTERNAL,
                               "libjpeg output for %s does not match its header", ctx->what);
        return 0;
    }
    ctx->row = malloc((size_t)ctx->image->width * (size_t)channels);
    if (!ctx->row) {
        ctx->status = evm_fail(ctx->err, EVMAP_ERR_OUT_OF_MEMORY,
                               "cannot allocate a scanline to decode %s", ctx->what);
        return 0;
    }
    while (ctx->cinfo.output_scanline < ctx->cinfo.output_height) {
        int y = (int)ctx->cinfo.output_scanline;
        JSAMPROW rows[1] = {ctx->row};
        if (jpeg_read_scanlines(&ctx->cinfo, rows, 1) != 1) {
            snprintf(ctx->message, sizeof ctx->message, "no data for scanline %d", y);
            return 0;
        }
        scanline_to_planar(ctx, y);
    }
    jpeg_finish_decompress(&ctx->cinfo); /* reads to the end marker: catches truncation */
    return 1;
}

/* Sizes beyond the JPEG limit of 65535 are caught by evm_image_alloc; the
 * dimensions are checked there before any pixel memory is requested. */
evmap_status evm_jpeg_decode(const uint8_t *data, size_t size, uint64_t max_memory,
                             const char *what, evmap_image **out, evmap_error *err) {
    *out = NULL;
    if (size > ULONG_MAX)
        return evm_fail(err, EVMAP_ERR_TOO_LARGE, "%s is too large for libjpeg", what);
    jpeg_ctx *ctx = calloc(1, sizeof *ctx); /* zeroed: destroy is safe before create */
    if (!ctx)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "cannot create a JPEG decoder for %s", what);
    evmap_status st = EVMAP_OK;
    ctx->what = what;
    ctx->err = err;
    ctx->max_memory = max_memory;
    ctx->cinfo.err = jpeg_std_error(&ctx->errmgr);
    ctx->errmgr.error_exit = on_error_exit;
    ctx->errmgr.emit_message = on_message;
    ctx->errmgr.output_message = on_output;
    if (!decode_with_libjpeg(ctx, data, size)) {
        st = ctx->status != EVMAP_OK
                 ? ctx->status
                 : evm_fail(err, EVMAP_ERR_BAD_FILE,
                            "%s is a corrupt or truncated JPEG (libjpeg: %s); re-export the image",
                            what, ctx->message);
        goto done;
    }
    *out = ctx->image;
    ctx->image = NULL;
done:
    jpeg_destroy_decompress(&ctx->cinfo);
    free(ctx->row);
    evmap_image_free(ctx->image);
    free(ctx);
    return st;
}
