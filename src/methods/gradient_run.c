/*
 * The gradient methods' shared run (gradient_internal.h): planning, seeds
 * and the forward/backward passes.
 *
 * Seeds. With logits z and class c, the log-odds lo_c = z_c − log Σ_{j≠c}
 * e^{z_j} have d lo_c / d z_c = 1 and d lo_c / d z_j = −e^{z_j} / Σ_{i≠c}
 * e^{z_i} for j ≠ c: computed from the logits in double, they stay exact
 * when p_c is within rounding of 0 or 1 (where 1/(1 − p_c) would not).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "gradient_internal.h"

static int poll_cancel(void *user) {
    const grad_run *r = user;
    return r->progress && r->progress(r->progress_user, r->done, r->total);
}

static evmap_status find_layer(const evmap_model *model, const char *name, const char *what,
                               int *out, evmap_error *err) {
    int v = evm_graph_find_value(model->graph, name);
    if (v < 0 || model->graph->values[v].is_initializer)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "%s: the model has no layer output named '%s'", what, name);
    *out = v;
    return EVMAP_OK;
}

static evmap_status check_target(grad_run *r, const grad_target *t, evmap_error *err) {
    const evm_tensor *seed = &r->runner->plan->values[r->seed_value];
    if (t->target_layer) {
        if (seed->rank < 2 || seed->dims[0] != r->batch || seed->dtype != EVM_DTYPE_FLOAT)
            return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                            "--target: layer '%s' is not a per-image float activation",
                            t->target_layer);
        if (t->target_channel < 0 || t->target_channel >= seed->dims[1])
            return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                            "--target: layer '%s' has channels 0 to %lld, not %d", t->target_layer,
                            (long long)seed->dims[1] - 1, t->target_channel);
        return EVMAP_OK;
    }
    if (t->n_classes < 1 || !t->classes)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "no target class given");
    int k = r->model->info.num_classes;
    if (seed->count != (size_t)r->batch * (size_t)k)
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED,
                        "the logits ('%s') do not hold %d values per image; evmap cannot "
                        "differentiate this model's class scores",
                        r->model->graph->values[r->seed_value].name, k);
    for (int i = 0; i < t->n_classes; i++)
        if (t->classes[i] < 0 || t->classes[i] >= k)
            return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                            "class %d is out of range: the model has classes 0 to %d",
                            t->classes[i], k - 1);
    return EVMAP_OK;
}

/* The forward plan for r->batch images and the backward pass over it; the
 * target is checked against the plan before the backward pass is made. */
static evmap_status plan_passes(grad_run *r, const grad_target *target, evmap_error *err) {
    evmap_status st = evmap_runner_create(r->model, r->batch, r->threads, &r->runner, err);
    if (st == EVMAP_OK && target)
        st = check_target(r, target, err);
    if (st == EVMAP_OK)
        st = evm_backward_create(r->runner->plan, r->seed_value, r->wrt_value, &r->backward, err);
    if (st == EVMAP_OK)
        evm_runner_set_threads(r->runner);
    return st;
}

evmap_status grad_run_open(grad_run *r, const evmap_model *model, int batch, int threads,
                           const grad_target *target, const char *wrt_layer, evmap_error *err) {
    memset(r, 0, sizeof *r);
    r->model = model;
    r->batch = batch;
    r->c = model->info.channels;
    r->h = model->info.height;
    r->w = model->info.width;
    r->image_floats = (size_t)r->c * (size_t)r->h * (size_t)r->w;
    r->score = target->score;
    r->classes = target->classes;
    r->n_targets = target->target_layer ? 1 : target->n_classes;
    r->target_channel = target->target_layer ? target->target_channel : -1;
    r->seed_value = evm_model_logits_value(model);
    r->wrt_value = model->graph->inputs[0];
    evmap_status st = EVMAP_OK;
    if (target->target_layer)
        st = find_layer(model, target->target_layer, "--target", &r->seed_value, err);
    if (st == EVMAP_OK && wrt_layer)
        st = find_layer(model, wrt_layer, "--layer", &r->wrt_value, err);
    r->threads = threads;
    if (st == EVMAP_OK)
        st = plan_passes(r, target, err);
    return st;
}

void grad_run_close(grad_run *r) {
    evm_backward_free(r->backward);
    evmap_runner_free(r->runner);
    r->backward = NULL;
    r->runner = NULL;
}

evmap_status grad_run_resize(grad_run *r, int batch, evmap_error *err) {
    if (batch == r->batch)
        return EVMAP_OK;
    grad_run_close(r);
    r->batch = batch;
    return plan_passes(r, NULL, err);
}

float *grad_run_input(grad_run *r) {
    return evm_f32(evm_plan_input(r->runner->plan, 0));
}

evmap_status grad_run_forward(grad_run *r, evmap_error *err) {
    if (!evm_plan_run_until(r->runner->plan, poll_cancel, r))
        return evm_fail(err, EVMAP_ERR_CANCELLED, "cancelled after %zu of %zu backward passes",
                        r->done, r->total);
    r->forward_images += (size_t)r->batch;
    return EVMAP_OK;
}

double grad_seed_class(evmap_score score, const float *z, int k, int c, float *seed) {
    for (int j = 0; j < k; j++)
        seed[j] = 0.0f;
    seed[c] = 1.0f;
    if (score == EVMAP_SCORE_LOGIT)
        return z[c];
    double m = -INFINITY, rest = 0;
    for (int j = 0; j < k; j++)
        if (j != c && z[j] > m)
            m = z[j];
    for (int j = 0; j < k; j++)
        rest += j == c ? 0.0 : exp((double)z[j] - m);
    for (int j = 0; j < k; j++)
        if (j != c)
            seed[j] = (float)(-exp((double)z[j] - m) / rest);
    return (double)z[c] - (m + log(rest));
}

/* Seed and score of one row of a layer for the mean of channel ch. */
static double seed_hidden(const float *a, size_t channels, size_t plane, int ch, float *seed) {
    memset(seed, 0, sizeof(float) * channels * plane);
    double sum = 0;
    for (size_t i = 0; i < plane; i++) {
        sum += a[(size_t)ch * plane + i];
        seed[(size_t)ch * plane + i] = (float)(1.0 / (double)plane);
    }
    return sum / (double)plane;
}

evmap_status grad_run_backward(grad_run *r, int t, int count, double *scores, evmap_error *err) {
    evm_tensor *seed = evm_backward_seed(r->backward);
    const evm_tensor *value = &r->runner->plan->values[r->seed_value];
    size_t row = seed->count / (size_t)r->batch;
    for (int b = 0; b < r->batch; b++) {
        float *s = evm_f32(seed) + (size_t)b * row;
        const float *v = evm_f32(value) + (size_t)b * row;
        if (b >= count) {
            memset(s, 0, sizeof(float) * row);
            continue;
        }
        double f = r->target_channel >= 0
                       ? seed_hidden(v, (size_t)value->dims[1], row / (size_t)value->dims[1],
                                     r->target_channel, s)
                       : grad_seed_class(r->score, v, (int)row, r->classes[t], s);
        if (scores)
            scores[b] = f;
    }
    if (!evm_backward_run(r->backward, r->mode, poll_cancel, r))
        return evm_fail(err, EVMAP_ERR_CANCELLED, "cancelled after %zu of %zu backward passes",
                        r->done, r->total);
    r->backward_images += (size_t)count;
    r->done++;
    if (r->progress && r->progress(r->progress_user, r->done, r->total))
        return evm_fail(err, EVMAP_ERR_CANCELLED, "cancelled after %zu of %zu backward passes",
                        r->done, r->total);
    return EVMAP_OK;
}

const evm_tensor *grad_run_result(const grad_run *r) {
    return evm_backward_result(r->backward);
}

const evm_tensor *grad_run_activation(const grad_run *r) {
    return &r->runner->plan->values[r->wrt_value];
}

int grad_cam_default_layer(const evmap_model *model) {
    const evm_graph *g = model->graph;
    int conv = -1;
    for (int i = 0; i < g->n_nodes; i++)
        if (!g->nodes[i].removed && g->nodes[i].kind == EVM_OP_CONV)
            conv = i;
    if (conv < 0)
        return -1;
    int v = g->nodes[conv].outputs[0];
    if (evm_graph_count_consumers(g, v) != 1)
        return v;
    for (int i = conv + 1; i < g->n_nodes; i++) {
        const evm_node *n = &g->nodes[i];
        if (n->removed || n->n_inputs < 1 || n->inputs[0] != v)
            continue;
        bool activation = n->kind == EVM_OP_RELU || n->kind == EVM_OP_LEAKY_RELU ||
                          n->kind == EVM_OP_CLIP || n->kind == EVM_OP_SIGMOID ||
                          n->kind == EVM_OP_TANH;
        return activation ? n->outputs[0] : v;
    }
    return v;
}
