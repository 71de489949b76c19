/* evmap evaluate: opening everything, then the maps and metrics of one image. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evaluate.h"

/* ---------------------------------------------------------------- setup */

static evmap_status open_labels(const eval_options *o, eval_state *s, evmap_error *err) {
    evmap_status st = EVMAP_OK;
    if (o->labels_path) {
        st = cli_labels_load(o->labels_path, &s->names, err);
        if (st == EVMAP_OK && s->names.count != s->info.num_classes)
            return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                            "labels file '%s' has %d lines but the model has %d classes",
                            o->labels_path, s->names.count, s->info.num_classes);
    }
    if (st != EVMAP_OK || !o->labels_idx)
        return st;
    st = evmap_idx_load_labels(o->labels_idx, &s->labels, &s->n_labels, err);
    if (st == EVMAP_OK && s->n_labels < s->n_images)
        return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "--labels-idx '%s' holds %zu labels but %zu images are evaluated",
                        o->labels_idx, s->n_labels, s->n_images);
    for (size_t i = 0; st == EVMAP_OK && i < s->n_images; i++)
        if (s->labels[i] >= s->info.num_classes)
            return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                            "--labels-idx '%s': label %d of image %zu is not a class of the model "
                            "(0 to %d)",
                            o->labels_idx, s->labels[i], i, s->info.num_classes - 1);
    return st;
}

static evmap_status load_sampler_file(const eval_options *o, eval_state *s, evmap_error *err) {
    char tag[256], want[256];
    evmap_status st = evmap_sampler_load(o->mo.sampler_file, &s->sampler, tag, sizeof tag, err);
    if (st != EVMAP_OK)
        return st;
    cli_preprocess_tag(&o->input.preprocess, &s->info, want, sizeof want);
    if (strcmp(tag, want))
        return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "sampler file '%s' was fitted for '%s', but this run uses '%s'",
                        o->mo.sampler_file, tag, want);
    int k = evmap_sampler_window(s->sampler), p = evmap_sampler_pad(s->sampler);
    if ((o->mo.window && o->mo.window != k) || (o->mo.pad_given && o->mo.pad != p))
        return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "sampler file '%s' was fitted for window %d and pad %d, not window %d and "
                        "pad %d",
                        o->mo.sampler_file, k, p, o->mo.window ? o->mo.window : k, o->mo.pad);
    snprintf(s->sampler_source, sizeof s->sampler_source, "%s", o->mo.sampler_file);
    return EVMAP_OK;
}

/* Fits the conditional sampler on the references (saved in --out if given). */
static evmap_status fit_sampler(const eval_options *o, eval_state *s, evmap_error *err) {
    float *stack;
    size_t n;
    evmap_status st =
        cli_load_stack(o->mo.references, o->mo.n_references, EVAL_MAX_REFERENCE_IMAGES, &o->input,
                       &s->info, &stack, &n, err);
    if (st != EVMAP_OK)
        return st;
    evmap_sampler_fit_options fit;
    evmap_sampler_fit_options_init(&fit);
    fit.window =
        o->mo.window ? o->mo.window : evmap_pda_default_window(s->info.height, s->info.width);
    fit.pad = o->mo.pad;
    fit.patches = o->mo.patches;
    fit.seed = o->mo.seed;
    st = evmap_sampler_fit(stack, n, s->info.channels, s->info.height, s->info.width, &fit,
                           &s->sampler, err);
    free(stack);
    snprintf(s->sampler_source, sizeof s->sampler_source, "fitted on %zu reference images", n);
    if (st != EVMAP_OK || !o->out_dir)
        return st;
    char tag[256];
    cli_preprocess_tag(&o->input.preprocess, &s->info, tag, sizeof tag);
    snprintf(s->sampler_source, sizeof s->sampler_source, "%s/sampler-k%d-p%d.evs", o->out_dir,
             fit.window, fit.pad);
    return evmap_sampler_save(s->sampler, tag, s->sampler_source, err);
}

static bool needs_sampler(const eval_options *o) {
    for (int m = 0; m < o->n_methods; m++)
        if (o->methods[m]->flags & METHOD_NEEDS_SAMPLER)
            return true;
    return false;
}

evmap_status eval_prepare_sampler(const eval_options *o, eval_state *s, evmap_error *err) {
    if (!needs_sampler(o))
        return EVMAP_OK;
    if (o->mo.sampler_file)
        return load_sampler_file(o, s, err);
    if (o->mo.n_references)
        return fit_sampler(o, s, err);
    return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                    "pda needs the conditional sampler: give --sampler-file F (from 'evmap "
                    "fit-sampler') or --reference SRC (training images)");
}

/* The AOPC regions and the number removed (default 10 % of them). */
static evmap_status plan_aopc(const eval_options *o, eval_state *s, evmap_error *err) {
    int h = s->info.height, w = s->info.width;
    /* the metrics' pixel orders are ints (evmap_eval_pixel_order's limit) */
    if ((size_t)h * (size_t)w > (1u << 30))
        return cli_fail(err, EVMAP_ERR_TOO_LARGE,
                        "the %dx%d model input is above evaluate's limit of 2^30 pixels", w, h);
    s->aopc_k = o->aopc_window ? o->aopc_window : evmap_pda_default_window(h, w);
    if (s->aopc_k > h || s->aopc_k > w)
        return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "--aopc-window %d is larger than the %dx%d model input", s->aopc_k, w, h);
    s->n_regions = evmap_eval_region_count(h, w, s->aopc_k);
    s->aopc_l = o->aopc_regions ? o->aopc_regions : (int)lround(0.1 * s->n_regions);
    if (s->aopc_l < 1)
        s->aopc_l = 1;
    if (s->aopc_l > s->n_regions)
        return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "--aopc-regions %d is more than the %d regions of %dx%d pixels", s->aopc_l,
                        s->n_regions, s->aopc_k, s->aopc_k);
    return EVMAP_OK;
}

static evmap_status allocate_results(const eval_options *o, eval_state *s, evmap_error *err) {
    size_t n = s->n_images;
    for (int m = 0; m < o->n_methods; m++) {
        eval_method_result *r = &s->results[m];
        r->deletion = malloc(sizeof(double) * n * (size_t)s->points);
        r->insertion = malloc(sizeof(double) * n * (size_t)s->points);
        r->aopc_curve = malloc(sizeof(double) * n * (size_t)s->aopc_l);
        double **scalars[] = {&r->deletion_auc, &r->insertion_auc, &r->aopc,
                              &r->sensitivity,  &r->seconds,       &r->pointing,
                              &r->mass,         &r->rank,          &r->iou};
        bool ok = r->deletion && r->insertion && r->aopc_curve;
        for (size_t k = 0; k < sizeof scalars / sizeof scalars[0]; k++) {
            *scalars[k] = malloc(sizeof(double) * n);
            ok = ok && *scalars[k];
            for (size_t i = 0; *scalars[k] && i < n; i++)
                (*scalars[k])[i] = NAN;
        }
        if (!ok)
            return cli_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory for the results");
        for (size_t i = 0; i < n * (size_t)s->points; i++)
            r->deletion[i] = r->insertion[i] = NAN;
        for (size_t i = 0; i < n * (size_t)s->aopc_l; i++)
            r->aopc_curve[i] = NAN;
    }
    return EVMAP_OK;
}

static evmap_status allocate_scratch(const eval_options *o, eval_state *s, evmap_error *err) {
    size_t plane = (size_t)s->info.height * (size_t)s->info.width;
    size_t floats = plane * (size_t)s->info.channels;
    size_t most = (size_t)(s->points > s->aopc_l ? s->points : s->aopc_l);
    s->input = malloc(sizeof(float) * floats);
    s->fill = malloc(sizeof(float) * floats);
    s->noisy = malloc(sizeof(float) * floats);
    s->map = malloc(sizeof(float) * plane);
    s->noisy_map = malloc(sizeof(float) * plane);
    s->batch_images = malloc(sizeof(float) * floats * (size_t)s->batch);
    s->probs = malloc(sizeof(float) * (size_t)s->info.num_classes * (size_t)s->batch);
    s->order = malloc(sizeof(int) * plane);
    s->region_end = malloc(sizeof(size_t) * (size_t)s->n_regions);
    s->counts = malloc(sizeof(size_t) * most);
    s->x = malloc(sizeof(double) * (size_t)s->points);
    s->images = calloc(s->n_images, sizeof(eval_image));
    if (!s->input || !s->fill || !s->noisy || !s->map || !s->noisy_map || !s->batch_images ||
        !s->probs || !s->order || !s->region_end || !s->counts || !s->x || !s->images)
        return cli_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
    for (int t = 0; t < s->points; t++)
        s->x[t] = (double)evmap_eval_step_pixels(plane, o->steps, t) / (double)plane;
    return allocate_results(o, s, err);
}

static evmap_status open_images(const eval_options *o, eval_state *s, evmap_error *err) {
    evmap_status st = evmap_image_set_create(&s->set, err);
    evmap_image_set_limit_memory(s->set, o->input.max_memory);
    for (int i = 0; st == EVMAP_OK && i < o->n_data; i++)
        st = evmap_image_set_add(s->set, o->data[i], err);
    if (st != EVMAP_OK)
        return st;
    s->n_images = evmap_image_set_count(s->set);
    if (o->limit && s->n_images > o->limit)
        s->n_images = o->limit;
    if (s->n_images == 0)
        return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "the data sources hold no images");
    return EVMAP_OK;
}

evmap_status eval_open(const eval_options *o, eval_state *s, evmap_error *err) {
    evmap_status st = cli_load_model(o->model_path, &o->input, &s->model, err);
    if (st == EVMAP_OK)
        st = evmap_model_get_info(s->model, &s->info, err);
    if (st == EVMAP_OK)
        st = open_images(o, s, err);
    /* A model with a free side runs every image at the first one's size. */
    if (st == EVMAP_OK)
        st = cli_size_to_image(s->model, &s->info, s->set, 0, &o->input.preprocess, err);
    if (st == EVMAP_OK)
        st = open_labels(o, s, err);
    if (st == EVMAP_OK && o->explain_label && !s->labels)
        st = cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                      "--explain-class label needs --labels-idx FILE");
    if (st == EVMAP_OK)
        st = plan_aopc(o, s, err);
    s->points = o->steps + 1;
    /* All the curve points of one image in one or a few passes. */
    s->batch = o->mo.batch ? o->mo.batch : (s->points > s->aopc_l ? s->points : s->aopc_l);
    if (s->batch > 256 && !o->mo.batch)
        s->batch = 256;
    if (st == EVMAP_OK)
        st = evmap_runner_create(s->model, s->batch, o->mo.threads, &s->runner, err);
    if (st == EVMAP_OK)
        st = allocate_scratch(o, s, err);
    if (st == EVMAP_OK)
        st = eval_open_masks(o, s, err);
    return st;
}

void eval_state_free(eval_state *s) {
    evmap_runner_free(s->runner);
    evmap_model_free(s->model);
    evmap_image_set_free(s->set);
    evmap_image_set_free(s->masks);
    free(s->mask_of);
    free(s->mask);
    free(s->mask_floats);
    evmap_sampler_free(s->sampler);
    evmap_idx_free_labels(s->labels);
    cli_labels_free(&s->names);
    float *floats[] = {s->input,     s->fill,         s->noisy, s->map,
                       s->noisy_map, s->batch_images, s->probs};
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++)
        free(floats[i]);
    free(s->order);
    free(s->region_end);
    free(s->counts);
    free(s->x);
    free(s->images);
    for (int m = 0; m < EVAL_MAX_METHODS; m++) {
        eval_method_result *r = &s->results[m];
        free(r->deletion);
        free(r->insertion);
        free(r->aopc_curve);
        free(r->deletion_auc);
        free(r->insertion_auc);
        free(r->aopc);
        free(r->sensitivity);
        free(r->seconds);
        free(r->pointing);
        free(r->mass);
        free(r->rank);
        free(r->iou);
    }
}

/* ------------------------------------------------------------ one image */

/* p(cls) for `from` with the first counts[j] pixels of s->order taken from
 * `to`, for j < n; as few forward passes as the runner's batch allows. */
static evmap_status perturbation_curve(eval_state *s, const float *from, const float *to,
                                       const size_t *counts, int n, int cls, double *out,
                                       evmap_error *err) {
    int c = s->info.channels, h = s->info.height, w = s->info.width, k = s->info.num_classes;
    size_t floats = (size_t)c * (size_t)h * (size_t)w;
    for (int first = 0; first < n; first += s->batch) {
        int count = n - first < s->batch ? n - first : s->batch;
        for (int j = 0; j < count; j++)
            evmap_eval_replace(from, to, c, h, w, s->order, counts[first + j],
                               s->batch_images + floats * (size_t)j);
        evmap_status st = evmap_runner_classify(s->runner, s->batch_images, count, s->probs, err);
        if (st != EVMAP_OK)
            return st;
        for (int j = 0; j < count; j++)
            out[first + j] = s->probs[(size_t)j * (size_t)k + (size_t)cls];
    }
    return EVMAP_OK;
}

static evmap_status curves(const eval_options *o, eval_state *s, size_t index, int cls,
                           eval_method_result *r, evmap_error *err) {
    size_t plane = (size_t)s->info.height * (size_t)s->info.width;
    double *del = r->deletion + index * (size_t)s->points;
    double *ins = r->insertion + index * (size_t)s->points;
    evmap_status st = evmap_eval_pixel_order(s->map, s->info.height, s->info.width, s->order, err);
    for (int t = 0; t < s->points; t++)
        s->counts[t] = evmap_eval_step_pixels(plane, o->steps, t);
    if (st == EVMAP_OK && (o->metrics & METRIC_DELETION)) {
        st = perturbation_curve(s, s->input, s->fill, s->counts, s->points, cls, del, err);
        r->deletion_auc[index] = evmap_eval_auc(s->x, del, s->points);
    }
    if (st == EVMAP_OK && (o->metrics & METRIC_INSERTION)) {
        st = perturbation_curve(s, s->fill, s->input, s->counts, s->points, cls, ins, err);
        r->insertion_auc[index] = evmap_eval_auc(s->x, ins, s->points);
    }
    return st;
}

static evmap_status aopc(eval_state *s, size_t index, int cls, eval_method_result *r,
                         evmap_error *err) {
    double *curve = r->aopc_curve + index * (size_t)s->aopc_l;
    evmap_status st = evmap_eval_region_order(s->map, s->info.height, s->info.width, s->aopc_k,
                                              s->order, s->region_end, err);
    if (st == EVMAP_OK)
        st = perturbation_curve(s, s->input, s->fill, s->region_end, s->aopc_l, cls, curve, err);
    if (st == EVMAP_OK)
        r->aopc[index] = evmap_eval_aopc(s->images[index].p, curve, s->aopc_l);
    return st;
}

/* max over noisy copies of the distance between the L2-normalised maps. */
static evmap_status sensitivity(const eval_options *o, eval_state *s, const method_info *m,
                                size_t index, int cls, eval_method_result *r, evmap_error *err) {
    size_t plane = (size_t)s->info.height * (size_t)s->info.width;
    size_t floats = plane * (size_t)s->info.channels;
    float lo = s->input[0], hi = s->input[0];
    for (size_t i = 1; i < floats; i++) {
        lo = s->input[i] < lo ? s->input[i] : lo;
        hi = s->input[i] > hi ? s->input[i] : hi;
    }
    float radius = o->sensitivity_radius * (hi - lo);
    double worst = -INFINITY;
    for (int k = 0; k < o->sensitivity_samples; k++) {
        uint64_t seed = o->mo.seed * 1000003u + index * 1009u + (uint64_t)k + 1;
        evmap_eval_uniform_noise(s->input, floats, radius, seed, s->noisy);
        evmap_explain_stats stats;
        method_options mo = o->mo;
        mo.sampler = s->sampler;
        evmap_status st =
            method_map(m, &mo, s->model, s->noisy, &cls, 1, s->noisy_map, &stats, err);
        if (st != EVMAP_OK)
            return st;
        double d = evmap_eval_map_distance(s->map, s->noisy_map, plane);
        worst = isnan(d) || d > worst ? d : worst;
        if (isnan(d))
            break; /* undefined for an all-zero map */
    }
    r->sensitivity[index] = worst;
    return EVMAP_OK;
}

/* The localisation metrics of map against the current image's mask. */
static evmap_status localisation_of(const eval_options *o, const eval_state *s, const float *map,
                                    evmap_localisation *out, evmap_error *err) {
    return evmap_eval_localisation(map, s->mask, s->info.height, s->info.width, s->tolerance,
                                   o->iou_top, out, err);
}

/* The model's top class (first on ties). */
static int argmax(const float *p, int n) {
    int best = 0;
    for (int c = 1; c < n; c++)
        if (p[c] > p[best])
            best = c;
    return best;
}

static evmap_status classify_image(const eval_options *o, eval_state *s, size_t index,
                                   evmap_error *err) {
    evmap_status st = cli_load_input(s->set, index, &o->input.preprocess, &s->info, s->input, err);
    if (st == EVMAP_OK)
        st = evmap_runner_classify(s->runner, s->input, 1, s->probs, err);
    if (st != EVMAP_OK)
        return st;
    eval_image *im = &s->images[index];
    im->label = s->labels ? s->labels[index] : -1;
    im->predicted = argmax(s->probs, s->info.num_classes);
    im->cls = o->explain_label ? im->label : im->predicted;
    im->p = s->probs[im->cls];
    st = evmap_eval_fill(s->input, s->info.channels, s->info.height, s->info.width, o->fill,
                         s->fill, err);
    if (st != EVMAP_OK || !(o->metrics & METRIC_LOCALISATION))
        return st;
    st = eval_load_mask(o, s, index, err);
    /* A constant map's scores: the uniform baselines. */
    size_t plane = (size_t)s->info.height * (size_t)s->info.width;
    for (size_t p = 0; p < plane; p++)
        s->noisy_map[p] = 1.0f;
    evmap_localisation u = {0};
    if (st == EVMAP_OK)
        st = localisation_of(o, s, s->noisy_map, &u, err);
    im->area = u.area;
    im->pointing_uniform = u.pointing_uniform;
    im->iou_uniform = u.iou_uniform;
    return st;
}

/* "METHOD: message", so that a failure says which map it was. */
static void name_method(evmap_error *err, const char *method) {
    char msg[sizeof err->message];
    snprintf(msg, sizeof msg, "%s: %s", method, err->message);
    memcpy(err->message, msg, sizeof msg);
}

static evmap_status run_method(const eval_options *o, eval_state *s, int m, size_t index,
                               evmap_error *err) {
    const method_info *info = o->methods[m];
    eval_method_result *r = &s->results[m];
    int cls = s->images[index].cls;
    evmap_explain_stats stats;
    method_options mo = o->mo;
    mo.sampler = s->sampler;
    double t0 = cli_seconds();
    evmap_status st = method_map(info, &mo, s->model, s->input, &cls, 1, s->map, &stats, err);
    r->seconds[index] = cli_seconds() - t0;
    if (st != EVMAP_OK) {
        if (st != EVMAP_ERR_CANCELLED)
            name_method(err, info->name);
        return st;
    }
    if (o->metrics & (METRIC_DELETION | METRIC_INSERTION))
        st = curves(o, s, index, cls, r, err);
    if (st == EVMAP_OK && (o->metrics & METRIC_AOPC))
        st = aopc(s, index, cls, r, err);
    evmap_localisation loc;
    if (st == EVMAP_OK && (o->metrics & METRIC_LOCALISATION) &&
        (st = localisation_of(o, s, s->map, &loc, err)) == EVMAP_OK) {
        r->pointing[index] = loc.pointing;
        r->mass[index] = loc.mass;
        r->rank[index] = loc.rank;
        r->iou[index] = loc.iou;
    }
    if (st == EVMAP_OK && (o->metrics & METRIC_SENSITIVITY) && o->sensitivity_for[m])
        st = sensitivity(o, s, info, index, cls, r, err);
    return st;
}

evmap_status eval_image_run(const eval_options *o, eval_state *s, size_t index, evmap_error *err) {
    evmap_status st = classify_image(o, s, index, err);
    for (int m = 0; st == EVMAP_OK && m < o->n_methods; m++)
        st = run_method(o, s, m, index, err);
    if (st == EVMAP_OK) {
        s->done = index + 1;
        s->images[index].evaluated = true;
    }
    return st;
}
