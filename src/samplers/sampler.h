/*
 * Samplers for Prediction Difference Analysis: they replace the pixels of a
 * k×k window (all channels) with draws that marginalise the window out.
 *  - conditional: a Gaussian over the l×l patch around the window (l = k +
 *    2·pad) fitted on reference patches; the window is drawn from its
 *    conditional given the surrounding ring of the current image. One
 *    Gaussian per channel, or one joint over all channels. At borders the
 *    patch is shifted to lie inside the image. Draws are clipped to the data
 *    range of the reference images.
 *  - marginal: draw s copies the window from reference image s.
 *  - constant: one fill value per channel (occlusion), count 1.
 * Everything that depends only on the sampler (means, Cholesky factors for
 * every window offset within the patch) is computed once when the sampler is
 * made or loaded; drawing only computes, into caller-provided scratch.
 */
#ifndef EVM_SAMPLER_H
#define EVM_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evmap.h"
#include "base/rng.h"

/* Images in model-input space: n × channels × height × width floats. */
typedef struct evm_image_stack {
    const float *data;
    size_t n;
    int channels;
    int height;
    int width;
} evm_image_stack;

typedef enum evm_sampler_kind {
    EVM_SAMPLER_CONDITIONAL,
    EVM_SAMPLER_MARGINAL,
    EVM_SAMPLER_CONSTANT,
} evm_sampler_kind;

typedef struct evm_sampler evm_sampler;

/* Fits the conditional sampler on `patches` l×l patches drawn uniformly at
 * random (seeded) from the reference images. A small ridge is added where the
 * covariance is ill-conditioned. */
evmap_status evm_sampler_fit_conditional(const evm_image_stack *refs, int window, int pad,
                                         bool joint_channels, size_t patches, uint64_t seed,
                                         evm_sampler **out, evmap_error *err);

/* Marginal sampler over a copy of the reference images (sample s = image s). */
evmap_status evm_sampler_create_marginal(const evm_image_stack *refs, int window, evm_sampler **out,
                                         evmap_error *err);

/* Constant sampler: every window pixel of channel c becomes fill[c]. */
evmap_status evm_sampler_create_constant(const float *fill, int channels, int window,
                                         evm_sampler **out, evmap_error *err);

void evm_sampler_free(evm_sampler *sampler);

evm_sampler_kind evm_sampler_get_kind(const evm_sampler *sampler);
int evm_sampler_window(const evm_sampler *sampler);
int evm_sampler_pad(const evm_sampler *sampler); /* 0 unless conditional */
int evm_sampler_channels(const evm_sampler *sampler);
bool evm_sampler_joint(const evm_sampler *sampler);
size_t evm_sampler_patches(const evm_sampler *sampler); /* patches it was fitted on */
/* How many distinct draws exist: reference images for marginal, 1 for constant,
 * SIZE_MAX for conditional. */
size_t evm_sampler_max_samples(const evm_sampler *sampler);

/* Saves / loads a conditional sampler. tag describes the preprocessing and
 * input size the sampler was fitted for (e.g. "none 1x28x28"); loading
 * returns it so the caller can refuse a sampler made for other inputs. The
 * loader validates every field (sizes, finiteness, symmetric positive
 * definite covariances) and is safe on hostile files. */
evmap_status evm_sampler_save(const evm_sampler *sampler, const char *tag, const char *path,
                              evmap_error *err);
evmap_status evm_sampler_load(const char *path, evm_sampler **out, char *tag, size_t tag_size,
                              evmap_error *err);

/* Checks that the sampler fits images of this shape (channels, window no
 * larger than the image, patch l×l inside the image, marginal references of
 * the same size). */
evmap_status evm_sampler_check(const evm_sampler *sampler, int channels, int height, int width,
                               evmap_error *err);

/* Scratch floats evm_sampler_draw needs. */
size_t evm_sampler_scratch_floats(const evm_sampler *sampler);

/* Draws `count` replacements for the window whose top-left corner is (y, x)
 * in image (channels × height × width) into out: count × channels × k × k.
 * For marginal, draw s is reference image first_sample + s. Cannot fail:
 * evm_sampler_check validated the shapes. */
void evm_sampler_draw(const evm_sampler *sampler, const float *image, int height, int width, int y,
                      int x, int count, size_t first_sample, evm_rng *rng, float *scratch,
                      float *out);

/* The conditional mean of the window (channels × k × k) given the ring of
 * image, for tests and for the efficient method's linearisation. */
void evm_sampler_conditional_mean(const evm_sampler *sampler, const float *image, int height,
                                  int width, int y, int x, float *scratch, float *out);

#endif
