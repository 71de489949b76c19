/*
 * The sampler's representation, shared by sampler.c (common parts, marginal,
 * constant), sampler_conditional.c (fitting, precomputation, drawing) and
 * sampler_file.c (save/load). Tests include it to reach the fitted Gaussians.
 *
 * Conditional sampler invariants: a patch is l×l with l = window + 2·pad; a
 * Gaussian ("group") covers one channel of the patch (dim = l²) or, when
 * joint, all channels (dim = C·l², channel-major). Group vectors list pixels
 * channel-major then row-major. For each of the (2·pad+1)² window offsets
 * (oy, ox) inside the patch, cond[] holds the conditional of the window given
 * the rest of the patch (the "ring"); its window elements are ordered like
 * the output (channel, row, column), its ring elements by ascending index.
 */
#ifndef EVM_SAMPLER_INTERNAL_H
#define EVM_SAMPLER_INTERNAL_H

#include "sampler.h"

/* Limits on what can be fitted or loaded; hostile files cannot exceed them. */
#define EVM_SAMPLER_MAX_WINDOW 64
#define EVM_SAMPLER_MAX_PAD 16
#define EVM_SAMPLER_MAX_DIM 4096                  /* dimension of one Gaussian */
#define EVM_SAMPLER_MAX_PATCHES 100000000u        /* patches a fit may draw */
#define EVM_SAMPLER_MAX_FACTORS ((size_t)1 << 28) /* doubles precomputed for drawing */

/* A pixel of the patch, relative to its top-left corner. channel is relative
 * to the group (always 0 for per-channel Gaussians). */
typedef struct evm_patch_pixel {
    uint8_t channel;
    uint8_t row;
    uint8_t col;
} evm_patch_pixel;

/* The conditional of the window given the ring, for one group and offset. */
typedef struct evm_conditional {
    const double *mean_window; /* μ_w, window_dim */
    const double *mean_ring;   /* μ_r, ring_dim */
    const double *gain;        /* A = Σ_wr Σ_rr⁻¹, window_dim × ring_dim */
    const double *chol;        /* L, lower, window_dim²: L·Lᵀ = Σ_ww − A·Σ_rw (+ ridge) */
    double ridge_ring;         /* ridge added to Σ_rr (0: none needed) */
    double ridge_window;       /* ridge added to the conditional covariance */
} evm_conditional;

struct evm_sampler {
    evm_sampler_kind kind;
    int window;     /* k */
    int pad;        /* conditional only; 0 otherwise */
    int channels;   /* 1 or 3 */
    bool joint;     /* conditional: one Gaussian over all channels */
    size_t patches; /* conditional: patches it was fitted on */

    /* conditional */
    int patch;         /* l = window + 2·pad */
    int groups;        /* independent Gaussians: channels, or 1 when joint */
    int side;          /* window offsets per axis: 2·pad + 1 */
    size_t dim;        /* dimension of each Gaussian */
    size_t window_dim; /* window pixels per group */
    size_t ring_dim;   /* dim − window_dim */
    float lo[3];       /* per-channel data range that draws are clipped to */
    float hi[3];
    double *mean;          /* groups × dim */
    double *cov;           /* groups × dim × dim, symmetric */
    evm_patch_pixel *ring; /* side² offsets × ring_dim: where ring values come from */
    evm_conditional *cond; /* groups × side² (index group·side² + oy·side + ox) */
    double *cond_data;     /* one block holding everything cond[] points to */

    /* marginal */
    float *refs; /* n_refs × channels × ref_height × ref_width */
    size_t n_refs;
    int ref_height;
    int ref_width;

    /* constant */
    float fill[3]; /* per channel */
};

/* Allocates a zeroed sampler with the common fields set. */
evmap_status evm_sampler_alloc(evm_sampler_kind kind, int channels, int window, evm_sampler **out,
                               evmap_error *err);

/* Checks a reference stack (fields, size, finite values) and gives its float
 * count; what names the sampler kind in messages. */
/* 1 or 3 channels and a window in 1..EVM_SAMPLER_MAX_WINDOW; what names the
 * sampler kind in the message. */
evmap_status evm_sampler_check_channels_window(const char *what, int channels, int window,
                                               evmap_error *err);
evmap_status evm_sampler_check_stack(const char *what, const evm_image_stack *refs, size_t *floats,
                                     evmap_error *err);

/* Validates the conditional parameters against the limits above, including
 * the size of the precomputed factors; failures carry `status` (the loader
 * passes EVMAP_ERR_BAD_FILE and prefixes the file name). */
evmap_status evm_conditional_check_params(int channels, int window, int pad, bool joint,
                                          evmap_status status, evmap_error *err);

/* Sets the conditional's derived sizes from window, pad, channels and joint,
 * allocates mean and cov (zeroed) and nothing else. */
evmap_status evm_conditional_alloc_gaussians(evm_sampler *s, evmap_error *err);

/* Computes ring[] and cond[] from mean and cov; fails (EVMAP_ERR_BAD_FILE with
 * from_file, else EVMAP_ERR_INTERNAL) when a covariance cannot be factored
 * even with the largest ridge. */
evmap_status evm_conditional_prepare(evm_sampler *s, bool from_file, evmap_error *err);

void evm_conditional_draw(const evm_sampler *s, const float *image, int height, int width, int y,
                          int x, int count, evm_rng *rng, float *scratch, float *out);
void evm_conditional_mean(const evm_sampler *s, const float *image, int height, int width, int y,
                          int x, float *scratch, float *out);

/* The patch positions a fit draws, in order: each is uniform over all
 * (image, y, x) with the l×l patch inside the image, from one
 * evm_rng_below(n · (H−l+1) · (W−l+1)) call. Exposed so tests can rebuild
 * the exact patch list. */
typedef struct evm_patch_cursor {
    evm_rng rng;
    size_t per_image; /* valid positions per image */
    size_t total;     /* n · per_image */
    int columns;      /* valid x positions: W − l + 1 */
} evm_patch_cursor;

typedef struct evm_patch_pos {
    size_t image;
    int y;
    int x;
} evm_patch_pos;

/* total must not overflow; the caller checks with evm_mul_size. */
void evm_patch_cursor_init(evm_patch_cursor *cur, size_t n, int height, int width, int patch,
                           uint64_t seed);
evm_patch_pos evm_patch_cursor_next(evm_patch_cursor *cur);

/* Top-left corner of the l×l patch used for the window at (y, x): the patch
 * centred on the window, shifted to lie inside the image. */
void evm_conditional_patch_origin(const evm_sampler *s, int height, int width, int y, int x,
                                  int *py, int *px);

#endif
