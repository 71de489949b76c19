/*
 * The Gaussian blur that IG's blur baseline and evaluate's blur fill share:
 * sigma = the longer side / 10, radius 3 sigma, edges replicated, separable.
 */
#ifndef EVM_BLUR_H
#define EVM_BLUR_H

#include "evmap.h"

/* Blurs each of channels height × width planes of image into out. */
evmap_status evm_blur_image(const float *image, int channels, int height, int width, float *out,
                            evmap_error *err);

#endif
