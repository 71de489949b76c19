/*
 * The efficient method (DESIGN.md 1.3): PDA with the network above a split
 * layer replaced by its first-order expansion (pda_expansion.c), on an
 * adaptive window grid (adaptive_grid.c): windows evaluated on a coarse
 * lattice of positions, refined where their evidence changes, interpolated
 * elsewhere. With grid 1 every position is evaluated with exactly PDA's
 * windows and draws. The older refinement (Q < 1): a coarse pass with
 * K2×K2 windows moved by k, then only the k×k windows whose coarse |WE| is
 * in the top fraction Q, the coarse map standing elsewhere; its coarse pass
 * draws from its own random stream.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "engine/model_internal.h"
#include "samplers/sampler_api.h"
#include "adaptive_grid.h"
#include "efficient_split.h"
#include "pda_internal.h"

/* The default refinement, chosen from bench/efficient (docs/efficient.md). */
#define DEFAULT_REFINE 1.0

void evmap_efficient_options_init(evmap_efficient_options *o) {
    memset(o, 0, sizeof *o);
    evmap_pda_options_init(&o->pda);
    o->refine = DEFAULT_REFINE;
    o->grid_threshold = -1;
}

int evmap_efficient_default_grid(int height, int width, int k) {
    (void)height;
    (void)width;
    return k / 2 > 1 ? k / 2 : 1;
}

double evmap_efficient_default_grid_threshold(int height, int width, int k) {
    (void)height;
    (void)width;
    (void)k;
    /* bench/efficient (docs/efficient.md): with the split at the stem's end,
     * refining the coarse lattice (T 0.5) gained at most 0.004 of Spearman
     * to exact PDA on the Fashion-MNIST and scenes models for 1.2-1.6x the
     * time, so by default the lattice is interpolated as it is (T >= 1) */
    return 1.0;
}

/* -------------------------------------------------------------- split */

evmap_status evmap_efficient_auto_split(const evmap_model *model, char *name, size_t size,
                                        evmap_error *err) {
    if (!model || !name || size == 0)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "evmap_efficient_auto_split: bad argument");
    int v;
    evmap_status st = evm_efficient_auto_split(model, &v, err);
    if (st != EVMAP_OK)
        return st;
    const char *s = v == model->graph->inputs[0] ? "input" : model->graph->values[v].name;
    if (strlen(s) >= size)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "layer name longer than %zu bytes", size);
    strcpy(name, s);
    return EVMAP_OK;
}

/* Value index of the split layer; -1 for "output" (exact PDA). */
static evmap_status resolve_split(const evmap_model *model, const char *split, bool no_locality,
                                  int *value, evmap_error *err) {
    const evm_graph *g = model->graph;
    if (!split || !strcmp(split, "auto")) {
        if (no_locality) { /* a deeper split needs exact locality */
            *value = g->inputs[0];
            return EVMAP_OK;
        }
        return evm_efficient_auto_split(model, value, err);
    }
    if (!strcmp(split, "output"))
        *value = -1;
    else if (!strcmp(split, "input"))
        *value = g->inputs[0];
    else if ((*value = evm_graph_find_value(g, split)) < 0 || g->values[*value].is_initializer)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "--split: the model has no layer output named '%s' (or give input, "
                        "output or auto)",
                        split);
    return EVMAP_OK;
}

static const char *split_name(const evmap_model *model, int value) {
    if (value < 0)
        return "output";
    return value == model->graph->inputs[0] ? "input" : model->graph->values[value].name;
}

/* --------------------------------------------------------- refinement */

/* Progress over both passes. */
typedef struct two_pass_progress {
    const evmap_pda_options *user;
    size_t offset, total;
} two_pass_progress;

static int report_progress(void *user, size_t done, size_t total) {
    (void)total;
    const two_pass_progress *p = user;
    return p->user->progress(p->user->progress_user, p->offset + done, p->total);
}

/* Mean of map over window w (k×k; NaN when it touches a NaN). */
static double window_mean(const float *map, int width, int k, pda_window w) {
    double sum = 0;
    for (int dy = 0; dy < k; dy++)
        for (int dx = 0; dx < k; dx++)
            sum += map[(size_t)(w.y + dy) * (size_t)width + (size_t)(w.x + dx)];
    return sum / (k * k);
}

/* Score of each k×k window: the largest mean |coarse WE| over targets
 * (windows touching pixels the coarse pass did not reach always rank first). */
static void window_scores(const float *coarse, int n_targets, int h, int w, int k,
                          const pda_window *win, size_t n, double *score) {
    size_t pixels = (size_t)h * (size_t)w;
    for (size_t i = 0; i < n; i++) {
        double best = 0;
        for (int t = 0; t < n_targets; t++) {
            double sum = 0;
            for (int dy = 0; dy < k; dy++)
                for (int dx = 0; dx < k; dx++)
                    sum += fabs(
                        (double)coarse[(size_t)t * pixels + (size_t)(win[i].y + dy) * (size_t)w +
                                       (size_t)(win[i].x + dx)]);
            best = isnan(sum) ? INFINITY : fmax(best, sum / (k * k));
        }
        score[i] = best;
    }
}

typedef struct ranked_window {
    double score;
    size_t index;
} ranked_window;

static int by_score_desc(const void *a, const void *b) {
    const ranked_window *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* keep[i] = 1 for the ceil(Q·n) windows with the largest scores. */
static evmap_status select_windows(const double *score, size_t n, double q, unsigned char *keep,
                                   evmap_error *err) {
    ranked_window *order = malloc(sizeof *order * (n + 1));
    if (!order)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
    for (size_t i = 0; i < n; i++)
        order[i] = (ranked_window){score[i], i};
    qsort(order, n, sizeof *order, by_score_desc);
    size_t m = (size_t)ceil(q * (double)n);
    memset(keep, 0, n);
    for (size_t i = 0; i < m && i < n; i++)
        keep[order[i].index] = 1;
    free(order);
    return EVMAP_OK;
}

/* ------------------------------------------------------------- the run */

typedef struct efficient_run {
    const evmap_model *model;
    const evmap_efficient_options *opt;
    const float *input;
    int split;     /* value index, -1: output */
    int n_targets; /* maps per pass */
    size_t pixels;
    float *coarse; /* n_targets × H × W */
    pda_window *windows;
    double *score;
    unsigned char *keep;
    double *refined; /* kept windows × targets: their WE */
    double *all_we;  /* windows × targets: every window's WE */
    double *sum;     /* H × W scratch for compose */
    uint32_t *count;
    size_t n_windows, n_coarse, n_kept;
    evmap_explain_stats coarse_stats;
    two_pass_progress progress;
} efficient_run;

static evmap_status check_options(efficient_run *e, evmap_error *err) {
    const evmap_efficient_options *o = e->opt;
    if (!(o->refine > 0 && o->refine <= 1))
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "--refine must be in (0, 1], not %g",
                        o->refine);
    if (o->pda.target_layer)
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED,
                        "the efficient method explains classes; use --method pda for --target");
    if (!o->pda.sampler)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "the efficient method needs a sampler");
    if (o->pda.n_classes < 1 || !o->pda.classes)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "no target class given");
    int k = evmap_sampler_window(o->pda.sampler);
    if (o->refine < 1) {
        if (!o->coarse_sampler)
            return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                            "--refine below 1 needs a coarse sampler (window larger than %d)", k);
        if (evmap_sampler_window(o->coarse_sampler) <= k)
            return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                            "the coarse window (%d) must be larger than the window (%d)",
                            evmap_sampler_window(o->coarse_sampler), k);
    }
    if (o->grid < 0 || !isfinite(o->grid_threshold))
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "--grid must be 0 (auto) or a positive step, and --grid-threshold a "
                        "fraction >= 0");
    if (o->refine < 1 && o->grid > 1)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "--refine below 1 and --grid above 1 are two different refinements; "
                        "give one of them");
    e->n_targets = o->pda.n_classes;
    e->pixels = (size_t)e->model->info.height * (size_t)e->model->info.width;
    return resolve_split(e->model, o->split, o->pda.no_locality, &e->split, err);
}

/* The coarse pass: K2×K2 windows moved by k over the same region. */
static evmap_status coarse_pass(efficient_run *e, evmap_error *err) {
    const evmap_efficient_options *o = e->opt;
    evmap_pda_options c = o->pda;
    c.sampler = o->coarse_sampler;
    c.stride = evmap_sampler_window(o->pda.sampler);
    c.seed = o->pda.seed ^ 0x9e3779b97f4a7c15ull; /* its own stream */
    if (o->pda.progress) {
        c.progress = report_progress;
        c.progress_user = &e->progress;
    }
    pda_extension ext = {.split_value = e->split, .around_window = !o->around_image};
    e->coarse = malloc(sizeof(float) * e->pixels * (size_t)e->n_targets);
    if (!e->coarse)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
    return pda_execute(e->model, e->input, &c, &ext, e->coarse, &e->coarse_stats, err);
}

static evmap_status plan_refinement(efficient_run *e, evmap_error *err) {
    const evmap_efficient_options *o = e->opt;
    const evmap_model_info *info = &e->model->info;
    int k = evmap_sampler_window(o->pda.sampler), k2 = evmap_sampler_window(o->coarse_sampler);
    e->n_windows = pda_window_grid(info->height, info->width, k, o->pda.stride, o->pda.roi, NULL);
    e->n_coarse = pda_window_grid(info->height, info->width, k2, k, o->pda.roi, NULL);
    if (e->n_coarse == 0)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "no %d×%d coarse window fits the region of interest", k2, k2);
    e->windows = malloc(sizeof *e->windows * (e->n_windows + 1));
    e->score = malloc(sizeof *e->score * (e->n_windows + 1));
    e->keep = malloc(e->n_windows + 1);
    e->refined = malloc(sizeof(double) * (e->n_windows + 1) * (size_t)e->n_targets);
    e->all_we = malloc(sizeof(double) * (e->n_windows + 1) * (size_t)e->n_targets);
    e->sum = malloc(sizeof(double) * e->pixels);
    e->count = malloc(sizeof(uint32_t) * e->pixels);
    if (!e->windows || !e->score || !e->keep || !e->refined || !e->all_we || !e->sum || !e->count)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
    pda_window_grid(info->height, info->width, k, o->pda.stride, o->pda.roi, e->windows);
    e->n_kept = (size_t)ceil(o->refine * (double)e->n_windows);
    e->progress = (two_pass_progress){&o->pda, 0, e->n_coarse + e->n_kept};
    return EVMAP_OK;
}

/* The maps of windows win[0..n) with evidence we[n][n_targets]: each pixel
 * the mean over the windows covering it, as in PDA (NaN: none covers it). */
static void windows_to_maps(const pda_window *win, size_t n, const double *we, int n_targets, int k,
                            int height, int width, double *sum, uint32_t *count, float *maps) {
    size_t pixels = (size_t)height * (size_t)width;
    for (int t = 0; t < n_targets; t++) {
        memset(sum, 0, sizeof(double) * pixels);
        memset(count, 0, sizeof(uint32_t) * pixels);
        for (size_t i = 0; i < n; i++) {
            double v = we[i * (size_t)n_targets + (size_t)t];
            if (!isfinite(v))
                continue;
            for (int dy = 0; dy < k; dy++)
                for (int dx = 0; dx < k; dx++) {
                    size_t p = (size_t)(win[i].y + dy) * (size_t)width + (size_t)(win[i].x + dx);
                    sum[p] += v;
                    count[p]++;
                }
        }
        for (size_t p = 0; p < pixels; p++)
            maps[(size_t)t * pixels + p] = count[p] ? (float)(sum[p] / count[p]) : NAN;
    }
}

/* Every k×k window's WE: computed for the refined windows, estimated from
 * the coarse map elsewhere (its mean over the window, in the fine units:
 * larger windows remove more evidence, so the coarse estimates are scaled
 * by the least-squares factor between the two over the refined windows).
 * Each pixel is then the mean over all its windows, as in PDA, so a pixel
 * at the edge of the refined area is not biased towards the refined ones. */
static void compose(const efficient_run *e, const double *refined, float *maps) {
    const evmap_model_info *info = &e->model->info;
    int k = evmap_sampler_window(e->opt->pda.sampler), n_t = e->n_targets;
    double *we = e->all_we;
    for (int t = 0; t < n_t; t++) {
        const float *coarse = e->coarse + (size_t)t * e->pixels;
        double fc = 0, cc = 0;
        for (size_t i = 0, j = 0; i < e->n_windows; i++) {
            if (!e->keep[i])
                continue;
            double c = window_mean(coarse, info->width, k, e->windows[i]),
                   f = refined[j++ * n_t + t];
            if (isfinite(c)) {
                fc += f * c;
                cc += c * c;
            }
        }
        double scale = cc > 0 && fc > 0 ? fc / cc : 1.0;
        for (size_t i = 0, j = 0; i < e->n_windows; i++)
            we[i * n_t + t] = e->keep[i]
                                  ? refined[j++ * n_t + t]
                                  : scale * window_mean(coarse, info->width, k, e->windows[i]);
    }
    windows_to_maps(e->windows, e->n_windows, we, n_t, k, info->height, info->width, e->sum,
                    e->count, maps);
}

static void add_stats(evmap_explain_stats *total, const evmap_explain_stats *coarse) {
    total->windows += coarse->windows;
    total->coarse_windows = coarse->windows;
    total->forward_images += coarse->forward_images;
    total->backward_images += coarse->backward_images;
    total->macs += coarse->macs;
    total->macs_naive += coarse->macs_naive;
}

static evmap_status refined_run(efficient_run *e, float *maps, evmap_explain_stats *stats,
                                evmap_error *err) {
    const evmap_efficient_options *o = e->opt;
    evmap_status st = plan_refinement(e, err);
    if (st == EVMAP_OK)
        st = coarse_pass(e, err);
    if (st != EVMAP_OK)
        return st;
    int k = evmap_sampler_window(o->pda.sampler);
    window_scores(e->coarse, e->n_targets, e->model->info.height, e->model->info.width, k,
                  e->windows, e->n_windows, e->score);
    st = select_windows(e->score, e->n_windows, o->refine, e->keep, err);
    if (st != EVMAP_OK)
        return st;
    evmap_pda_options fine = o->pda;
    e->progress.offset = e->n_coarse;
    if (o->pda.progress) {
        fine.progress = report_progress;
        fine.progress_user = &e->progress;
    }
    pda_extension ext = {.split_value = e->split,
                         .around_window = !o->around_image,
                         .keep = e->keep,
                         .window_we = e->refined};
    st = pda_execute(e->model, e->input, &fine, &ext, maps, stats, err);
    if (st == EVMAP_OK) {
        compose(e, e->refined, maps);
        add_stats(stats, &e->coarse_stats);
    }
    return st;
}

/* ------------------------------------------------------ adaptive grid */

/* Progress over the grid's levels: the total grows as levels are added. */
typedef struct level_progress {
    const evmap_pda_options *user;
    size_t before; /* windows of the finished levels */
} level_progress;

static int report_level(void *user, size_t done, size_t total) {
    const level_progress *p = user;
    return p->user->progress(p->user->progress_user, p->before + done, p->before + total);
}

static void add_level_stats(evmap_explain_stats *total, const evmap_explain_stats *level,
                            bool first) {
    if (first) {
        *total = *level;
        total->coarse_windows = level->windows;
        return;
    }
    total->windows += level->windows;
    total->forward_images += level->forward_images;
    total->backward_images += level->backward_images;
    total->macs += level->macs;
    total->macs_naive += level->macs_naive;
}

/* Evaluates the grid's pending positions (one PDA pass over them). */
static evmap_status evaluate_level(efficient_run *e, agrid *g, level_progress *progress,
                                   evmap_explain_stats *stats, float *maps, evmap_error *err) {
    const evmap_efficient_options *o = e->opt;
    evmap_pda_options level = o->pda;
    /* each level draws from its own stream */
    level.seed = o->pda.seed + 0x9e3779b97f4a7c15ull * (uint64_t)g->levels;
    if (o->pda.progress) {
        level.progress = report_level;
        level.progress_user = progress;
    }
    pda_extension ext = {.split_value = e->split,
                         .around_window = !o->around_image,
                         .keep = g->pending,
                         .window_we = e->refined};
    evmap_explain_stats level_stats;
    size_t n = g->n_pending;
    evmap_status st = pda_execute(e->model, e->input, &level, &ext, maps, &level_stats, err);
    if (st != EVMAP_OK)
        return st;
    add_level_stats(stats, &level_stats, g->levels == 0);
    agrid_store(g, e->refined);
    progress->before += n;
    return EVMAP_OK;
}

static evmap_status adaptive_run(efficient_run *e, float *maps, evmap_explain_stats *stats,
                                 evmap_error *err) {
    const evmap_efficient_options *o = e->opt;
    const evmap_model_info *info = &e->model->info;
    int k = evmap_sampler_window(o->pda.sampler);
    e->n_windows = pda_window_grid(info->height, info->width, k, o->pda.stride, o->pda.roi, NULL);
    if (e->n_windows == 0)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "no %d×%d window with stride %d fits the region of interest", k, k,
                        o->pda.stride);
    e->windows = malloc(sizeof *e->windows * e->n_windows);
    e->refined = malloc(sizeof(double) * e->n_windows * (size_t)e->n_targets);
    e->sum = malloc(sizeof(double) * e->pixels);
    e->count = malloc(sizeof(uint32_t) * e->pixels);
    if (!e->windows || !e->refined || !e->sum || !e->count)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
    pda_window_grid(info->height, info->width, k, o->pda.stride, o->pda.roi, e->windows);
    /* the windows form a lattice, rows first */
    size_t nx = 0;
    while (nx < e->n_windows && e->windows[nx].y == e->windows[0].y)
        nx++;
    int step = o->grid > 0 ? o->grid : evmap_efficient_default_grid(info->height, info->width, k);
    double threshold = o->grid_threshold >= 0
                           ? o->grid_threshold
                           : evmap_efficient_default_grid_threshold(info->height, info->width, k);
    agrid g;
    evmap_status st = agrid_init(&g, (int)(e->n_windows / nx), (int)nx, e->n_targets, step, err);
    if (st != EVMAP_OK)
        return st;
    level_progress progress = {&o->pda, 0};
    size_t pending = g.n_pending;
    while (st == EVMAP_OK && pending > 0) {
        st = evaluate_level(e, &g, &progress, stats, maps, err);
        if (st == EVMAP_OK)
            st = agrid_refine(&g, threshold, &pending, err);
    }
    if (st == EVMAP_OK)
        st = agrid_interpolate(&g, err);
    if (st == EVMAP_OK) {
        windows_to_maps(e->windows, e->n_windows, g.value, e->n_targets, k, info->height,
                        info->width, e->sum, e->count, maps);
        stats->grid_positions = e->n_windows;
        stats->grid_levels = g.levels;
    }
    agrid_free(&g);
    return st;
}

evmap_status evmap_efficient(const evmap_model *model, const float *input,
                             const evmap_efficient_options *options, float *maps,
                             evmap_explain_stats *stats, evmap_error *err) {
    if (!model || !input || !options || !maps)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "evmap_efficient: NULL argument");
    efficient_run e = {.model = model, .opt = options, .input = input};
    evmap_explain_stats local_stats;
    if (!stats)
        stats = &local_stats;
    evmap_status st = check_options(&e, err);
    double t0 = evm_seconds();
    if (st == EVMAP_OK && options->refine < 1) {
        st = refined_run(&e, maps, stats, err);
    } else if (st == EVMAP_OK) {
        st = adaptive_run(&e, maps, stats, err);
    }
    if (st == EVMAP_OK) {
        snprintf(stats->layer, sizeof stats->layer, "%s", split_name(model, e.split));
        stats->seconds = evm_seconds() - t0;
    }
    free(e.coarse);
    free(e.windows);
    free(e.score);
    free(e.keep);
    free(e.refined);
    free(e.all_we);
    free(e.sum);
    free(e.count);
    return st;
}
