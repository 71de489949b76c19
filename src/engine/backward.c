/*
 * Backward passes (see backward.h). Operators overwrite the gradients they
 * produce, so the first step (in reverse order) that reaches a value writes
 * straight into that value's gradient buffer, and every later one writes into
 * scratch that is then added on: no buffer is cleared on a run.
 */
#include "backward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"

typedef struct backward_step {
    const evm_plan_step *step;
    evm_tensor **grad_in;         /* per input: gradient to write, or NULL */
    int *add_to;                  /* per input: value whose gradient grad_in[j] adds to, or -1 */
    const evm_tensor **grad_outs; /* per output: its gradient, or NULL (backward_outputs ops) */
} backward_step;

struct evm_backward {
    evm_plan *plan;
    evm_tensor *grads;    /* per value; data NULL where no gradient flows */
    backward_step *steps; /* in reverse plan order */
    int n_steps;
    evm_tensor *scratch; /* one per (step, input) that adds on */
    int n_scratch;
    float *workspace;
    size_t workspace_floats;
    int seed, wrt;
    evm_budget budget; /* the plan's, continued: gradients live beside activations */
};

static const char *value_name(const evm_plan *plan, int v) {
    return plan->graph->values[v].name;
}

static bool differentiable(const evm_plan *plan, int v) {
    const evm_tensor *t = &plan->values[v];
    return !t->is_const && t->dtype == EVM_DTYPE_FLOAT && t->data;
}

/* depends[v]: v is wrt or computed (by steps) from it. */
static void mark_dependents(const evm_plan *plan, int wrt, bool *depends) {
    depends[wrt] = true;
    for (int i = 0; i < plan->n_steps; i++) {
        const evm_node *node = &plan->graph->nodes[plan->steps[i].node];
        bool any = false;
        for (int j = 0; j < node->n_inputs; j++)
            any |= node->inputs[j] != EVM_NO_VALUE && depends[node->inputs[j]];
        for (int j = 0; any && j < node->n_outputs; j++)
            depends[node->outputs[j]] = differentiable(plan, node->outputs[j]);
    }
}

static evmap_status alloc_grad(evm_backward *b, int v, evmap_error *err) {
    evm_tensor *g = &b->grads[v];
    if (g->data)
        return EVMAP_OK;
    *g = (evm_tensor){.dtype = EVM_DTYPE_FLOAT};
    evmap_status st =
        evm_tensor_set_shape(g, b->plan->values[v].rank, b->plan->values[v].dims, err);
    if (st == EVMAP_OK)
        st = evm_budget_charge(&b->budget, g->count * sizeof(float), err);
    return st == EVMAP_OK ? evm_tensor_alloc(g, err) : st;
}

/* Scratch tensor shaped like value v for an input that adds on. */
static evmap_status add_scratch(evm_backward *b, int v, evm_tensor **out, evmap_error *err) {
    evm_tensor *t = &b->scratch[b->n_scratch++];
    *t = (evm_tensor){.dtype = EVM_DTYPE_FLOAT};
    evmap_status st =
        evm_tensor_set_shape(t, b->plan->values[v].rank, b->plan->values[v].dims, err);
    if (st == EVMAP_OK)
        st = evm_budget_charge(&b->budget, t->count * sizeof(float), err);
    if (st == EVMAP_OK)
        st = evm_tensor_alloc(t, err);
    *out = t;
    return st;
}

/* Sets up one step whose output 0 carries a gradient. */
static evmap_status plan_step(evm_backward *b, const evm_plan_step *ps, const bool *depends,
                              bool *written, evmap_error *err) {
    const evm_node *node = &b->plan->graph->nodes[ps->node];
    const evm_op_def *def = evm_op_get(node->kind);
    backward_step *s = &b->steps[b->n_steps++];
    s->step = ps;
    s->grad_in = calloc((size_t)node->n_inputs + 1, sizeof *s->grad_in);
    s->add_to = malloc(((size_t)node->n_inputs + 1) * sizeof *s->add_to);
    s->grad_outs = calloc((size_t)node->n_outputs + 1, sizeof *s->grad_outs);
    if (!s->grad_in || !s->add_to || !s->grad_outs)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory planning the backward pass");
    /* Consumers come later in plan order, so every gradient that flows into
     * this node's outputs is allocated by now. An op with a plain backward
     * takes output 0's only: one flowing into another output is refused
     * rather than dropped. */
    for (int j = 0; j < node->n_outputs; j++) {
        int v = node->outputs[j];
        if (v == EVM_NO_VALUE || !b->grads[v].data)
            continue;
        if (j > 0 && !def->backward_outputs)
            return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                                 "evmap has no gradient through output %d ('%s')", j,
                                 value_name(b->plan, v));
        s->grad_outs[j] = &b->grads[v];
    }
    for (int j = 0; j < node->n_inputs; j++) {
        int v = node->inputs[j];
        s->add_to[j] = -1;
        if (v == EVM_NO_VALUE || !depends[v])
            continue;
        if (!def->backward || (j < 32 && !(def->grad_inputs & (1u << j))) ||
            (j >= 32 && def->grad_inputs != ~0u))
            return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                                 "evmap has no gradient through input %d ('%s')", j,
                                 value_name(b->plan, v));
        evmap_status st = alloc_grad(b, v, err);
        if (st != EVMAP_OK)
            return st;
        if (!written[v]) {
            written[v] = true;
            s->grad_in[j] = &b->grads[v];
            continue;
        }
        s->add_to[j] = v;
        if ((st = add_scratch(b, v, &s->grad_in[j], err)) != EVMAP_OK)
            return st;
    }
    size_t ws = def->backward_workspace ? def->backward_workspace(node, ps->in, ps->out) : 0;
    /* Bounded like a tensor, so every later ws * sizeof(float) fits. */
    if (ws > EVM_MAX_TENSOR_ELEMENTS)
        return evm_node_fail(err, node, EVMAP_ERR_TOO_LARGE,
                             "its gradient needs %zu floats of scratch, above evmap's limit", ws);
    if (ws > b->workspace_floats)
        b->workspace_floats = ws;
    return EVMAP_OK;
}

static evmap_status plan_steps(evm_backward *b, const bool *depends, evmap_error *err) {
    const evm_plan *plan = b->plan;
    int n_values = plan->graph->n_values;
    bool *written = calloc((size_t)n_values + 1, sizeof *written);
    b->steps = calloc((size_t)plan->n_steps + 1, sizeof *b->steps);
    /* at most one scratch per step input */
    size_t inputs = 0;
    for (int i = 0; i < plan->n_steps; i++)
        inputs += (size_t)plan->graph->nodes[plan->steps[i].node].n_inputs;
    b->scratch = calloc(inputs + 1, sizeof *b->scratch);
    if (!written || !b->steps || !b->scratch) {
        free(written);
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory planning the backward pass");
    }
    written[b->seed] = true; /* the caller writes the seed */
    evmap_status st = EVMAP_OK;
    for (int i = plan->n_steps - 1; i >= 0 && st == EVMAP_OK; i--) {
        const evm_node *node = &plan->graph->nodes[plan->steps[i].node];
        bool flows = false, at_wrt = false;
        for (int j = 0; j < node->n_outputs; j++) {
            int v = node->outputs[j];
            flows |= v != EVM_NO_VALUE && b->grads[v].data;
            at_wrt |= v == b->wrt;
        }
        if (!flows)
            continue; /* nothing flows back into this step */
        if (at_wrt)
            continue; /* the pass stops at wrt */
        st = plan_step(b, &plan->steps[i], depends, written, err);
    }
    free(written);
    return st;
}

evmap_status evm_backward_create(evm_plan *plan, int seed_value, int wrt_value, evm_backward **out,
                                 evmap_error *err) {
    *out = NULL;
    const evm_graph *g = plan->graph;
    if (seed_value < 0 || seed_value >= g->n_values || wrt_value < 0 || wrt_value >= g->n_values)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "backward: no such value");
    if (!differentiable(plan, wrt_value))
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "'%s' is constant or not a float tensor; there is no gradient for it",
                        value_name(plan, wrt_value));
    evm_backward *b = calloc(1, sizeof *b);
    bool *depends = calloc((size_t)g->n_values + 1, sizeof *depends);
    if (b)
        b->grads = calloc((size_t)g->n_values + 1, sizeof *b->grads);
    if (!b || !depends || !b->grads) {
        free(depends);
        evm_backward_free(b);
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory planning the backward pass");
    }
    b->plan = plan;
    b->budget = plan->budget;
    snprintf(b->budget.what, sizeof b->budget.what, "the backward pass of %s", plan->budget.what);
    b->seed = seed_value;
    b->wrt = wrt_value;
    mark_dependents(plan, wrt_value, depends);
    evmap_status st = EVMAP_OK;
    if (!depends[seed_value])
        st = evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "'%s' does not depend on '%s'",
                      value_name(plan, seed_value), value_name(plan, wrt_value));
    if (st == EVMAP_OK)
        st = alloc_grad(b, seed_value, err);
    if (st == EVMAP_OK)
        st = plan_steps(b, depends, err);
    if (st == EVMAP_OK && b->workspace_floats)
        st = evm_budget_charge(&b->budget, b->workspace_floats * sizeof(float), err);
    if (st == EVMAP_OK && b->workspace_floats) {
        b->workspace = malloc(b->workspace_floats * sizeof(float));
        if (!b->workspace)
            st = evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY,
                          "cannot allocate %zu bytes of backward workspace",
                          b->workspace_floats * sizeof(float));
    }
    free(depends);
    if (st != EVMAP_OK) {
        evm_backward_free(b);
        return st;
    }
    *out = b;
    return EVMAP_OK;
}

void evm_backward_free(evm_backward *b) {
    if (!b)
        return;
    for (int i = 0; i < b->n_steps; i++) {
        free(b->steps[i].grad_in);
        free(b->steps[i].add_to);
        free(b->steps[i].grad_outs);
    }
    free(b->steps);
    if (b->grads)
        for (int v = 0; v < b->plan->graph->n_values; v++)
            evm_tensor_release(&b->grads[v]);
    free(b->grads);
    for (int i = 0; i < b->n_scratch; i++)
        evm_tensor_release(&b->scratch[i]);
    free(b->scratch);
    free(b->workspace);
    free(b);
}

evm_tensor *evm_backward_seed(evm_backward *b) {
    return &b->grads[b->seed];
}

const evm_tensor *evm_backward_result(const evm_backward *b) {
    return &b->grads[b->wrt];
}

size_t evm_backward_bytes(const evm_backward *b) {
    size_t bytes = b->workspace_floats * sizeof(float);
    for (int v = 0; v < b->plan->graph->n_values; v++)
        if (b->grads[v].data)
            bytes += b->grads[v].count * sizeof(float);
    for (int i = 0; i < b->n_scratch; i++)
        bytes += b->scratch[i].count * sizeof(float);
    return bytes;
}

static void add_into(evm_tensor *dst, const evm_tensor *src) {
    float *d = evm_f32(dst);
    const float *s = evm_f32(src);
    for (size_t i = 0; i < dst->count; i++)
        d[i] += s[i];
}

/* Guided backpropagation passes only positive gradients back through Relu. */
static void keep_positive(evm_tensor *t) {
    float *x = evm_f32(t);
    for (size_t i = 0; i < t->count; i++)
        x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

bool evm_backward_run(evm_backward *b, evm_backward_mode mode, int (*stop)(void *user),
                      void *user) {
    for (int i = 0; i < b->n_steps; i++) {
        if (stop && stop(user))
            return false;
        const backward_step *s = &b->steps[i];
        const evm_node *node = &b->plan->graph->nodes[s->step->node];
        evm_tensor *grad_out = &b->grads[node->outputs[0]];
        if (mode == EVM_BACKWARD_GUIDED && node->kind == EVM_OP_RELU)
            keep_positive(grad_out);
        const evm_op_def *def = evm_op_get(node->kind);
        if (def->backward_outputs)
            def->backward_outputs(node, s->step->in, s->step->out, s->grad_outs, s->grad_in,
                                  b->workspace);
        else
            def->backward(node, s->step->in, s->step->out, grad_out, s->grad_in, b->workspace);
        for (int j = 0; j < node->n_inputs; j++)
            if (s->add_to[j] >= 0)
                add_into(&b->grads[s->add_to[j]], s->grad_in[j]);
    }
    return true;
}
