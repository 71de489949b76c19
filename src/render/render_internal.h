/*
 * Declarations shared by the evidence-map renderer: render.c (layout,
 * composition, PNG output), colormap.c (every colour decision) and
 * render_font.c (a 5x7 bitmap font for the colour bar's labels).
 * Invariant: a canvas is width × height 8-bit RGB pixels, row-major, and
 * every drawing function clips to it, so callers may draw partly outside.
 */
#ifndef EVM_RENDER_INTERNAL_H
#define EVM_RENDER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct evm_canvas {
    int width;
    int height;
    uint8_t *rgb; /* height × width × 3 bytes */
} evm_canvas;

/* Fills the part of the rectangle that lies inside the canvas. */
void evm_canvas_fill(evm_canvas *c, int x, int y, int w, int h, const uint8_t rgb[3]);

/* ---- colormap.c */

/* Luminance (ITU-R BT.601, as preprocessing uses) of an RGB pixel in [0,1]. */
float evm_luminance(float r, float g, float b);

/* [0,1] (clamped; NaN as 0) to a byte, rounded. */
uint8_t evm_to_byte(float v);

/* One overlay pixel: the image's luminance lum in [0,1], dimmed, with the
 * diverging colour for t = value / vmax blended over it. t is clamped to
 * [-1, 1]; t = 0 and NaN give the dimmed gray (R = G = B) alone; -t gives
 * exactly the colour of t with red and blue swapped. */
void evm_overlay_rgb(float lum, float t, uint8_t out[3]);

/* Mid-gray luminance the colour bar is drawn over, so the bar shows what a
 * value looks like on a typical image rather than the bare ramp. */
#define EVM_COLORBAR_LUM 0.5f

/* ---- render_font.c */

#define EVM_FONT_W 5
#define EVM_FONT_H 7
#define EVM_FONT_ADVANCE 6 /* glyph plus one column of spacing */

/* Width in pixels of text drawn at an integer scale (no trailing spacing). */
int evm_text_width(const char *text, int scale);

/* Draws text with its top-left corner at (x, y), each font pixel scale ×
 * scale. Knows digits, '+', '-', '.' and 'e'; other characters are blank. */
void evm_draw_text(evm_canvas *c, int x, int y, const char *text, int scale, const uint8_t rgb[3]);

#endif
