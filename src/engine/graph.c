/* Graph storage, attribute access for operators, and load-time rewrites. */
#include "graph.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"

static void attr_free(evm_attr *a) {
    free(a->name);
    free(a->s);
    free(a->floats);
    free(a->ints);
    evm_tensor_release(&a->t);
}

void evm_graph_free(evm_graph *graph) {
    if (!graph)
        return;
    for (int i = 0; i < graph->n_nodes; i++) {
        evm_node *n = &graph->nodes[i];
        free(n->name);
        free(n->inputs);
        free(n->outputs);
        for (size_t a = 0; a < n->n_attrs; a++)
            attr_free(&n->attrs[a]);
        free(n->attrs);
        free(n->params);
    }
    for (int i = 0; i < graph->n_values; i++) {
        free(graph->values[i].name);
        evm_tensor_release(&graph->values[i].tensor);
    }
    free(graph->nodes);
    free(graph->values);
    free(graph->inputs);
    free(graph->outputs);
    free(graph);
}

int evm_graph_find_value(const evm_graph *graph, const char *name) {
    for (int i = 0; i < graph->n_values; i++)
        if (strcmp(graph->values[i].name, name) == 0)
            return i;
    return -1;
}

int evm_graph_count_consumers(const evm_graph *graph, int v) {
    int count = 0;
    for (int i = 0; i < graph->n_nodes; i++) {
        const evm_node *n = &graph->nodes[i];
        if (n->removed)
            continue;
        for (int j = 0; j < n->n_inputs; j++)
            count += n->inputs[j] == v;
    }
    for (int i = 0; i < graph->n_outputs; i++)
        count += graph->outputs[i] == v;
    return count;
}

const char *evm_op_name(evm_op_kind kind) {
    return evm_op_get(kind)->name;
}

evmap_status evm_node_fail(evmap_error *err, const evm_node *node, evmap_status status,
                           const char *fmt, ...) {
    char detail[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return evm_fail(err, status, "node '%s' (%s): %s", node->name, evm_op_name(node->kind), detail);
}

void *evm_node_alloc_params(evm_node *node, size_t size, evmap_error *err) {
    node->params = calloc(1, size);
    if (!node->params)
        evm_node_fail(err, node, EVMAP_ERR_OUT_OF_MEMORY, "out of memory for its parameters");
    return node->params;
}

evmap_status evm_node_set_params(evm_node *node, const void *params, size_t size,
                                 evmap_error *err) {
    void *copy = evm_node_alloc_params(node, size, err);
    if (!copy)
        return EVMAP_ERR_OUT_OF_MEMORY;
    memcpy(copy, params, size);
    return EVMAP_OK;
}

const evm_attr *evm_node_attr(const evm_node *node, const char *name) {
    for (size_t i = 0; i < node->n_attrs; i++) {
        if (strcmp(node->attrs[i].name, name) == 0) {
            node->attrs[i].consulted = true;
            return &node->attrs[i];
        }
    }
    return NULL;
}

void evm_attr_ignore(const evm_node *node, const char *name) {
    (void)evm_node_attr(node, name);
}

evmap_status evm_node_check_attrs(const evm_node *node, evmap_error *err) {
    for (size_t i = 0; i < node->n_attrs; i++) {
        const evm_attr *a = &node->attrs[i];
        /* opset 1's in-place hint: never changes a value. */
        if (a->consulted || strcmp(a->name, "consumed_inputs") == 0)
            continue;
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "attribute '%s' is not one evmap knows for %s at opset %d, and "
                             "ignoring it could change the result; remove it or re-export the "
                             "model",
                             a->name, evm_op_name(node->kind), node->opset);
    }
    return EVMAP_OK;
}

static evmap_status attr_type_error(const evm_node *node, const char *name, const char *want,
                                    evmap_error *err) {
    return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "attribute '%s' must be %s", name, want);
}

evmap_status evm_attr_int(const evm_node *node, const char *name, int64_t fallback, int64_t *out,
                          evmap_error *err) {
    const evm_attr *a = evm_node_attr(node, name);
    if (!a) {
        *out = fallback;
        return EVMAP_OK;
    }
    if (a->type != EVM_ATTR_INT)
        return attr_type_error(node, name, "an integer", err);
    *out = a->i;
    return EVMAP_OK;
}

evmap_status evm_attr_float(const evm_node *node, const char *name, float fallback, float *out,
                            evmap_error *err) {
    const evm_attr *a = evm_node_attr(node, name);
    if (!a) {
        *out = fallback;
        return EVMAP_OK;
    }
    if (a->type != EVM_ATTR_FLOAT)
        return attr_type_error(node, name, "a float", err);
    *out = a->f;
    return EVMAP_OK;
}

evmap_status evm_attr_string(const evm_node *node, const char *name, const char *fallback,
                             const char **out, evmap_error *err) {
    const evm_attr *a = evm_node_attr(node, name);
    if (!a) {
        *out = fallback;
        return EVMAP_OK;
    }
    if (a->type != EVM_ATTR_STRING)
        return attr_type_error(node, name, "a string", err);
    *out = a->s;
    return EVMAP_OK;
}

evmap_status evm_attr_ints(const evm_node *node, const char *name, const int64_t **out, size_t *n,
                           evmap_error *err) {
    const evm_attr *a = evm_node_attr(node, name);
    *out = NULL;
    *n = 0;
    if (!a)
        return EVMAP_OK;
    if (a->type != EVM_ATTR_INTS)
        return attr_type_error(node, name, "a list of integers", err);
    *out = a->ints;
    *n = a->n;
    return EVMAP_OK;
}

evmap_status evm_attr_floats(const evm_node *node, const char *name, const float **out, size_t *n,
                             evmap_error *err) {
    const evm_attr *a = evm_node_attr(node, name);
    *out = NULL;
    *n = 0;
    if (!a)
        return EVMAP_OK;
    if (a->type != EVM_ATTR_FLOATS)
        return attr_type_error(node, name, "a list of floats", err);
    *out = a->floats;
    *n = a->n;
    return EVMAP_OK;
}

/* ---------------------------------------------------- BatchNorm folding */

static bool is_const_float(const evm_graph *g, int v) {
    return v >= 0 && g->values[v].is_initializer && g->values[v].tensor.dtype == EVM_DTYPE_FLOAT &&
           g->values[v].tensor.data;
}

/* The Conv whose only consumer is node bn, with constant weights; -1 if none. */
static int foldable_conv(const evm_graph *g, const evm_node *bn) {
    int x = bn->inputs[0];
    int producer = g->values[x].producer;
    if (producer < 0)
        return -1;
    const evm_node *conv = &g->nodes[producer];
    if (conv->removed || conv->kind != EVM_OP_CONV || evm_graph_count_consumers(g, x) != 1)
        return -1;
    if (!is_const_float(g, conv->inputs[1]))
        return -1;
    /* Odd weights are left to Conv's own checks, which name the problem. */
    const evm_tensor *w = &g->values[conv->inputs[1]].tensor;
    if (w->rank != 4 || w->dims[0] < 1)
        return -1;
    if (conv->n_inputs > 2 && conv->inputs[2] != EVM_NO_VALUE &&
        !is_const_float(g, conv->inputs[2]))
        return -1;
    /* The weights must not be shared with another node we would change too. */
    if (evm_graph_count_consumers(g, conv->inputs[1]) != 1)
        return -1;
    for (int i = 1; i < 5; i++)
        if (!is_const_float(g, bn->inputs[i]))
            return -1;
    return producer;
}

/* Adds a new zero-filled bias value of m floats for a Conv that had none. */
static evmap_status add_bias_value(evm_graph *g, evm_node *conv, int64_t m, evmap_error *err) {
    evm_value *grown = realloc(g->values, sizeof *grown * (size_t)(g->n_values + 1));
    if (!grown)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory folding BatchNorm");
    g->values = grown;
    evm_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    char name[300];
    snprintf(name, sizeof name, "%s.folded_bias", conv->name);
    v->name = strdup(name);
    v->producer = -1;
    v->is_initializer = true;
    v->has_shape = true;
    v->tensor.dtype = EVM_DTYPE_FLOAT;
    v->tensor.is_const = true;
    evmap_status st = evm_tensor_set_shape(&v->tensor, 1, &m, err);
    if (st == EVMAP_OK)
        st = evm_tensor_alloc(&v->tensor, err);
    if (st != EVMAP_OK || !v->name) {
        free(v->name);
        evm_tensor_release(&v->tensor);
        return st != EVMAP_OK ? st : evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
    }
    if (conv->n_inputs < 3) {
        int *inputs = realloc(conv->inputs, sizeof(int) * 3);
        if (!inputs) {
            free(v->name);
            evm_tensor_release(&v->tensor);
            return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory folding BatchNorm");
        }
        conv->inputs = inputs;
        conv->n_inputs = 3;
    }
    conv->inputs[2] = g->n_values;
    g->n_values++;
    return EVMAP_OK;
}

static evmap_status fold_one(evm_graph *g, int conv_index, evm_node *bn, evmap_error *err) {
    evm_node *conv = &g->nodes[conv_index];
    evm_tensor *w = &g->values[conv->inputs[1]].tensor;
    int64_t m = w->dims[0];
    for (int i = 1; i < 5; i++)
        if (g->values[bn->inputs[i]].tensor.count != (size_t)m)
            return evm_node_fail(err, bn, EVMAP_ERR_BAD_FILE,
                                 "parameter %d has %zu values but the convolution has %lld "
                                 "output channels",
                                 i, g->values[bn->inputs[i]].tensor.count, (long long)m);
    float epsilon;
    evmap_status st = evm_attr_float(bn, "epsilon", 1e-5f, &epsilon, err);
    if (st != EVMAP_OK)
        return st;
    if (conv->n_inputs < 3 || conv->inputs[2] == EVM_NO_VALUE) {
        st = add_bias_value(g, conv, m, err);
        if (st != EVMAP_OK)
            return st;
        w = &g->values[conv->inputs[1]].tensor; /* values may have moved */
    }
    evm_tensor *b = &g->values[conv->inputs[2]].tensor;
    if (b->count != (size_t)m)
        return evm_node_fail(err, conv, EVMAP_ERR_BAD_FILE, "bias has %zu values, expected %lld",
                             b->count, (long long)m);
    const float *scale = evm_f32(&g->values[bn->inputs[1]].tensor);
    const float *shift = evm_f32(&g->values[bn->inputs[2]].tensor);
    const float *mean = evm_f32(&g->values[bn->inputs[3]].tensor);
    const float *var = evm_f32(&g->values[bn->inputs[4]].tensor);
    size_t per_channel = w->count / (size_t)m;
    float *wd = evm_f32(w), *bd = evm_f32(b);
    for (int64_t c = 0; c < m; c++) {
        /* Folding in double keeps the result within float rounding of BN. */
        double factor = (double)scale[c] / sqrt((double)var[c] + (double)epsilon);
        for (size_t k = 0; k < per_channel; k++)
            wd[(size_t)c * per_channel + k] = (float)(wd[(size_t)c * per_channel + k] * factor);
        bd[c] = (float)(((double)bd[c] - mean[c]) * factor + shift[c]);
    }
    /* The Conv now writes the BatchNorm's output directly. */
    int old_out = conv->outputs[0];
    conv->outputs[0] = bn->outputs[0];
    g->values[bn->outputs[0]].producer = conv_index;
    g->values[old_out].producer = -1;
    bn->removed = true;
    return EVMAP_OK;
}

evmap_status evm_graph_fold_batchnorm(evm_graph *graph, evmap_error *err) {
    for (int i = 0; i < graph->n_nodes; i++) {
        evm_node *bn = &graph->nodes[i];
        if (bn->removed || bn->kind != EVM_OP_BATCH_NORMALIZATION || bn->n_inputs != 5)
            continue;
        if (bn->n_outputs > 1) /* training-mode outputs: leave to the op to reject */
            continue;
        int conv = foldable_conv(graph, bn);
        if (conv < 0)
            continue;
        evmap_status st = fold_one(graph, conv, bn, err);
        if (st != EVMAP_OK)
            return st;
    }
    return EVMAP_OK;
}
