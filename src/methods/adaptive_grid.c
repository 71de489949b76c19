/* The adaptive window grid (adaptive_grid.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adaptive_grid.h"
#include "base/error.h"

static size_t position(const agrid *g, int i, int j) {
    return (size_t)i * (size_t)g->nx + (size_t)j;
}

static void mark_pending(agrid *g, int i, int j) {
    size_t p = position(g, i, j);
    if (g->state[p] != AGRID_UNKNOWN)
        return;
    g->state[p] = AGRID_PENDING;
    g->pending[p] = 1;
    g->n_pending++;
}

/* Appends a cell to list (*cells, *n) of capacity *cap. */
static bool push_cell(agrid_cell **cells, size_t *n, size_t *cap, agrid_cell c) {
    if (*n == *cap) {
        size_t grown = *cap ? 2 * *cap : 64;
        agrid_cell *p = realloc(*cells, grown * sizeof *p);
        if (!p)
            return false;
        *cells = p;
        *cap = grown;
    }
    (*cells)[(*n)++] = c;
    return true;
}

/* The coarse lattice along one axis of n positions: 0, step, … and n − 1. */
static int lattice(int n, int step, int *out) {
    int m = 0;
    for (int i = 0; i < n; i += step)
        out[m++] = i;
    if (out[m - 1] != n - 1)
        out[m++] = n - 1;
    return m;
}

evmap_status agrid_init(agrid *g, int ny, int nx, int n_targets, int step, evmap_error *err) {
    memset(g, 0, sizeof *g);
    if (ny < 1 || nx < 1 || n_targets < 1 || step < 1)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "adaptive grid: bad size");
    g->ny = ny;
    g->nx = nx;
    g->n_targets = n_targets;
    size_t positions = (size_t)ny * (size_t)nx;
    g->value = calloc(positions * (size_t)n_targets, sizeof *g->value);
    g->state = calloc(positions, 1);
    g->pending = calloc(positions, 1);
    g->range = calloc((size_t)n_targets, sizeof *g->range);
    int *rows = malloc(sizeof(int) * ((size_t)ny + 1)),
        *cols = malloc(sizeof(int) * ((size_t)nx + 1));
    bool ok = g->value && g->state && g->pending && g->range && rows && cols;
    if (ok) {
        int my = lattice(ny, step, rows), mx = lattice(nx, step, cols);
        for (int a = 0; a < my; a++)
            for (int b = 0; b < mx; b++)
                mark_pending(g, rows[a], cols[b]);
        /* cells between neighbouring lattice lines; a single row or column
         * of positions gives cells of height or width 0 */
        for (int a = 0; ok && a < (my > 1 ? my - 1 : 1); a++)
            for (int b = 0; ok && b < (mx > 1 ? mx - 1 : 1); b++) {
                agrid_cell c = {rows[a], cols[b], rows[my > 1 ? a + 1 : a],
                                cols[mx > 1 ? b + 1 : b]};
                ok = push_cell(&g->cells, &g->n_cells, &g->cap_cells, c);
            }
    }
    free(rows);
    free(cols);
    if (!ok) {
        agrid_free(g);
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory for the window grid");
    }
    return EVMAP_OK;
}

void agrid_free(agrid *g) {
    free(g->value);
    free(g->state);
    free(g->pending);
    free(g->range);
    free(g->cells);
    free(g->next);
    free(g->final);
    memset(g, 0, sizeof *g);
}

void agrid_store(agrid *g, const double *we) {
    size_t positions = (size_t)g->ny * (size_t)g->nx, n = 0;
    for (size_t p = 0; p < positions; p++) {
        if (!g->pending[p])
            continue;
        memcpy(g->value + p * (size_t)g->n_targets, we + n++ * (size_t)g->n_targets,
               sizeof(double) * (size_t)g->n_targets);
        g->pending[p] = 0;
        g->state[p] = AGRID_EVALUATED;
    }
    g->evaluated += n;
    g->n_pending = 0;
    if (g->levels++ > 0)
        return;
    /* the coarse lattice's spread sets the scale the threshold refers to */
    for (int t = 0; t < g->n_targets; t++) {
        double lo = INFINITY, hi = -INFINITY;
        for (size_t p = 0; p < positions; p++)
            if (g->state[p] == AGRID_EVALUATED &&
                isfinite(g->value[p * (size_t)g->n_targets + t])) {
                lo = fmin(lo, g->value[p * (size_t)g->n_targets + t]);
                hi = fmax(hi, g->value[p * (size_t)g->n_targets + t]);
            }
        g->range[t] = hi > lo ? hi - lo : 0.0;
    }
}

/* Largest spread of the cell's corners over the targets, relative to each
 * target's range (infinite where a corner is not finite: split it). */
static double cell_spread(const agrid *g, agrid_cell c) {
    size_t corner[4] = {position(g, c.i0, c.j0), position(g, c.i0, c.j1), position(g, c.i1, c.j0),
                        position(g, c.i1, c.j1)};
    double worst = 0;
    for (int t = 0; t < g->n_targets; t++) {
        double lo = INFINITY, hi = -INFINITY;
        for (int q = 0; q < 4; q++) {
            double v = g->value[corner[q] * (size_t)g->n_targets + t];
            if (!isfinite(v))
                return INFINITY;
            lo = fmin(lo, v);
            hi = fmax(hi, v);
        }
        if (g->range[t] > 0)
            worst = fmax(worst, (hi - lo) / g->range[t]);
    }
    return worst;
}

/* The (up to four) halves of c: split at the middle of every side longer
 * than one step; their new corners become pending. */
static bool split_cell(agrid *g, agrid_cell c) {
    int is[3] = {c.i0, c.i1, 0}, js[3] = {c.j0, c.j1, 0};
    int ni = 1, nj = 1;
    if (c.i1 - c.i0 >= 2) {
        is[1] = (c.i0 + c.i1) / 2;
        is[2] = c.i1;
        ni = 2;
    }
    if (c.j1 - c.j0 >= 2) {
        js[1] = (c.j0 + c.j1) / 2;
        js[2] = c.j1;
        nj = 2;
    }
    for (int a = 0; a < ni; a++)
        for (int b = 0; b < nj; b++) {
            agrid_cell child = {is[a], js[b], is[a + 1], js[b + 1]};
            if (!push_cell(&g->next, &g->n_next, &g->cap_next, child))
                return false;
        }
    for (int a = 0; a <= ni; a++)
        for (int b = 0; b <= nj; b++)
            mark_pending(g, is[a], js[b]);
    return true;
}

/* One round: tests every waiting cell once. */
static bool refine_round(agrid *g, double threshold) {
    g->n_next = 0;
    for (size_t k = 0; k < g->n_cells; k++) {
        agrid_cell c = g->cells[k];
        bool divisible = c.i1 - c.i0 >= 2 || c.j1 - c.j0 >= 2;
        bool ok = divisible && cell_spread(g, c) > threshold
                      ? split_cell(g, c)
                      : push_cell(&g->final, &g->n_final, &g->cap_final, c);
        if (!ok)
            return false;
    }
    /* the next level's cells become the ones to test */
    agrid_cell *t = g->cells;
    g->cells = g->next;
    g->next = t;
    size_t cap = g->cap_cells;
    g->cap_cells = g->cap_next;
    g->cap_next = cap;
    g->n_cells = g->n_next;
    g->n_next = 0;
    return true;
}

evmap_status agrid_refine(agrid *g, double threshold, size_t *pending, evmap_error *err) {
    /* halves whose corners neighbours already gave can be tested at once */
    do {
        if (!refine_round(g, threshold))
            return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory for the window grid");
    } while (g->n_pending == 0 && g->n_cells > 0);
    *pending = g->n_pending;
    return EVMAP_OK;
}

static size_t cell_area(agrid_cell c) {
    return (size_t)(c.i1 - c.i0 + 1) * (size_t)(c.j1 - c.j0 + 1);
}

/* Smallest first; ties by position, so the order does not depend on qsort. */
static int by_area(const void *a, const void *b) {
    const agrid_cell *c = a, *d = b;
    size_t x = cell_area(*c), y = cell_area(*d);
    if (x != y)
        return (x > y) - (x < y);
    if (c->i0 != d->i0)
        return (c->i0 > d->i0) - (c->i0 < d->i0);
    return (c->j0 > d->j0) - (c->j0 < d->j0);
}

static void interpolate_cell(agrid *g, agrid_cell c) {
    int T = g->n_targets;
    const double *v00 = g->value + position(g, c.i0, c.j0) * (size_t)T;
    const double *v01 = g->value + position(g, c.i0, c.j1) * (size_t)T;
    const double *v10 = g->value + position(g, c.i1, c.j0) * (size_t)T;
    const double *v11 = g->value + position(g, c.i1, c.j1) * (size_t)T;
    for (int i = c.i0; i <= c.i1; i++)
        for (int j = c.j0; j <= c.j1; j++) {
            size_t p = position(g, i, j);
            if (g->state[p] != AGRID_UNKNOWN)
                continue;
            double fy = c.i1 > c.i0 ? (double)(i - c.i0) / (c.i1 - c.i0) : 0.0;
            double fx = c.j1 > c.j0 ? (double)(j - c.j0) / (c.j1 - c.j0) : 0.0;
            for (int t = 0; t < T; t++)
                g->value[p * (size_t)T + t] = (1 - fy) * ((1 - fx) * v00[t] + fx * v01[t]) +
                                              fy * ((1 - fx) * v10[t] + fx * v11[t]);
            g->state[p] = AGRID_INTERPOLATED;
        }
}

evmap_status agrid_interpolate(agrid *g, evmap_error *err) {
    /* cells still waiting to be tested count as final */
    for (size_t k = 0; k < g->n_cells; k++)
        if (!push_cell(&g->final, &g->n_final, &g->cap_final, g->cells[k]))
            return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory for the window grid");
    g->n_cells = 0;
    /* smallest first: along an edge shared with a split neighbour, the
     * finer cell's corners are the better estimate */
    qsort(g->final, g->n_final, sizeof *g->final, by_area);
    for (size_t k = 0; k < g->n_final; k++)
        interpolate_cell(g, g->final[k]);
    return EVMAP_OK;
}
