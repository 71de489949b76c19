/* Planning (shape inference, constant folding, allocation) and execution. */
#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"

static void free_step(evm_plan_step *s) {
    free(s->in);
    free(s->out);
}

void evm_plan_free(evm_plan *plan) {
    if (!plan)
        return;
    if (plan->values)
        for (int i = 0; i < plan->graph->n_values; i++)
            evm_tensor_release(&plan->values[i]);
    for (int i = 0; i < plan->n_steps; i++)
        free_step(&plan->steps[i]);
    free(plan->steps);
    free(plan->values);
    free(plan->workspace);
    free(plan);
}

evm_tensor *evm_plan_input(evm_plan *plan, int i) {
    return &plan->values[plan->graph->inputs[i]];
}

evm_tensor *evm_plan_output(evm_plan *plan, int i) {
    return &plan->values[plan->graph->outputs[i]];
}

static evmap_status bind_inputs(evm_plan *plan, const evm_tensor *shapes, evmap_error *err) {
    const evm_graph *g = plan->graph;
    for (int i = 0; i < g->n_values; i++) {
        const evm_value *v = &g->values[i];
        if (v->is_initializer) {
            plan->values[i] = v->tensor; /* borrowed: the graph owns the data */
            plan->values[i].owns_data = false;
            plan->values[i].is_const = true;
        }
    }
    for (int i = 0; i < g->n_inputs; i++) {
        evm_tensor *t = &plan->values[g->inputs[i]];
        const evm_value *v = &g->values[g->inputs[i]];
        t->dtype = shapes[i].dtype;
        evmap_status st = evm_tensor_set_shape(t, shapes[i].rank, shapes[i].dims, err);
        if (st == EVMAP_OK && v->has_shape && v->tensor.rank != t->rank)
            st = evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                          "graph input '%s' has rank %d, but an input of rank %d was given",
                          v->name, v->tensor.rank, t->rank);
        if (st == EVMAP_OK && i == 0) {
            char buf[EVM_SHAPE_STR_SIZE];
            snprintf(plan->budget.what, sizeof plan->budget.what, "the model at input %s",
                     evm_shape_str(t, buf, sizeof buf));
        }
        if (st == EVMAP_OK)
            st = evm_budget_charge(&plan->budget, t->count * evm_dtype_size(t->dtype), err);
        if (st == EVMAP_OK)
            st = evm_tensor_alloc(t, err);
        if (st != EVMAP_OK)
            return st;
        if (shapes[i].is_const && shapes[i].data) {
            /* Known now: shape arithmetic downstream folds like an initializer. */
            memcpy(t->data, shapes[i].data, t->count * evm_dtype_size(t->dtype));
            t->is_const = true;
            continue;
        }
        plan->activation_bytes += t->count * evm_dtype_size(t->dtype);
    }
    return EVMAP_OK;
}

/* Pointers to a node's input and output tensors in the plan. */
static evmap_status gather_tensors(evm_plan *plan, const evm_node *node, evm_plan_step *step,
                                   evmap_error *err) {
    step->in = calloc((size_t)node->n_inputs + 1, sizeof *step->in);
    step->out = calloc((size_t)node->n_outputs, sizeof *step->out);
    if (!step->in || !step->out)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory planning");
    for (int j = 0; j < node->n_inputs; j++) {
        int v = node->inputs[j];
        if (v == EVM_NO_VALUE)
            continue;
        evm_tensor *t = &plan->values[v];
        if (t->dtype == EVM_DTYPE_UNDEFINED)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "input '%s' has no value (it is never computed)",
                                 plan->graph->values[v].name);
        step->in[j] = t;
    }
    for (int j = 0; j < node->n_outputs; j++) {
        int v = node->outputs[j];
        if (v == EVM_NO_VALUE)
            return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED, "output %d is omitted", j);
        step->out[j] = &plan->values[v];
    }
    return EVMAP_OK;
}

static bool all_inputs_const(const evm_node *node, const evm_plan_step *step) {
    for (int j = 0; j < node->n_inputs; j++)
        if (step->in[j] && !step->in[j]->is_const)
            return false;
    return true;
}

/* Infers, allocates and either folds the node now or appends it as a step. */
static evmap_status plan_node(evm_plan *plan, int index, evmap_error *err) {
    const evm_node *node = &plan->graph->nodes[index];
    const evm_op_def *def = evm_op_get(node->kind);
    evm_plan_step step = {.node = index};
    evmap_status st = gather_tensors(plan, node, &step, err);
    if (st == EVMAP_OK)
        st = def->infer(node, step.in, step.out, err);
    /* infer sets the outputs the operator has; a file may name more. */
    for (int j = 0; st == EVMAP_OK && j < node->n_outputs; j++)
        if (step.out[j]->dtype == EVM_DTYPE_UNDEFINED)
            st = evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                               "has %d outputs, but %s has no output %d ('%s')", node->n_outputs,
                               evm_op_name(node->kind), j + 1,
                               plan->graph->values[node->outputs[j]].name);
    for (int j = 0; st == EVMAP_OK && j < node->n_outputs; j++) {
        const evm_tensor *t = step.out[j];
        st = evm_budget_charge(&plan->budget, t->count * evm_dtype_size(t->dtype), err);
        if (st == EVMAP_OK)
            st = evm_tensor_alloc(step.out[j], err);
    }
    if (st != EVMAP_OK) {
        free_step(&step);
        return st;
    }
    size_t ws = def->workspace ? def->workspace(node, step.in, step.out) : 0;
    /* Bounded like a tensor, so every later ws * sizeof(float) fits. */
    if (ws > EVM_MAX_TENSOR_ELEMENTS)
        st = evm_node_fail(err, node, EVMAP_ERR_TOO_LARGE,
                           "needs %zu floats of scratch, above evmap's limit", ws);
    bool fold = def->shape_only || all_inputs_const(node, &step);
    if (st == EVMAP_OK && fold && ws)
        st = evm_budget_check(&plan->budget, ws * sizeof(float), err);
    if (st != EVMAP_OK) {
        free_step(&step);
        return st;
    }
    if (fold) {
        float *scratch = ws ? malloc(ws * sizeof(float)) : NULL;
        if (ws && !scratch) {
            free_step(&step);
            return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory folding constants");
        }
        def->forward(node, step.in, step.out, scratch);
        free(scratch);
        for (int j = 0; j < node->n_outputs; j++)
            step.out[j]->is_const = true;
        free_step(&step);
        return EVMAP_OK;
    }
    if (ws > plan->workspace_floats)
        plan->workspace_floats = ws;
    for (int j = 0; j < node->n_outputs; j++)
        plan->activation_bytes += step.out[j]->count * evm_dtype_size(step.out[j]->dtype);
    plan->steps[plan->n_steps++] = step;
    return EVMAP_OK;
}

static evmap_status check_outputs(const evm_plan *plan, evmap_error *err) {
    for (int i = 0; i < plan->graph->n_outputs; i++) {
        const evm_tensor *t = &plan->values[plan->graph->outputs[i]];
        if (t->dtype == EVM_DTYPE_UNDEFINED)
            return evm_fail(err, EVMAP_ERR_BAD_FILE, "graph output '%s' is never computed",
                            plan->graph->values[plan->graph->outputs[i]].name);
    }
    return EVMAP_OK;
}

/* Initializer bytes: the weights every plan shares. */
static uint64_t weight_bytes(const evm_graph *graph) {
    uint64_t bytes = 0;
    for (int i = 0; i < graph->n_values; i++)
        if (graph->values[i].is_initializer)
            bytes += graph->values[i].tensor.count * evm_dtype_size(graph->values[i].tensor.dtype);
    return bytes;
}

evmap_status evm_plan_create(const evm_graph *graph, const evm_tensor *input_shapes, evm_plan **out,
                             evmap_error *err) {
    *out = NULL;
    evm_plan *plan = calloc(1, sizeof *plan);
    if (!plan)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory planning");
    plan->graph = graph;
    plan->budget.limit = graph->max_memory;
    plan->budget.used = weight_bytes(graph);
    snprintf(plan->budget.what, sizeof plan->budget.what, "the model");
    plan->values = calloc((size_t)graph->n_values + 1, sizeof *plan->values);
    plan->steps = calloc((size_t)graph->n_nodes + 1, sizeof *plan->steps);
    evmap_status st = plan->values && plan->steps
                          ? bind_inputs(plan, input_shapes, err)
                          : evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory planning");
    for (int i = 0; st == EVMAP_OK && i < graph->n_nodes; i++)
        if (!graph->nodes[i].removed)
            st = plan_node(plan, i, err);
    if (st == EVMAP_OK)
        st = check_outputs(plan, err);
    if (st == EVMAP_OK && plan->workspace_floats)
        st = evm_budget_charge(&plan->budget, plan->workspace_floats * sizeof(float), err);
    if (st == EVMAP_OK && plan->workspace_floats) {
        plan->workspace = malloc(plan->workspace_floats * sizeof(float));
        if (!plan->workspace)
            st = evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes of workspace",
                          plan->workspace_floats * sizeof(float));
    }
    if (st != EVMAP_OK) {
        evm_plan_free(plan);
        return st;
    }
    *out = plan;
    return EVMAP_OK;
}

void evm_plan_run(evm_plan *plan) {
    evm_plan_run_until(plan, NULL, NULL);
}

bool evm_plan_run_until(evm_plan *plan, int (*stop)(void *user), void *user) {
    return evm_plan_run_range(plan, 0, plan->n_steps, stop, user);
}

bool evm_plan_run_range(evm_plan *plan, int first, int last, int (*stop)(void *user), void *user) {
    for (int i = first; i < last; i++) {
        if (stop && stop(user))
            return false;
        const evm_plan_step *s = &plan->steps[i];
        const evm_node *node = &plan->graph->nodes[s->node];
        evm_op_get(node->kind)->forward(node, s->in, s->out, plan->workspace);
    }
    return true;
}

/* Marks the non-constant values that steps [first, n_steps) read or write,
 * and the graph outputs. used has graph->n_values entries. */
static void mark_used_from(const evm_plan *plan, int first, bool *used) {
    const evm_graph *g = plan->graph;
    for (int i = first; i < plan->n_steps; i++) {
        const evm_node *node = &g->nodes[plan->steps[i].node];
        for (int j = 0; j < node->n_inputs; j++)
            if (node->inputs[j] != EVM_NO_VALUE)
                used[node->inputs[j]] = true;
        for (int j = 0; j < node->n_outputs; j++)
            if (node->outputs[j] != EVM_NO_VALUE)
                used[node->outputs[j]] = true;
    }
    for (int i = 0; i < g->n_outputs; i++)
        used[g->outputs[i]] = true;
    for (int v = 0; v < g->n_values; v++)
        used[v] = used[v] && !plan->values[v].is_const && plan->values[v].data;
}

size_t evm_plan_bytes_from(const evm_plan *plan, int first) {
    bool *used = calloc((size_t)plan->graph->n_values + 1, sizeof *used);
    if (!used)
        return plan->activation_bytes;
    mark_used_from(plan, first, used);
    size_t bytes = 0;
    for (int v = 0; v < plan->graph->n_values; v++)
        if (used[v])
            bytes += plan->values[v].count * evm_dtype_size(plan->values[v].dtype);
    free(used);
    return bytes;
}

void evm_plan_release_before(evm_plan *plan, int first) {
    const evm_graph *g = plan->graph;
    bool *used = calloc((size_t)g->n_values + 1, sizeof *used);
    if (!used)
        return; /* keeping every buffer is always correct */
    mark_used_from(plan, first, used);
    for (int v = 0; v < g->n_values; v++) {
        evm_tensor *t = &plan->values[v];
        if (!used[v] && !t->is_const && t->owns_data) {
            plan->activation_bytes -= t->count * evm_dtype_size(t->dtype);
            evm_tensor_release(t);
        }
    }
    free(used);
}
