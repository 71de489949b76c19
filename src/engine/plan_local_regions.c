/*
 * Exact locality's regions (plan_local.h): how a change of the input
 * spreads through the steps (each operator's receptive field), what each
 * step then writes and reads (the footprint its buffers need), and
 * element-wise operators run on a region.
 */
#include "plan_local_internal.h"

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
int evm_local_propagate(evm_local *l, const evm_region *change, int last) {
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

/* Adds what step i writes and reads for its current region to the footprint. */
static void add_footprint(evm_local *l, int i) {
    const evm_plan_step *s = &l->plan->steps[i];
    const evm_node *node = &l->plan->graph->nodes[s->node];
    const evm_op_def *def = evm_op_get(node->kind);
    evm_region r = l->cur[node->outputs[0]];
    if (r.kind == EVM_REGION_NONE)
        return;
    for (int j = 0; j < node->n_outputs; j++)
        if (node->outputs[j] != EVM_NO_VALUE)
            l->footprint[node->outputs[j]] =
                evm_region_union(l->footprint[node->outputs[j]], j == 0 ? r : region_all);
    evm_region reads =
        r.kind == EVM_REGION_RECT && def->reads ? def->reads(node, s->in, s->out, &r) : r;
    for (int j = 0; j < node->n_inputs; j++) {
        int v = node->inputs[j];
        if (v == EVM_NO_VALUE || !s->in[j] || s->in[j]->is_const)
            continue;
        /* a window op's other inputs (weights), scalar and per-channel
         * operands, maps of another size: read whole */
        bool same = is_map(s->in[j]) && s->in[j]->dims[2] == s->out[0]->dims[2] &&
                    s->in[j]->dims[3] == s->out[0]->dims[3];
        evm_region part = def->reads ? (j == 0 ? reads : region_all) : same ? r : region_all;
        l->footprint[v] = evm_region_union(l->footprint[v], part);
    }
}

int evm_local_survey(evm_local *l, const evm_region *change) {
    int first_all = evm_local_propagate(l, change, l->plan->n_steps);
    l->footprint[l->input] = evm_region_union(l->footprint[l->input], *change);
    for (int i = 0; i < first_all; i++) {
        add_footprint(l, i);
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

/* An element-wise op over region r: forward on each contiguous row segment,
 * with inputs viewed as segments, scalars or one channel's value. */
void evm_local_elementwise_region(const evm_node *node, const evm_op_def *def,
                                  evm_tensor *const *in, evm_tensor *const *out,
                                  const evm_region *r) {
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
