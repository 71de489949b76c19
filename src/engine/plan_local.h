/*
 * Exact locality (DESIGN.md 1.2): evaluating a batch of images that differ
 * from one cached image only inside a rectangle, by recomputing in every
 * layer only the region that rectangle can change (its receptive-field cone),
 * on top of the cached activations of the unperturbed image.
 *
 * An evm_local holds a plan of `batch` rows of the same graph. Invariant:
 * after setup, every buffer of that plan that the local steps use holds, in
 * each row, the cached (unperturbed) activation outside the region last
 * written into it (prev), wherever some surveyed change writes or reads it
 * (its footprint; elsewhere the buffer is never touched, so a region of
 * interest costs neither the time nor the memory of whole maps); so each row
 * holds the true activations of the image in that row wherever they are
 * read. A run therefore restores the previous region of a buffer from the
 * cache (where the new region does not cover it), then computes the new
 * region with the operator's forward_region. Steps [0, cut) run that way; cut is the first
 * step whose region covers the whole map, or whose op is global, for any of
 * the changes surveyed. From cut on, the network runs in full, on another
 * plan that can batch several changes: evm_local_export copies the values
 * those steps read (the frontier) into it.
 *
 * Results agree with full forward passes up to float rounding (the region
 * convolutions use the same kernels on smaller sub-images).
 */
#ifndef EVM_PLAN_LOCAL_H
#define EVM_PLAN_LOCAL_H

#include "ops/op.h"
#include "plan.h"

typedef struct evm_local evm_local;

/* cache: a plan of batch 1 that has run on the unperturbed image (it must
 * stay alive and unchanged). Plans the same graph for batch rows. */
evmap_status evm_local_create(const evm_plan *cache, int batch, evm_local **out, evmap_error *err);
void evm_local_free(evm_local *l);

/* Propagates a change of graph input 0 over rectangle change through the
 * steps; returns the first step whose output region is everything
 * (n_steps when none) and records the workspace the earlier steps need and
 * the footprint of its regions. Every change later passed to
 * evm_local_begin must have been surveyed. */
int evm_local_survey(evm_local *l, const evm_region *change);

/* Fixes cut (at most every survey's answer), allocates the workspace and
 * plans which buffers of steps [0, cut) hold what (evm_local_filled_bytes
 * is then known); evm_local_fill then fills them from the cache: the values
 * exported whole, the others inside their footprints. Engines fill on
 * their own threads (page faults and copies in parallel). */
evmap_status evm_local_set_cut(evm_local *l, int cut, evmap_error *err);
void evm_local_fill(evm_local *l);

/* Starts a new change: restores the input outside change from the cache and
 * computes the regions of steps [0, cut). The caller then writes every
 * changed pixel (all of change, nothing outside it) into evm_local_input,
 * in every row: what the previous change left inside it is not restored. */
void evm_local_begin(evm_local *l, const evm_region *change);
evm_tensor *evm_local_input(evm_local *l);

/* Runs steps [0, cut) on their regions. Asks stop between steps (may be
 * NULL) and returns false as soon as it answers non-zero. */
bool evm_local_run(evm_local *l, int (*stop)(void *user), void *user);

/* Copies the values that steps [cut, n_steps) read and the graph outputs,
 * where steps before cut compute them, into rows [row, row + batch) of dst
 * (a plan of the same graph with at least row + batch rows); into row only
 * when the samples' mean is taken (evm_local_set_mean). */
void evm_local_export(const evm_local *l, evm_plan *dst, int row);

/* A window-centred split (the efficient method, DESIGN.md 1.3): before
 * step `step` runs, every changed value computed before it and read from it
 * on is replaced in row 0 by its mean over the rows; steps [step, cut) then
 * run on row 0 only (their other rows are never touched), and
 * evm_local_export copies row 0. Call before evm_local_set_cut, with step
 * at most its cut. */
evmap_status evm_local_set_mean(evm_local *l, int step, evmap_error *err);

/* A second engine for the same changes (surveys, the samples' mean and cut
 * of src, which has set its cut), with buffers of its own (to be filled):
 * engines on different threads evaluate different changes at once. */
evmap_status evm_local_clone(const evm_local *src, evm_local **out, evmap_error *err);

/* Bytes of the buffers evm_local_fill fills (and of the workspace): what
 * an engine's rows occupy in memory (after set_cut). */
size_t evm_local_filled_bytes(const evm_local *l);

/* Whether the local plan's buffer of value v holds v (false: v lives in
 * the buffer of the in-place step that reads it, and is overwritten there). */
bool evm_local_holds(const evm_local *l, int v);

int evm_local_cut(const evm_local *l);

/* The region of value v that the current change alters (after
 * evm_local_begin; NONE for values it does not reach). */
evm_region evm_local_region(const evm_local *l, int v);

/* The local plan (batch rows): its buffers of steps [0, cut) hold each row's
 * activations after evm_local_run (for tests). */
const evm_plan *evm_local_plan(const evm_local *l);

/* Multiply-adds (Conv, Gemm, MatMul) done by evm_local_run so far. */
double evm_local_macs(const evm_local *l);

/* Multiply-adds of steps [first, n_steps) of plan (a full forward from
 * step first on). */
double evm_plan_macs(const evm_plan *plan, int first);

#endif
