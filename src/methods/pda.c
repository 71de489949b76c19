/*
 * Prediction Difference Analysis (Zintgraf et al. 2017; DESIGN.md 1.1).
 * For every k×k window (all channels), S draws from the sampler replace the
 * window; the class probability averaged over the draws estimates p(c|x\w),
 * and the weight of evidence WE = log2 odds(c|x) − log2 odds(c|x\w) is added
 * to every pixel of the window; each pixel's map value is the mean over the
 * windows covering it. Windows and draws are batched into large forward
 * passes. Log-odds are computed from logits in double so that p near 0 or 1
 * keeps its precision. Hidden-unit targets use the mean activation of one
 * channel instead of log-odds: WE = a(x) − mean_s a(x̃_s).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "engine/model_internal.h"
#include "samplers/sampler_api.h"
#include "pda_internal.h"

/* Images of activations we allow a PDA batch to occupy. */
#define PDA_BATCH_MEMORY ((size_t)1 << 30)

int evmap_pda_default_window(int height, int width) {
    int side = height < width ? height : width;
    if (side >= 100)
        return 10;
    int k = (int)lround(side / 7.0);
    return k < 2 ? 2 : k;
}

void evmap_pda_options_init(evmap_pda_options *o) {
    memset(o, 0, sizeof *o);
    o->stride = 1;
    o->samples = 10;
    o->laplace_n = 100000;
    o->target_channel = -1;
}

/* ------------------------------------------------------------- targets */

/* p and q = 1 − p of class c for one output row, computed stably. */
static void class_p_q(const float *row, int k, int c, bool softmaxed, double *p, double *q) {
    if (softmaxed) {
        double rest = 0;
        for (int j = 0; j < k; j++)
            rest += j == c ? 0.0 : (double)row[j];
        *p = row[c];
        *q = rest;
        return;
    }
    double m = -INFINITY;
    for (int j = 0; j < k; j++)
        if (j != c && row[j] > m)
            m = row[j];
    double sum = 0;
    for (int j = 0; j < k; j++)
        if (j != c)
            sum += exp((double)row[j] - m);
    double log_odds = (double)row[c] - (m + log(sum));
    *p = 1.0 / (1.0 + exp(-log_odds));
    *q = 1.0 / (1.0 + exp(log_odds));
}

/* Mean activation of the hidden target's channel in batch row b. */
static double hidden_score(const evm_tensor *t, int channel, int b) {
    size_t per_channel = 1;
    for (int i = 2; i < t->rank; i++)
        per_channel *= (size_t)t->dims[i];
    size_t channels = (size_t)t->dims[1];
    const float *x = evm_f32(t) + ((size_t)b * channels + (size_t)channel) * per_channel;
    double sum = 0;
    for (size_t i = 0; i < per_channel; i++)
        sum += x[i];
    return sum / (double)per_channel;
}

/* Score of target t for the mean over rows [first, first + count) of plan. */
static double target_score(const pda_run *r, evm_plan *plan, int t, int first, int count) {
    if (r->hidden) {
        const evm_tensor *hidden = &plan->values[r->hidden_value];
        double sum = 0;
        for (int b = first; b < first + count; b++)
            sum += hidden_score(hidden, r->opt->target_channel, b);
        return sum / count;
    }
    const float *out = evm_f32(evm_plan_output(plan, 0));
    int k = r->num_classes;
    double p = 0, q = 0;
    for (int b = first; b < first + count; b++) {
        double pb, qb;
        class_p_q(out + (size_t)b * (size_t)k, k, r->opt->classes[t], r->softmaxed, &pb, &qb);
        p += pb;
        q += qb;
    }
    return pda_log2_odds(p / count, q / count, r->opt->laplace_n, k);
}

/* ------------------------------------------------------------ validation */

static evmap_status check_targets(pda_run *r, evmap_error *err) {
    const evmap_pda_options *o = r->opt;
    if (o->target_layer) {
        const evm_graph *g = r->model->graph;
        int v = evm_graph_find_value(g, o->target_layer);
        if (v < 0 || g->values[v].is_initializer)
            return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                            "--target: the model has no layer output named '%s'", o->target_layer);
        r->hidden_value = v;
        r->n_targets = 1;
        return EVMAP_OK;
    }
    if (o->n_classes < 1 || !o->classes)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "no target class given");
    if (o->n_classes > PDA_MAX_TARGETS)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "%d target classes; at most %d at once",
                        o->n_classes, PDA_MAX_TARGETS);
    for (int i = 0; i < o->n_classes; i++)
        if (o->classes[i] < 0 || o->classes[i] >= r->num_classes)
            return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                            "class %d is out of range: the model has classes 0 to %d",
                            o->classes[i], r->num_classes - 1);
    r->n_targets = o->n_classes;
    return EVMAP_OK;
}

static evmap_status check_hidden_shape(pda_run *r, evmap_error *err) {
    if (!r->opt->target_layer)
        return EVMAP_OK;
    const evm_tensor *t = &r->single->plan->values[r->hidden_value];
    if (t->dtype != EVM_DTYPE_FLOAT || t->rank < 2 || t->is_const || t->dims[0] != 1)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "--target: '%s' is not an activation with channels (N×C×…)",
                        r->opt->target_layer);
    if (r->opt->target_channel < 0 || r->opt->target_channel >= t->dims[1])
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "--target: channel %d is out of range: '%s' has channels 0 to %lld",
                        r->opt->target_channel, r->opt->target_layer, (long long)t->dims[1] - 1);
    r->hidden = true;
    return EVMAP_OK;
}

static evmap_status check_options(pda_run *r, evmap_error *err) {
    const evmap_pda_options *o = r->opt;
    if (!o->sampler)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "PDA needs a sampler");
    const evm_sampler *s = o->sampler->impl;
    r->k = evm_sampler_window(s);
    if (o->stride < 1 || o->samples < 1)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "stride and samples must be positive");
    evmap_status st = evm_sampler_check(s, r->c, r->h, r->w, err);
    if (st != EVMAP_OK)
        return st;
    r->samples = o->samples;
    size_t available = evm_sampler_max_samples(s);
    if (evm_sampler_get_kind(s) == EVM_SAMPLER_CONSTANT)
        r->samples = 1; /* every draw would be the same */
    else if ((size_t)r->samples > available)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "%d samples requested but the marginal sampler has only %zu reference "
                        "images; give more references or fewer --samples",
                        r->samples, available);
    const int *roi = o->roi;
    if (roi[2] > 0 || roi[3] > 0) {
        if (roi[0] < 0 || roi[1] < 0 || roi[2] < 1 || roi[3] < 1 || roi[2] > r->w - roi[0] ||
            roi[3] > r->h - roi[1]) /* not roi[0] + roi[2]: the sum may overflow */
            return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                            "the region of interest %d,%d,%d,%d is not inside the %d×%d image",
                            roi[0], roi[1], roi[2], roi[3], r->w, r->h);
        if (roi[2] < r->k || roi[3] < r->k)
            return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                            "the region of interest %d×%d is smaller than the %d×%d window", roi[2],
                            roi[3], r->k, r->k);
    }
    return check_targets(r, err);
}

/* ------------------------------------------------------------- windows */

static evmap_status list_windows(pda_run *r, evmap_error *err) {
    int s = r->opt->stride;
    /* k <= h, w (evm_sampler_check); ny * nx <= h * w < 2^32 */
    size_t ny = (size_t)(r->h - r->k) / (size_t)s + 1, nx = (size_t)(r->w - r->k) / (size_t)s + 1;
    r->windows = malloc(sizeof *r->windows * ny * nx);
    if (!r->windows)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory listing windows");
    r->n_windows = pda_window_grid(r->h, r->w, r->k, s, r->opt->roi, r->windows);
    if (r->n_windows == 0)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "no %d×%d window with stride %d fits the region of interest", r->k, r->k,
                        s);
    return EVMAP_OK;
}

/* ------------------------------------------------------------- set-up */

/* The unperturbed image: its runner (batch 1), whose buffers are the cache
 * of exact locality. */
static evmap_status create_single(pda_run *r, evmap_error *err) {
    return evmap_runner_create(r->model, 1, r->opt->threads, &r->single, err);
}

/* The window's rectangle on the input. */
static evm_region window_region(const pda_run *r, pda_window w) {
    return evm_region_clip(w.y, w.y + r->k, w.x, w.x + r->k, r->h, r->w);
}

/* Exact locality: plans the local batch (one window's S samples), finds the
 * first step that must run in full for some window (cut) and fills the
 * local buffers from the cache, which score_original has computed. */
static evmap_status setup_locality(pda_run *r, evmap_error *err) {
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
        evm_region change = window_region(r, r->windows[i]);
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
    if (r->mean_field && !r->average_draws && r->mean_step + 1 < cut)
        cut = r->mean_step + 1; /* the samples' mean is taken at the split layer */
    r->cut = cut;
    return evm_local_set_cut(r->local, cut, err);
}

static void choose_batch(pda_run *r) {
    /* the full batches hold only what steps from cut on use */
    size_t per_image = evm_plan_bytes_from(r->single->plan, r->cut) + 1;
    size_t cap = PDA_BATCH_MEMORY / per_image;
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

/* Sampler scratch, draws and the sums of the maps. */
static evmap_status allocate_sampling(pda_run *r, evmap_error *err) {
    const evm_sampler *s = r->opt->sampler->impl;
    size_t pixels = (size_t)r->h * (size_t)r->w;
    r->draws =
        malloc(sizeof(float) * (size_t)r->samples * (size_t)r->c * (size_t)r->k * (size_t)r->k);
    r->scratch = malloc(sizeof(float) * (evm_sampler_scratch_floats(s) + 1));
    r->sum = calloc(pixels * (size_t)r->n_targets, sizeof(double));
    r->count = calloc(pixels, sizeof(uint32_t));
    r->base = malloc(sizeof(double) * (size_t)r->n_targets);
    if (!r->draws || !r->scratch || !r->sum || !r->count || !r->base)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory for PDA buffers");
    return EVMAP_OK;
}

static evmap_status allocate(pda_run *r, evmap_error *err) {
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

static void free_run(pda_run *r) {
    pda_expansion_free(r->expansion);
    evm_local_free(r->local);
    evmap_runner_free(r->runner);
    evmap_runner_free(r->tail);
    evmap_runner_free(r->single);
    free(r->windows);
    free(r->draws);
    free(r->scratch);
    free(r->sum);
    free(r->count);
    free(r->base);
}

/* ------------------------------------------------------------- the loop */

/* S draws for window w; their mean in draw 0 when the draws are averaged. */
static void draw_window(pda_run *r, const evm_sampler *s, pda_window w) {
    evm_sampler_draw(s, r->input, r->h, r->w, w.y, w.x, r->samples, 0, &r->rng, r->scratch,
                     r->draws);
    if (!r->average_draws)
        return;
    size_t n = (size_t)r->c * (size_t)r->k * (size_t)r->k;
    for (size_t i = 0; i < n; i++) {
        double sum = 0;
        for (int d = 0; d < r->samples; d++)
            sum += r->draws[(size_t)d * n + i];
        r->draws[i] = (float)(sum / r->samples);
    }
}

/* Writes the perturbed copies of the image for window w (S, or their mean)
 * into batch rows from row. */
static void fill_window(pda_run *r, evm_plan *plan, pda_window w, int row) {
    const evm_sampler *s = r->opt->sampler->impl;
    float *batch = evm_f32(evm_plan_input(plan, 0));
    size_t per_image = (size_t)r->c * (size_t)r->h * (size_t)r->w;
    int k = r->k;
    draw_window(r, s, w);
    for (int d = 0; d < r->rows; d++) {
        float *img = batch + (size_t)(row + d) * per_image;
        memcpy(img, r->input, per_image * sizeof(float));
        const float *draw = r->draws + (size_t)d * (size_t)r->c * (size_t)(k * k);
        for (int c = 0; c < r->c; c++)
            for (int dy = 0; dy < k; dy++)
                memcpy(img + ((size_t)c * r->h + (size_t)(w.y + dy)) * (size_t)r->w + (size_t)w.x,
                       draw + ((size_t)c * k + (size_t)dy) * (size_t)k, sizeof(float) * (size_t)k);
    }
}

static void accumulate(pda_run *r, evm_plan *plan, pda_window w, int row) {
    double we[PDA_MAX_TARGETS];
    for (int t = 0; t < r->n_targets; t++)
        we[t] = r->base[t] - target_score(r, plan, t, row, r->rows);
    pda_add_evidence(r, w, we);
}

/* Locality: the window's S samples into the local batch, whose rows equal
 * the image outside the window (evm_local_begin restored them). */
static void fill_window_local(pda_run *r, pda_window w) {
    const evm_sampler *s = r->opt->sampler->impl;
    evm_region change = window_region(r, w);
    evm_local_begin(r->local, &change);
    float *batch = evm_f32(evm_local_input(r->local));
    size_t per_image = (size_t)r->c * (size_t)r->h * (size_t)r->w;
    int k = r->k;
    draw_window(r, s, w);
    for (int d = 0; d < r->local_rows; d++) {
        float *img = batch + (size_t)d * per_image;
        const float *draw = r->draws + (size_t)d * (size_t)r->c * (size_t)(k * k);
        for (int c = 0; c < r->c; c++)
            for (int dy = 0; dy < k; dy++)
                memcpy(img + ((size_t)c * r->h + (size_t)(w.y + dy)) * (size_t)r->w + (size_t)w.x,
                       draw + ((size_t)c * k + (size_t)dy) * (size_t)k, sizeof(float) * (size_t)k);
    }
}

/* Scores of the unperturbed image. */
static void score_original(pda_run *r) {
    evm_plan *plan = r->single->plan;
    size_t per_image = (size_t)r->c * (size_t)r->h * (size_t)r->w;
    memcpy(evm_f32(evm_plan_input(plan, 0)), r->input, per_image * sizeof(float));
    evm_plan_run(plan);
    r->forward_images++;
    for (int t = 0; t < r->n_targets; t++)
        r->base[t] = target_score(r, plan, t, 0, 1);
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
        fill_window(r, plan, w, i * r->rows);
        return true;
    }
    fill_window_local(r, w);
    if (!evm_local_run(r->local, poll_cancel, r))
        return false;
    if (r->expansion && pda_expansion_is_local(r))
        pda_expansion_local(r, i);
    else if (r->mean_field && !r->average_draws)
        evm_local_export_mean(r->local, plan, i);
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
            accumulate(r, plan, r->windows[first + i], (int)i * r->rows);
            continue;
        }
        if (!pda_expansion_is_local(r))
            pda_expansion_batch(r, plan, (int)i);
        pda_expansion_accumulate(r, r->windows[first + i], (int)i);
    }
}

static evmap_status run_windows(pda_run *r, evmap_error *err) {
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

static void write_maps(const pda_run *r, float *maps) {
    size_t pixels = (size_t)r->h * (size_t)r->w;
    for (int t = 0; t < r->n_targets; t++)
        for (size_t i = 0; i < pixels; i++)
            maps[(size_t)t * pixels + i] =
                r->count[i] ? (float)(r->sum[(size_t)t * pixels + i] / r->count[i]) : NAN;
}

static void write_stats(const pda_run *r, double t0, evmap_explain_stats *stats) {
    double images = (double)r->n_windows * r->rows;
    const evm_plan *single = r->single->plan;
    /* the batches run from cut to the end, or to the split layer */
    int last = r->expansion ? r->expansion->step + 1 : single->n_steps;
    double batch_macs =
        last > r->cut ? evm_plan_macs(single, r->cut) - evm_plan_macs(single, last) : 0.0;
    memset(stats, 0, sizeof *stats);
    stats->windows = r->n_windows;
    stats->forward_images = r->forward_images;
    stats->backward_images = r->expansion ? (size_t)r->n_targets : 0;
    stats->seconds = evm_seconds() - t0;
    stats->locality = r->local != NULL;
    stats->macs_naive = (images + 1) * r->image_macs;
    stats->macs = r->image_macs + (r->local ? evm_local_macs(r->local) : 0) + images * batch_macs;
    stats->cache_bytes = r->local ? single->activation_bytes : 0;
    stats->local_steps = r->cut;
    stats->total_steps = single->n_steps;
}

/* Keeps the windows ext->keep selects (the efficient method's refinement). */
static evmap_status keep_windows(pda_run *r, evmap_error *err) {
    if (!r->ext || !r->ext->keep)
        return EVMAP_OK;
    size_t n = 0;
    for (size_t i = 0; i < r->n_windows; i++)
        if (r->ext->keep[i])
            r->windows[n++] = r->windows[i];
    r->n_windows = n;
    return n ? EVMAP_OK : evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "no window selected");
}

/* Rows per window; a window-centred split takes the samples' mean. */
static evmap_status configure_rows(pda_run *r, evmap_error *err) {
    r->rows = r->local_rows = r->samples;
    r->mean_step = -1;
    if (!r->ext || !r->ext->around_window || r->ext->split_value < 0)
        return EVMAP_OK;
    if (r->hidden)
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED,
                        "the efficient method explains classes; use --method pda for --target");
    r->rows = 1;
    r->mean_field = true;
    r->mean_step = pda_producing_step(r->single->plan, r->ext->split_value);
    if (r->mean_step < 0 && r->ext->split_value != r->model->graph->inputs[0])
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "--split: '%s' is not computed by a step",
                        r->model->graph->values[r->ext->split_value].name);
    r->average_draws = r->mean_step < 0;
    if (r->average_draws)
        r->local_rows = 1;
    else if (r->opt->no_locality)
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED,
                        "a split above the input needs exact locality; drop --no-locality");
    return EVMAP_OK;
}

static evmap_status prepare_expansion(pda_run *r, evmap_error *err) {
    if (!r->ext || r->ext->split_value < 0 || r->ext->around_window)
        return EVMAP_OK;
    return pda_expansion_create(r, r->ext->split_value, err);
}

evmap_status pda_execute(const evmap_model *model, const float *input,
                         const evmap_pda_options *options, const pda_extension *ext, float *maps,
                         evmap_explain_stats *stats, evmap_error *err) {
    if (!model || !input || !options || !maps)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "evmap_pda: NULL argument");
    double t0 = evm_seconds();
    pda_run r = {.model = model, .opt = options, .input = input, .ext = ext};
    r.c = model->info.channels;
    r.h = model->info.height;
    r.w = model->info.width;
    r.num_classes = model->info.num_classes;
    r.softmaxed = model->info.ends_in_softmax != 0;
    evm_rng_seed(&r.rng, options->seed);
    evmap_status st = check_options(&r, err);
    if (st == EVMAP_OK)
        st = list_windows(&r, err);
    if (st == EVMAP_OK)
        st = keep_windows(&r, err);
    if (st == EVMAP_OK)
        st = create_single(&r, err);
    if (st == EVMAP_OK)
        st = check_hidden_shape(&r, err);
    if (st == EVMAP_OK) {
        evm_runner_set_threads(r.single);
        st = allocate_sampling(&r, err);
    }
    if (st == EVMAP_OK)
        st = configure_rows(&r, err);
    if (st == EVMAP_OK) {
        score_original(&r);
        st = prepare_expansion(&r, err);
    }
    if (st == EVMAP_OK)
        st = setup_locality(&r, err);
    if (st == EVMAP_OK)
        choose_batch(&r);
    if (st == EVMAP_OK)
        st = allocate(&r, err);
    if (st == EVMAP_OK)
        st = run_windows(&r, err);
    if (st == EVMAP_OK) {
        write_maps(&r, maps);
        if (stats)
            write_stats(&r, t0, stats);
    }
    free_run(&r);
    return st;
}

evmap_status evmap_pda(const evmap_model *model, const float *input,
                       const evmap_pda_options *options, float *maps, evmap_explain_stats *stats,
                       evmap_error *err) {
    return pda_execute(model, input, options, NULL, maps, stats, err);
}
