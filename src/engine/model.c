/*
 * Public model and runner API over the graph and plan layers. A model is an
 * image classifier with one float input N×C×H×W (C fixed; H and W fixed or
 * set per image size) and one
 * output N×K (trailing 1s allowed); probabilities come from the graph's own
 * Softmax when it ends in one, otherwise evmap applies softmax to the logits.
 */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "model_internal.h"
#include "base/sgemm.h"
#include "onnx_load.h"
#include "ops/op.h"

void evmap_model_free(evmap_model *model) {
    if (!model)
        return;
    evm_graph_free(model->graph);
    free(model);
}

/* Follows pass-through ops back from the output to a Softmax node; -1 when
 * the graph does not end in one. */
static int final_softmax(const evm_graph *g) {
    int v = g->outputs[0];
    for (int hops = 0; hops < 8; hops++) {
        int p = g->values[v].producer;
        if (p < 0)
            return -1;
        const evm_node *n = &g->nodes[p];
        if (n->kind == EVM_OP_SOFTMAX)
            return p;
        if (n->kind != EVM_OP_IDENTITY && n->kind != EVM_OP_DROPOUT && n->kind != EVM_OP_FLATTEN &&
            n->kind != EVM_OP_RESHAPE)
            return -1;
        v = n->inputs[0];
    }
    return -1;
}

static bool ends_in_softmax(const evm_graph *g) {
    return final_softmax(g) >= 0;
}

int evm_model_logits_value(const evmap_model *model) {
    int softmax = final_softmax(model->graph);
    return softmax < 0 ? model->graph->outputs[0] : model->graph->nodes[softmax].inputs[0];
}

evmap_status evm_model_plan_sized(const evmap_model *model, int batch, int height, int width,
                                  evm_plan **out, evmap_error *err) {
    evm_tensor shape = {.dtype = EVM_DTYPE_FLOAT};
    int64_t dims[4] = {batch, model->info.channels, height, width};
    evmap_status st = evm_tensor_set_shape(&shape, 4, dims, err);
    if (st != EVMAP_OK)
        return st;
    return evm_plan_create(model->graph, &shape, out, err);
}

evmap_status evm_model_plan(const evmap_model *model, int batch, evm_plan **out, evmap_error *err) {
    return evm_model_plan_sized(model, batch, model->info.height, model->info.width, out, err);
}

/* A model exported with a fixed batch of 1 often bakes that 1 into Reshape
 * shapes (a channel shuffle's [1, g, C/g, H, W], a flatten's [1, -1]); evmap
 * runs several images at once. A Reshape whose input has 1 in axis 0 at
 * batch 1 and whose constant shape starts with 1 carries the batch there:
 * it is marked, so that batch B plans reshape to B instead of failing. */
static void mark_batch_reshapes(evmap_model *m, const evm_plan *plan) {
    if (m->declared_batch != 1)
        return;
    evm_graph *g = m->graph;
    for (int i = 0; i < g->n_nodes; i++) {
        evm_node *n = &g->nodes[i];
        if (n->removed || n->kind != EVM_OP_RESHAPE || n->n_inputs < 2)
            continue;
        const evm_tensor *x = &plan->values[n->inputs[0]];
        const evm_tensor *shape = &plan->values[n->inputs[1]];
        if (x->rank >= 1 && x->dims[0] == 1 && shape->data && shape->dtype == EVM_DTYPE_INT64 &&
            shape->count >= 1 && evm_i64(shape)[0] == 1)
            evm_reshape_mark_batch(n);
    }
}

/* The number of class scores of a batch-1 plan's output; 0 when the output
 * is not N×K (trailing 1s allowed) float scores. */
static size_t class_count(evm_plan *plan) {
    const evm_tensor *out = evm_plan_output(plan, 0);
    bool batch_first = out->rank >= 1 && out->dims[0] == 1;
    for (int i = 2; i < out->rank; i++)
        batch_first = batch_first && out->dims[i] == 1;
    return out->dtype == EVM_DTYPE_FLOAT && batch_first ? out->count : 0;
}

/* A model with a free side is planned at the first of these sides (for
 * each free one) it runs at: common training sizes, so that a model whose
 * head needs one exact size (Flatten and Gemm after the convolutions) still
 * loads at it. */
static const int trial_sides[] = {EVMAP_TRIAL_SIDE, 32, 28, 64, 96, 128, 256, 299, 384, 512};

static evmap_status plan_trial(evmap_model *m, evm_plan **plan, evmap_error *err) {
    evmap_model_info *info = &m->info;
    evmap_status st = evm_model_plan(m, 1, plan, err);
    if (st == EVMAP_OK || (!info->free_height && !info->free_width))
        return st;
    evmap_error first = *err;
    int height = info->height, width = info->width;
    for (size_t i = 1; i < sizeof trial_sides / sizeof *trial_sides; i++) {
        info->height = info->free_height ? trial_sides[i] : height;
        info->width = info->free_width ? trial_sides[i] : width;
        if (evm_model_plan(m, 1, plan, err) == EVMAP_OK)
            return EVMAP_OK;
    }
    info->height = height, info->width = width;
    *err = first;
    evm_error_prefix(err, "at the trial size %d x %d (width x height)", width, height);
    return first.status;
}

/* Plans batch 1 once to learn the number of classes (and the batch axis of
 * fixed-batch Reshapes). */
static evmap_status check_output(evmap_model *m, evmap_error *err) {
    evm_plan *plan;
    evmap_status st = plan_trial(m, &plan, err);
    if (st != EVMAP_OK)
        return st;
    mark_batch_reshapes(m, plan);
    size_t k = class_count(plan);
    if (k < 2 || k > 1000000)
        st = evm_fail(err, EVMAP_ERR_UNSUPPORTED, "output '%s' must hold class scores N×K (K ≥ 2)",
                      m->graph->values[m->graph->outputs[0]].name);
    m->info.num_classes = (int)k;
    evm_plan_free(plan);
    return st;
}

evmap_status evmap_model_set_input_size(evmap_model *model, int height, int width,
                                        evmap_error *err) {
    if (!model)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "evmap_model_set_input_size: NULL model");
    evmap_model_info *info = &model->info;
    if (height < 1 || width < 1 || height > 65535 || width > 65535)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "input size %d x %d (width x height) is out of range (1-65535)", width,
                        height);
    if ((!info->free_height && height != info->height) ||
        (!info->free_width && width != info->width))
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "the model's input is fixed at %d x %d (width x height), not %d x %d; "
                        "resize the image to it (--size)",
                        info->width, info->height, width, height);
    if (height == info->height && width == info->width)
        return EVMAP_OK;
    evm_plan *plan;
    evmap_status st = evm_model_plan_sized(model, 1, height, width, &plan, err);
    if (st != EVMAP_OK) {
        evm_error_prefix(err, "the model cannot run at %d x %d (width x height)", width, height);
        return st;
    }
    size_t k = class_count(plan);
    evm_plan_free(plan);
    if (k != (size_t)info->num_classes)
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED,
                        "the model gives %zu scores at %d x %d (width x height), not the %d of "
                        "its trial size: its output is not one score per class there",
                        k, width, height, info->num_classes);
    info->height = height;
    info->width = width;
    return EVMAP_OK;
}

static void count_parameters(evmap_model *m) {
    const evm_graph *g = m->graph;
    for (int i = 0; i < g->n_values; i++)
        if (g->values[i].is_initializer && g->values[i].tensor.dtype == EVM_DTYPE_FLOAT)
            m->info.num_parameters += g->values[i].tensor.count;
    for (int i = 0; i < g->n_nodes; i++)
        m->info.num_nodes += !g->nodes[i].removed;
}

static evmap_status finish_load(evm_graph *graph, evmap_layout layout, evmap_model **out,
                                evmap_error *err) {
    evmap_model *m = calloc(1, sizeof *m);
    if (!m) {
        evm_graph_free(graph);
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
    }
    m->graph = graph;
    evmap_status st = evm_model_check_input(m, layout, err);
    if (st == EVMAP_OK)
        st = check_output(m, err);
    if (st != EVMAP_OK) {
        evmap_model_free(m);
        return st;
    }
    m->info.ends_in_softmax = ends_in_softmax(graph);
    count_parameters(m);
    *out = m;
    return EVMAP_OK;
}

void evmap_model_load_options_init(evmap_model_load_options *options) {
    if (options)
        *options = (evmap_model_load_options){.max_memory = 0, .layout = EVMAP_LAYOUT_AUTO};
}

static evmap_status check_options(const evmap_model_load_options *o, evmap_error *err) {
    if (o && o->layout != EVMAP_LAYOUT_AUTO && o->layout != EVMAP_LAYOUT_NCHW &&
        o->layout != EVMAP_LAYOUT_NHWC)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "unknown input layout %d", (int)o->layout);
    return EVMAP_OK;
}

evmap_status evmap_model_load_with_options(const char *path, const evmap_model_load_options *o,
                                           evmap_model **out, evmap_error *err) {
    if (!path || !out)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "evmap_model_load: NULL argument");
    *out = NULL;
    evmap_status st = check_options(o, err);
    if (st != EVMAP_OK)
        return st;
    uint64_t max_memory = o ? o->max_memory : 0;
    evm_graph *graph;
    st = evm_onnx_load_file_limited(path, max_memory, &graph, err);
    if (st != EVMAP_OK)
        return st;
    graph->max_memory = max_memory;
    st = finish_load(graph, o ? o->layout : EVMAP_LAYOUT_AUTO, out, err);
    if (st != EVMAP_OK)
        evm_error_prefix(err, "%s", path);
    return st;
}

evmap_status evmap_model_load_limited(const char *path, uint64_t max_memory, evmap_model **out,
                                      evmap_error *err) {
    evmap_model_load_options o = {.max_memory = max_memory, .layout = EVMAP_LAYOUT_AUTO};
    return evmap_model_load_with_options(path, &o, out, err);
}

evmap_status evmap_model_load(const char *path, evmap_model **out, evmap_error *err) {
    return evmap_model_load_limited(path, 0, out, err);
}

void evmap_model_limit_memory(evmap_model *model, uint64_t max_memory) {
    if (model)
        model->graph->max_memory = max_memory;
}

evmap_status evmap_model_load_memory_with_options(const void *data, size_t size,
                                                  const evmap_model_load_options *o,
                                                  evmap_model **out, evmap_error *err) {
    if (!data || !out)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "evmap_model_load_memory: NULL argument");
    *out = NULL;
    evmap_status st = check_options(o, err);
    if (st != EVMAP_OK)
        return st;
    evm_graph *graph;
    st = evm_onnx_load_memory(data, size, &graph, err);
    if (st != EVMAP_OK)
        return st;
    graph->max_memory = o ? o->max_memory : 0; /* loading plans batch 1 to check the output */
    return finish_load(graph, o ? o->layout : EVMAP_LAYOUT_AUTO, out, err);
}

evmap_status evmap_model_load_memory_limited(const void *data, size_t size, uint64_t max_memory,
                                             evmap_model **out, evmap_error *err) {
    evmap_model_load_options o = {.max_memory = max_memory, .layout = EVMAP_LAYOUT_AUTO};
    return evmap_model_load_memory_with_options(data, size, &o, out, err);
}

evmap_status evmap_model_load_memory(const void *data, size_t size, evmap_model **out,
                                     evmap_error *err) {
    return evmap_model_load_memory_limited(data, size, 0, out, err);
}

evmap_status evmap_model_get_info(const evmap_model *model, evmap_model_info *out,
                                  evmap_error *err) {
    if (!model || !out)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "evmap_model_get_info: NULL argument");
    *out = model->info;
    return EVMAP_OK;
}

/* ---------------------------------------------------------------- runner */

void evmap_runner_free(evmap_runner *runner) {
    if (!runner)
        return;
    evm_plan_free(runner->plan);
    evm_plan_free(runner->tail);
    evm_pool_free(runner->pool);
    free(runner);
}

evmap_status evmap_runner_create(const evmap_model *model, int batch, int threads,
                                 evmap_runner **out, evmap_error *err) {
    if (!model || !out)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "evmap_runner_create: NULL argument");
    *out = NULL;
    if (batch < 1 || batch > 65536)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "batch size %d is out of range (1-65536)",
                        batch);
    if (threads < 0 || threads > 1024)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "thread count %d is out of range",
                        threads);
    evmap_runner *r = calloc(1, sizeof *r);
    if (!r)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
    r->model = model;
    r->batch = batch;
    r->threads = threads;
    r->height = model->info.height;
    r->width = model->info.width;
    int pool_threads = threads > 0 ? threads : evm_pool_default_threads();
    evmap_status st = evm_pool_create(pool_threads, &r->pool, err);
    if (st == EVMAP_OK)
        st = evm_model_plan(model, batch, &r->plan, err);
    if (st != EVMAP_OK) {
        evm_pool_free(r->pool);
        free(r);
        return st;
    }
    *out = r;
    return EVMAP_OK;
}

void evm_runner_set_threads(const evmap_runner *runner) {
    evm_sgemm_init_blas();
    evm_pool_use(runner->pool);
}

/* Softmax over one row, in place, in double for stable sums. */
static void softmax_row(float *row, int k) {
    float max = row[0];
    for (int i = 1; i < k; i++)
        max = row[i] > max ? row[i] : max;
    double sum = 0;
    for (int i = 0; i < k; i++)
        sum += exp((double)row[i] - max);
    for (int i = 0; i < k; i++)
        row[i] = (float)(exp((double)row[i] - max) / sum);
}

/* The plan for count images: the full one, or a plan of exactly count images
 * for a partial batch (kept for the next partial batch of that size), so a
 * last batch of 1 of 16 costs one image, not 16. */
static evmap_status plan_for(evmap_runner *runner, int count, evm_plan **out, evmap_error *err) {
    if (count == runner->batch) {
        *out = runner->plan;
        return EVMAP_OK;
    }
    if (!runner->tail || runner->tail_batch != count) {
        evm_plan_free(runner->tail);
        runner->tail = NULL;
        evmap_status st = evm_model_plan_sized(runner->model, count, runner->height, runner->width,
                                               &runner->tail, err);
        if (st != EVMAP_OK)
            return st;
        runner->tail_batch = count;
    }
    *out = runner->tail;
    return EVMAP_OK;
}

evmap_status evmap_runner_classify(evmap_runner *runner, const float *input, int count,
                                   float *probs, evmap_error *err) {
    if (!runner || !input || !probs)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "evmap_runner_classify: NULL argument");
    if (count < 1 || count > runner->batch)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "count %d is outside the runner's batch of %d", count, runner->batch);
    evm_plan *plan;
    evmap_status st = plan_for(runner, count, &plan, err);
    if (st != EVMAP_OK)
        return st;
    const evmap_model_info *info = &runner->model->info;
    size_t per_image = (size_t)info->channels * (size_t)runner->height * (size_t)runner->width;
    memcpy(evm_plan_input(plan, 0)->data, input, per_image * (size_t)count * sizeof(float));
    evm_runner_set_threads(runner);
    evm_plan_run(plan);
    runner->images_run += (uint64_t)count;
    const float *out = evm_f32(evm_plan_output(plan, 0));
    int k = info->num_classes;
    memcpy(probs, out, sizeof(float) * (size_t)k * (size_t)count);
    if (!info->ends_in_softmax)
        for (int i = 0; i < count; i++)
            softmax_row(probs + (size_t)i * (size_t)k, k);
    /* A NaN must not leave as a probability that looks like an answer. */
    for (size_t i = 0; i < (size_t)k * (size_t)count; i++)
        if (!(probs[i] >= 0.0f))
            return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                            "the model's output for image %zu of the batch is not a number (NaN): "
                            "its weights or this input hold NaN, or the logits overflow float32",
                            i / (size_t)k);
    return EVMAP_OK;
}

static uint64_t plan_memory(const evm_plan *plan) {
    return plan ? (uint64_t)plan->activation_bytes + plan->workspace_floats * sizeof(float) : 0;
}

uint64_t evmap_runner_memory(const evmap_runner *runner) {
    return runner ? plan_memory(runner->plan) + plan_memory(runner->tail) : 0;
}

uint64_t evmap_runner_images_run(const evmap_runner *runner) {
    return runner ? runner->images_run : 0;
}
