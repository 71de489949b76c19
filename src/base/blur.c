/* Gaussian blur of planar images (blur.h). */
#include "blur.h"

#include <math.h>
#include <stdlib.h>

#include "error.h"

/* One pass of a normalised 1-D Gaussian along rows (dx = 1) or columns. */
static void blur_pass(const float *src, float *dst, int height, int width, const double *kernel,
                      int radius, int along_rows) {
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) {
            double v = 0;
            for (int i = -radius; i <= radius; i++) {
                int sx = along_rows ? x + i : x, sy = along_rows ? y : y + i;
                sx = sx < 0 ? 0 : sx >= width ? width - 1 : sx;
                sy = sy < 0 ? 0 : sy >= height ? height - 1 : sy;
                v += kernel[i + radius] * src[(size_t)sy * (size_t)width + (size_t)sx];
            }
            dst[(size_t)y * (size_t)width + (size_t)x] = (float)v;
        }
}

evmap_status evm_blur_image(const float *image, int channels, int height, int width, float *out,
                            evmap_error *err) {
    /* keeps the radius (0.3 x the longer side) and x + i in int */
    if (height > 65535 || width > 65535)
        return evm_fail(err, EVMAP_ERR_TOO_LARGE,
                        "cannot blur an image of %d x %d pixels (at most 65535 per side)", width,
                        height);
    double sigma = (height > width ? height : width) / 10.0;
    int radius = (int)ceil(3.0 * sigma);
    size_t plane = (size_t)height * (size_t)width;
    double *kernel = malloc(sizeof(double) * (size_t)(2 * radius + 1));
    float *tmp = malloc(sizeof(float) * plane);
    if (!kernel || !tmp) {
        free(kernel);
        free(tmp);
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory blurring an image");
    }
    double sum = 0;
    for (int i = -radius; i <= radius; i++)
        sum += kernel[i + radius] = exp(-0.5 * i * i / (sigma * sigma));
    for (int i = 0; i <= 2 * radius; i++)
        kernel[i] /= sum;
    for (int c = 0; c < channels; c++) {
        blur_pass(image + (size_t)c * plane, tmp, height, width, kernel, radius, 1);
        blur_pass(tmp, out + (size_t)c * plane, height, width, kernel, radius, 0);
    }
    free(kernel);
    free(tmp);
    return EVMAP_OK;
}
