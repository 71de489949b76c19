/*
 * Prediction Difference Analysis (Zintgraf et al. 2017; DESIGN.md 1.1).
 * For every k×k window (all channels), S draws from the sampler replace the
 * window; the class probability averaged over the draws estimates p(c|x\w),
 * and the weight of evidence WE = log2 odds(c|x) − log2 odds(c|x\w) is added
 * to every pixel of the window; each pixel's map value is the mean over the
 * windows covering it. Hidden-unit targets use the mean activation of one
 * channel instead of log-odds: WE = a(x) − mean_s a(x̃_s).
 *
 * This file checks the options and runs the steps; the units: windows and
 * evidence (pda_evidence.c), perturbed images (pda_sampling.c), batches and
 * exact locality (pda_batches.c), scores (pda_score.c), and the efficient
 * method's expansion above a split layer (pda_expansion.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "engine/model_internal.h"
#include "samplers/sampler_api.h"
#include "pda_internal.h"

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

static void free_run(pda_run *r) {
    pda_expansion_free(r->expansion);
    for (int i = 0; i < r->n_locals; i++)
        evm_local_free(r->locals[i]);
    if (!r->locals)
        evm_local_free(r->local);
    free(r->locals);
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
    double local_macs = 0;
    for (int i = 0; i < r->n_locals; i++)
        local_macs += evm_local_macs(r->locals[i]);
    stats->macs = r->image_macs + local_macs + images * batch_macs;
    stats->cache_bytes = r->local ? single->activation_bytes : 0;
    stats->local_steps = r->cut;
    stats->local_engines = r->n_locals;
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
        pda_score_original(&r);
        st = prepare_expansion(&r, err);
    }
    if (st == EVMAP_OK)
        st = pda_setup_locality(&r, err);
    if (st == EVMAP_OK)
        pda_choose_batch(&r);
    if (st == EVMAP_OK)
        st = pda_allocate_batches(&r, err);
    if (st == EVMAP_OK)
        st = pda_run_windows(&r, err);
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
