/* State of one PDA run (private to pda.c; shared with tests of its pieces). */
#ifndef EVM_PDA_INTERNAL_H
#define EVM_PDA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../model_internal.h"
#include "../plan_local.h"
#include "../rng.h"
#include "evmap.h"

typedef struct pda_window {
    int y, x; /* top-left corner */
} pda_window;

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
    float *draws;         /* samples × C × k × k */
    float *scratch;       /* sampler scratch */
    evm_rng rng;
    double *base;    /* score of each target on the unperturbed image */
    double *sum;     /* n_targets × H × W summed weights of evidence */
    uint32_t *count; /* H × W windows covering each pixel */
    size_t forward_images;
    size_t windows_done; /* for progress reports between operators */
    evm_local *local;    /* exact locality (NULL: naive PDA) */
    int cut;             /* steps [0, cut) run on regions; the rest on batches */
    double image_macs;   /* multiply-adds of one full forward */
} pda_run;

#endif
