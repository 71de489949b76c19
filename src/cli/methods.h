/*
 * Evidence-map methods by name: one table that maps a method's name, the
 * options it takes and the options shared by every command to a call into
 * the library, so that explain and evaluate compute maps the same way. A new
 * method is one entry in methods.c plus, when it needs them, fields in
 * method_options and rows in method_options.c's option table.
 */
#ifndef EVM_CLI_METHODS_H
#define EVM_CLI_METHODS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evmap.h"

/* method_info.flags */
enum {
    METHOD_NEEDS_SAMPLER = 1 << 0, /* method_options.sampler must be a fitted sampler */
    METHOD_EXPENSIVE = 1 << 1,     /* seconds per map: skipped by default where many maps
                                    * are needed (evaluate's max-sensitivity) */
    METHOD_WINDOWS = 1 << 2,       /* works on k x k windows (window, stride apply) */
    METHOD_GRADIENT = 1 << 3,      /* the gradient family (method_info.gradient applies) */
    METHOD_EVALUATE_ONLY = 1 << 4, /* a baseline for evaluate, not a map worth drawing */
};

/* Groups of method options (method_info.options): explain refuses an option
 * of a group the method does not take. The order is that of the names in
 * method_option_groups_check's message. */
enum {
    MOPT_SAMPLING = 1 << 0,  /* --sampler, --sampler-file, --reference, --pad, --patches,
                              * --joint-channels */
    MOPT_WINDOWS = 1 << 1,   /* --window, --stride, --roi, --laplace-n, --no-laplace,
                              * --no-locality, --fill */
    MOPT_SAMPLES = 1 << 2,   /* --samples */
    MOPT_SCORE = 1 << 3,     /* --score */
    MOPT_STEPS = 1 << 4,     /* --steps, --baseline */
    MOPT_NOISE = 1 << 5,     /* --noise */
    MOPT_LAYER = 1 << 6,     /* --layer */
    MOPT_EFFICIENT = 1 << 7, /* --split, --expand, --grid, --grid-threshold, --refine,
                              * --coarse-window, --coarse-sampler-file */
};

typedef struct method_options {
    /* PDA and efficient */
    const evmap_sampler *sampler; /* conditional sampler; its window is PDA's k */
    int pda_samples;              /* S (default 10) */
    int stride;                   /* windows (default 1) */
    double laplace_n;             /* 0: no Laplace correction (default 100000) */
    bool no_laplace;              /* --no-laplace was given (explain: it wins over --laplace-n) */
    bool no_locality;
    int roi[4]; /* x, y, w, h; w = 0: every window */
    /* efficient */
    const evmap_sampler *coarse_sampler; /* window K2 when refine < 1 */
    const char *split;                   /* NULL: auto */
    double refine;                       /* Q (default 1: no coarse pass) */
    int coarse_window;                   /* K2; 0: 2k */
    int grid;                            /* adaptive grid's coarse step; 0: the default */
    double grid_threshold;               /* its threshold */
    bool around_image;
    const char *coarse_sampler_file;
    /* occlusion */
    int window;               /* 0: evmap_pda_default_window */
    evmap_baseline occlusion; /* ZERO or MEAN; with occlusion_value_given a number */
    float occlusion_value;    /* fill in model-input units */
    bool occlusion_value_given;
    char fill[32]; /* the last fill as typed (zero, mean or the number) */
    /* gradient family */
    evmap_score score;
    int ig_steps;
    evmap_baseline ig_baseline;
    float smoothgrad_noise;
    int smoothgrad_samples;
    const char *gradcam_layer; /* NULL: the last convolution */
    /* where the sampler comes from (the commands load or fit it) */
    const char *sampler_file;
    char **references; /* --reference sources (the caller's array, argc long) */
    int n_references;
    char sampler_kind[16]; /* explain's --sampler: conditional, marginal or constant */
    int pad;
    bool pad_given;
    size_t patches;
    bool joint_channels;
    /* every method */
    const char *target_layer; /* NULL: the classes; else a hidden unit's layer */
    int target_channel;
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
    unsigned options;    /* MOPT_* groups it takes */
    const char *unit;    /* what its progress counts: "windows" or "passes" */
    int gradient;        /* evmap_gradient_method for the gradient family */
    method_fn run;
};

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

/* Method options on the command line (method_options.c). */

/* The commands that parse method options; each spells some of them its own way. */
typedef enum { METHOD_CMD_EXPLAIN, METHOD_CMD_EVALUATE } method_command;

/* `references` is the caller's array for --reference (argc entries). */
void method_options_init(method_options *o, char **references);

/* Recognises a method option taking a value: a at argv[i], v at argv[i + 1].
 * Returns 1 when consumed, 0 when not a method option of cmd, EXIT_USAGE
 * on a bad value (message printed). *given collects its MOPT_* group. */
int method_option_parse(method_command cmd, const char *a, const char *v, method_options *o,
                        unsigned *given);

/* The same for a flag (--no-laplace, ...): 1 when consumed, else 0. */
int method_flag_parse(method_command cmd, const char *a, method_options *o, unsigned *given);

/* EXIT_OK, or EXIT_USAGE after "--method M does not take ..." when given
 * holds groups m does not take. */
int method_option_groups_check(const char *command, const method_info *m, unsigned given);

#endif
