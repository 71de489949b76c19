/*
 * A tiny 5x7 bitmap font, just enough for the colour bar's labels ("+0.25",
 * "-1.5e-3"). Each glyph is 7 rows of 5 bits, most significant bit leftmost.
 */
#include <string.h>

#include "render_internal.h"

typedef struct glyph {
    char ch;
    uint8_t rows[EVM_FONT_H];
} glyph;

static const glyph font[] = {
    {'0', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}},
    {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}},
    {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}},
    {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}},
    {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}},
    {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}},
    {'e', {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E}},
};

static const glyph *find_glyph(char ch) {
    for (size_t i = 0; i < sizeof font / sizeof font[0]; i++)
        if (font[i].ch == ch)
            return &font[i];
    return NULL;
}

int evm_text_width(const char *text, int scale) {
    int n = (int)strlen(text);
    return n == 0 ? 0 : (n * EVM_FONT_ADVANCE - 1) * scale;
}

static void draw_glyph(evm_canvas *c, int x, int y, const glyph *g, int scale,
                       const uint8_t rgb[3]) {
    for (int row = 0; row < EVM_FONT_H; row++)
        for (int col = 0; col < EVM_FONT_W; col++)
            if (g->rows[row] & (0x10 >> col))
                evm_canvas_fill(c, x + col * scale, y + row * scale, scale, scale, rgb);
}

void evm_draw_text(evm_canvas *c, int x, int y, const char *text, int scale, const uint8_t rgb[3]) {
    for (; *text; text++, x += EVM_FONT_ADVANCE * scale) {
        const glyph *g = find_glyph(*text);
        if (g)
            draw_glyph(c, x, y, g, scale, rgb);
    }
}
