/* The locality engine's state, shared by its files (plan_local.c, the
 * buffers and the run; plan_local_regions.c, receptive fields). */
#ifndef EVM_PLAN_LOCAL_INTERNAL_H
#define EVM_PLAN_LOCAL_INTERNAL_H

#include "plan_local.h"

struct evm_local {
    const evm_plan *cache; /* batch 1, the unperturbed image */
    evm_plan *plan;        /* batch rows */
    int batch;
    int input;        /* value index of graph input 0 */
    evm_region *cur;  /* per value: region of the current change */
    evm_region *prev; /* per value: region last written into plan's buffer */
    int cut;          /* steps [0, cut) run on regions */
    bool *frontier;   /* per value: exported to the full plan */
    /* per value: where the surveyed changes write it or a region reads it;
     * evm_local_fill fills only that from the cache (pages outside stay
     * untouched); from set_cut on, exactly what it fills */
    evm_region *footprint;
    /* per value: the value whose buffer it lives in (itself, or the end of
     * an in-place chain like Conv -> Relu: see share_buffers) */
    int *owner;
    size_t workspace_floats;
    float *workspace;
    double *step_macs;      /* per step: multiply-adds of a full forward at batch rows */
    evm_region *in_regions; /* scratch: one per input of the widest node */
    double macs;
    size_t filled_bytes; /* what evm_local_fill fills: the memory the buffers touch */
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

static inline bool is_map(const evm_tensor *t) {
    return t && t->rank == 4 && t->dtype == EVM_DTYPE_FLOAT;
}

/* Sets cur for the input and steps [0, last); returns the first step (below
 * last) whose region is ALL, or last. */
int evm_local_propagate(evm_local *l, const evm_region *change, int last);

/* An element-wise op over region r, on contiguous row segments. */
void evm_local_elementwise_region(const evm_node *node, const evm_op_def *def,
                                  evm_tensor *const *in, evm_tensor *const *out,
                                  const evm_region *r);

#endif
