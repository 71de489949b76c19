/*
 * Evidence-map methods by name: one table that maps a method's name and the
 * options shared by every command to a call into the library, so that
 * evaluate (and explain, later) compute maps the same way. A new method is
 * one entry in methods.c plus, when it needs them, fields in method_options.
 */
#ifndef EVM_CLI_METHODS_H
#define EVM_CLI_METHODS_H

#include <stdbool.h>
#include <stdint.h>

#include "evmap.h"

/* method_info.flags */
enum {
    METHOD_NEEDS_SAMPLER = 1 << 0, /* method_options.sampler must be a fitted sampler */
    METHOD_EXPENSIVE = 1 << 1,     /* seconds per map: skipped by default where many maps
                                    * are needed (evaluate's max-sensitivity) */
    METHOD_WINDOWS = 1 << 2,       /* works on k x k windows (window, stride apply) */
};

typedef struct method_options {
    /* PDA */
    const evmap_sampler *sampler; /* conditional sampler; its window is PDA's k */
    int pda_samples;              /* S (default 10) */
    int stride;                   /* windows (default 1) */
    double laplace_n;             /* 0: no Laplace correction (default 100000) */
    bool no_locality;
    /* occlusion */
    int window;               /* 0: evmap_pda_default_window */
    evmap_baseline occlusion; /* ZERO or MEAN; with occlusion_value_given a number */
    float occlusion_value;    /* fill in model-input units */
    bool occlusion_value_given;
    /* gradient family */
    evmap_score score;
    int ig_steps;
    evmap_baseline ig_baseline;
    float smoothgrad_noise;
    int smoothgrad_samples;
    const char *gradcam_layer; /* NULL: the last convolution */
    /* every method */
    uint64_t seed;
    int batch;   /* images per pass; 0: the method's default */
    int threads; /* 0: OpenBLAS default */
    evmap_progress_fn progress;
    void *progress_user;
} method_options;

typedef struct method_info method_info;

/* Computes one H x W map per class for one preprocessed image. */
typedef evmap_status (*method_fn)(const method_info *m, const method_options *o,
                                  const evmap_model *model, const float *input, const int *classes,
                                  int n_classes, float *maps, evmap_explain_stats *stats,
                                  evmap_error *err);

struct method_info {
    const char *name;    /* as typed on the command line */
    const char *summary; /* one line for help texts */
    unsigned flags;      /* METHOD_* */
    int gradient;        /* evmap_gradient_method for the gradient family */
    method_fn run;
};

void method_options_init(method_options *o);

/* The method called name, or NULL. */
const method_info *method_find(const char *name);

/* Every method, in the order help texts list them. */
const method_info *method_table(int *count);

/* "pda, occlusion, saliency, ..." for error messages. */
const char *method_names(void);

/* Runs m (a convenience for m->run(m, ...)). */
evmap_status method_map(const method_info *m, const method_options *o, const evmap_model *model,
                        const float *input, const int *classes, int n_classes, float *maps,
                        evmap_explain_stats *stats, evmap_error *err);

#endif
