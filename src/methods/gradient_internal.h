/*
 * Shared machinery of the gradient methods (DESIGN.md 1.4): a plan for a
 * batch of images, a backward pass from the differentiated score to the
 * input (or to a layer, for Grad-CAM), and the seeds for each score.
 * One forward per batch serves every target class: the backward passes of
 * the targets reuse the same activations.
 */
#ifndef EVM_GRADIENT_INTERNAL_H
#define EVM_GRADIENT_INTERNAL_H

#include "engine/backward.h"
#include "engine/model_internal.h"

typedef struct grad_run {
    const evmap_model *model;
    evmap_runner *runner;
    evm_backward *backward;
    evm_backward_mode mode;
    evmap_score score;
    const int *classes; /* one per target; unused for a hidden unit */
    int n_targets;
    int seed_value;     /* logits, or the hidden unit's layer */
    int target_channel; /* hidden unit's channel; -1 for class scores */
    int wrt_value;      /* the input, or Grad-CAM's layer */
    int batch;
    int threads;
    int c, h, w;
    size_t image_floats; /* c · h · w */
    size_t forward_images, backward_images;
    size_t done, total; /* backward passes, for progress */
    evmap_progress_fn progress;
    void *progress_user;
} grad_run;

/* What to differentiate: classes (n of them) under score, or, when
 * target_layer is non-NULL, the mean of that layer's channel. */
typedef struct grad_target {
    evmap_score score;
    const int *classes;
    int n_classes;
    const char *target_layer;
    int target_channel;
} grad_target;

/* Plans the model for batch images and a backward pass to wrt_layer (NULL:
 * the input image). */
evmap_status grad_run_open(grad_run *r, const evmap_model *model, int batch, int threads,
                           const grad_target *target, const char *wrt_layer, evmap_error *err);
void grad_run_close(grad_run *r);

/* Re-plans for a smaller batch (a last, partial pass), so that the pass does
 * the work of its own images only. */
evmap_status grad_run_resize(grad_run *r, int batch, evmap_error *err);

/* The plan's input: batch × C × H × W floats for the caller to fill. */
float *grad_run_input(grad_run *r);

/* Runs the forward pass on the input rows; EVMAP_ERR_CANCELLED when the
 * progress callback asks to stop. */
evmap_status grad_run_forward(grad_run *r, evmap_error *err);

/* Backward pass of target t for rows [0, count) (the others get no
 * gradient); scores (may be NULL) receives f of each row. */
evmap_status grad_run_backward(grad_run *r, int t, int count, double *scores, evmap_error *err);

/* The gradient with respect to wrt after grad_run_backward (batch rows). */
const evm_tensor *grad_run_result(const grad_run *r);

/* The wrt value's forward activations (batch rows). */
const evm_tensor *grad_run_activation(const grad_run *r);

/* ---- the methods (one per file); maps: n_targets × H × W ---- */

evmap_status grad_single_maps(grad_run *r, const evmap_gradient_options *o, const float *input,
                              float *maps, evmap_error *err);
evmap_status grad_integrated_maps(grad_run *r, const evmap_gradient_options *o, const float *input,
                                  float *maps, evmap_error *err);
evmap_status grad_smooth_maps(grad_run *r, const evmap_gradient_options *o, const float *input,
                              float *maps, evmap_error *err);
evmap_status grad_cam_maps(grad_run *r, const evmap_gradient_options *o, const float *input,
                           float *maps, evmap_error *err);

/* Writes into seed (k floats) d f / d z for one row of logits z and class c
 * under score (see gradient_run.c) and returns f. */
double grad_seed_class(evmap_score score, const float *z, int k, int c, float *seed);

/* Grad-CAM's default layer: the last Conv's output, or the output of the
 * activation that is its only consumer. -1 when the model has no Conv. */
int grad_cam_default_layer(const evmap_model *model);

#endif
