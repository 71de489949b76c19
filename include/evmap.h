/*
 * evmap — evidence maps for convolutional image classifiers.
 *
 * Public C API. Every function returns an evmap_status; results come back
 * through trailing out-parameters; on failure the caller's evmap_error holds
 * one line saying what was wrong, where, and what to do. Handles are opaque,
 * destroy functions accept NULL, and the library keeps no global state:
 * separate handles may be used from separate threads.
 */
#ifndef EVMAP_H
#define EVMAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum evmap_status {
    EVMAP_OK = 0,
    EVMAP_ERR_INVALID_ARGUMENT, /* a caller passed a bad value */
    EVMAP_ERR_IO,               /* a file could not be opened or read */
    EVMAP_ERR_BAD_FILE,         /* a file is truncated, corrupt or malformed */
    EVMAP_ERR_UNSUPPORTED,      /* valid input that evmap does not handle */
    EVMAP_ERR_TOO_LARGE,        /* input that exceeds one of evmap's size limits */
    EVMAP_ERR_OUT_OF_MEMORY,    /* allocation failed or a limit was exceeded */
    EVMAP_ERR_CANCELLED,        /* the progress callback asked to stop */
    EVMAP_ERR_INTERNAL,         /* a bug in evmap */
    EVMAP_STATUS_COUNT
} evmap_status;

/* Filled by every call that fails; message is one line without a newline. */
typedef struct evmap_error {
    evmap_status status;
    char message[512];
} evmap_error;

/* Short name of a status ("bad file", ...). Never NULL. */
const char *evmap_status_name(evmap_status status);

/* True for failures caused by the caller's input, size limits included (a CLI
 * exits 2 for these). */
int evmap_status_is_bad_input(evmap_status status);

/* Called during long work (after every batch, and between the operators of
 * a batch with unchanged counts); return non-zero to cancel
 * (EVMAP_ERR_CANCELLED). */
typedef int (*evmap_progress_fn)(void *user, size_t done, size_t total);

/* ------------------------------------------------------------------ models */

typedef struct evmap_model evmap_model;

/* Loads an ONNX model from a file or from memory, validates every node and
 * folds BatchNormalization into preceding convolutions. */
evmap_status evmap_model_load(const char *path, evmap_model **out, evmap_error *err);
evmap_status evmap_model_load_memory(const void *data, size_t size, evmap_model **out,
                                     evmap_error *err);
void evmap_model_free(evmap_model *model);

/* Memory limits (bytes; 0 means none). evmap checks sizes against the limit
 * before it allocates, and refuses with EVMAP_ERR_TOO_LARGE and a message
 * rather than letting the system kill the process:
 * - loading a model: the file's size twice over (mapped file and weights),
 *   and the batch-1 plan loading makes to check the model's output;
 * - every plan made from the model (runners, evidence and gradient methods):
 *   the weights plus that plan's activations and scratch, gradients included;
 * - images of an image set: up to 20 bytes per pixel while decoding, and the
 *   decompressed data of an IDX file. */
evmap_status evmap_model_load_limited(const char *path, uint64_t max_memory, evmap_model **out,
                                      evmap_error *err);
evmap_status evmap_model_load_memory_limited(const void *data, size_t size, uint64_t max_memory,
                                             evmap_model **out, evmap_error *err);
void evmap_model_limit_memory(evmap_model *model, uint64_t max_memory);
/* The default limit of the CLI's --max-memory: the machine's memory (or the
 * cgroup's limit, when lower) less 1 GiB; 0 when it cannot be read. */
uint64_t evmap_default_memory_limit(void);

/* The layout of the model file's image input. Callers always pass images
 * N×C×H×W (NCHW); for an NHWC model (as tf2onnx writes them) evmap inserts a
 * Transpose after the input at load time. AUTO takes NHWC when the input's
 * last dimension is 1 or 3 and its second is not. */
typedef enum evmap_layout {
    EVMAP_LAYOUT_AUTO = 0,
    EVMAP_LAYOUT_NCHW = 1,
    EVMAP_LAYOUT_NHWC = 2,
} evmap_layout;

/* "auto", "nchw" or "nhwc". */
const char *evmap_layout_name(evmap_layout layout);

/* Options of evmap_model_load_with_options; evmap_model_load_options_init
 * sets the defaults (no memory limit, EVMAP_LAYOUT_AUTO). */
typedef struct evmap_model_load_options {
    uint64_t max_memory; /* bytes; 0: none (as evmap_model_load_limited) */
    evmap_layout layout;
} evmap_model_load_options;

void evmap_model_load_options_init(evmap_model_load_options *options);
/* options may be NULL (the defaults). A model file's external data files
 * (TensorProto external_data) are read from the model's own folder only; a
 * model loaded from memory with external data is refused. */
evmap_status evmap_model_load_with_options(const char *path,
                                           const evmap_model_load_options *options,
                                           evmap_model **out, evmap_error *err);
evmap_status evmap_model_load_memory_with_options(const void *data, size_t size,
                                                  const evmap_model_load_options *options,
                                                  evmap_model **out, evmap_error *err);

/* A free input side is planned at this size until evmap_model_set_input_size
 * (or, when the model cannot run there, at the first of a few common sizes
 * it runs at: 32, 28, 64, 96, 128, 256, 299, 384, 512). */
#define EVMAP_TRIAL_SIDE 224

/* Image input the model expects: channels, height, width (batch excluded).
 * A side the file leaves free (symbolic or missing) has free_height or
 * free_width set; height and width then hold the size the model is set to
 * (EVMAP_TRIAL_SIDE after loading). */
typedef struct evmap_model_info {
    int channels;
    int height;
    int width;
    int free_height; /* 1: any height the graph can run at */
    int free_width;
    int num_classes;
    int ends_in_softmax; /* 1: outputs are probabilities; 0: logits (evmap applies softmax) */
    size_t num_nodes;
    size_t num_parameters;
    evmap_layout layout; /* the file's input layout: NCHW, or NHWC (fed through a Transpose) */
} evmap_model_info;

evmap_status evmap_model_get_info(const evmap_model *model, evmap_model_info *out,
                                  evmap_error *err);

/* Sets the input size of a model with a free side: later runners and
 * methods run at height x width; runners made earlier keep their size. A
 * fixed side must keep its value. The graph is planned once at the size to
 * check it runs there: a node that cannot (a spatial size shrinking to zero,
 * a Reshape or Gemm needing one exact size) is an EVMAP_ERR_UNSUPPORTED
 * naming the node and the size, and the model keeps its previous size. */
evmap_status evmap_model_set_input_size(evmap_model *model, int height, int width,
                                        evmap_error *err);

/* A runner executes one model for a fixed batch size. Create it once and run it
 * many times: planning, buffer allocation and shape inference happen here. */
typedef struct evmap_runner evmap_runner;

evmap_status evmap_runner_create(const evmap_model *model, int batch, int threads,
                                 evmap_runner **out, evmap_error *err);
void evmap_runner_free(evmap_runner *runner);

/* input: count × C × H × W floats (NCHW); probs: count × num_classes floats,
 * class probabilities (softmax applied when the graph ends in logits). count
 * may be smaller than the runner's batch: such a partial batch runs a plan of
 * its own size (made on first use, kept for the next one of that size), so it
 * costs the work of count images, not of a full batch. */
evmap_status evmap_runner_classify(evmap_runner *runner, const float *input, int count,
                                   float *probs, evmap_error *err);

/* Bytes the runner's buffers take (activations and scratch; the model's
 * weights, shared by all its runners, not counted). */
uint64_t evmap_runner_memory(const evmap_runner *runner);

/* Images the runner has pushed through the network so far: the work done
 * (partial batches count their own size). */
uint64_t evmap_runner_images_run(const evmap_runner *runner);

/* ------------------------------------------------------------------ images */

/* A decoded image: planar float pixels in [0, 1], channels 1 (gray) or 3 (RGB),
 * laid out channel × height × width. Alpha is dropped, palettes expanded. */
typedef struct evmap_image {
    int width;
    int height;
    int channels;
    float *pixels;
} evmap_image;

/* Reads a PNG or JPEG file (chosen by content, not by name). */
evmap_status evmap_image_load(const char *path, evmap_image **out, evmap_error *err);
evmap_status evmap_image_load_memory(const void *data, size_t size, evmap_image **out,
                                     evmap_error *err);
void evmap_image_free(evmap_image *image);

/* A list of images from files, folders (sorted names of .png/.jpg/.jpeg) and
 * IDX files (MNIST format, optionally gzip-compressed; each entry an image). */
typedef struct evmap_image_set evmap_image_set;

evmap_status evmap_image_set_create(evmap_image_set **out, evmap_error *err);
/* Adds a file, folder or IDX file; validates headers but decodes lazily. */
evmap_status evmap_image_set_add(evmap_image_set *set, const char *path, evmap_error *err);
void evmap_image_set_free(evmap_image_set *set);
/* Limits what each image of the set may take to decode (see
 * evmap_model_load_limited); applies to images added after the call. */
void evmap_image_set_limit_memory(evmap_image_set *set, uint64_t max_memory);
size_t evmap_image_set_count(const evmap_image_set *set);
/* Name for outputs: file name without extension, or "<stem>_<index>" for IDX. */
const char *evmap_image_set_name(const evmap_image_set *set, size_t index);
/* The path the image came from. */
const char *evmap_image_set_path(const evmap_image_set *set, size_t index);
evmap_status evmap_image_set_load(const evmap_image_set *set, size_t index, evmap_image **out,
                                  evmap_error *err);

/* IDX label files (MNIST format, .gz allowed): count labels as bytes. */
evmap_status evmap_idx_load_labels(const char *path, uint8_t **labels, size_t *count,
                                   evmap_error *err);
void evmap_idx_free_labels(uint8_t *labels);

/* ----------------------------------------------------------- preprocessing */

typedef enum evmap_preprocess_preset {
    EVMAP_PREPROCESS_NONE = 0, /* [0,1] pixels, no resize; size must match */
    EVMAP_PREPROCESS_IMAGENET, /* resize short side 256, center crop 224, mean/std */
    EVMAP_PREPROCESS_CUSTOM    /* resize to size (if set), then mean/std */
} evmap_preprocess_preset;

typedef struct evmap_preprocess {
    evmap_preprocess_preset preset;
    float mean[3]; /* IMAGENET, CUSTOM; per channel, subtracted after scaling to [0,1] */
    float std[3];  /* IMAGENET, CUSTOM; per channel divisor (init: the preset's values) */
    int width;     /* CUSTOM only; 0 keeps the image's size */
    int height;
} evmap_preprocess;

/* Fills p with the preset's values (mean 0, std 1 for CUSTOM). */
void evmap_preprocess_init(evmap_preprocess *p, evmap_preprocess_preset preset);

/* Converts an image into the model's input (channels × height × width floats):
 * resizes and crops as the preset says, replicates gray to RGB or converts RGB
 * to luminance as the model needs, normalises. A size that does not match the
 * model after preprocessing is an EVMAP_ERR_INVALID_ARGUMENT naming both sizes. */
evmap_status evmap_preprocess_image(const evmap_image *image, const evmap_preprocess *p,
                                    int channels, int height, int width, float *out,
                                    evmap_error *err);
/* The width and height an image has after p's resize and crop (what a model
 * with free sides runs it at). */
evmap_status evmap_preprocess_size(const evmap_image *image, const evmap_preprocess *p, int *width,
                                   int *height, evmap_error *err);

/* ---------------------------------------------------------------- samplers */

/* What replaces a window when Prediction Difference Analysis marginalises it
 * out (see DESIGN.md 1.1): conditional Gaussian, marginal or constant. */
typedef struct evmap_sampler evmap_sampler;

typedef struct evmap_sampler_fit_options {
    int window;         /* k */
    int pad;            /* ring width; the Gaussian covers (k + 2·pad)² pixels */
    int joint_channels; /* non-zero: one Gaussian over all channels */
    size_t patches;     /* random patches to fit on (default 20000) */
    uint64_t seed;
} evmap_sampler_fit_options;

void evmap_sampler_fit_options_init(evmap_sampler_fit_options *options);

/* images: n × channels × height × width floats in model-input space. */
evmap_status evmap_sampler_fit(const float *images, size_t n, int channels, int height, int width,
                               const evmap_sampler_fit_options *options, evmap_sampler **out,
                               evmap_error *err);
/* Sample s takes the window from reference image s (images are copied). */
evmap_status evmap_sampler_marginal(const float *images, size_t n, int channels, int height,
                                    int width, int window, evmap_sampler **out, evmap_error *err);
/* One fill value per channel; one sample. */
evmap_status evmap_sampler_constant(const float *fill, int channels, int window,
                                    evmap_sampler **out, evmap_error *err);
/* tag records the preprocessing and input size the sampler belongs to. */
evmap_status evmap_sampler_save(const evmap_sampler *sampler, const char *tag, const char *path,
                                evmap_error *err);
evmap_status evmap_sampler_load(const char *path, evmap_sampler **out, char *tag, size_t tag_size,
                                evmap_error *err);
void evmap_sampler_free(evmap_sampler *sampler);
int evmap_sampler_window(const evmap_sampler *sampler);
int evmap_sampler_pad(const evmap_sampler *sampler);
/* "conditional", "marginal" or "constant". */
const char *evmap_sampler_kind_name(const evmap_sampler *sampler);

/* ----------------------------------------- Prediction Difference Analysis */

/* Default window for an image: 10 when the shorter side is ≥ 100 px, else
 * max(2, round(side / 7)) (4 for 28×28). */
int evmap_pda_default_window(int height, int width);

typedef struct evmap_pda_options {
    int stride;                   /* window step (default 1) */
    int samples;                  /* S, draws per window (default 10) */
    const evmap_sampler *sampler; /* required; its window is k */
    double laplace_n;             /* Laplace correction with training-set size N; 0: off */
    const int *classes;           /* target classes (n_classes of them) */
    int n_classes;
    const char *target_layer; /* non-NULL: explain the mean activation of this value... */
    int target_channel;       /* ...channel instead of class log-odds */
    int roi[4];               /* x, y, width, height; width 0: the whole image */
    uint64_t seed;
    int batch;                  /* images per forward pass (default 64) */
    int threads;                /* 0: OpenBLAS default */
    evmap_progress_fn progress; /* windows done/total; also polled between operators */
    void *progress_user;
    int no_locality; /* 1: naive PDA, every image through the whole network
                      * (default 0: exact locality, DESIGN.md 1.2; same maps) */
} evmap_pda_options;

void evmap_pda_options_init(evmap_pda_options *options);

typedef struct evmap_explain_stats {
    size_t windows;        /* windows evaluated */
    size_t forward_images; /* images pushed through the network */
    double seconds;
    int locality;       /* 1 when exact locality was used */
    double macs;        /* multiply-adds (Conv, Gemm, MatMul) done */
    double macs_naive;  /* what the naive path does for the same map */
    size_t cache_bytes; /* activation cache of the unperturbed image (locality) */
    int local_steps;    /* steps run on regions (the rest ran in full) */
    int total_steps;
    size_t backward_images; /* images pushed back through the network (gradients) */
    char layer[256];        /* Grad-CAM's layer; the efficient method's split layer */
    size_t coarse_windows;  /* the efficient method's coarse pass (included in windows) */
    size_t grid_positions;  /* the efficient method: window positions in its map (evaluated
                             * or interpolated) */
    int grid_levels;        /* ... and the adaptive grid's levels (1: the coarse lattice) */
    int local_engines;      /* exact locality: windows evaluated side by side, one engine per
                             * thread (1: one at a time, the kernels sharing the threads) */
} evmap_explain_stats;

/* Computes PDA maps for one preprocessed image (C × H × W floats). maps
 * receives one H × W map per target (n_classes maps, or one for a hidden-unit
 * target): weight of evidence in log2 odds (hidden units: activation
 * difference), averaged over the windows covering each pixel; NaN where no
 * window was evaluated. */
evmap_status evmap_pda(const evmap_model *model, const float *input,
                       const evmap_pda_options *options, float *maps, evmap_explain_stats *stats,
                       evmap_error *err);

/* ------------------------------------------------- efficient evidence */

/* The efficient method (DESIGN.md 1.3, docs/efficient.md): PDA whose
 * network above a split layer is replaced by a first-order expansion, with
 * optional adaptive refinement. The expansion is taken around each window's
 * mean activation at the split layer (default: the layers above it run once
 * per window instead of once per sample) or around the unperturbed image
 * (one backward pass per class; nothing above the split runs). */
typedef struct evmap_efficient_options {
    evmap_pda_options pda;               /* everything PDA takes; its sampler's window is k */
    const char *split;                   /* a layer output's name, "input", "output" (exact PDA),
                                          * or NULL / "auto": evmap_efficient_auto_split
                                          * (the input with no_locality) */
    double refine;                       /* Q in (0, 1]: only the fraction Q of k×k windows whose
                                          * coarse |WE| is largest are evaluated; the coarse map
                                          * stands elsewhere. 1: no coarse pass. */
    const evmap_sampler *coarse_sampler; /* the coarse pass's sampler (window K2 > k,
                                          * moved with stride k); needed when Q < 1 */
    int around_image;      /* non-zero: expand around the image (the gradient limit) */
    int grid;              /* adaptive grid (when refine is 1): windows are first evaluated every
                            * grid-th position (in --stride steps), then cells whose corners
                            * differ are halved down to neighbouring positions, and the rest is
                            * interpolated; 1: every position; 0: evmap_efficient_default_grid */
    double grid_threshold; /* halve a cell when its corners' WE differ by more than this
                            * fraction of the coarse lattice's WE range; 0: wherever they
                            * differ; < 0: evmap_efficient_default_grid_threshold */
} evmap_efficient_options;

/* PDA's defaults, split NULL (auto), the default refine, grid 0 and grid
 * threshold -1 (the defaults for the image; docs/efficient.md). */
void evmap_efficient_options_init(evmap_efficient_options *options);

/* The adaptive grid's default coarse step for windows k×k on an image
 * height × width (docs/efficient.md: chosen by measurement). */
int evmap_efficient_default_grid(int height, int width, int k);

/* ... and its default threshold (docs/efficient.md: chosen by measurement). */
double evmap_efficient_default_grid_threshold(int height, int width, int k);

/* The split layer --split auto uses for this model (its value name, or
 * "input" / "output"), written into name. */
evmap_status evmap_efficient_auto_split(const evmap_model *model, char *name, size_t size,
                                        evmap_error *err);

/* Maps as evmap_pda (class targets only). stats->layer receives the split
 * layer used. */
evmap_status evmap_efficient(const evmap_model *model, const float *input,
                             const evmap_efficient_options *options, float *maps,
                             evmap_explain_stats *stats, evmap_error *err);

/* -------------------------------------------------------------- gradients */

/* The scalar f a gradient method differentiates (DESIGN.md 1.3, 1.4). */
typedef enum evmap_score {
    EVMAP_SCORE_LOGODDS = 0, /* log(p_c / (1 − p_c)), natural log (default) */
    EVMAP_SCORE_LOGIT        /* the class's logit (Captum's usual target) */
} evmap_score;

/* Gradient of f for each class with respect to one preprocessed image
 * (C × H × W floats). grads receives n_classes × C × H × W floats; scores
 * (may be NULL) receives f for each class. */
evmap_status evmap_input_gradient(const evmap_model *model, const float *input, evmap_score score,
                                  const int *classes, int n_classes, float *grads, double *scores,
                                  evmap_error *err);

typedef enum evmap_gradient_method {
    EVMAP_GRADIENT_SALIENCY = 0, /* max over channels of |df/dx| (Simonyan et al.) */
    EVMAP_GRADIENT_GRADXINPUT,   /* sum over channels of x · df/dx */
    EVMAP_GRADIENT_IG,           /* Integrated Gradients (Sundararajan et al.) */
    EVMAP_GRADIENT_SMOOTHGRAD,   /* mean saliency over noisy copies (Smilkov et al.) */
    EVMAP_GRADIENT_GRADCAM,      /* Grad-CAM (Selvaraju et al.), upsampled to the input */
    EVMAP_GRADIENT_GUIDED        /* guided backpropagation (Springenberg et al.) */
} evmap_gradient_method;

/* Name as the CLI spells it ("saliency", "gradxinput", "ig", ...). */
const char *evmap_gradient_method_name(evmap_gradient_method method);

typedef enum evmap_baseline {
    EVMAP_BASELINE_ZERO = 0, /* all zeros in model-input space */
    EVMAP_BASELINE_MEAN,     /* the image's channel means */
    EVMAP_BASELINE_BLUR      /* the image under a Gaussian blur (sigma = side / 10) */
} evmap_baseline;

typedef struct evmap_gradient_options {
    evmap_gradient_method method;
    evmap_score score;  /* what is differentiated (default log-odds) */
    const int *classes; /* target classes (n_classes of them) */
    int n_classes;
    const char *target_layer;   /* non-NULL: the mean activation of this value's... */
    int target_channel;         /* ...channel instead of a class score */
    int steps;                  /* IG: Gauss–Legendre nodes on the path, ≤ 10000 (default 50) */
    evmap_baseline baseline;    /* IG (default zero) */
    float noise;                /* SmoothGrad: sigma / (max − min of the image) (default 0.15) */
    int samples;                /* SmoothGrad: noisy copies (default 50) */
    uint64_t seed;              /* SmoothGrad noise */
    const char *layer;          /* Grad-CAM: a 4-D layer output; NULL: the last convolution's
                                 * (after its activation when one directly follows) */
    int batch;                  /* images per pass for IG and SmoothGrad (default 16) */
    int threads;                /* 0: OpenBLAS default */
    evmap_progress_fn progress; /* backward passes done/total */
    void *progress_user;
} evmap_gradient_options;

void evmap_gradient_options_init(evmap_gradient_options *options);

/* Computes one H × W map per target for one preprocessed image (C × H × W
 * floats): saliency and SmoothGrad ≥ 0; Grad-CAM ≥ 0 (ReLU of the weighted
 * feature maps, bilinearly upsampled); gradient × input, IG and guided
 * backpropagation signed, summed over channels (IG's map sums to
 * f(x) − f(baseline) up to the path's discretisation). */
evmap_status evmap_gradient_map(const evmap_model *model, const float *input,
                                const evmap_gradient_options *options, float *maps,
                                evmap_explain_stats *stats, evmap_error *err);

/* ------------------------------------------------------- maps and output */

/* Writes a height × width float32 array as a NumPy .npy file (version 1.0,
 * little-endian '<f4', C order). Written to a temporary file in the same
 * folder and renamed, so a failure never leaves a partial file. */
evmap_status evmap_write_npy(const char *path, const float *values, int height, int width,
                             evmap_error *err);

typedef struct evmap_render_options {
    float vmax;       /* colour scale is [-vmax, vmax]; <= 0: the map's max |value| */
    int side_by_side; /* non-zero: the original image left of the overlay */
    int scale;        /* integer upscaling of small maps; 0: automatic (≥ 256 px) */
    int colorbar;     /* non-zero: a small colour bar with its ±vmax scale */
} evmap_render_options;

void evmap_render_options_init(evmap_render_options *options);

/* Renders an evidence map over a gray copy of the image as an RGB PNG: a
 * diverging colormap symmetric around 0 (red = evidence for, blue = against,
 * white/transparent near 0); NaN cells show the gray image only. background
 * is the image at the map's resolution (channels 1 or 3, values in [0,1]).
 * vmax_used (may be NULL) receives the scale applied. Written atomically. */
evmap_status evmap_render_png(const char *path, const evmap_image *background, const float *map,
                              int height, int width, const evmap_render_options *options,
                              float *vmax_used, evmap_error *err);

/* Writes an image (channels 1 or 3, values in [0,1], clamped) as an 8-bit
 * RGB PNG, atomically: the model input as a picture. */
evmap_status evmap_write_image_png(const char *path, const evmap_image *image, evmap_error *err);

/* -------------------------------------------------------------- evaluation */

/*
 * Metrics that judge evidence maps (DESIGN.md 4; docs/evaluate.md): deletion
 * and insertion curves (Petsiuk et al.), AOPC (Samek et al.) and
 * max-sensitivity (Yeh et al.). Pure functions on arrays: they build the
 * perturbed images and reduce the probabilities; the caller runs the model.
 * Maps are height × width floats; images channels × height × width floats in
 * model-input space.
 */

/* Deletion and insertion order: the pixel indices y·width + x by descending
 * map value; equal values keep raster order and NaN comes last. order
 * receives height·width ints. */
evmap_status evmap_eval_pixel_order(const float *map, int height, int width, int *order,
                                    evmap_error *err);

/* Pixels changed after step t (0 ≤ t ≤ steps) of a curve over n pixels:
 * floor(t·n / steps), so step 0 changes none and step steps all. */
size_t evmap_eval_step_pixels(size_t n, int steps, int t);

/* out = image with the first count pixels of order (every channel) taken
 * from fill. Deletion passes the image and the fill image; insertion the two
 * swapped. out must not overlap image or fill. */
void evmap_eval_replace(const float *image, const float *fill, int channels, int height, int width,
                        const int *order, size_t count, float *out);

/* Area under the polyline (x[i], y[i]) by the trapezoid rule, x ascending. */
double evmap_eval_auc(const double *x, const double *y, int points);

/* AOPC regions: the map tiled by k×k squares from the top-left corner
 * (squares at the right and bottom edges are cut when k does not divide the
 * side). Their number: ceil(height/k)·ceil(width/k). */
int evmap_eval_region_count(int height, int width, int k);

/* Ranks the regions by the sum of their finite map values (descending;
 * regions without a finite value last; ties in raster order) and lists
 * their pixels region after region in order (height·width ints);
 * region_end[r] receives the number of pixels in regions 0..r of the
 * ranking (evmap_eval_region_count entries). */
evmap_status evmap_eval_region_order(const float *map, int height, int width, int k, int *order,
                                     size_t *region_end, evmap_error *err);

/* AOPC of one image: (1/L) Σ_{l=1..L} (p0 − p[l−1]), where p0 is the class's
 * probability for the image and p[l−1] after removing the l best regions.
 * (Samek et al. divide by L + 1, counting the zero term l = 0.) */
double evmap_eval_aopc(double p0, const double *p, int regions);

/* What removed pixels become: EVMAP_BASELINE_ZERO (zeros), EVMAP_BASELINE_MEAN
 * (the image's channel means) or EVMAP_BASELINE_BLUR (a Gaussian blur,
 * sigma = longer side / 10, edges replicated). */
evmap_status evmap_eval_fill(const float *image, int channels, int height, int width,
                             evmap_baseline kind, float *out, evmap_error *err);

/* out[i] = image[i] + u_i, u_i uniform in [−radius, radius], reproducible for
 * a seed. out may equal image. */
void evmap_eval_uniform_noise(const float *image, size_t n, float radius, uint64_t seed,
                              float *out);

/* ‖a/‖a‖ − b/‖b‖‖ (L2 norms over n values, NaN counted as 0), in [0, 2]; NaN
 * when either map is all zero. Max-sensitivity is its maximum over the maps
 * of noisy copies b of the image whose map is a. */
double evmap_eval_map_distance(const float *a, const float *b, size_t n);

/* Localisation against the object's mask (non-zero = object). Where pixels
 * tie (at the maximum or at a top-K cut) each counts in proportion, the
 * expectation over random tie-breaking; NaN map values rank last. */
typedef struct evmap_localisation {
    double pointing; /* pointing game: share of the map's maximal pixels that lie
                        within `tolerance` px of the mask (1 or 0 without ties);
                        NaN when the map has no number */
    double mass;     /* relevance-mass accuracy: positive evidence inside the mask
                        / all positive evidence; NaN when there is none */
    double rank;     /* relevance-rank accuracy: share of the |mask| highest
                        pixels inside the mask */
    double iou;      /* IoU of the top_fraction highest pixels with the mask */
    /* What a constant map scores (the uniform baseline): */
    double area;             /* mask pixels / all pixels: mass and rank */
    double pointing_uniform; /* pixels within tolerance of the mask / all */
    double iou_uniform;      /* q·a / (q + a − q·a), q the top fraction */
} evmap_localisation;

/* The four localisation metrics of one height × width map. tolerance: the
 * pointing game's dilation radius in pixels (Euclidean; Zhang et al. use 15
 * at 224²); top_fraction in (0, 1]: the share of pixels (rounded, at least
 * one) whose IoU with the mask is taken. An empty mask is an error. */
evmap_status evmap_eval_localisation(const float *map, const unsigned char *mask, int height,
                                     int width, int tolerance, double top_fraction,
                                     evmap_localisation *out, evmap_error *err);

/* ------------------------------------------------------------ line plots */

typedef struct evmap_plot_series {
    const char *name; /* legend text */
    const double *x;  /* points values; non-finite points break the line */
    const double *y;
    int points;
} evmap_plot_series;

typedef struct evmap_plot {
    const char *title;   /* above the plot; may be NULL */
    const char *x_label; /* under the x axis */
    const char *y_label; /* above the y axis */
    double x_min, x_max; /* axis ranges; min == max: from the data */
    double y_min, y_max;
    const evmap_plot_series *series;
    int n_series; /* up to 32; colours repeat dashed after the first 10 */
    int width;    /* pixels; 0: 760 × 440 */
    int height;
} evmap_plot;

void evmap_plot_init(evmap_plot *plot);

/* Draws the series as lines over axes with ticks, grid, labels and a legend
 * right of the plot, and writes an RGB PNG atomically. Text is ASCII. */
evmap_status evmap_plot_png(const char *path, const evmap_plot *plot, evmap_error *err);

#ifdef __cplusplus
}
#endif

#endif /* EVMAP_H */
