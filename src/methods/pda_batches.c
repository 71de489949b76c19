/*
 * PDA's schedule: windows evaluated in batches. With exact locality each
 * window's rows first run on their receptive-field cones (the local steps,
 * up to cut), then several windows share one batch plan for the steps from
 * cut on; the efficient method's expansions take over at their split layer.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "base/error.h"
#include "base/pool.h"
#include "samplers/sampler_api.h"
#include "pda_internal.h"

/* Images of activations we allow a PDA batch to occupy. */
#define PDA_BATCH_MEMORY ((size_t)1 << 30)

/* Windows per batch (--batch images, 64 by default) within budget bytes
 * of per_image each (at least one window). */
static size_t windows_within(const pda_run *r, size_t budget, size_t per_image) {
    size_t want = r->opt->batch > 0 ? (size_t)r->opt->batch : 64;
    size_t cap = budget / per_image;
    size_t windows = (want < cap ? want : cap) / (size_t)r->samples;
    return windows < 1 ? 1 : windows;
}

/* One locality engine per thread when their buffers are small: each
 * evaluates whole windows on one core, which beats splitting the narrow
 * region convolutions across threads. All engines together fill at most
 * half of what a batch of whole images would (the naive path's memory), so
 * that exact PDA with locality needs no more memory than without: a region
 * of interest or a small model gets one per thread, a full vgg16 map (about
 * 0.66 GB per engine) one, its kernels sharing the threads. */
static evmap_status add_engines(pda_run *r, evmap_error *err) {
    int threads = evm_pool_threads(evm_pool_current());
    size_t bytes = evm_local_filled_bytes(r->local) + 1;
    size_t per_image = evm_plan_bytes_from(r->single->plan, 0) + 1;
    double naive =
        (double)windows_within(r, PDA_BATCH_MEMORY, per_image) * r->samples * (double)per_image;
    int n = threads;
    while (n > 1 && (double)n * (double)bytes > naive / 2)
        n--;
    if ((size_t)n > r->n_windows)
        n = r->n_windows > 0 ? (int)r->n_windows : 1;
    r->locals = calloc((size_t)n, sizeof *r->locals);
    if (!r->locals)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory planning locality");
    r->locals[0] = r->local;
    r->n_locals = 1;
    for (int i = 1; i < n; i++) {
        evmap_status st = evm_local_clone(r->local, &r->locals[i], err);
        if (st != EVMAP_OK)
            return st;
        r->n_locals++;
    }
    return EVMAP_OK;
}

static void fill_part(void *ctx, int part, int parts) {
    (void)parts;
    evm_local_fill(((pda_run *)ctx)->locals[part]);
}

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
    st = evm_local_set_cut(r->local, cut, err);
    if (st == EVMAP_OK)
        st = add_engines(r, err);
    /* each engine's buffers from the cache on its own thread: mostly first
     * touches of fresh pages, which the kernel clears (vgg16, a 100-window
     * region: 0.5 GB of them) */
    if (st == EVMAP_OK)
        evm_pool_run(evm_pool_current(), fill_part, r, r->n_locals);
    return st;
}

void pda_choose_batch(pda_run *r) {
    /* the full batches hold only what steps from cut on use; with exact
     * locality they share the memory with what the engines filled, keeping
     * a quarter of it at least (vgg16's fully connected layers read 400 MB
     * of weights per batch) */
    const evm_plan *single = r->single->plan;
    size_t per_image = evm_plan_bytes_from(single, r->cut) + 1;
    size_t local = r->local ? evm_local_filled_bytes(r->local) * (size_t)r->n_locals : 0;
    size_t budget = PDA_BATCH_MEMORY > local ? PDA_BATCH_MEMORY - local : 0;
    if (budget < PDA_BATCH_MEMORY / 4)
        budget = PDA_BATCH_MEMORY / 4;
    /* as many windows per batch as exact PDA takes (a window-centred split
     * sends one row per window: smaller batches stay in cache, measured
     * faster on both Fashion-MNIST models) */
    size_t windows = windows_within(r, budget, per_image);
    if (windows > r->n_windows)
        windows = r->n_windows;
    r->windows_per_batch = (int)windows;
    r->batch = (int)windows * r->rows;
}

/* Floats of one window's draws. */
static size_t window_draws(const pda_run *r) {
    return (size_t)r->samples * (size_t)r->c * (size_t)r->k * (size_t)r->k;
}

evmap_status pda_allocate_batches(pda_run *r, evmap_error *err) {
    if (r->local) { /* a batch's windows draw first, in order, then run on the engines */
        float *draws =
            realloc(r->draws, sizeof(float) * window_draws(r) * (size_t)r->windows_per_batch);
        if (!draws)
            return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory for PDA draws");
        r->draws = draws;
    }
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

/* A batch's windows on the locality engines: engine e takes windows e,
 * e + engines, ...; the caller's part polls for cancellation and tells the
 * others through `stop`. */
typedef struct local_batch {
    pda_run *r;
    evm_plan *plan;
    size_t first, n;
    atomic_bool stop;
} local_batch;

static int poll_batch(void *user) {
    local_batch *b = user;
    if (!atomic_load(&b->stop) && poll_cancel(b->r))
        atomic_store(&b->stop, true);
    return atomic_load(&b->stop);
}

static int stopped(void *user) {
    return atomic_load(&((local_batch *)user)->stop);
}

/* Window row i of the batch through engine `local` up to cut, then
 * exported to the batch plan's rows (or, when the expansion's split layer
 * is local, expanded right away). */
static bool run_local_window(local_batch *b, evm_local *local, size_t i, int (*stop)(void *)) {
    pda_run *r = b->r;
    pda_fill_window_local(r, local, r->windows[b->first + i], r->draws + i * window_draws(r));
    if (!evm_local_run(local, stop, b))
        return false;
    if (r->expansion && pda_expansion_is_local(r))
        pda_expansion_local(r, local, (int)i);
    else
        evm_local_export(local, b->plan, (int)i * r->rows);
    return true;
}

static void local_part(void *ctx, int part, int parts) {
    local_batch *b = ctx;
    int (*stop)(void *) = part == 0 ? poll_batch : stopped;
    for (size_t i = (size_t)part; i < b->n; i += (size_t)parts)
        if (!run_local_window(b, b->r->locals[part], i, stop)) {
            atomic_store(&b->stop, true);
            return;
        }
}

/* Puts the S samples of windows [first, first + n) where the network reads
 * them: the batch plan's rows, or the locality engines. */
static bool prepare_windows(pda_run *r, evm_plan *plan, size_t first, size_t n) {
    if (!r->local) {
        for (size_t i = 0; i < n; i++)
            pda_fill_window(r, plan, r->windows[first + i], (int)i * r->rows);
        return true;
    }
    for (size_t i = 0; i < n; i++)
        pda_draw_window(r, r->windows[first + i], r->draws + i * window_draws(r));
    local_batch b = {.r = r, .plan = plan, .first = first, .n = n};
    atomic_init(&b.stop, false);
    int parts = (size_t)r->n_locals < n ? r->n_locals : (int)n;
    evm_pool_run(evm_pool_current(), local_part, &b, parts);
    return !atomic_load(&b.stop);
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
        if (!prepare_windows(r, plan, first, n))
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
