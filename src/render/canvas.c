/* The RGB canvas every picture is drawn on (render.c, render_font.c,
 * render_plot*.c): filling rectangles, clipped to the canvas. */
#include <string.h>

#include "render_internal.h"

void evm_canvas_fill(evm_canvas *c, int x, int y, int w, int h, const uint8_t rgb[3]) {
    int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    int x1 = x + w > c->width ? c->width : x + w;
    int y1 = y + h > c->height ? c->height : y + h;
    for (int yy = y0; yy < y1; yy++) {
        uint8_t *p = c->rgb + ((size_t)yy * (size_t)c->width + (size_t)x0) * 3;
        for (int xx = x0; xx < x1; xx++, p += 3)
            memcpy(p, rgb, 3);
    }
}
