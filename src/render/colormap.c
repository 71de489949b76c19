/*
 * Every colour decision of the renderer: the dimmed gray background, the
 * diverging ramp (neutral at 0, red for evidence for, blue against) and how
 * strongly it is blended in. The ramp is defined for |t| in [0, 1]; negative
 * values use the same colours with red and blue swapped, so equal evidence
 * for and against carries equal visual weight and the picture is exactly
 * symmetric around 0. Gray stays gray: a blend of R = G = B with alpha 0 is
 * R = G = B, which is what t = 0 and NaN give.
 */
#include <math.h>

#include "render_internal.h"

/* Positive half of an RdBu_r-like ramp (ColorBrewer RdBu), evenly spaced
 * from |t| = 0 to |t| = 1. It starts at a light salmon rather than RdBu's
 * white: alpha is 0 at t = 0, so the picture is still neutral there, while
 * weak evidence shows a hue instead of a whitish haze over the gray. */
static const float ramp[][3] = {
    {0.957f, 0.647f, 0.510f}, /* #f4a582 */
    {0.839f, 0.376f, 0.302f}, /* #d6604d */
    {0.698f, 0.094f, 0.169f}, /* #b2182b */
    {0.404f, 0.000f, 0.122f}, /* #67001f */
};
#define RAMP_STEPS ((int)(sizeof ramp / sizeof ramp[0]) - 1)

/* The background is compressed into [GRAY_LOW, GRAY_LOW + GRAY_RANGE] so that
 * colours stand out on white areas and are still visible on black ones. */
#define GRAY_LOW 0.25f
#define GRAY_RANGE 0.55f
/* alpha = ALPHA_MAX * |t|: linear, so values near 0 stay nearly transparent
 * (a steeper curve put a haze over weak evidence), and the strongest evidence
 * still lets a little of the image show through. */
#define ALPHA_MAX 0.9f

static float clamp01(float v) {
    return v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f;
}

float evm_luminance(float r, float g, float b) {
    return 0.299f * r + 0.587f * g + 0.114f * b;
}

uint8_t evm_to_byte(float v) {
    return (uint8_t)lrintf(clamp01(v) * 255.0f);
}

/* Linear interpolation between the control points, a in [0, 1]. */
static void ramp_color(float a, float out[3]) {
    float pos = a * (float)RAMP_STEPS;
    int i = (int)pos;
    if (i >= RAMP_STEPS)
        i = RAMP_STEPS - 1;
    float f = pos - (float)i;
    for (int c = 0; c < 3; c++)
        out[c] = ramp[i][c] + f * (ramp[i + 1][c] - ramp[i][c]);
}

void evm_overlay_rgb(float lum, float t, uint8_t out[3]) {
    float gray = GRAY_LOW + GRAY_RANGE * clamp01(lum);
    float a = isnan(t) ? 0.0f : clamp01(fabsf(t));
    float alpha = ALPHA_MAX * a;
    float color[3];
    ramp_color(a, color);
    if (t < 0.0f) { /* the mirrored half: swap red and blue */
        float r = color[0];
        color[0] = color[2];
        color[2] = r;
    }
    for (int c = 0; c < 3; c++)
        out[c] = evm_to_byte(gray + alpha * (color[c] - gray));
}
