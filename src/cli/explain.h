/* evmap explain: options, state and steps shared by explain*.c. */
#ifndef EVM_CLI_EXPLAIN_H
#define EVM_CLI_EXPLAIN_H

#include <stdint.h>

#include "cli.h"
#include "methods.h"

#define EXPLAIN_MAX_CLASSES 1024
#define EXPLAIN_MAX_REFERENCE_IMAGES 2000

typedef struct explain_options {
    const char *model_path;
    const method_info *info; /* the method */
    char method[16];         /* its name, as typed */
    bool gradient;           /* the method is one of the gradient family */
    evmap_gradient_method gradient_method;
    method_options mo; /* the method's options (methods.h) */
    unsigned given;    /* MOPT_* groups of the options given */
    const char *out_dir;
    const char *labels_path;
    char **images;
    int n_images;
    cli_input_options input;
    int classes[EXPLAIN_MAX_CLASSES];
    int n_classes;
    int top;                /* 0: not given */
    int shard, shards;      /* --shard I/N: images i with i % N == I (default 0/1) */
    char target_layer[256]; /* empty: class targets */
    int target_channel;
    float vmax; /* 0: per map */
    bool side_by_side;
    bool quiet;
    bool resume; /* skip images whose outputs are complete (explain_resume.c) */
    bool report; /* --report: write --out/report.html at the end */
    /* The options that shape the outputs, as given (NUL-separated): part of
     * the run key that --resume compares. */
    char settings[8192];
    size_t settings_len;
    bool settings_overflow; /* too long to record: --resume redoes everything */
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
    int max_targets;
    bool size_refused;  /* the last image failed only for its size (the run goes on) */
    uint64_t run_key;   /* model, sampler and label files and settings (explain_resume.c) */
    uint64_t input_key; /* the current image's model input */
    bool resumed;       /* the current image's outputs were complete: skipped */
    int index_fd;       /* this shard's index part (-1: none) */
} explain_state;

evmap_status explain_open(const explain_options *o, explain_state *s, evmap_error *err);
evmap_status explain_prepare_sampler(const explain_options *o, explain_state *s, evmap_error *err);
evmap_status explain_image(const explain_options *o, explain_state *s, size_t index,
                           evmap_error *err);
void explain_state_free(explain_state *s);

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

/* --resume and the index parts (explain_resume.c). */
/* The run key from the settings and the files they name. */
evmap_status explain_resume_open(const explain_options *o, explain_state *s, evmap_error *err);
/* Hashes s->input (the image as the model sees it) into s->input_key. */
void explain_resume_input(explain_state *s);
/* Whether the image's JSON records this run and input and its files are
 * intact. */
bool explain_resume_complete(const explain_options *o, const explain_state *s, const char *stem);
/* Removes the temporary files that a killed run left for this shard's
 * images (a run's own are always removed or renamed). */
void explain_resume_clean(const explain_options *o, const explain_state *s, size_t n_images);
/* The "resume" member of the image's JSON: the keys and each output file's
 * (names relative to --out) size and CRC-32. */
struct json_writer;
evmap_status explain_resume_write(struct json_writer *j, const explain_options *o,
                                  const explain_state *s, const char *const *files, int n_files,
                                  evmap_error *err);
/* This shard's index part: a header line, then one line per image. */
evmap_status explain_index_open(const explain_options *o, explain_state *s, size_t n_images,
                                evmap_error *err);
void explain_index_record(const explain_options *o, const explain_state *s, size_t index,
                          const char *status, const char *error);
void explain_index_close(explain_state *s);

#endif
