/*
 * The efficient method's adaptive window grid (DESIGN.md 1.3): the weight
 * of evidence of a window changes smoothly with its position wherever the
 * windows overlap the same evidence, so it is evaluated on a coarse lattice
 * of window positions first; a lattice cell is split in four (and its new
 * corners evaluated) only where its corners' evidence differs, down to
 * neighbouring positions; every position left over is interpolated
 * bilinearly from the corners of the smallest cell around it. Pure
 * bookkeeping on position indices: the caller evaluates the windows.
 */
#ifndef EVM_ADAPTIVE_GRID_H
#define EVM_ADAPTIVE_GRID_H

#include <stdbool.h>
#include <stddef.h>

#include "evmap.h"

/* A cell of the lattice: corners (i0, j0) and (i1, j1), row and column
 * indices of window positions, i0 < i1 or j0 < j1. */
typedef struct agrid_cell {
    int i0, j0, i1, j1;
} agrid_cell;

typedef struct agrid {
    int ny, nx;               /* window positions: rows × columns */
    int n_targets;            /* values per position */
    double *value;            /* ny × nx × n_targets weights of evidence */
    unsigned char *state;     /* per position: AGRID_* */
    double *range;            /* per target: max − min of the coarse lattice's values */
    agrid_cell *cells, *next; /* cells to test at this level; the next level's */
    size_t n_cells, n_next, cap_cells, cap_next;
    agrid_cell *final; /* cells never split, in the order they became final */
    size_t n_final, cap_final;
    unsigned char *pending; /* per position: evaluate at this level */
    size_t n_pending, evaluated;
    int levels;
} agrid;

enum { AGRID_UNKNOWN = 0, AGRID_PENDING, AGRID_EVALUATED, AGRID_INTERPOLATED };

/* Positions ny × nx (both ≥ 1), coarse step ≥ 1 (1: every position). Marks
 * the coarse lattice (every step-th position and the last of each row and
 * column) pending. */
evmap_status agrid_init(agrid *g, int ny, int nx, int n_targets, int step, evmap_error *err);
void agrid_free(agrid *g);

/* Stores the evidence of the pending positions, we[n_pending][n_targets] in
 * row-major order of position, and marks them evaluated. */
void agrid_store(agrid *g, const double *we);

/* Splits every cell whose corners' evidence differs by more than threshold
 * × the target's range (for some target) and marks the new corners
 * pending; returns how many are pending (0: the grid is complete). */
evmap_status agrid_refine(agrid *g, double threshold, size_t *pending, evmap_error *err);

/* Interpolates every position not evaluated, smallest cells first. */
evmap_status agrid_interpolate(agrid *g, evmap_error *err);

#endif
