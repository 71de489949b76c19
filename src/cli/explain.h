/* evmap explain: options, state and steps shared by explain*.c. */
#ifndef EVM_CLI_EXPLAIN_H
#define EVM_CLI_EXPLAIN_H

#include <stdint.h>

#include "cli.h"

#define EXPLAIN_MAX_CLASSES 1024
#define EXPLAIN_MAX_REFERENCE_IMAGES 2000

/* Options that only some methods take (explain_options.given). */
enum {
    GIVEN_PDA_SAMPLING = 1 << 0, /* --sampler, --sampler-file, --reference, --pad, --patches,
                                  * --joint-channels */
    GIVEN_WINDOWS = 1 << 1,      /* --window, --stride, --roi, --laplace-n, --no-laplace,
                                  * --no-locality, --fill */
    GIVEN_SAMPLES = 1 << 2,      /* --samples */
    GIVEN_GRADIENT = 1 << 3,     /* --score */
    GIVEN_STEPS = 1 << 4,        /* --steps, --baseline */
    GIVEN_NOISE = 1 << 5,        /* --noise */
    GIVEN_LAYER = 1 << 6,        /* --layer */
    GIVEN_EFFICIENT = 1 << 7,    /* --split, --expand, --refine, --coarse-window,
                                  * --coarse-sampler-file */
};

typedef struct explain_options {
    const char *model_path;
    char method[16]; /* pda, occlusion or a gradient method's name */
    bool gradient;   /* method is one of the gradient family */
    evmap_gradient_method gradient_method;
    evmap_score score;
    int steps;
    evmap_baseline baseline;
    float noise;
    char layer[256];   /* Grad-CAM; empty: the default */
    char split[256];   /* efficient: split layer, input, output or auto */
    double refine;     /* efficient: Q */
    int coarse_window; /* efficient: K2; 0: 2k */
    bool around_image; /* efficient: --expand image */
    const char *coarse_sampler_file;
    unsigned given; /* GIVEN_* */
    const char *out_dir;
    const char *labels_path;
    const char *sampler_file;
    char sampler[16];  /* conditional, marginal or constant */
    char **references; /* --reference sources */
    int n_references;
    char **images;
    int n_images;
    cli_input_options input;
    int classes[EXPLAIN_MAX_CLASSES];
    int n_classes;
    int top;                /* 0: not given */
    char target_layer[256]; /* empty: class targets */
    int target_channel;
    int window; /* 0: default for the input size */
    int pad;
    bool pad_given;
    int samples;
    int stride;
    size_t patches;
    bool joint_channels;
    char fill[32]; /* zero, mean or the number as typed */
    float fill_value;
    float laplace_n;
    bool no_laplace;
    bool no_locality; /* naive PDA: every sample through the whole network */
    int roi[4];
    uint64_t seed;
    float vmax; /* 0: per map */
    bool side_by_side;
    int batch;
    int threads;
    bool quiet;
} explain_options;

typedef struct explain_state {
    evmap_model *model;
    evmap_model_info info;
    evmap_runner *classifier; /* batch 1, for the probabilities */
    evmap_image_set *set;
    cli_labels labels;
    evmap_sampler *sampler;        /* NULL for constant fill=mean (made per image) */
    evmap_sampler *coarse_sampler; /* efficient with refine < 1 (NULL for fill=mean) */
    char sampler_source[1024];     /* where the sampler came from, for the JSON */
    int window;
    float *input; /* C × H × W */
    float *probs; /* num_classes */
    float *maps;  /* targets × H × W */
} explain_state;

evmap_status explain_open(const explain_options *o, explain_state *s, evmap_error *err);
evmap_status explain_prepare_sampler(const explain_options *o, explain_state *s, evmap_error *err);
evmap_status explain_image(const explain_options *o, explain_state *s, size_t index,
                           evmap_error *err);
void explain_state_free(explain_state *s);

/* Maps of a gradient method for the image in s->input (explain_gradient.c). */
evmap_status explain_gradient_maps(const explain_options *o, explain_state *s, const int *targets,
                                   int n_targets, cli_progress *progress,
                                   evmap_explain_stats *stats, evmap_error *err);

/* Writing results (explain_output.c). */
typedef struct explain_result {
    const char *stem;
    const char *image_path;
    const int *targets; /* class indices (unused for a hidden target) */
    int n_targets;
    const float *vmax_used; /* per target */
    const evmap_explain_stats *stats;
    const char *sampler_kind; /* PDA and occlusion */
    int samples_used;
} explain_result;

evmap_status explain_write_maps(const explain_options *o, const explain_state *s,
                                const explain_result *r, float *vmax_used, evmap_error *err);
evmap_status explain_write_json(const explain_options *o, const explain_state *s,
                                const explain_result *r, evmap_error *err);

#endif
