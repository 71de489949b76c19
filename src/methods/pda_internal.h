/* State of one PDA run (private to pda.c; shared with tests of its pieces). */
#ifndef EVM_PDA_INTERNAL_H
#define EVM_PDA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/model_internal.h"
#include "engine/plan_local.h"
#include "base/rng.h"
#include "evmap.h"

#define PDA_MAX_TARGETS 1024

typedef struct pda_window {
    int y, x; /* top-left corner */
} pda_window;

/* The efficient method's changes to a PDA run (efficient.c; DESIGN.md 1.3). */
typedef struct pda_extension {
    /* Split layer: the network above this value is replaced by its
     * first-order expansion of each target's log-odds around the
     * unperturbed image (-1: none, exact PDA). */
    int split_value;
    /* Expand around each window's mean activation at the split layer
     * instead of around the image: the layers above it then run once per
     * window, on the mean of the samples' activations (no gradients). */
    bool around_window;
    /* Per window of the full list: evaluate it (NULL: every window). */
    const unsigned char *keep;
    /* Non-NULL: receives each evaluated window's WE, [window][target], in
     * the order of the (kept) windows. */
    double *window_we;
} pda_extension;

/* The expansion's state (pda_expansion.c). */
typedef struct pda_expansion {
    int value;       /* the split layer */
    int step;        /* the step computing it; -1 for the graph input */
    size_t elements; /* per image */
    float *grads;    /* n_targets × elements: d lo_t / d h at the image */
    double *base;    /* n_targets: natural log-odds at the image */
    double *delta;   /* windows_per_batch × n_targets × samples: lo changes */
} pda_expansion;

typedef struct pda_run {
    const evmap_model *model;
    const evmap_pda_options *opt;
    const float *input; /* C × H × W, the image being explained */
    int c, h, w, k;     /* input shape and window size */
    int num_classes;
    bool softmaxed; /* the graph's output is already probabilities */
    int samples;    /* S actually used (1 for constant samplers) */
    int n_targets;
    int hidden_value; /* value index of a hidden-unit target */
    bool hidden;      /* a hidden-unit target (hidden_value is set) */
    pda_window *windows;
    size_t n_windows;
    int windows_per_batch;
    int batch;            /* windows_per_batch × samples */
    evmap_runner *runner; /* full batches */
    evmap_runner *tail;   /* the last, smaller batch (NULL when none) */
    evmap_runner *single; /* one image: the unperturbed scores */
    float *draws;   /* windows_per_batch × samples × C × k × k (locality; else one window) */
    float *scratch; /* sampler scratch */
    evm_rng rng;
    double *base;    /* score of each target on the unperturbed image */
    double *sum;     /* n_targets × H × W summed weights of evidence */
    uint32_t *count; /* H × W windows covering each pixel */
    size_t forward_images;
    size_t windows_done; /* for progress reports between operators */
    evm_local *local;    /* exact locality (NULL: naive PDA); locals[0] */
    evm_local **locals;  /* engines evaluating a batch's windows side by side */
    int n_locals;
    int cut;                  /* steps [0, cut) run on regions; the rest on batches */
    double image_macs;        /* multiply-adds of one full forward */
    const pda_extension *ext; /* NULL: plain PDA */
    pda_expansion *expansion; /* NULL: the network runs to the end */
    /* Rows per window: in the batch plan (S; 1 when the samples' mean runs
     * above the split), in the local batch (S; 1 when the draws themselves
     * are averaged, i.e. a window-centred split at the input). */
    int rows, local_rows;
    bool mean_field;    /* a window-centred split: the samples' mean runs above it */
    bool average_draws; /* ... at the input: the draws themselves are averaged */
    int mean_step;      /* window-centred split: its step (-1: input); else unused */
    size_t evaluated;   /* windows whose evidence has been added */
} pda_run;

/* Windows k×k on the grid 0, stride, 2·stride, … inside the region of
 * interest (roi[2] ≤ 0: the whole image), rows first, written to out (may
 * be NULL); returns how many. The order of PDA's windows and draws. */
size_t pda_window_grid(int h, int w, int k, int stride, const int roi[4], pda_window *out);

/* log2 odds of (p, q) with the optional Laplace correction over k classes. */
double pda_log2_odds(double p, double q, double laplace_n, int k);

/* Adds weight of evidence we[t] (per target) to every pixel of window w. */
void pda_add_evidence(pda_run *r, pda_window w, const double *we);

/* ---- scores (pda_score.c) ---- */

/* r->base: each target's score on the unperturbed image (runs r->single). */
void pda_score_original(pda_run *r);

/* Adds the WE of window w, whose rows start at row of plan (which has run). */
void pda_score_window(pda_run *r, evm_plan *plan, pda_window w, int row);

/* ---- perturbed images (pda_sampling.c) ---- */

/* The window's rectangle on the input. */
evm_region pda_window_region(const pda_run *r, pda_window w);

/* S draws for window w into draws (samples × C × k × k); their mean in
 * draw 0 when the draws are averaged. Advances r->rng: windows draw in
 * their order. */
void pda_draw_window(pda_run *r, pda_window w, float *draws);

/* Window w's rows (S draws, or their mean) into the batch rows from row. */
void pda_fill_window(pda_run *r, evm_plan *plan, pda_window w, int row);

/* Window w's draws into a locality engine's input, starting its change. */
void pda_fill_window_local(const pda_run *r, evm_local *local, pda_window w, const float *draws);

/* ---- batches and exact locality (pda_batches.c) ---- */

/* Exact locality: the local batch, cut and cached buffers (needs the
 * unperturbed run and, for an expansion, the split layer). */
evmap_status pda_setup_locality(pda_run *r, evmap_error *err);

/* Windows per batch, within the batch memory. */
void pda_choose_batch(pda_run *r);

/* The batch runners (none when the expansion's split layer is local). */
evmap_status pda_allocate_batches(pda_run *r, evmap_error *err);

/* Evaluates every window, adding its evidence; reports progress. */
evmap_status pda_run_windows(pda_run *r, evmap_error *err);

/* PDA with the efficient method's extension (ext may be NULL). */
evmap_status pda_execute(const evmap_model *model, const float *input,
                         const evmap_pda_options *options, const pda_extension *ext, float *maps,
                         evmap_explain_stats *stats, evmap_error *err);

/* ---- the first-order expansion above the split layer (pda_expansion.c) ---- */

/* Gradients of each target's log-odds at the split layer, from the
 * unperturbed run in r->single (which must have run). */
evmap_status pda_expansion_create(pda_run *r, int split_value, evmap_error *err);
void pda_expansion_free(pda_expansion *e);

/* The step computing value v in plan; -1 when no step does (graph input). */
int pda_producing_step(const evm_plan *plan, int v);

/* Whether the split layer is computed by the local steps [0, cut). */
bool pda_expansion_is_local(const pda_run *r);

/* lo changes of the S samples in a locality engine's batch for every
 * target, into delta + row · n_targets (layout: [window row][target][sample]). */
void pda_expansion_local(pda_run *r, const evm_local *local, int row);

/* The same from rows [row·S, row·S + S) of a batch plan that has run up to
 * the split layer. */
void pda_expansion_batch(pda_run *r, const evm_plan *plan, int row);

/* Adds the weight of evidence of window w (window row `row` of delta). */
void pda_expansion_accumulate(pda_run *r, pda_window w, int row);

#endif
