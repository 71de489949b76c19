/* Exact locality: region-wise execution of a plan on top of a cache (plan_local.h). */
#include "plan_local_internal.h"

#include <stdlib.h>
#include <string.h>

void evm_local_free(evm_local *l) {
    if (!l)
        return;
    evm_plan_free(l->plan);
    free(l->cur);
    free(l->prev);
    free(l->frontier);
    free(l->footprint);
    free(l->owner);
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
        l->footprint = calloc(n, sizeof *l->footprint);
        l->owner = calloc(n, sizeof *l->owner);
        l->step_macs = calloc((size_t)l->plan->n_steps + 1, sizeof *l->step_macs);
        int widest = 1;
        for (int i = 0; i < g->n_nodes; i++)
            widest = g->nodes[i].n_inputs > widest ? g->nodes[i].n_inputs : widest;
        l->in_regions = calloc((size_t)widest, sizeof *l->in_regions);
        l->views = calloc((size_t)widest + 1, sizeof *l->views);
        l->view_in = calloc((size_t)widest + 1, sizeof *l->view_in);
        if (!l->cur || !l->prev || !l->frontier || !l->footprint || !l->owner || !l->step_macs ||
            !l->in_regions || !l->views || !l->view_in)
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

/* Memory pages (of 4 KiB) that restoring region r of value v touches in
 * its rows; buffers start on a page (evm_tensor_alloc maps large ones). */
static size_t region_bytes(const evm_local *l, int v, const evm_region *r) {
    const evm_tensor *t = &l->cache->values[v];
    size_t rows = l->single_row && l->single_row[v] ? 1 : (size_t)l->batch;
    if (r->kind != EVM_REGION_RECT || !is_map(t))
        return rows * t->count * sizeof(float);
    const size_t page = 4096 / sizeof(float); /* floats per page */
    size_t w = (size_t)t->dims[3], plane = (size_t)t->dims[2] * w, pages = 0, last = SIZE_MAX;
    for (size_t p = 0; p < rows * (size_t)t->dims[1]; p++) {
        size_t first = (p * plane + (size_t)r->y0 * w + (size_t)r->x0) / page;
        size_t end = (p * plane + (size_t)(r->y1 - 1) * w + (size_t)r->x1 - 1) / page;
        pages += end - first + 1 - (first == last); /* a page shared with the previous plane */
        last = end;
    }
    return pages * 4096;
}

/* Restores region prev of value v except where cur, about to be recomputed,
 * overlaps it: windows a pixel apart leave thin strips to copy. */
static void restore_outside(evm_local *l, int v, const evm_region *prev, const evm_region *cur) {
    const evm_tensor *t = &l->cache->values[v];
    if (cur->kind == EVM_REGION_ALL || prev->kind == EVM_REGION_NONE || l->owner[v] != v)
        return; /* (a shared buffer is restored as its owner's value) */
    if (cur->kind == EVM_REGION_NONE || !is_map(t)) {
        restore(l, v, prev);
        return;
    }
    evm_region p = *prev;
    if (p.kind == EVM_REGION_ALL)
        p = (evm_region){EVM_REGION_RECT, 0, t->dims[2], 0, t->dims[3]};
    int64_t top = cur->y0 > p.y0 ? cur->y0 : p.y0, bottom = cur->y1 < p.y1 ? cur->y1 : p.y1;
    if (top >= bottom) { /* no rows in common */
        restore(l, v, &p);
        return;
    }
    int64_t left = cur->x0 > p.x0 ? cur->x0 : p.x0, right = cur->x1 < p.x1 ? cur->x1 : p.x1;
    evm_region strips[4] = {
        {EVM_REGION_RECT, p.y0, top, p.x0, p.x1},
        {EVM_REGION_RECT, bottom, p.y1, p.x0, p.x1},
        {EVM_REGION_RECT, top, bottom, p.x0, left < right ? left : p.x1},
        {EVM_REGION_RECT, top, bottom, left < right ? right : p.x1, p.x1},
    };
    for (int i = 0; i < 4; i++)
        if (strips[i].y0 < strips[i].y1 && strips[i].x0 < strips[i].x1)
            restore(l, v, &strips[i]);
}

/* In-place chains: the input x of an in_place step y = f(x) before cut
 * lives in y's buffer when that step is x's only reader and nothing else
 * needs x afterwards (exported, averaged, a graph output). Outside x's
 * region the shared buffer then holds y's cache: only f reads x, inside its
 * region. Halves the buffers (and the memory they touch) of Conv -> Relu
 * networks. Needs frontier and mean_values; local marks values before cut. */
static void share_buffers(evm_local *l, const bool *local) {
    const evm_graph *g = l->plan->graph;
    int *readers = calloc((size_t)g->n_values + 1, sizeof *readers);
    for (int v = 0; v < g->n_values; v++)
        l->owner[v] = v;
    if (!readers)
        return; /* no sharing: correct, only larger */
    for (int i = 0; i < l->plan->n_steps; i++) {
        const evm_node *node = &g->nodes[l->plan->steps[i].node];
        for (int j = 0; j < node->n_inputs; j++)
            if (node->inputs[j] != EVM_NO_VALUE)
                readers[node->inputs[j]]++;
    }
    for (int i = l->cut - 1; i >= 0; i--) { /* backwards: a chain's end first */
        const evm_plan_step *s = &l->plan->steps[i];
        const evm_node *node = &g->nodes[s->node];
        int x = node->inputs[0], y = node->outputs[0];
        if (!evm_op_get(node->kind)->in_place || x == EVM_NO_VALUE || x == l->input || !local[x] ||
            readers[x] != 1 || l->frontier[x] || (l->mean_values && l->mean_values[x]) ||
            (l->single_row && l->single_row[x] != l->single_row[y]) || !is_map(s->in[0]) ||
            s->in[0]->is_const || !s->in[0]->owns_data || !evm_same_shape(s->in[0], s->out[0]))
            continue;
        for (int j = 1; j < node->n_inputs; j++)
            if (node->inputs[j] == x)
                x = EVM_NO_VALUE; /* f(x, x): read twice */
        if (x == EVM_NO_VALUE)
            continue;
        l->owner[x] = l->owner[y];
        evm_tensor *t = &l->plan->values[x];
        evm_tensor_release(t);
        t->data = l->plan->values[l->owner[x]].data;
        l->footprint[l->owner[x]] = evm_region_union(l->footprint[l->owner[x]], l->footprint[x]);
    }
    free(readers);
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
    share_buffers(l, local);
    /* from here on the footprint is what evm_local_fill fills */
    l->filled_bytes = l->workspace_floats * sizeof(float);
    for (int v = 0; v < g->n_values; v++) {
        evm_tensor *t = &l->plan->values[v];
        l->prev[v] = region_none;
        if (!local[v])
            l->footprint[v] = region_none;
        else if (l->frontier[v])
            l->footprint[v] = region_all; /* exported whole */
        if (t->is_const || !t->data || l->owner[v] != v)
            continue;
        if (l->footprint[v].kind != EVM_REGION_NONE)
            l->filled_bytes += region_bytes(l, v, &l->footprint[v]);
        else if (t->owns_data)
            evm_tensor_release(t); /* never run here, or only from cut on */
    }
    free(local);
    return EVMAP_OK;
}

void evm_local_fill(evm_local *l) {
    for (int v = 0; v < l->plan->graph->n_values; v++) {
        const evm_tensor *t = &l->plan->values[v];
        if (!t->is_const && t->data && l->owner[v] == v && l->footprint[v].kind != EVM_REGION_NONE)
            restore(l, v, &l->footprint[v]);
    }
}

void evm_local_begin(evm_local *l, const evm_region *change) {
    restore_outside(l, l->input, &l->prev[l->input], change);
    evm_local_propagate(l, change, l->cut);
    l->prev[l->input] = *change;
}

evm_tensor *evm_local_input(evm_local *l) {
    return &l->plan->values[l->input];
}

bool evm_local_holds(const evm_local *l, int v) {
    return l->owner[v] == v;
}

size_t evm_local_filled_bytes(const evm_local *l) {
    return l->filled_bytes;
}

evmap_status evm_local_clone(const evm_local *src, evm_local **out, evmap_error *err) {
    evm_local *l;
    evmap_status st = evm_local_create(src->cache, src->batch, &l, err);
    if (st != EVMAP_OK)
        return st;
    size_t n = (size_t)src->plan->graph->n_values + 1;
    memcpy(l->footprint, src->footprint, n * sizeof *l->footprint);
    l->workspace_floats = src->workspace_floats;
    if (src->mean_from >= 0)
        st = evm_local_set_mean(l, src->mean_from, err);
    if (st == EVMAP_OK)
        st = evm_local_set_cut(l, src->cut, err); /* (src's footprints: the same again) */
    if (st != EVMAP_OK) {
        evm_local_free(l);
        return st;
    }
    *out = l;
    return EVMAP_OK;
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
        restore_outside(l, v, &l->prev[v], r);
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
            evm_local_elementwise_region(node, def, in, out, r);
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
