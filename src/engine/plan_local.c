/* Exact locality: region-wise execution of a plan on top of a cache (plan_local.h). */
#include "plan_local.h"

#include <stdlib.h>
#include <string.h>

struct evm_local {
    const evm_plan *cache; /* batch 1, the unperturbed image */
    evm_plan *plan;        /* batch rows */
    int batch;
    int input;        /* value index of graph input 0 */
    evm_region *cur;  /* per value: region of the current change */
    evm_region *prev; /* per value: region last written into plan's buffer */
    int cut;          /* steps [0, cut) run on regions */
    bool *frontier;   /* per value: exported to the full plan */
    size_t workspace_floats;
    float *workspace;
    double *step_macs;      /* per step: multiply-adds of a full forward at batch rows */
    evm_region *in_regions; /* scratch: one per input of the widest node */
    double macs;
    /* The samples' mean (evm_local_set_mean): steps [mean_from, cut) run on
     * row 0 only, after the values in mean_values were averaged into it;
     * -1: every step runs on every row. */
    int mean_from;
    bool *mean_values;    /* per value: averaged into row 0 before step mean_from */
    bool *single_row;     /* per value: computed on row 0 only (the other rows stay cached) */
    evm_tensor *views;    /* scratch: row-0 views of one step's inputs and output */
    evm_tensor **view_in; /* widest + 1, NULL-terminated like a step's inputs */
    evm_tensor *view_out;
};

static const evm_region region_none = {.kind = EVM_REGION_NONE};
static const evm_region region_all = {.kind = EVM_REGION_ALL};

void evm_local_free(evm_local *l) {
    if (!l)
        return;
    evm_plan_free(l->plan);
    free(l->cur);
    free(l->prev);
    free(l->frontier);
    free(l->workspace);
    free(l->step_macs);
    free(l->in_regions);
    free(l->mean_values);
    free(l->single_row);
    free(l->views);
    free(l->view_in);
    free(l);
}

evmap_status evm_local_create(const evm_plan *cache, int batch, evm_local **out, evmap_error *err) {
    *out = NULL;
    const evm_graph *g = cache->graph;
    evm_local *l = calloc(1, sizeof *l);
    evm_tensor *shapes = calloc((size_t)g->n_inputs + 1, sizeof *shapes);
    if (!l || !shapes) {
        free(l);
        free(shapes);
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory planning locality");
    }
    for (int i = 0; i < g->n_inputs; i++) {
        shapes[i] = cache->values[g->inputs[i]];
        shapes[i].is_const = false;
        shapes[i].owns_data = false;
        shapes[i].data = NULL;
        shapes[i].dims[0] = batch;
    }
    l->cache = cache;
    l->batch = batch;
    l->input = g->inputs[0];
    evmap_status st = evm_plan_create(g, shapes, &l->plan, err);
    free(shapes);
    if (st == EVMAP_OK && l->plan->n_steps != cache->n_steps)
        st = evm_fail(err, EVMAP_ERR_INTERNAL, "plans of batch 1 and %d differ", batch);
    for (int i = 0; st == EVMAP_OK && i < cache->n_steps; i++)
        if (l->plan->steps[i].node != cache->steps[i].node)
            st = evm_fail(err, EVMAP_ERR_INTERNAL, "plans of batch 1 and %d differ", batch);
    if (st == EVMAP_OK) {
        size_t n = (size_t)g->n_values + 1;
        l->cur = calloc(n, sizeof *l->cur);
        l->prev = calloc(n, sizeof *l->prev);
        l->frontier = calloc(n, sizeof *l->frontier);
        l->step_macs = calloc((size_t)l->plan->n_steps + 1, sizeof *l->step_macs);
        int widest = 1;
        for (int i = 0; i < g->n_nodes; i++)
            widest = g->nodes[i].n_inputs > widest ? g->nodes[i].n_inputs : widest;
        l->in_regions = calloc((size_t)widest, sizeof *l->in_regions);
        l->views = calloc((size_t)widest + 1, sizeof *l->views);
        l->view_in = calloc((size_t)widest + 1, sizeof *l->view_in);
        if (!l->cur || !l->prev || !l->frontier || !l->step_macs || !l->in_regions || !l->views ||
            !l->view_in)
            st = evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory planning locality");
    }
    if (st != EVMAP_OK) {
        evm_local_free(l);
        return st;
    }
    for (int i = 0; i < l->plan->n_steps; i++) {
        const evm_plan_step *s = &l->plan->steps[i];
        const evm_node *node = &g->nodes[s->node];
        const evm_op_def *def = evm_op_get(node->kind);
        l->step_macs[i] = def->macs ? def->macs(node, s->in, s->out) : 0.0;
    }
    l->cut = l->plan->n_steps;
    l->mean_from = -1;
    *out = l;
    return EVMAP_OK;
}

/* ------------------------------------------------------------ regions */

static bool is_map(const evm_tensor *t) {
    return t && t->rank == 4 && t->dtype == EVM_DTYPE_FLOAT;
}

/* How an element-wise op's input j is read inside a region of the output. */
typedef enum { OPERAND_SAME, OPERAND_SCALAR, OPERAND_CHANNEL, OPERAND_OTHER } operand_kind;

static operand_kind operand_of(const evm_node *node, const evm_tensor *t, const evm_tensor *y) {
    if (t->dtype != EVM_DTYPE_FLOAT)
        return OPERAND_OTHER;
    if (evm_same_shape(t, y))
        return OPERAND_SAME;
    bool legacy = node->opset < 7 && (node->kind == EVM_OP_ADD || node->kind == EVM_OP_MUL ||
                                      node->kind == EVM_OP_SUB || node->kind == EVM_OP_DIV ||
                                      node->kind == EVM_OP_POW);
    if (legacy)
        return OPERAND_OTHER; /* old broadcasting rules: same shapes only */
    if (t->count == 1)
        return OPERAND_SCALAR;
    /* [C,1,1] or [1,C,1,1]: aligned at the last axis, only the channel axis > 1 */
    if (t->rank < 3 || t->rank > 4 || t->count != (size_t)y->dims[1])
        return OPERAND_OTHER;
    return t->dims[t->rank - 3] == y->dims[1] ? OPERAND_CHANNEL : OPERAND_OTHER;
}

static evm_region field_elementwise(const evm_node *node, evm_tensor *const *in,
                                    evm_tensor *const *out, const evm_region *in_regions) {
    evm_region r = region_none;
    if (node->n_inputs > 8)
        return region_all; /* elementwise_region views at most 8 operands */
    for (int j = 0; j < node->n_inputs; j++) {
        if (!in[j])
            continue;
        operand_kind k = operand_of(node, in[j], out[0]);
        if (k == OPERAND_OTHER)
            return region_all;
        if (in_regions[j].kind == EVM_REGION_NONE)
            continue;
        if (k != OPERAND_SAME)
            return region_all; /* a changed scalar or per-channel value changes everything */
        r = evm_region_union(r, in_regions[j]);
    }
    return r;
}

/* Region of step i's output from the current regions of its inputs. */
static evm_region step_field(const evm_local *l, int i) {
    const evm_plan_step *s = &l->plan->steps[i];
    const evm_node *node = &l->plan->graph->nodes[s->node];
    const evm_op_def *def = evm_op_get(node->kind);
    evm_region *in_regions = l->in_regions;
    bool changed = false;
    for (int j = 0; j < node->n_inputs; j++) {
        int v = node->inputs[j];
        in_regions[j] =
            v == EVM_NO_VALUE || !s->in[j] || s->in[j]->is_const ? region_none : l->cur[v];
        changed |= in_regions[j].kind != EVM_REGION_NONE;
    }
    if (!changed)
        return region_none;
    for (int j = 1; j < node->n_outputs; j++)
        if (node->outputs[j] != EVM_NO_VALUE)
            return region_all;
    if (!is_map(s->out[0]) || (!def->elementwise && !(def->field && def->forward_region)))
        return region_all; /* a global op */
    evm_region r = def->elementwise ? field_elementwise(node, s->in, s->out, in_regions)
                                    : def->field(node, s->in, s->out, in_regions);
    if (r.kind == EVM_REGION_RECT)
        r = evm_region_clip(r.y0, r.y1, r.x0, r.x1, s->out[0]->dims[2], s->out[0]->dims[3]);
    return r;
}

/* Sets cur for the input and steps [0, last); returns the first step (below
 * last) whose region is ALL, or last. Steps after an ALL one keep going so
 * that cur stays meaningful, but the caller only uses those before. */
static int propagate(evm_local *l, const evm_region *change, int last) {
    const evm_graph *g = l->plan->graph;
    for (int v = 0; v < g->n_values; v++)
        l->cur[v] = region_none;
    l->cur[l->input] = *change;
    int first_all = last;
    for (int i = 0; i < last; i++) {
        evm_region r = step_field(l, i);
        const evm_node *node = &g->nodes[l->plan->steps[i].node];
        l->cur[node->outputs[0]] = r;
        if (r.kind == EVM_REGION_ALL) {
            first_all = i;
            break;
        }
    }
    return first_all;
}

int evm_local_survey(evm_local *l, const evm_region *change) {
    int first_all = propagate(l, change, l->plan->n_steps);
    for (int i = 0; i < first_all; i++) {
        const evm_plan_step *s = &l->plan->steps[i];
        const evm_node *node = &l->plan->graph->nodes[s->node];
        const evm_op_def *def = evm_op_get(node->kind);
        const evm_region *r = &l->cur[node->outputs[0]];
        if (r->kind != EVM_REGION_RECT || !def->region_workspace)
            continue;
        size_t ws = def->region_workspace(node, s->in, s->out, r);
        if (ws > l->workspace_floats)
            l->workspace_floats = ws;
    }
    return first_all;
}

/* ------------------------------------------------------------- buffers */

/* Copies region r of the cached value v into every row of the plan's (row 0
 * only for values computed after the samples' mean: the other rows are
 * never written). */
static void restore(evm_local *l, int v, const evm_region *r) {
    const evm_tensor *src = &l->cache->values[v];
    evm_tensor *dst = &l->plan->values[v];
    size_t per_row = src->count;
    int rows = l->single_row && l->single_row[v] ? 1 : l->batch;
    if (r->kind == EVM_REGION_ALL || !is_map(src)) {
        for (int b = 0; b < rows; b++)
            memcpy(evm_f32(dst) + (size_t)b * per_row, evm_f32(src), per_row * sizeof(float));
        return;
    }
    int64_t c = src->dims[1], w = src->dims[3];
    size_t plane = (size_t)(src->dims[2] * w), len = (size_t)(r->x1 - r->x0);
    for (int b = 0; b < rows; b++)
        for (int64_t ch = 0; ch < c; ch++) {
            const float *s = evm_f32(src) + (size_t)ch * plane;
            float *d = evm_f32(dst) + (size_t)b * per_row + (size_t)ch * plane;
            for (int64_t y = r->y0; y < r->y1; y++)
                memcpy(d + y * w + r->x0, s + y * w + r->x0, len * sizeof(float));
        }
}

evmap_status evm_local_set_cut(evm_local *l, int cut, evmap_error *err) {
    const evm_graph *g = l->plan->graph;
    if (l->mean_from > cut)
        return evm_fail(err, EVMAP_ERR_INTERNAL, "the samples' mean at step %d, beyond cut %d",
                        l->mean_from, cut);
    l->cut = cut;
    if (l->workspace_floats) {
        /* a region_workspace may saturate to SIZE_MAX */
        size_t bytes;
        if (!evm_mul_size(l->workspace_floats, sizeof(float), &bytes))
            return evm_fail(err, EVMAP_ERR_TOO_LARGE, "the locality workspace is too large");
        l->workspace = malloc(bytes);
        if (!l->workspace)
            return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY,
                            "cannot allocate %zu bytes of locality workspace", bytes);
    }
    /* values computed before cut: filled from the cache; those read from cut
     * on (or graph outputs): the frontier */
    bool *local = calloc((size_t)g->n_values + 1, sizeof *local);
    if (!local)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory planning locality");
    local[l->input] = true;
    for (int i = 0; i < cut; i++) {
        const evm_node *node = &g->nodes[l->plan->steps[i].node];
        for (int j = 0; j < node->n_outputs; j++)
            if (node->outputs[j] != EVM_NO_VALUE)
                local[node->outputs[j]] = true;
    }
    for (int i = cut; i < l->plan->n_steps; i++) {
        const evm_node *node = &g->nodes[l->plan->steps[i].node];
        for (int j = 0; j < node->n_inputs; j++)
            if (node->inputs[j] != EVM_NO_VALUE && local[node->inputs[j]])
                l->frontier[node->inputs[j]] = true;
    }
    for (int i = 0; i < g->n_outputs; i++)
        if (local[g->outputs[i]])
            l->frontier[g->outputs[i]] = true;
    for (int v = 0; v < g->n_values; v++) {
        evm_tensor *t = &l->plan->values[v];
        l->prev[v] = region_none;
        if (t->is_const || !t->data)
            continue;
        if (local[v])
            restore(l, v, &region_all);
        else if (t->owns_data)
            evm_tensor_release(t); /* only steps from cut on use it: never run here */
    }
    free(local);
    return EVMAP_OK;
}

void evm_local_begin(evm_local *l, const evm_region *change) {
    if (l->prev[l->input].kind != EVM_REGION_NONE)
        restore(l, l->input, &l->prev[l->input]);
    propagate(l, change, l->cut);
    l->prev[l->input] = *change;
}

evm_tensor *evm_local_input(evm_local *l) {
    return &l->plan->values[l->input];
}

int evm_local_cut(const evm_local *l) {
    return l->cut;
}

evm_region evm_local_region(const evm_local *l, int v) {
    return l->cur[v];
}

const evm_plan *evm_local_plan(const evm_local *l) {
    return l->plan;
}

double evm_local_macs(const evm_local *l) {
    return l->macs;
}

/* An element-wise op over region r: forward on each contiguous row segment,
 * with inputs viewed as segments, scalars or one channel's value. */
static void elementwise_region(const evm_node *node, const evm_op_def *def, evm_tensor *const *in,
                               evm_tensor *const *out, const evm_region *r) {
    evm_tensor views[8], yv;
    evm_tensor *vin[8], *vout[1] = {&yv};
    const evm_tensor *y = out[0];
    int64_t c = y->dims[1], h = y->dims[2], w = y->dims[3];
    size_t plane = (size_t)(h * w), planes = (size_t)(y->dims[0] * c);
    bool full_rows = r->x0 == 0 && r->x1 == w;
    size_t len = full_rows ? (size_t)((r->y1 - r->y0) * w) : (size_t)(r->x1 - r->x0);
    int64_t rows = full_rows ? 1 : r->y1 - r->y0;
    operand_kind kind[8];
    int n = node->n_inputs < 8 ? node->n_inputs : 8;
    for (int j = 0; j < n; j++) {
        vin[j] = NULL;
        if (!in[j])
            continue;
        kind[j] = operand_of(node, in[j], y);
        views[j] = *in[j];
        views[j].owns_data = false;
        views[j].rank = 1;
        views[j].dims[0] = kind[j] == OPERAND_SAME ? (int64_t)len : 1;
        views[j].count = (size_t)views[j].dims[0];
        vin[j] = &views[j];
    }
    yv = *y;
    yv.owns_data = false;
    yv.rank = 1;
    yv.dims[0] = (int64_t)len;
    yv.count = len;
    for (size_t p = 0; p < planes; p++)
        for (int64_t row = 0; row < rows; row++) {
            size_t off = p * plane + (size_t)((r->y0 + row) * w + r->x0);
            for (int j = 0; j < n; j++) {
                if (!vin[j])
                    continue;
                if (kind[j] == OPERAND_SAME)
                    views[j].data = evm_f32(in[j]) + off;
                else if (kind[j] == OPERAND_CHANNEL)
                    views[j].data = evm_f32(in[j]) + p % (size_t)c;
            }
            yv.data = evm_f32(y) + off;
            def->forward(node, vin, vout, NULL);
        }
}

evmap_status evm_local_set_mean(evm_local *l, int step, evmap_error *err) {
    const evm_graph *g = l->plan->graph;
    if (step < 0 || step > l->plan->n_steps)
        return evm_fail(err, EVMAP_ERR_INTERNAL, "the samples' mean at step %d of %d", step,
                        l->plan->n_steps);
    size_t n = (size_t)g->n_values + 1;
    bool *computed = calloc(n, sizeof *computed);
    l->mean_values = calloc(n, sizeof *l->mean_values);
    l->single_row = calloc(n, sizeof *l->single_row);
    if (!computed || !l->mean_values || !l->single_row) {
        free(computed);
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory planning locality");
    }
    computed[l->input] = true;
    for (int i = 0; i < l->plan->n_steps; i++) {
        const evm_node *node = &g->nodes[l->plan->steps[i].node];
        if (i >= step) /* what is computed before step and read from it on */
            for (int j = 0; j < node->n_inputs; j++)
                if (node->inputs[j] != EVM_NO_VALUE && computed[node->inputs[j]])
                    l->mean_values[node->inputs[j]] = true;
        for (int j = 0; j < node->n_outputs; j++)
            if (node->outputs[j] != EVM_NO_VALUE) {
                computed[node->outputs[j]] = i < step;
                l->single_row[node->outputs[j]] = i >= step;
            }
    }
    for (int i = 0; i < g->n_outputs; i++)
        if (computed[g->outputs[i]])
            l->mean_values[g->outputs[i]] = true;
    free(computed);
    l->mean_from = step;
    return EVMAP_OK;
}

/* Row 0 of value v := the mean over the rows, inside region r. */
static void average_rows(evm_local *l, int v, const evm_region *r) {
    evm_tensor *t = &l->plan->values[v];
    size_t per_row = t->count / (size_t)l->batch;
    bool whole = r->kind == EVM_REGION_ALL || !is_map(t);
    int64_t h = whole ? 1 : t->dims[2], w = whole ? (int64_t)per_row : t->dims[3];
    int64_t c = whole ? 1 : t->dims[1];
    int64_t y0 = whole ? 0 : r->y0, y1 = whole ? 1 : r->y1;
    int64_t x0 = whole ? 0 : r->x0, x1 = whole ? w : r->x1;
    float *x = evm_f32(t);
    for (int64_t ch = 0; ch < c; ch++)
        for (int64_t y = y0; y < y1; y++) {
            float *row0 = x + (size_t)((ch * h + y) * w);
            for (int64_t i = x0; i < x1; i++) {
                double sum = 0;
                for (int b = 0; b < l->batch; b++)
                    sum += row0[(size_t)b * per_row + (size_t)i];
                row0[i] = (float)(sum / l->batch);
            }
        }
}

/* Before step mean_from: the changed values that later steps read become,
 * in row 0, the mean over the samples (elsewhere every row is the cache). */
static void take_mean(evm_local *l) {
    const evm_graph *g = l->plan->graph;
    for (int v = 0; v < g->n_values; v++)
        if (l->mean_values[v] && l->cur[v].kind != EVM_REGION_NONE)
            average_rows(l, v, &l->cur[v]);
}

/* A view of t's row 0 when t holds one activation per row. */
static evm_tensor *row0_view(const evm_local *l, evm_tensor *t, evm_tensor *view) {
    if (!t || t->is_const || !is_map(t) || t->dims[0] != l->batch)
        return t;
    *view = *t;
    view->owns_data = false;
    view->dims[0] = 1;
    view->count = t->count / (size_t)l->batch;
    return view;
}

/* Step s's inputs and output as row-0 views (steps after the mean). */
static void row0_step(evm_local *l, const evm_plan_step *s, const evm_node *node,
                      evm_tensor *const **in, evm_tensor *const **out) {
    for (int j = 0; j < node->n_inputs; j++)
        l->view_in[j] = row0_view(l, s->in[j], &l->views[j + 1]);
    l->view_in[node->n_inputs] = NULL; /* as in a plan: ops test in[n_inputs] */
    l->view_out = row0_view(l, s->out[0], &l->views[0]);
    *in = l->view_in;
    *out = &l->view_out;
}

bool evm_local_run(evm_local *l, int (*stop)(void *user), void *user) {
    const evm_graph *g = l->plan->graph;
    for (int i = 0; i < l->cut; i++) {
        if (stop && stop(user))
            return false;
        if (i == l->mean_from)
            take_mean(l);
        const evm_plan_step *s = &l->plan->steps[i];
        const evm_node *node = &g->nodes[s->node];
        const evm_op_def *def = evm_op_get(node->kind);
        int v = node->outputs[0];
        const evm_region *r = &l->cur[v];
        if (l->prev[v].kind != EVM_REGION_NONE)
            restore(l, v, &l->prev[v]);
        l->prev[v] = *r;
        if (r->kind == EVM_REGION_NONE)
            continue;
        evm_tensor *const *in = s->in, *const *out = s->out;
        double rows = 1.0;
        if (l->mean_from >= 0 && i >= l->mean_from) {
            row0_step(l, s, node, &in, &out);
            rows = 1.0 / l->batch;
        }
        if (r->kind == EVM_REGION_ALL) { /* not expected before cut; correct anyway */
            def->forward(node, in, out, l->plan->workspace);
            l->macs += l->step_macs[i] * rows;
            continue;
        }
        if (def->elementwise)
            elementwise_region(node, def, in, out, r);
        else
            def->forward_region(node, in, out, r, l->workspace);
        const evm_tensor *y = s->out[0];
        l->macs += l->step_macs[i] * rows * (double)((r->y1 - r->y0) * (r->x1 - r->x0)) /
                   (double)(y->dims[2] * y->dims[3]);
    }
    if (l->mean_from == l->cut)
        take_mean(l);
    return true;
}

void evm_local_export(const evm_local *l, evm_plan *dst, int row) {
    const evm_graph *g = l->plan->graph;
    /* after the samples' mean only row 0 is exported */
    size_t rows = l->mean_from >= 0 ? 1 : (size_t)l->batch;
    for (int v = 0; v < g->n_values; v++) {
        if (!l->frontier[v])
            continue;
        const evm_tensor *src = &l->plan->values[v];
        size_t per_row = src->count / (size_t)l->batch;
        memcpy(evm_f32(&dst->values[v]) + (size_t)row * per_row, evm_f32(src),
               rows * per_row * sizeof(float));
    }
}

double evm_plan_macs(const evm_plan *plan, int first) {
    double total = 0;
    for (int i = first; i < plan->n_steps; i++) {
        const evm_plan_step *s = &plan->steps[i];
        const evm_node *node = &plan->graph->nodes[s->node];
        const evm_op_def *def = evm_op_get(node->kind);
        if (def->macs)
            total += def->macs(node, s->in, s->out);
    }
    return total;
}
