/*
 * The split layer --split auto takes (docs/efficient.md, chosen by
 * measurement): the end of the network's stem, which is the earlier of
 * - the end of the first downsampling stage: from the first step that
 *   shrinks the map, on to the first nonlinearity, then to the first value
 *   every later step reads the input through (the whole state of the
 *   network there), and through a pooling step right after it;
 * - the first fork after a nonlinearity: the input of the first residual or
 *   branching block, when it alone carries the input there.
 * Below it the samples are exact (S per window, on their small receptive-
 * field cones); the window-centred mean is taken there, so the stem's
 * nonlinearity sees the real draws, and the layers above run once per
 * window. Only a cheap stem qualifies (at most STEM_SHARE of a forward
 * pass's multiply-adds: the stem runs S times per window); otherwise, or
 * where no such value exists, the split is the input.
 */
#include <stdbool.h>
#include <stdlib.h>

#include "base/error.h"
#include "engine/model_internal.h"
#include "engine/plan_local.h"
#include "efficient_split.h"
#include "pda_internal.h"

/* The most of a forward pass the stem may cost (Fashion-MNIST CNN: 40 %,
 * too slow for its gain; the scenes model: 5 %, vgg16: 12.5 %). */
#define STEM_SHARE 0.15

static bool is_nonlinear(evm_op_kind kind) {
    switch (kind) {
    case EVM_OP_RELU:
    case EVM_OP_LEAKY_RELU:
    case EVM_OP_PRELU:
    case EVM_OP_THRESHOLDED_RELU:
    case EVM_OP_CLIP:
    case EVM_OP_SIGMOID:
    case EVM_OP_TANH:
    case EVM_OP_HARD_SIGMOID:
    case EVM_OP_HARD_SWISH:
    case EVM_OP_ELU:
    case EVM_OP_SELU:
    case EVM_OP_SOFTPLUS:
    case EVM_OP_SOFTSIGN:
    case EVM_OP_MISH:
    case EVM_OP_GELU:
    case EVM_OP_MAX_POOL:
    case EVM_OP_LRN:
    case EVM_OP_MAX:
    case EVM_OP_MIN: return true;
    default: return false;
    }
}

static bool is_pool(evm_op_kind kind) {
    return kind == EVM_OP_MAX_POOL || kind == EVM_OP_AVERAGE_POOL;
}

/* Whether step i's output is a map smaller than the h × w input. */
static bool downsamples(const evm_plan *plan, int i, int64_t h, int64_t w) {
    const evm_tensor *y = plan->steps[i].out[0];
    return y && y->rank == 4 && y->dtype == EVM_DTYPE_FLOAT && (y->dims[2] < h || y->dims[3] < w);
}

/* last_read[v]: the last step reading v (n_steps for graph outputs; -1: none). */
static void last_reads(const evm_plan *plan, int *last_read) {
    const evm_graph *g = plan->graph;
    for (int v = 0; v < g->n_values; v++)
        last_read[v] = -1;
    for (int i = 0; i < plan->n_steps; i++) {
        const evm_node *node = &g->nodes[plan->steps[i].node];
        for (int j = 0; j < node->n_inputs; j++)
            if (node->inputs[j] != EVM_NO_VALUE)
                last_read[node->inputs[j]] = i;
    }
    for (int i = 0; i < g->n_outputs; i++)
        last_read[g->outputs[i]] = plan->n_steps;
}

/* The value step `from` or a later step computes through which all later
 * steps see the input (nothing else computed so far is read after it);
 * -1 when there is none before a step whose output is not a float map. */
static int single_frontier(const evm_plan *plan, const int *last_read, int from) {
    const evm_graph *g = plan->graph;
    int input = g->inputs[0];
    for (int i = from; i < plan->n_steps; i++) {
        const evm_tensor *y = plan->steps[i].out[0];
        if (!y || y->rank != 4 || y->dtype != EVM_DTYPE_FLOAT)
            return -1;
        int v = g->nodes[plan->steps[i].node].outputs[0];
        bool alone = last_read[input] <= i;
        for (int k = 0; alone && k <= i; k++) {
            const evm_node *node = &g->nodes[plan->steps[k].node];
            for (int j = 0; j < node->n_outputs; j++) {
                int u = node->outputs[j];
                if (u != EVM_NO_VALUE && u != v && last_read[u] > i)
                    alone = false;
            }
        }
        if (alone)
            return v;
    }
    return -1;
}

/* The end of the first downsampling stage: from the first step that shrinks
 * the map, on to the first nonlinearity, its single frontier, and a pooling
 * step right after it; -1: none. */
static int downsampled_end(const evm_plan *plan, const int *last_read, int64_t h, int64_t w) {
    const evm_graph *g = plan->graph;
    int i = 0;
    while (i < plan->n_steps && !downsamples(plan, i, h, w))
        i++;
    while (i < plan->n_steps && !is_nonlinear(g->nodes[plan->steps[i].node].kind))
        i++;
    int v = i < plan->n_steps ? single_frontier(plan, last_read, i) : -1;
    int at = v >= 0 ? pda_producing_step(plan, v) : -1;
    if (at >= 0 && at + 1 < plan->n_steps) {
        const evm_node *next = &g->nodes[plan->steps[at + 1].node];
        int pooled = next->outputs[0];
        if (is_pool(next->kind) && next->inputs[0] == v &&
            single_frontier(plan, last_read, at + 1) == pooled)
            v = pooled;
    }
    return v;
}

/* The first fork after a nonlinearity: a value that several steps read (a
 * residual block's or a branching block's input) and alone carries the
 * input there; -1: none. */
static int first_fork(const evm_plan *plan, const int *last_read) {
    const evm_graph *g = plan->graph;
    int i = 0;
    while (i < plan->n_steps && !is_nonlinear(g->nodes[plan->steps[i].node].kind))
        i++;
    for (; i < plan->n_steps; i++) {
        int v = g->nodes[plan->steps[i].node].outputs[0];
        int readers = 0;
        for (int k = i + 1; k < plan->n_steps; k++) {
            const evm_node *node = &g->nodes[plan->steps[k].node];
            for (int j = 0; j < node->n_inputs; j++)
                if (node->inputs[j] == v) {
                    readers++;
                    break;
                }
        }
        if (readers >= 2)
            return single_frontier(plan, last_read, i) == v ? v : -1;
    }
    return -1;
}

/* The stem's last value (see the top of the file); -1: none. */
static int stem_end(const evm_plan *plan, const int *last_read, int64_t h, int64_t w) {
    int a = downsampled_end(plan, last_read, h, w), b = first_fork(plan, last_read);
    if (a < 0 || b < 0)
        return a < 0 ? b : a;
    return pda_producing_step(plan, a) <= pda_producing_step(plan, b) ? a : b;
}

evmap_status evm_efficient_auto_split(const evmap_model *model, int *value, evmap_error *err) {
    const evm_graph *g = model->graph;
    *value = g->inputs[0];
    evm_plan *plan;
    evmap_status st = evm_model_plan(model, 1, &plan, err);
    if (st != EVMAP_OK)
        return st;
    int *last_read = malloc(sizeof *last_read * ((size_t)g->n_values + 1));
    if (!last_read) {
        evm_plan_free(plan);
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory choosing the split layer");
    }
    last_reads(plan, last_read);
    int v = stem_end(plan, last_read, model->info.height, model->info.width);
    if (v >= 0) {
        int above = pda_producing_step(plan, v) + 1;
        double total = evm_plan_macs(plan, 0);
        if (total > 0 && total - evm_plan_macs(plan, above) <= STEM_SHARE * total)
            *value = v;
    }
    free(last_read);
    evm_plan_free(plan);
    return EVMAP_OK;
}
