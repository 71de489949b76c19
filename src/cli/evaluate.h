/* evmap evaluate: options, state and steps shared by evaluate*.c. */
#ifndef EVM_CLI_EVALUATE_H
#define EVM_CLI_EVALUATE_H

#include <stdint.h>

#include "cli.h"
#include "methods.h"

#define EVAL_MAX_METHODS 32
#define EVAL_MAX_REFERENCE_IMAGES 2000

enum {
    METRIC_DELETION = 1 << 0,
    METRIC_INSERTION = 1 << 1,
    METRIC_AOPC = 1 << 2,
    METRIC_SENSITIVITY = 1 << 3,
    METRIC_TIME = 1 << 4,
    METRIC_LOCALISATION = 1 << 5, /* needs --masks */
    METRIC_ALL = (1 << 6) - 1,
};

typedef struct eval_options {
    const char *model_path;
    char **data; /* --data sources and positional arguments */
    int n_data;
    const char *labels_idx;  /* true labels (IDX) */
    const char *labels_path; /* class names */
    size_t limit;            /* 0: every image */
    const method_info *methods[EVAL_MAX_METHODS];
    int n_methods;
    bool sensitivity_for[EVAL_MAX_METHODS]; /* per entry of methods */
    bool sensitivity_methods_given;
    char sensitivity_list[512]; /* --sensitivity-methods as typed */
    unsigned metrics;           /* METRIC_* */
    int steps;                  /* deletion/insertion steps */
    evmap_baseline fill;
    int aopc_window;          /* 0: PDA's default window for the input size */
    int aopc_regions;         /* 0: 10 % of the regions */
    float sensitivity_radius; /* fraction of the image's value range */
    int sensitivity_samples;
    bool explain_label;     /* explain the true label instead of the top-1 class */
    const char *masks;      /* --masks: object masks for localisation */
    int pointing_tolerance; /* px; -1: 15 at 224, scaled to the input */
    double iou_top;         /* fraction of pixels whose IoU with the mask is taken */
    bool metrics_given;
    const char *out_dir;
    method_options mo; /* the methods' options, PDA's sampler among them */
    cli_input_options input;
    bool quiet;
    bool report;       /* --report: write --out/report.html at the end */
    int shard, shards; /* --shard I/N: images i with i % N == I (default 0/1) */
    char **argv;       /* the command line, for the JSON */
    int argc;
} eval_options;

/* Per method: curves and numbers for every image (NaN where not computed). */
typedef struct eval_method_result {
    double *deletion;   /* n_images × points */
    double *insertion;  /* n_images × points */
    double *aopc_curve; /* n_images × aopc_l */
    double *deletion_auc, *insertion_auc, *aopc, *sensitivity, *seconds;
    double *pointing, *mass, *rank, *iou; /* localisation */
} eval_method_result;

typedef struct eval_image {
    int label; /* -1 without --labels-idx */
    int predicted;
    int cls;  /* the class explained */
    double p; /* p(cls | image) */
    /* a constant map's localisation scores (with --masks) */
    double area, pointing_uniform, iou_uniform;
    bool evaluated; /* this run (or shard) has its results */
} eval_image;

typedef struct eval_state {
    evmap_model *model;
    evmap_model_info info;
    evmap_runner *runner;
    int batch; /* the runner's batch */
    evmap_image_set *set;
    size_t n_images; /* to evaluate (limit applied) */
    size_t done;     /* finished images */
    uint8_t *labels;
    size_t n_labels;
    cli_labels names;
    evmap_sampler *sampler;
    char sampler_source[1024];
    int points; /* steps + 1 */
    double *x;  /* fraction of pixels changed at each point */
    int aopc_k, n_regions, aopc_l;
    /* one image's scratch */
    float *input, *fill, *noisy, *map, *noisy_map, *batch_images, *probs;
    int *order;
    size_t *region_end;
    size_t *counts;
    eval_image *images;
    /* --masks */
    evmap_image_set *masks;
    size_t *mask_of;     /* per image: its mask's index in masks */
    unsigned char *mask; /* the current image's mask at the input size */
    float *mask_floats;  /* scratch */
    int tolerance;       /* pointing game, px */
    eval_method_result results[EVAL_MAX_METHODS];
    double seconds; /* the whole evaluation */
} eval_state;

/* evaluate_run.c */
evmap_status eval_open(const eval_options *o, eval_state *s, evmap_error *err);
/* Loads or fits PDA's sampler when a method needs one (after --out exists). */
evmap_status eval_prepare_sampler(const eval_options *o, eval_state *s, evmap_error *err);
evmap_status eval_image_run(const eval_options *o, eval_state *s, size_t index, evmap_error *err);
void eval_state_free(eval_state *s);

/* evaluate_masks.c */
evmap_status eval_open_masks(const eval_options *o, eval_state *s, evmap_error *err);
evmap_status eval_load_mask(const eval_options *o, eval_state *s, size_t index, evmap_error *err);

/* evaluate_output.c: mean ± standard error over the finished images. */
typedef struct eval_summary {
    double mean, se;
    size_t n; /* images with a value */
} eval_summary;

eval_summary eval_summarise(const double *values, size_t n, size_t stride);
void eval_print_table(const eval_options *o, const eval_state *s, FILE *f);
evmap_status eval_write_outputs(const eval_options *o, const eval_state *s, evmap_error *err);
/* A shard's results, OUT/evaluate.part-I-of-N.json: its images' per-image
 * entries under their indices in the whole run, for --merge. */
evmap_status eval_write_part(const eval_options *o, const eval_state *s, evmap_error *err);

/* evaluate_merge.c: evmap evaluate --merge DIR. */
typedef struct eval_parts eval_parts;
/* Reads every DIR/evaluate.part-I-of-N.json; refuses missing shards, parts
 * of different commands or shard counts. */
evmap_status eval_parts_read(const char *dir, eval_parts **out, evmap_error *err);
/* The parts' command line (without "evmap" and --shard), for the options. */
void eval_parts_command(const eval_parts *p, int *argc, char ***argv);
/* Fills s (opened from that command) with every part's per-image results. */
evmap_status eval_parts_fill(const eval_parts *p, const eval_options *o, eval_state *s,
                             evmap_error *err);
void eval_parts_free(eval_parts *p);

#endif
