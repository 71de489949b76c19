/* Naive reference convolution; see conv_reference.h. Accumulates in double so
 * that it is a better yardstick than the float kernels it checks. */
#include "conv_reference.h"

void evm_conv2d_reference(const evm_conv2d_shape *s, const float *x, const float *w,
                          const float *bias, float *y) {
    const evm_window2d *k = &s->win;
    int cg = s->c / s->group, mg = s->m / s->group;
    for (int n = 0; n < s->n; n++)
        for (int m = 0; m < s->m; m++) {
            int g = m / mg;
            for (int oy = 0; oy < s->oh; oy++)
                for (int ox = 0; ox < s->ow; ox++) {
                    double acc = bias ? bias[m] : 0.0;
                    for (int ci = 0; ci < cg; ci++)
                        for (int ky = 0; ky < k->kernel[0]; ky++)
                            for (int kx = 0; kx < k->kernel[1]; kx++) {
                                int iy = oy * k->stride[0] + ky * k->dilation[0] - k->pad_begin[0];
                                int ix = ox * k->stride[1] + kx * k->dilation[1] - k->pad_begin[1];
                                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
                                    continue;
                                int c = g * cg + ci;
                                double xv = x[(((size_t)n * s->c + c) * s->h + iy) * s->w + ix];
                                double wv =
                                    w[(((size_t)m * cg + ci) * k->kernel[0] + ky) * k->kernel[1] +
                                      kx];
                                acc += xv * wv;
                            }
                    y[(((size_t)n * s->m + m) * s->oh + oy) * s->ow + ox] = (float)acc;
                }
        }
}
