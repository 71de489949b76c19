/*
 * PDA's schedule: windows evaluated in batches. With exact locality each
 * window's rows first run on their receptive-field cones (the local steps,
 * up to cut), then several windows share one batch plan for the steps from
 * cut on; the efficient method's expansions take over at their split layer.
 */
#include <stdlib.h>

#include "base/error.h"
#include "samplers/sampler_api.h"
#include "pda_internal.h"

/* Images of activations we allow a PDA batch to occupy. */
#define PDA_BATCH_MEMORY ((size_t)1 << 30)

/* Exact locality: plans the local batch (one window's S samples), finds the
 * first step that must run in full for some window (cut) and fills the
 * local buffers from the cache, which score_original has computed. */
evmap_status pda_setup_locality(pda_run *r, evmap_error *err) {
    evm_plan *cache = r->single->plan;
    r->image_macs = evm_plan_macs(cache, 0);
    r->cut = 0;
    if (r->opt->no_locality)
        return EVMAP_OK;
    evmap_status st = evm_local_create(cache, r->local_rows, &r->local, err);
    if (st != EVMAP_OK)
        return st;
    int cut = cache->n_steps;
    for (size_t i = 0; i < r->n_windows; i++) {
        evm_region change = pda_window_region(r, r->windows[i]);
        int c = evm_local_survey(r->local, &change);
        cut = c < cut ? c : cut;
    }
    if (r->hidden) {
        /* a hidden target is read from the full batch: its step runs there
         * (a graph input as the target: everything does) */
        int producer = -1;
        for (int i = 0; i < cache->n_steps; i++) {
            const evm_node *node = &r->model->graph->nodes[cache->steps[i].node];
            for (int j = 0; j < node->n_outputs; j++)
                if (node->outputs[j] == r->hidden_value)
                    producer = i;
        }
        cut = producer < 0 ? 0 : producer < cut ? producer : cut;
    }
    if (r->expansion && r->expansion->step + 1 < cut)
        cut = r->expansion->step + 1; /* nothing above the split layer runs */
    r->cut = cut;
    /* a window-centred split: the samples' mean is taken at the split layer
     * (or at cut, where every window's change has covered a whole map) and
     * the steps above it run once per window, still on regions */
    if (r->mean_field && !r->average_draws) {
        st = evm_local_set_mean(r->local, r->mean_step + 1 < cut ? r->mean_step + 1 : cut, err);
        if (st != EVMAP_OK)
            return st;
    }
    return evm_local_set_cut(r->local, cut, err);
}

void pda_choose_batch(pda_run *r) {
    /* the full batches hold only what steps from cut on use; with exact
     * locality they share the memory with the local batch's rows (resnet50:
     * peak RSS 2.3 -> 1.5 GB), keeping a quarter of it at least (vgg16's
     * fully connected layers read 400 MB of weights per batch) */
    const evm_plan *single = r->single->plan;
    size_t per_image = evm_plan_bytes_from(single, r->cut) + 1;
    size_t local =
        r->local ? (evm_plan_bytes_from(single, 0) - (per_image - 1)) * (size_t)r->local_rows : 0;
    size_t budget = PDA_BATCH_MEMORY > local ? PDA_BATCH_MEMORY - local : 0;
    if (budget < PDA_BATCH_MEMORY / 4)
        budget = PDA_BATCH_MEMORY / 4;
    size_t cap = budget / per_image;
    size_t want = r->opt->batch > 0 ? (size_t)r->opt->batch : 64;
    if (want > cap)
        want = cap;
    /* as many windows per batch as exact PDA takes (a window-centred split
     * sends one row per window: smaller batches stay in cache, measured
     * faster on both Fashion-MNIST models) */
    size_t windows = want / (size_t)r->samples;
    if (windows < 1)
        windows = 1;
    if (windows > r->n_windows)
        windows = r->n_windows;
    r->windows_per_batch = (int)windows;
    r->batch = (int)windows * r->rows;
}

evmap_status pda_allocate_batches(pda_run *r, evmap_error *err) {
    /* Full batches, one exact-size batch for the remaining windows, and a
     * single image for the unperturbed scores: no image is computed twice.
     * An expansion whose split layer the local steps compute needs none. */
    if (r->expansion && pda_expansion_is_local(r))
        return EVMAP_OK;
    size_t tail_windows = r->n_windows % (size_t)r->windows_per_batch;
    evmap_status st = evmap_runner_create(r->model, r->batch, r->opt->threads, &r->runner, err);
    if (st == EVMAP_OK && tail_windows)
        st = evmap_runner_create(r->model, (int)tail_windows * r->rows, r->opt->threads, &r->tail,
                                 err);
    if (st == EVMAP_OK && r->local) {
        /* only steps from cut on run there (their zeroed pages were never
         * touched, so this mostly returns address space) */
        evm_plan_release_before(r->runner->plan, r->cut);
        if (r->tail)
            evm_plan_release_before(r->tail->plan, r->cut);
    }
    return st;
}

/* Between operators: lets the caller cancel without waiting for a batch. */
static int poll_cancel(void *user) {
    const pda_run *r = user;
    const evmap_pda_options *o = r->opt;
    return o->progress && o->progress(o->progress_user, r->windows_done, r->n_windows);
}

static evmap_status cancelled(const pda_run *r, size_t done, evmap_error *err) {
    return evm_fail(err, EVMAP_ERR_CANCELLED, "cancelled after %zu of %zu windows", done,
                    r->n_windows);
}

/* Puts the S samples of batch window row i where the network reads them:
 * the batch plan's rows, or the local batch (run up to cut, then exported,
 * or, when the expansion's split layer is local, expanded right away). */
static bool prepare_window(pda_run *r, evm_plan *plan, pda_window w, int i) {
    if (!r->local) {
        pda_fill_window(r, plan, w, i * r->rows);
        return true;
    }
    pda_fill_window_local(r, w);
    if (!evm_local_run(r->local, poll_cancel, r))
        return false;
    if (r->expansion && pda_expansion_is_local(r))
        pda_expansion_local(r, i);
    else
        evm_local_export(r->local, plan, i * r->rows);
    return true;
}

/* Runs the batch plan from cut to the end, or to the split layer. */
static bool run_batch(pda_run *r, evm_plan *plan) {
    if (r->expansion && pda_expansion_is_local(r))
        return true; /* nothing above the split layer runs */
    int last = r->expansion ? r->expansion->step + 1 : plan->n_steps;
    return evm_plan_run_range(plan, r->cut, last, poll_cancel, r);
}

static void score_batch(pda_run *r, evm_plan *plan, size_t first, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!r->expansion) {
            pda_score_window(r, plan, r->windows[first + i], (int)i * r->rows);
            continue;
        }
        if (!pda_expansion_is_local(r))
            pda_expansion_batch(r, plan, (int)i);
        pda_expansion_accumulate(r, r->windows[first + i], (int)i);
    }
}

evmap_status pda_run_windows(pda_run *r, evmap_error *err) {
    const evmap_pda_options *o = r->opt;
    for (size_t first = 0; first < r->n_windows; first += (size_t)r->windows_per_batch) {
        size_t n = r->n_windows - first;
        if (n > (size_t)r->windows_per_batch)
            n = (size_t)r->windows_per_batch;
        evm_plan *plan = !r->runner                          ? NULL
                         : n == (size_t)r->windows_per_batch ? r->runner->plan
                                                             : r->tail->plan;
        for (size_t i = 0; i < n; i++)
            if (!prepare_window(r, plan, r->windows[first + i], (int)i))
                return cancelled(r, first, err);
        if (!run_batch(r, plan))
            return cancelled(r, first, err);
        r->forward_images += n * (size_t)r->rows;
        score_batch(r, plan, first, n);
        r->windows_done = first + n;
        if (o->progress && o->progress(o->progress_user, first + n, r->n_windows))
            return cancelled(r, first + n, err);
    }
    return EVMAP_OK;
}
