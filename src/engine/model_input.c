/*
 * The model's image input: one float32 input of rank 4 with fixed channels
 * (1 or 3); its height and width may be fixed or free (symbolic). Its layout in the file is NCHW or
 * NHWC (as tf2onnx writes it); for NHWC a Transpose (perm 0,2,3,1) is inserted at load time after a
 * new NCHW input, so that callers and the rest of the engine see NCHW only.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "model_internal.h"
#include "ops/op.h"

const char *evmap_layout_name(evmap_layout layout) {
    return layout == EVMAP_LAYOUT_NCHW ? "nchw" : layout == EVMAP_LAYOUT_NHWC ? "nhwc" : "auto";
}

static bool is_channel_count(int64_t d) {
    return d == 1 || d == 3;
}

/* "'a', 'b', 'c'" (shortened when long): the names of the graph's inputs. */
static void input_names(const evm_graph *g, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < g->n_inputs && used < size; i++) {
        int n = snprintf(buf + used, size - used, "%s'%s'", i ? ", " : "",
                         g->values[g->inputs[i]].name);
        if (n < 0 || (size_t)n >= size - used) {
            snprintf(buf + (used < size - 5 ? used : size - 5), 5, "...");
            return;
        }
        used += (size_t)n;
    }
}

/* Makes value v (NHWC) the output of a new first node, Transpose(perm
 * 0,2,3,1), whose input is a new graph input named as v was, of shape
 * N×C×H×W. */
static evmap_status insert_transpose(evm_graph *g, int v, evmap_error *err) {
    evm_value *values = realloc(g->values, sizeof *values * (size_t)(g->n_values + 1));
    if (!values)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory loading the graph");
    g->values = values;
    evm_node *nodes = realloc(g->nodes, sizeof *nodes * (size_t)(g->n_nodes + 1));
    if (!nodes)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory loading the graph");
    g->nodes = nodes;
    size_t len = strlen(values[v].name);
    char *nhwc_name = malloc(len + sizeof ".nhwc");
    evm_node node = {.kind = EVM_OP_TRANSPOSE, .opset = g->opset, .n_inputs = 1, .n_outputs = 1};
    node.name = strdup("evmap_nhwc_to_nchw");
    node.inputs = malloc(sizeof(int));
    node.outputs = malloc(sizeof(int));
    node.attrs = calloc(1, sizeof(evm_attr));
    int64_t *perm = malloc(4 * sizeof *perm);
    if (!nhwc_name || !node.name || !node.inputs || !node.outputs || !node.attrs || !perm ||
        !(node.attrs[0].name = strdup("perm"))) {
        free(nhwc_name);
        free(perm);
        if (node.attrs)
            free(node.attrs[0].name);
        free(node.attrs);
        free(node.name);
        free(node.inputs);
        free(node.outputs);
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory loading the graph");
    }
    perm[0] = 0, perm[1] = 2, perm[2] = 3, perm[3] = 1;
    node.attrs[0].type = EVM_ATTR_INTS;
    node.attrs[0].ints = perm;
    node.attrs[0].n = 4;
    node.n_attrs = 1;

    /* the new input w takes v's name, shape N×C×H×W and place among the inputs */
    int w = g->n_values++;
    evm_value *in = &values[w], *old = &values[v];
    *in = *old;
    const int64_t *d = old->tensor.dims;
    int64_t dims[4] = {d[0], d[3], d[1], d[2]};
    memcpy(in->tensor.dims, dims, sizeof dims);
    memcpy(nhwc_name, old->name, len);
    memcpy(nhwc_name + len, ".nhwc", sizeof ".nhwc");
    old->name = nhwc_name;
    old->is_input = false;
    old->has_shape = false;
    for (int i = 0; i < g->n_inputs; i++)
        if (g->inputs[i] == v)
            g->inputs[i] = w;

    /* the Transpose becomes node 0; later nodes move up by one */
    memmove(&nodes[1], &nodes[0], sizeof *nodes * (size_t)g->n_nodes);
    g->n_nodes++;
    for (int i = 0; i < g->n_values; i++)
        if (values[i].producer >= 0)
            values[i].producer++;
    node.inputs[0] = w;
    node.outputs[0] = v;
    nodes[0] = node;
    old->producer = 0;
    evmap_status st = evm_op_get(EVM_OP_TRANSPOSE)->init(&nodes[0], err);
    return st == EVMAP_OK ? evm_node_check_attrs(&nodes[0], err) : st;
}

evmap_status evm_model_check_input(evmap_model *m, evmap_layout layout, evmap_error *err) {
    evm_graph *g = m->graph;
    if (g->n_inputs != 1) {
        char names[200];
        input_names(g, names, sizeof names);
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED,
                        "the model has %d inputs%s%s%s; evmap explains classifiers with one image "
                        "input",
                        g->n_inputs, g->n_inputs ? " (" : "", names, g->n_inputs ? ")" : "");
    }
    int v = g->inputs[0];
    const evm_value *in = &g->values[v];
    const evm_tensor *t = &in->tensor;
    if (!in->has_shape || t->rank != 4 || t->dtype != EVM_DTYPE_FLOAT) {
        char what[64] = "";
        if (!in->has_shape)
            snprintf(what, sizeof what, "; it declares no shape");
        else if (t->rank != 4 || t->dtype != EVM_DTYPE_FLOAT)
            snprintf(what, sizeof what, "; it is %s of rank %d", evm_dtype_name(t->dtype), t->rank);
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED,
                        "input '%s' must be a float32 image batch N×C×H×W (rank 4)%s", in->name,
                        what);
    }
    const int64_t *d = t->dims;
    if (layout == EVMAP_LAYOUT_AUTO)
        layout = is_channel_count(d[3]) && !is_channel_count(d[1]) ? EVMAP_LAYOUT_NHWC
                                                                   : EVMAP_LAYOUT_NCHW;
    bool nhwc = layout == EVMAP_LAYOUT_NHWC;
    int axis_c = nhwc ? 3 : 1, axis_h = nhwc ? 1 : 2, axis_w = nhwc ? 2 : 3;
    for (int i = 1; i < 4; i++)
        if (d[i] > 65535 || (i == axis_c && d[i] <= 0))
            return evm_fail(
                err, EVMAP_ERR_UNSUPPORTED,
                "input '%s' %s; evmap takes 1 or 3 channels and sides up to 65535", in->name,
                d[i] <= 0 ? "has no fixed channel count" : "declares a side over 65535");
    if (!is_channel_count(d[axis_c]))
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED,
                        "input '%s' has %lld channels; evmap handles gray (1) and RGB (3) images%s",
                        in->name, (long long)d[axis_c], nhwc ? " (read as NHWC)" : "");
    /* A free side (symbolic or missing) runs at each image's size; until a
     * caller sets one, the model is planned at a trial size. */
    m->info.channels = (int)d[axis_c];
    m->info.free_height = d[axis_h] <= 0;
    m->info.free_width = d[axis_w] <= 0;
    m->info.height = m->info.free_height ? EVMAP_TRIAL_SIDE : (int)d[axis_h];
    m->info.width = m->info.free_width ? EVMAP_TRIAL_SIDE : (int)d[axis_w];
    m->info.layout = layout;
    /* any int64 in the file: only 1..INT_MAX is a batch size */
    m->declared_batch = d[0] >= 1 && d[0] <= INT_MAX ? (int)d[0] : -1;
    return nhwc ? insert_transpose(g, v, err) : EVMAP_OK;
}
