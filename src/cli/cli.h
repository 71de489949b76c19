/*
 * Shared pieces of the evmap command line: exit codes, error reporting,
 * option parsing helpers, labels and image loading into model inputs.
 * Only the CLI prints or exits; the library returns errors.
 */
#ifndef EVM_CLI_H
#define EVM_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evmap.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* Prints "evmap: message" and returns the exit code for the error's status. */
int cli_report(const evmap_error *err);

/* Sets err (status and formatted message) and returns the status. */
evmap_status cli_fail(evmap_error *err, evmap_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prints "evmap <command>: message" plus a hint to --help; returns EXIT_USAGE. */
int cli_usage_error(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A whole file's bytes, malloc'd (NULL when it cannot be read or holds more
 * than max bytes); *n receives the size. */
unsigned char *cli_read_file(const char *path, size_t max, size_t *n);
/* --shard I/N: 0 <= I < N <= max_shards; false when v is not that. */
bool cli_parse_shard(const char *v, int max_shards, int *shard, int *shards);

/* Strict number parsing: the whole string must be a number in [min, max]. */
bool cli_parse_int(const char *s, long min, long max, long *out);
bool cli_parse_float(const char *s, float *out);
/* Parses exactly n integers in [min, max] (max <= INT_MAX) separated by sep,
 * e.g. "224x224" or "4,6,14,12". */
bool cli_parse_int_list(const char *s, char sep, long min, long max, int *out, int n);
/* Parses "a,b,c" into exactly n floats. */
bool cli_parse_floats(const char *s, float *out, int n);
/* A memory size: bytes, or a number with K, M, G or T (powers of 1024,
 * optionally followed by "iB" or "B"); "0" and "none" give 0 (no limit). */
bool cli_parse_memory(const char *s, uint64_t *out);
/* The help line of --max-memory, shared by every command. */
#define CLI_MAX_MEMORY_HELP                                                                        \
    "  --max-memory SIZE     refuse models and images that would need more memory\n"               \
    "                        (e.g. 8G, 512M; default: this machine's memory less 1G; 0: none)\n"
/* The help line of --layout, shared by the commands that load models. */
#define CLI_LAYOUT_HELP                                                                            \
    "  --layout L            the model's input layout: auto (default; NHWC when the\n"             \
    "                        input is N×H×W×1 or N×H×W×3), nchw or nhwc\n"

/* Class labels, one per line. */
typedef struct cli_labels {
    char **names;
    int count;
} cli_labels;

evmap_status cli_labels_load(const char *path, cli_labels *labels, evmap_error *err);
void cli_labels_free(cli_labels *labels);
/* The label of class c, or "" when there are no labels. */
const char *cli_label(const cli_labels *labels, int c);

/* Options shared by commands that read images into a model. */
typedef struct cli_input_options {
    evmap_preprocess preprocess;
    bool have_mean, have_std, have_size, have_max_memory;
    uint64_t max_memory; /* --max-memory in bytes; 0: no limit */
    evmap_layout layout; /* --layout (default auto) */
} cli_input_options;

/* Recognises --preprocess/--mean/--std/--size/--max-memory/--layout at argv[*i] (advancing *i).
 * Returns 1 when consumed, 0 when not one of these, -1 on a bad value
 * (message printed). */
int cli_parse_input_option(const char *command, int argc, char **argv, int *i,
                           cli_input_options *opt);
/* Finalises the preprocess settings after parsing (custom mean/std/size)
 * and the memory limit (default: evmap_default_memory_limit()). */
void cli_input_finish(cli_input_options *opt);

/* Loads a model with the options' memory limit and layout. */
evmap_status cli_load_model(const char *path, const cli_input_options *opt, evmap_model **out,
                            evmap_error *err);

/* The preprocessing (out) and size an image runs at with a model: the
 * model's size when fixed; for a free side, the size the preprocessing gives
 * the image, where a fixed other side and no --size resize the image to that
 * side keeping its aspect ratio (docs/models.md). */
evmap_status cli_image_geometry(const evmap_model_info *info, const evmap_image *img,
                                const evmap_preprocess *pre, evmap_preprocess *out, int *width,
                                int *height, evmap_error *err);
/* Loads image index of set (*img, freed by the caller even on failure) and
 * its geometry for the model (cli_image_geometry). */
evmap_status cli_load_image(const evmap_image_set *set, size_t index, const evmap_model_info *info,
                            const evmap_preprocess *pre, evmap_image **img, evmap_preprocess *out,
                            int *width, int *height, evmap_error *err);
/* A model with a free side: sets it (and info) to the size image index of
 * set runs at. Nothing for a fixed model. */
evmap_status cli_size_to_image(evmap_model *model, evmap_model_info *info,
                               const evmap_image_set *set, size_t index,
                               const evmap_preprocess *pre, evmap_error *err);
/* Loads image index of set and preprocesses it for the model at its current
 * size into out (a model with a free side: resized to that size). */
evmap_status cli_load_input(const evmap_image_set *set, size_t index, const evmap_preprocess *pre,
                            const evmap_model_info *info, float *out, evmap_error *err);

/* Loads up to limit images from sources (files, folders, IDX) into one
 * n × C × H × W stack in the shape of the model input (references.c). */
evmap_status cli_load_stack(char **sources, int n_sources, size_t limit,
                            const cli_input_options *input, const evmap_model_info *shape,
                            float **out, size_t *count, evmap_error *err);
/* "preprocess=none input=1x28x28": what a fitted sampler belongs to. */
void cli_preprocess_tag(const evmap_preprocess *p, const evmap_model_info *shape, char *buf,
                        size_t size);

/* Creates the output folder dir unless it exists; fails if it is a file. */
evmap_status cli_make_out_dir(const char *dir, evmap_error *err);

/* Progress reporting and Ctrl-C (progress.c). */
/* Monotonic seconds, for timings. */
double cli_seconds(void);
typedef struct cli_progress {
    const char *what; /* e.g. the image name */
    const char *unit; /* e.g. "windows" */
    bool quiet;
    bool tty;     /* redraw one line in place */
    double start; /* seconds, monotonic */
    double last_draw;
    int last_decile; /* non-terminal output: last 10 % step printed */
} cli_progress;

void cli_install_interrupt_handler(void);
bool cli_interrupted(void);
void cli_progress_start(cli_progress *p, const char *what, const char *unit, bool quiet);
/* An evmap_progress_fn: returns non-zero after Ctrl-C. */
int cli_progress_update(void *user, size_t done, size_t total);
/* Ends a bar that stopped before 100 %. */
void cli_progress_abandon(cli_progress *p);

/* Re-executes with a better OPENBLAS_CORETYPE when OpenBLAS misdetected the CPU. */
void cli_tune_blas(char **argv);

/* Subcommands. */
int cmd_classify(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_fit_sampler(int argc, char **argv);
int cmd_evaluate(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_report(int argc, char **argv);

#endif
