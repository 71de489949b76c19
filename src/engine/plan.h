/*
 * Execution plans. A plan fixes the shapes of a graph's inputs (batch size
 * included), infers every shape, evaluates at plan time whatever does not
 * depend on input data (constant folding of exporters' shape arithmetic),
 * allocates one buffer per value and one workspace, and keeps the remaining
 * nodes as steps. Running a plan only computes: it cannot fail or allocate.
 * Every activation stays in its buffer after a run, so methods can read any
 * layer (and later reuse them as a cache).
 */
#ifndef EVM_PLAN_H
#define EVM_PLAN_H

#include "base/budget.h"
#include "graph.h"

typedef struct evm_plan_step {
    int node;         /* index into graph->nodes */
    evm_tensor **in;  /* node->n_inputs pointers into plan->values (NULL if omitted) */
    evm_tensor **out; /* node->n_outputs pointers */
} evm_plan_step;

typedef struct evm_plan {
    const evm_graph *graph;
    evm_tensor *values;   /* graph->n_values tensors with this plan's shapes and buffers */
    evm_plan_step *steps; /* nodes left to run on every input, in order */
    int n_steps;
    float *workspace; /* scratch shared by all steps (they run one at a time) */
    size_t workspace_floats;
    size_t activation_bytes; /* bytes of all non-constant buffers */
    evm_budget budget;       /* the graph's memory limit; starts at the weights */
} evm_plan;

/* input_shapes: one tensor per graph input (graph->inputs order); dtype, rank
 * and dims are read. An input with is_const set and data is fixed at plan time
 * (its data copied), so that shape arithmetic depending on it folds. */
evmap_status evm_plan_create(const evm_graph *graph, const evm_tensor *input_shapes, evm_plan **out,
                             evmap_error *err);
void evm_plan_free(evm_plan *plan);

/* Buffers of graph input i and output i, for the caller to fill or read. */
evm_tensor *evm_plan_input(evm_plan *plan, int i);
evm_tensor *evm_plan_output(evm_plan *plan, int i);

/* Runs every step once on the current inputs. */
void evm_plan_run(evm_plan *plan);

/* As evm_plan_run, but asks stop(user) between steps and returns false,
 * leaving the outputs undefined, as soon as it answers non-zero. Lets long
 * batches be cancelled within one operator. */
bool evm_plan_run_until(evm_plan *plan, int (*stop)(void *user), void *user);

/* As evm_plan_run_until, for steps [first, last) only (the values the
 * others would compute must already be in their buffers). */
bool evm_plan_run_range(evm_plan *plan, int first, int last, int (*stop)(void *user), void *user);

/* Bytes of the non-constant buffers that steps [first, n_steps) read or
 * write, graph outputs included. */
size_t evm_plan_bytes_from(const evm_plan *plan, int first);

/* Frees the buffers that only steps before first use (their data becomes
 * NULL): the plan may then run only steps [first, n_steps), with the values
 * they read from earlier steps written in by the caller. */
void evm_plan_release_before(evm_plan *plan, int first);

#endif
