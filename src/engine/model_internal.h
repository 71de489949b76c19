/* Model and runner internals shared by the methods (not part of the public API). */
#ifndef EVM_MODEL_INTERNAL_H
#define EVM_MODEL_INTERNAL_H

#include "evmap.h"
#include "graph.h"
#include "base/pool.h"
#include "plan.h"

struct evmap_model {
    evm_graph *graph;
    evmap_model_info info;
    int declared_batch; /* the input's batch dimension in the file (-1: symbolic) */
};

struct evmap_runner {
    const evmap_model *model;
    evm_plan *plan;    /* planned for batch images */
    evm_plan *tail;    /* planned for tail_batch < batch images, made when first needed */
    int height, width; /* the model's input size when the runner was made */
    int batch;
    int tail_batch;
    int threads;         /* 0: OpenBLAS default */
    evm_pool *pool;      /* its threads (base/pool.h); NULL: one */
    uint64_t images_run; /* images pushed through the network (evmap_runner_images_run) */
};

/* Checks the graph's image input (model_input.c) and fills the input part
 * of model->info; for an NHWC input (layout NHWC, or AUTO detecting it)
 * inserts a Transpose so that the graph takes NCHW. */
evmap_status evm_model_check_input(evmap_model *model, evmap_layout layout, evmap_error *err);

/* Plans the model for a batch of images of the model's current size. */
evmap_status evm_model_plan(const evmap_model *model, int batch, evm_plan **out, evmap_error *err);
/* ... of height x width. */
evmap_status evm_model_plan_sized(const evmap_model *model, int batch, int height, int width,
                                  evm_plan **out, evmap_error *err);

/* The value holding the logits: the input of the final Softmax when the
 * graph ends in one, else output 0. */
int evm_model_logits_value(const evmap_model *model);

/* Makes the runner's pool the calling thread's current one (OpenBLAS stays
 * single-threaded). */
void evm_runner_set_threads(const evmap_runner *runner);

#endif
