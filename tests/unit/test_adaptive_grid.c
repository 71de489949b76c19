/*
 * The efficient method's adaptive window grid (src/methods/adaptive_grid.c)
 * on evidence fields whose right answer is known without the grid:
 *  - a bilinear field whose cells' corners differ by less than the
 *    threshold is reproduced exactly from the coarse lattice alone;
 *  - a step is found: the cells across it are split down to neighbouring
 *    positions, so every position ends up with its true value;
 *  - threshold 0 on a field that changes everywhere evaluates every
 *    position; step 1 evaluates every position in one level;
 *  - a NaN corner forces a split; single rows, columns and positions work;
 *  - the coarse lattice always holds the last row and column.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "methods/adaptive_grid.h"

static int passed, failed;

static void check(int ok, const char *what) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL: %s\n", what);
    }
}

typedef double (*field_fn)(int i, int j, int t);

/* Runs the grid to completion on field f; returns the positions evaluated. */
static size_t run_grid(agrid *g, int ny, int nx, int targets, int step, double threshold,
                       field_fn f) {
    evmap_error err = {0};
    if (agrid_init(g, ny, nx, targets, step, &err) != EVMAP_OK)
        return 0;
    double *we = malloc(sizeof(double) * (size_t)ny * (size_t)nx * (size_t)targets);
    size_t pending = g->n_pending;
    while (pending > 0) {
        size_t n = 0;
        for (int i = 0; i < ny; i++)
            for (int j = 0; j < nx; j++)
                if (g->pending[(size_t)i * (size_t)nx + (size_t)j])
                    for (int t = 0; t < targets; t++)
                        we[n++] = f(i, j, t);
        agrid_store(g, we);
        if (agrid_refine(g, threshold, &pending, &err) != EVMAP_OK)
            break;
    }
    agrid_interpolate(g, &err);
    free(we);
    return g->evaluated;
}

/* Largest |grid value − f| over every position and target. */
static double max_error(const agrid *g, field_fn f) {
    double worst = 0;
    for (int i = 0; i < g->ny; i++)
        for (int j = 0; j < g->nx; j++)
            for (int t = 0; t < g->n_targets; t++) {
                double v = g->value[((size_t)i * (size_t)g->nx + (size_t)j) * (size_t)g->n_targets +
                                    (size_t)t];
                worst = fmax(worst, isnan(v) ? INFINITY : fabs(v - f(i, j, t)));
            }
    return worst;
}

static bool all_known(const agrid *g) {
    for (size_t p = 0; p < (size_t)g->ny * (size_t)g->nx; p++)
        if (g->state[p] != AGRID_EVALUATED && g->state[p] != AGRID_INTERPOLATED)
            return false;
    return true;
}

static double bilinear(int i, int j, int t) {
    return 0.5 + 0.25 * i - 0.125 * j + 0.01 * i * j + t;
}

static void test_bilinear(void) {
    agrid g;
    /* 23 × 17 positions, step 4: lattice rows 0,4,...,20,22 (7), cols 0,...,16 (5) */
    size_t n = run_grid(&g, 23, 17, 2, 4, 0.5, bilinear);
    check(n == 7 * 5, "bilinear field: only the coarse lattice is evaluated");
    check(g.levels == 1, "bilinear field: one level");
    check(max_error(&g, bilinear) < 1e-12, "bilinear field: interpolated exactly");
    check(all_known(&g), "bilinear field: every position has a value");
    check(g.state[(size_t)22 * 17 + 16] == AGRID_EVALUATED, "the last position is on the lattice");
    agrid_free(&g);
}

static double step_field(int i, int j, int t) {
    (void)i;
    (void)t;
    return j >= 7 ? 1.0 : 0.0;
}

static void test_step(void) {
    agrid g;
    size_t n = run_grid(&g, 20, 20, 1, 4, 0.1, step_field);
    check(max_error(&g, step_field) == 0, "step: every position gets its true value");
    check(g.state[6] == AGRID_EVALUATED && g.state[7] == AGRID_EVALUATED,
          "step: both sides of the step are evaluated");
    check(n < 20 * 20 / 2, "step: flat regions are not refined");
    check(g.levels == 3, "step: cells of 4 are halved twice");
    agrid_free(&g);
}

static double rough(int i, int j, int t) {
    (void)t;
    return (double)((i * 7 + j * 13) % 5);
}

static void test_threshold_zero_and_step_one(void) {
    agrid g;
    size_t n = run_grid(&g, 13, 11, 1, 4, 0.0, rough);
    check(n == 13 * 11, "threshold 0 on a rough field: every position evaluated");
    check(max_error(&g, rough) == 0, "threshold 0: the field itself");
    agrid_free(&g);
    n = run_grid(&g, 9, 6, 1, 1, 0.5, rough);
    check(n == 9 * 6 && g.levels == 1, "step 1: every position, one level");
    check(max_error(&g, rough) == 0, "step 1: the field itself");
    agrid_free(&g);
}

static double with_nan(int i, int j, int t) {
    (void)t;
    return i == 8 && j == 8 ? NAN : 1.0;
}

static void test_nan_and_degenerate(void) {
    agrid g;
    evmap_error err = {0};
    run_grid(&g, 17, 17, 1, 8, 0.5, with_nan);
    /* the NaN corner's cells are split down to unit cells: its neighbours
     * are evaluated, not interpolated from it */
    check(g.state[8 * 17 + 7] == AGRID_EVALUATED && g.state[7 * 17 + 8] == AGRID_EVALUATED,
          "a NaN corner's neighbours are evaluated");
    agrid_free(&g);
    size_t n = run_grid(&g, 1, 10, 1, 3, 0.5, bilinear);
    check(n == 4 && max_error(&g, bilinear) < 1e-12, "one row of positions");
    agrid_free(&g);
    n = run_grid(&g, 10, 1, 1, 4, 0.5, bilinear);
    check(n == 4 && max_error(&g, bilinear) < 1e-12, "one column of positions");
    agrid_free(&g);
    n = run_grid(&g, 1, 1, 3, 4, 0.1, bilinear);
    check(n == 1 && max_error(&g, bilinear) == 0, "a single position");
    agrid_free(&g);
    check(agrid_init(&g, 0, 5, 1, 2, &err) != EVMAP_OK, "no positions: refused");
    check(agrid_init(&g, 5, 5, 1, 0, &err) != EVMAP_OK, "step 0: refused");
}

int main(void) {
    test_bilinear();
    test_step();
    test_threshold_zero_and_step_one();
    test_nan_and_degenerate();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
