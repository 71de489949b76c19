/*
 * Evidence-map pictures: lays out a canvas (optionally the original image,
 * then the map over a dimmed gray copy of the image, then optionally a colour
 * bar labelled +vmax / 0 / -vmax), draws it and writes it as an 8-bit RGB PNG
 * through an atomic file. Small maps are upscaled by nearest neighbour by an
 * integer factor so that every map cell is a square block.
 * Invariants: the layout is complete (and checked against the size limits)
 * before anything is allocated or drawn; colours come only from colormap.c,
 * so the overlay and the colour bar agree; libpng errors longjmp into
 * encode_with_libpng, whose state lives in a png_out owned by its caller.
 */
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/atomic_file.h"
#include "base/error.h"
#include "render_internal.h"
#include "base/tensor.h"

#define MAX_SCALE 16                        /* explicit or automatic upscaling factor */
#define AUTO_MIN_SIDE 256                   /* automatic scale: the shorter side reaches this */
#define MAX_MAP_SIDE 65535                  /* keeps side × MAX_SCALE well inside int */
#define MAX_CANVAS_SIDE 1000000             /* libpng's default width/height limit */
#define MAX_CANVAS_PIXELS ((size_t)1 << 26) /* 192 MiB of RGB */
#define PANEL_GAP 6                         /* white pixels between the original and the overlay */
#define BIG_FONT_MIN_H 160 /* pictures at least this tall get labels at font scale 2 */
/* Colour bar geometry, in units of the font scale. */
#define BAR_GAP 8
#define BAR_W 10
#define TICK_LEN 3
#define LABEL_GAP 2
#define RIGHT_PAD 4

static const uint8_t frame_rgb[3] = {96, 96, 96};
static const uint8_t ink_rgb[3] = {32, 32, 32};

typedef struct layout {
    int scale;        /* map cell → scale × scale pixels */
    int pic_w, pic_h; /* one panel */
    int side_by_side; /* the original at x = 0 */
    int overlay_x;
    int colorbar; /* the fields below are set */
    int fs;       /* font scale of the labels */
    int bar_x, bar_y, bar_w, bar_h;
    int label_x;
    char pos_label[32], neg_label[32];
    int width, height; /* the whole canvas */
} layout;

void evmap_render_options_init(evmap_render_options *options) {
    if (!options)
        return;
    memset(options, 0, sizeof *options);
    options->vmax = 0.0f; /* automatic: the map's largest |value| */
    options->scale = 0;   /* automatic */
}

/* ------------------------------------------------------------ arguments */

static evmap_status check_options(const char *path, const evmap_render_options *o,
                                  evmap_error *err) {
    if (!isfinite(o->vmax))
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "cannot render '%s': vmax %g is not a finite number; pass a positive "
                        "scale or 0 for automatic",
                        path, (double)o->vmax);
    if (o->scale < 0 || o->scale > MAX_SCALE)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "cannot render '%s': scale %d is outside 0..%d; pass 0 for automatic", path,
                        o->scale, MAX_SCALE);
    return EVMAP_OK;
}

static evmap_status check_inputs(const char *path, const evmap_image *bg, const float *map,
                                 int height, int width, evmap_error *err) {
    if (!path || !*path)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "evmap_render_png: no output path given; pass the .png file to write");
    if (!map)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "cannot render '%s': the map is NULL; pass the evidence map", path);
    if (height <= 0 || width <= 0 || height > MAX_MAP_SIDE || width > MAX_MAP_SIDE)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "cannot render '%s': map size %d x %d (height x width) is outside "
                        "1..%d per side; pass the map's real size",
                        path, height, width, MAX_MAP_SIDE);
    if (!bg || !bg->pixels)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "cannot render '%s': no background image; pass the image at the "
                        "map's resolution",
                        path);
    if (bg->width != width || bg->height != height)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "cannot render '%s': the background is %d x %d pixels but the map is "
                        "%d x %d (width x height); resize the image to the map's size",
                        path, bg->width, bg->height, width, height);
    if (bg->channels != 1 && bg->channels != 3)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "cannot render '%s': the background has %d channels; pass a gray "
                        "(1) or RGB (3) image",
                        path, bg->channels);
    return EVMAP_OK;
}

/* The requested scale, else the largest |finite value|, else 1 (an all-zero
 * or all-NaN map must not divide by zero). */
static float choose_vmax(const float *map, size_t count, float requested) {
    if (requested > 0.0f)
        return requested;
    float vmax = 0.0f;
    for (size_t i = 0; i < count; i++) {
        float a = fabsf(map[i]);
        if (isfinite(a) && a > vmax)
            vmax = a;
    }
    return vmax > 0.0f ? vmax : 1.0f;
}

/* --------------------------------------------------------------- layout */

static int auto_scale(int height, int width) {
    int side = height < width ? height : width;
    int scale = (AUTO_MIN_SIDE + side - 1) / side;
    return scale < 1 ? 1 : (scale > MAX_SCALE ? MAX_SCALE : scale);
}

/* "%.3g" with a compact exponent ("1.5e-05" → "1.5e-5", "1.23e+03" → "1.23e3")
 * so labels stay short. */
static void format_vmax(float vmax, char *buf, size_t size) {
    snprintf(buf, size, "%.3g", (double)vmax);
    char *e = strchr(buf, 'e');
    if (!e)
        return;
    const char *digits = e + 2; /* after the sign printf always writes */
    while (digits[0] == '0' && digits[1])
        digits++;
    char exponent[16];
    snprintf(exponent, sizeof exponent, "%s%s", e[1] == '-' ? "-" : "", digits);
    snprintf(e + 1, size - (size_t)(e + 1 - buf), "%s", exponent);
}

static int max_int(int a, int b) {
    return a > b ? a : b;
}

/* A vertical bar right of the picture, its ends and middle labelled. The
 * canvas grows taller than the picture only when three labels do not fit. */
static void plan_colorbar(layout *lay, float vmax) {
    int fs = lay->pic_h >= BIG_FONT_MIN_H ? 2 : 1;
    char number[24];
    format_vmax(vmax, number, sizeof number);
    snprintf(lay->pos_label, sizeof lay->pos_label, "+%s", number);
    snprintf(lay->neg_label, sizeof lay->neg_label, "-%s", number);
    /* Labels are centred on the bar's ends: half a glyph sticks out, plus
     * some air so that they do not touch the picture's edge. */
    int margin = (EVM_FONT_H * fs + 1) / 2 + 2 * fs;
    int min_bar = 5 * EVM_FONT_H * fs; /* three labels with a glyph's height between */
    lay->colorbar = 1;
    lay->fs = fs;
    lay->height = max_int(lay->pic_h, min_bar + 2 * margin);
    lay->bar_x = lay->width + BAR_GAP * fs;
    lay->bar_y = margin;
    lay->bar_w = BAR_W * fs;
    lay->bar_h = lay->height - 2 * margin;
    lay->label_x = lay->bar_x + lay->bar_w + 1 + (TICK_LEN + LABEL_GAP) * fs;
    int text_w = max_int(evm_text_width(lay->pos_label, fs), evm_text_width(lay->neg_label, fs));
    lay->width = lay->label_x + text_w + RIGHT_PAD * fs;
}

static evmap_status plan_layout(layout *lay, const char *path, int height, int width,
                                const evmap_render_options *o, float vmax, evmap_error *err) {
    memset(lay, 0, sizeof *lay);
    lay->scale = o->scale > 0 ? o->scale : auto_scale(height, width);
    lay->pic_w = width * lay->scale;
    lay->pic_h = height * lay->scale;
    lay->side_by_side = o->side_by_side != 0;
    lay->overlay_x = lay->side_by_side ? lay->pic_w + PANEL_GAP : 0;
    lay->width = lay->overlay_x + lay->pic_w;
    lay->height = lay->pic_h;
    if (o->colorbar)
        plan_colorbar(lay, vmax);
    size_t pixels;
    if (lay->width > MAX_CANVAS_SIDE || lay->height > MAX_CANVAS_SIDE ||
        !evm_mul_size((size_t)lay->width, (size_t)lay->height, &pixels) ||
        pixels > MAX_CANVAS_PIXELS)
        return evm_fail(err, EVMAP_ERR_TOO_LARGE,
                        "cannot render '%s': the picture would be %d x %d pixels, above the "
                        "limit of %zu; use a smaller scale",
                        path, lay->width, lay->height, (size_t)MAX_CANVAS_PIXELS);
    return EVMAP_OK;
}

/* -------------------------------------------------------------- drawing */

static float cell_luminance(const evmap_image *bg, size_t i, size_t plane) {
    const float *p = bg->pixels;
    if (bg->channels == 1)
        return p[i];
    return evm_luminance(p[i], p[plane + i], p[2 * plane + i]);
}

/* The image as it is (colour when RGB), one block per cell. */
static void draw_original(evm_canvas *c, const layout *lay, const evmap_image *bg) {
    size_t plane = (size_t)bg->width * (size_t)bg->height;
    for (int y = 0; y < bg->height; y++) {
        for (int x = 0; x < bg->width; x++) {
            size_t i = (size_t)y * (size_t)bg->width + (size_t)x;
            uint8_t rgb[3];
            for (int ch = 0; ch < 3; ch++)
                rgb[ch] = evm_to_byte(bg->pixels[(bg->channels == 3 ? (size_t)ch : 0) * plane + i]);
            evm_canvas_fill(c, x * lay->scale, y * lay->scale, lay->scale, lay->scale, rgb);
        }
    }
}

static void draw_overlay(evm_canvas *c, const layout *lay, const evmap_image *bg, const float *map,
                         float vmax) {
    size_t plane = (size_t)bg->width * (size_t)bg->height;
    for (int y = 0; y < bg->height; y++) {
        for (int x = 0; x < bg->width; x++) {
            size_t i = (size_t)y * (size_t)bg->width + (size_t)x;
            uint8_t rgb[3];
            evm_overlay_rgb(cell_luminance(bg, i, plane), map[i] / vmax, rgb);
            evm_canvas_fill(c, lay->overlay_x + x * lay->scale, y * lay->scale, lay->scale,
                            lay->scale, rgb);
        }
    }
}

static void draw_label(evm_canvas *c, const layout *lay, int tick_y, const char *text) {
    int fs = lay->fs;
    evm_canvas_fill(c, lay->bar_x + lay->bar_w + 1, tick_y - fs / 2, TICK_LEN * fs, fs, frame_rgb);
    evm_draw_text(c, lay->label_x, tick_y - EVM_FONT_H * fs / 2, text, fs, ink_rgb);
}

/* Top is +vmax, bottom -vmax; each row shows its value over mid-gray. */
static void draw_colorbar(evm_canvas *c, const layout *lay) {
    evm_canvas_fill(c, lay->bar_x - 1, lay->bar_y - 1, lay->bar_w + 2, lay->bar_h + 2, frame_rgb);
    for (int r = 0; r < lay->bar_h; r++) {
        float t = 1.0f - 2.0f * ((float)r + 0.5f) / (float)lay->bar_h;
        uint8_t rgb[3];
        evm_overlay_rgb(EVM_COLORBAR_LUM, t, rgb);
        evm_canvas_fill(c, lay->bar_x, lay->bar_y + r, lay->bar_w, 1, rgb);
    }
    draw_label(c, lay, lay->bar_y, lay->pos_label);
    draw_label(c, lay, lay->bar_y + lay->bar_h / 2, "0");
    draw_label(c, lay, lay->bar_y + lay->bar_h - 1, lay->neg_label);
}

/* ----------------------------------------------------------- PNG output */

typedef struct png_out {
    png_structp png;
    png_infop info;
    const evm_canvas *canvas;
    char message[200]; /* libpng's error text */
} png_out;

static void on_error(png_structp png, png_const_charp msg) {
    png_out *o = png_get_error_ptr(png);
    snprintf(o->message, sizeof o->message, "%s", msg);
    png_longjmp(png, 1);
}

/* A library must not print libpng's warnings. */
static void on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

/* Returns 0 when libpng failed (o->message says why). Nothing that is read
 * after the longjmp is modified after setjmp. */
static int encode_with_libpng(png_out *o, FILE *f) {
    if (setjmp(png_jmpbuf(o->png)))
        return 0;
    const evm_canvas *c = o->canvas;
    png_init_io(o->png, f);
    png_set_IHDR(o->png, o->info, (png_uint_32)c->width, (png_uint_32)c->height, 8,
                 PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(o->png, o->info);
    for (int y = 0; y < c->height; y++)
        png_write_row(o->png, c->rgb + (size_t)y * (size_t)c->width * 3);
    png_write_end(o->png, NULL);
    return 1;
}

static evmap_status write_png(const char *path, const evm_canvas *canvas, evmap_error *err) {
    png_out o = {.canvas = canvas};
    evm_atomic_file af;
    evmap_status st = evm_atomic_open(&af, path, err);
    if (st != EVMAP_OK)
        goto done;
    o.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &o, on_error, on_warning);
    if (o.png)
        o.info = png_create_info_struct(o.png);
    if (!o.png || !o.info) {
        st = evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "cannot create a PNG encoder for '%s'", path);
        goto done;
    }
    if (!encode_with_libpng(&o, af.f)) {
        st = evm_fail(err, EVMAP_ERR_IO, "cannot write '%s' (libpng: %s); check free disk space",
                      path, o.message);
        goto done;
    }
    st = evm_atomic_commit(&af, err);
done:
    png_destroy_write_struct(o.png ? &o.png : NULL, o.info ? &o.info : NULL);
    evm_atomic_abort(&af);
    return st;
}

/* --------------------------------------------------------------- entry */

evmap_status evmap_render_png(const char *path, const evmap_image *background, const float *map,
                              int height, int width, const evmap_render_options *options,
                              float *vmax_used, evmap_error *err) {
    evmap_render_options o;
    evmap_render_options_init(&o);
    if (options)
        o = *options;
    evmap_status st = check_inputs(path, background, map, height, width, err);
    if (st == EVMAP_OK)
        st = check_options(path, &o, err);
    if (st != EVMAP_OK)
        return st;
    float vmax = choose_vmax(map, (size_t)height * (size_t)width, o.vmax);
    layout lay;
    st = plan_layout(&lay, path, height, width, &o, vmax, err);
    if (st != EVMAP_OK)
        return st;
    evm_canvas canvas = {.width = lay.width, .height = lay.height};
    size_t bytes = (size_t)lay.width * (size_t)lay.height * 3; /* bounded by plan_layout */
    canvas.rgb = malloc(bytes);
    if (!canvas.rgb) {
        st = evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes to render '%s'",
                      bytes, path);
        goto done;
    }
    memset(canvas.rgb, 255, bytes); /* white: gaps and the colour bar's background */
    if (lay.side_by_side)
        draw_original(&canvas, &lay, background);
    draw_overlay(&canvas, &lay, background, map, vmax);
    if (lay.colorbar)
        draw_colorbar(&canvas, &lay);
    st = write_png(path, &canvas, err);
    if (st == EVMAP_OK && vmax_used)
        *vmax_used = vmax;
done:
    free(canvas.rgb);
    return st;
}

evmap_status evmap_write_image_png(const char *path, const evmap_image *image, evmap_error *err) {
    if (!path || !image || !image->pixels || image->width < 1 || image->height < 1 ||
        (image->channels != 1 && image->channels != 3) || image->width > 65535 ||
        image->height > 65535)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "evmap_write_image_png: a 1- or 3-channel image is needed");
    size_t plane = (size_t)image->width * (size_t)image->height;
    evm_canvas canvas = {.width = image->width, .height = image->height};
    canvas.rgb = malloc(plane * 3);
    if (!canvas.rgb)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes to write '%s'",
                        plane * 3, path);
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) {
            float v = image->pixels[(size_t)(image->channels == 3 ? c : 0) * plane + i];
            v = v > 0 ? (v < 1 ? v : 1) : 0; /* NaN too becomes 0 */
            canvas.rgb[i * 3 + (size_t)c] = (uint8_t)(v * 255.0f + 0.5f);
        }
    evmap_status st = write_png(path, &canvas, err);
    free(canvas.rgb);
    return st;
}
