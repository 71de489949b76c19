/*
 * Private to the line-plot renderer (render_plot.c): text with letters.
 * render_font.c's 5x7 font knows only what the colour bar needs (digits,
 * '+', '-', '.', 'e'); render_plot_text.c adds letters and punctuation for
 * titles, axis labels and legends, and falls back to render_font.c for the
 * rest. Glyphs are 5 columns by 9 rows: rows 0..6 as in render_font.c (the
 * baseline under row 6), rows 7..8 for descenders (g, j, p, q, y, ',').
 */
#ifndef EVM_RENDER_PLOT_H
#define EVM_RENDER_PLOT_H

#include "render_internal.h"

#define EVM_PLOT_TEXT_H 9 /* rows of a line of text, descenders included */

/* Width in pixels of text at an integer scale (as evm_text_width). */
int evm_plot_text_width(const char *text, int scale);

/* Draws ASCII text with its top-left corner at (x, y); unknown characters
 * are blank. */
void evm_plot_draw_text(evm_canvas *c, int x, int y, const char *text, int scale,
                        const uint8_t rgb[3]);

#endif
