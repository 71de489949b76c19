/* The method table (see methods.h). */
#include "methods.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "cli.h"

static void pda_options(const method_options *o, const evmap_sampler *sampler, int samples,
                        const int *classes, int n_classes, evmap_pda_options *p) {
    evmap_pda_options_init(p);
    p->sampler = sampler;
    p->samples = samples;
    p->stride = o->stride;
    p->laplace_n = o->laplace_n;
    p->classes = classes;
    p->n_classes = n_classes;
    p->target_layer = o->target_layer;
    p->target_channel = o->target_channel;
    memcpy(p->roi, o->roi, sizeof p->roi);
    p->seed = o->seed;
    if (o->batch)
        p->batch = o->batch;
    p->threads = o->threads;
    p->no_locality = o->no_locality;
    p->progress = o->progress;
    p->progress_user = o->progress_user;
}

static evmap_status run_pda_with(const method_options *o, const evmap_sampler *sampler, int samples,
                                 const evmap_model *model, const float *input, const int *classes,
                                 int n_classes, float *maps, evmap_explain_stats *stats,
                                 evmap_error *err) {
    evmap_pda_options p;
    pda_options(o, sampler, samples, classes, n_classes, &p);
    return evmap_pda(model, input, &p, maps, stats, err);
}

/* The efficient method with its measured defaults (docs/efficient.md). */
static evmap_status run_efficient(const method_info *m, const method_options *o,
                                  const evmap_model *model, const float *input, const int *classes,
                                  int n_classes, float *maps, evmap_explain_stats *stats,
                                  evmap_error *err) {
    (void)m;
    if (!o->sampler)
        return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "efficient needs a fitted sampler: give --sampler-file F (from 'evmap "
                        "fit-sampler') or --reference SRC (training images)");
    evmap_efficient_options e;
    evmap_efficient_options_init(&e);
    pda_options(o, o->sampler, o->pda_samples, classes, n_classes, &e.pda);
    e.split = o->split;
    e.refine = o->refine;
    e.grid = o->grid;
    e.grid_threshold = o->grid_threshold;
    e.coarse_sampler = o->coarse_sampler;
    e.around_image = o->around_image;
    return evmap_efficient(model, input, &e, maps, stats, err);
}

static evmap_status run_pda(const method_info *m, const method_options *o, const evmap_model *model,
                            const float *input, const int *classes, int n_classes, float *maps,
                            evmap_explain_stats *stats, evmap_error *err) {
    (void)m;
    if (!o->sampler)
        return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "pda needs a fitted sampler: give --sampler-file F (from 'evmap "
                        "fit-sampler') or --reference SRC (training images)");
    return run_pda_with(o, o->sampler, o->pda_samples, model, input, classes, n_classes, maps,
                        stats, err);
}

/* Occlusion: PDA with a constant sampler (zero, the image's channel means or
 * a number) and one draw per window. */
static evmap_status run_occlusion(const method_info *m, const method_options *o,
                                  const evmap_model *model, const float *input, const int *classes,
                                  int n_classes, float *maps, evmap_explain_stats *stats,
                                  evmap_error *err) {
    (void)m;
    evmap_model_info info;
    evmap_status st = evmap_model_get_info(model, &info, err);
    if (st != EVMAP_OK)
        return st;
    size_t plane = (size_t)info.height * (size_t)info.width;
    float fill[3] = {0, 0, 0};
    for (int c = 0; c < info.channels && c < 3; c++) {
        double sum = 0;
        for (size_t i = 0; o->occlusion == EVMAP_BASELINE_MEAN && i < plane; i++)
            sum += input[(size_t)c * plane + i];
        fill[c] = o->occlusion_value_given ? o->occlusion_value : (float)(sum / (double)plane);
    }
    int k = o->window ? o->window : evmap_pda_default_window(info.height, info.width);
    evmap_sampler *sampler = NULL;
    st = evmap_sampler_constant(fill, info.channels, k, &sampler, err);
    if (st == EVMAP_OK)
        st = run_pda_with(o, sampler, 1, model, input, classes, n_classes, maps, stats, err);
    evmap_sampler_free(sampler);
    return st;
}

static evmap_status run_gradient(const method_info *m, const method_options *o,
                                 const evmap_model *model, const float *input, const int *classes,
                                 int n_classes, float *maps, evmap_explain_stats *stats,
                                 evmap_error *err) {
    evmap_gradient_options g;
    evmap_gradient_options_init(&g);
    g.method = (evmap_gradient_method)m->gradient;
    g.score = o->score;
    g.classes = classes;
    g.n_classes = n_classes;
    g.target_layer = o->target_layer;
    g.target_channel = o->target_channel;
    g.steps = o->ig_steps;
    g.baseline = o->ig_baseline;
    g.noise = o->smoothgrad_noise;
    g.samples = o->smoothgrad_samples;
    g.seed = o->seed;
    g.layer = o->gradcam_layer;
    if (o->batch)
        g.batch = o->batch;
    g.threads = o->threads;
    g.progress = o->progress;
    g.progress_user = o->progress_user;
    return evmap_gradient_map(model, input, &g, maps, stats, err);
}

/* FNV-1a over the input's bytes: the random baseline draws the same map for
 * the same image and a new one for any change of it. */
static uint64_t hash_input(const float *input, size_t n) {
    return evm_fnv1a(EVM_FNV1A_START, input, n * sizeof(float));
}

/* Uniform noise in [0, 1): what evidence spread without any knowledge scores. */
static evmap_status run_random(const method_info *m, const method_options *o,
                               const evmap_model *model, const float *input, const int *classes,
                               int n_classes, float *maps, evmap_explain_stats *stats,
                               evmap_error *err) {
    (void)m;
    (void)classes;
    evmap_model_info info;
    evmap_status st = evmap_model_get_info(model, &info, err);
    if (st != EVMAP_OK)
        return st;
    size_t plane = (size_t)info.height * (size_t)info.width;
    size_t n = plane * (size_t)n_classes;
    /* Noise of radius 0.5 around 0.5, in place: uniform in [0, 1). */
    for (size_t i = 0; i < n; i++)
        maps[i] = 0.5f;
    evmap_eval_uniform_noise(maps, n, 0.5f,
                             o->seed ^ hash_input(input, plane * (size_t)info.channels), maps);
    if (stats)
        memset(stats, 0, sizeof *stats);
    return EVMAP_OK;
}

/* What each family takes; PDA's sampler options, windows and samples. */
#define PDA_OPTIONS (MOPT_SAMPLING | MOPT_WINDOWS | MOPT_SAMPLES)

static const method_info methods[] = {
    {"pda", "Prediction Difference Analysis, conditional sampler (log2 odds)",
     METHOD_NEEDS_SAMPLER | METHOD_EXPENSIVE | METHOD_WINDOWS, PDA_OPTIONS, "windows", 0, run_pda},
    {"efficient", "the efficient method: PDA's maps about S times faster (log2 odds)",
     METHOD_NEEDS_SAMPLER | METHOD_WINDOWS, PDA_OPTIONS | MOPT_EFFICIENT, "windows", 0,
     run_efficient},
    {"occlusion", "PDA with a constant fill and one draw (log2 odds)", METHOD_WINDOWS, MOPT_WINDOWS,
     "windows", 0, run_occlusion},
    {"saliency", "max over channels of |gradient|", METHOD_GRADIENT, MOPT_SCORE, "passes",
     EVMAP_GRADIENT_SALIENCY, run_gradient},
    {"gradxinput", "gradient x input", METHOD_GRADIENT, MOPT_SCORE, "passes",
     EVMAP_GRADIENT_GRADXINPUT, run_gradient},
    {"ig", "Integrated Gradients", METHOD_GRADIENT, MOPT_SCORE | MOPT_STEPS, "passes",
     EVMAP_GRADIENT_IG, run_gradient},
    {"smoothgrad", "saliency averaged over noisy copies", METHOD_GRADIENT,
     MOPT_SCORE | MOPT_NOISE | MOPT_SAMPLES, "passes", EVMAP_GRADIENT_SMOOTHGRAD, run_gradient},
    {"gradcam", "Grad-CAM, upsampled", METHOD_GRADIENT, MOPT_SCORE | MOPT_LAYER, "passes",
     EVMAP_GRADIENT_GRADCAM, run_gradient},
    {"guided", "guided backpropagation", METHOD_GRADIENT, MOPT_SCORE, "passes",
     EVMAP_GRADIENT_GUIDED, run_gradient},
    {"random", "uniform noise in [0,1): the baseline any method should beat", METHOD_EVALUATE_ONLY,
     0, "maps", 0, run_random},
};

#define N_METHODS ((int)(sizeof methods / sizeof methods[0]))

const method_info *method_table(int *count) {
    *count = N_METHODS;
    return methods;
}

const method_info *method_find(const char *name) {
    for (int i = 0; i < N_METHODS; i++)
        if (!strcmp(methods[i].name, name))
            return &methods[i];
    return NULL;
}

const char *method_names(void) {
    static char names[512];
    if (!names[0]) {
        size_t used = 0;
        for (int i = 0; i < N_METHODS && used < sizeof names; i++)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                                     methods[i].name);
    }
    return names;
}

evmap_status method_map(const method_info *m, const method_options *o, const evmap_model *model,
                        const float *input, const int *classes, int n_classes, float *maps,
                        evmap_explain_stats *stats, evmap_error *err) {
    return m->run(m, o, model, input, classes, n_classes, maps, stats, err);
}
