/* evmap explain: opening the model, preparing the sampler, explaining one image. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explain.h"

/* The classifier and the buffers for the model's current size. */
static evmap_status size_buffers(const explain_options *o, explain_state *s, evmap_error *err) {
    evmap_runner_free(s->classifier);
    s->classifier = NULL;
    free(s->input);
    free(s->maps);
    size_t pixels = (size_t)s->info.height * (size_t)s->info.width;
    s->input = malloc(sizeof(float) * pixels * (size_t)s->info.channels);
    s->maps = malloc(sizeof(float) * pixels * (size_t)s->max_targets);
    if (!s->input || !s->maps)
        return cli_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory for a %d x %d image",
                        s->info.width, s->info.height);
    return evmap_runner_create(s->model, 1, o->mo.threads, &s->classifier, err);
}

evmap_status explain_open(const explain_options *o, explain_state *s, evmap_error *err) {
    evmap_status st = cli_load_model(o->model_path, &o->input, &s->model, err);
    if (st == EVMAP_OK)
        st = evmap_model_get_info(s->model, &s->info, err);
    if (st == EVMAP_OK && o->labels_path) {
        st = cli_labels_load(o->labels_path, &s->labels, err);
        if (st == EVMAP_OK && s->labels.count != s->info.num_classes) {
            char msg[512];
            snprintf(msg, sizeof msg, "labels file '%s' has %d lines but the model has %d classes",
                     o->labels_path, s->labels.count, s->info.num_classes);
            return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "%s", msg);
        }
    }
    if (st == EVMAP_OK)
        st = evmap_image_set_create(&s->set, err);
    evmap_image_set_limit_memory(s->set, o->input.max_memory);
    for (int i = 0; st == EVMAP_OK && i < o->n_images; i++)
        st = evmap_image_set_add(s->set, o->images[i], err);
    /* A model with a free side starts at the first image's size (the
     * default window and the references follow it); a size it refuses is
     * reported with that image. */
    if (st == EVMAP_OK && evmap_image_set_count(s->set) > 0) {
        evmap_error ignored = {0};
        if (cli_size_to_image(s->model, &s->info, s->set, 0, &o->input.preprocess, &ignored) !=
            EVMAP_OK)
            st = evmap_model_get_info(s->model, &s->info, err);
    }
    if (st != EVMAP_OK)
        return st;
    int max_targets = o->top > o->n_classes ? o->top : o->n_classes;
    if (max_targets < 1)
        max_targets = 1;
    if (max_targets > s->info.num_classes)
        max_targets = s->info.num_classes;
    s->max_targets = max_targets;
    s->probs = malloc(sizeof(float) * (size_t)s->info.num_classes);
    if (!s->probs)
        return cli_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
    return size_buffers(o, s, err);
}

void explain_state_free(explain_state *s) {
    evmap_runner_free(s->classifier);
    evmap_model_free(s->model);
    evmap_image_set_free(s->set);
    evmap_sampler_free(s->sampler);
    evmap_sampler_free(s->coarse_sampler);
    cli_labels_free(&s->labels);
    free(s->input);
    free(s->probs);
    free(s->maps);
}

static evmap_status load_sampler_file(const explain_options *o, explain_state *s,
                                      evmap_error *err) {
    char tag[256], want[256], msg[512];
    evmap_status st = evmap_sampler_load(o->mo.sampler_file, &s->sampler, tag, sizeof tag, err);
    if (st != EVMAP_OK)
        return st;
    cli_preprocess_tag(&o->input.preprocess, &s->info, want, sizeof want);
    if (strcmp(tag, want)) {
        snprintf(msg, sizeof msg, "sampler file '%s' was fitted for '%s', but this run uses '%s'",
                 o->mo.sampler_file, tag, want);
        return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "%s", msg);
    }
    int k = evmap_sampler_window(s->sampler), p = evmap_sampler_pad(s->sampler);
    if ((o->mo.window && o->mo.window != k) || (o->mo.pad_given && o->mo.pad != p)) {
        snprintf(msg, sizeof msg,
                 "sampler file '%s' was fitted for window %d and pad %d, not window %d and pad %d",
                 o->mo.sampler_file, k, p, o->mo.window ? o->mo.window : k, o->mo.pad);
        return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "%s", msg);
    }
    s->window = k;
    snprintf(s->sampler_source, sizeof s->sampler_source, "%s", o->mo.sampler_file);
    return EVMAP_OK;
}

/* Fits the conditional sampler for window k into *out and saves it. */
static evmap_status fit_conditional(const explain_options *o, explain_state *s, int k,
                                    evmap_sampler **out, char *source, size_t source_size,
                                    evmap_error *err) {
    if (o->mo.n_references == 0)
        return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "the conditional sampler must be fitted on reference images: give "
                        "--reference SRC (e.g. training images), or --sampler-file F from 'evmap "
                        "fit-sampler', or choose --sampler marginal|constant");
    float *stack;
    size_t n;
    evmap_status st =
        cli_load_stack(o->mo.references, o->mo.n_references, EXPLAIN_MAX_REFERENCE_IMAGES,
                       &o->input, &s->info, &stack, &n, err);
    if (st != EVMAP_OK)
        return st;
    evmap_sampler_fit_options fit;
    evmap_sampler_fit_options_init(&fit);
    fit.window = k;
    fit.pad = o->mo.pad;
    fit.joint_channels = o->mo.joint_channels;
    fit.patches = o->mo.patches;
    fit.seed = o->mo.seed;
    st = evmap_sampler_fit(stack, n, s->info.channels, s->info.height, s->info.width, &fit, out,
                           err);
    free(stack);
    if (st != EVMAP_OK)
        return st;
    char tag[256];
    cli_preprocess_tag(&o->input.preprocess, &s->info, tag, sizeof tag);
    snprintf(source, source_size, "%s/sampler-k%d-p%d%s.evs", o->out_dir, k, o->mo.pad,
             o->mo.joint_channels ? "-joint" : "");
    st = evmap_sampler_save(*out, tag, source, err);
    if (st == EVMAP_OK && !o->quiet)
        fprintf(stderr,
                "evmap: fitted the conditional sampler (window %d) on %zu patches of %zu images; "
                "saved to %s (reuse it with --sampler-file)\n",
                k, o->mo.patches, n, source);
    return st;
}

static evmap_status make_marginal(const explain_options *o, explain_state *s, int k,
                                  evmap_sampler **out, evmap_error *err) {
    if (o->mo.n_references == 0)
        return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "the marginal sampler takes its samples from reference images: give "
                        "--reference SRC");
    float *stack;
    size_t n;
    evmap_status st =
        cli_load_stack(o->mo.references, o->mo.n_references, (size_t)o->mo.pda_samples, &o->input,
                       &s->info, &stack, &n, err);
    if (st != EVMAP_OK)
        return st;
    if (n < (size_t)o->mo.pda_samples) {
        char msg[512];
        snprintf(msg, sizeof msg,
                 "the marginal sampler needs %d reference images (--samples) but the references "
                 "hold only %zu",
                 o->mo.pda_samples, n);
        free(stack);
        return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "%s", msg);
    }
    st = evmap_sampler_marginal(stack, n, s->info.channels, s->info.height, s->info.width, k, out,
                                err);
    free(stack);
    snprintf(s->sampler_source, sizeof s->sampler_source, "first %zu reference images", n);
    return st;
}

/* Checks what can be checked before a sampler is fitted or anything written. */
static evmap_status validate(const explain_options *o, const explain_state *s, evmap_error *err) {
    char msg[512];
    for (int i = 0; i < o->n_classes; i++)
        if (o->classes[i] >= s->info.num_classes) {
            snprintf(msg, sizeof msg, "--class %d is out of range: the model has classes 0 to %d",
                     o->classes[i], s->info.num_classes - 1);
            return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "%s", msg);
        }
    const int *roi = o->mo.roi;
    if (roi[2] > 0 && (roi[0] + roi[2] > s->info.width || roi[1] + roi[3] > s->info.height)) {
        snprintf(msg, sizeof msg, "--roi %d,%d,%d,%d is not inside the %dx%d model input", roi[0],
                 roi[1], roi[2], roi[3], s->info.width, s->info.height);
        return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "%s", msg);
    }
    if (roi[2] > 0 && (roi[2] < s->window || roi[3] < s->window)) {
        snprintf(msg, sizeof msg, "--roi %dx%d is smaller than the %dx%d window", roi[2], roi[3],
                 s->window, s->window);
        return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "%s", msg);
    }
    if (s->window > s->info.height || s->window > s->info.width) {
        snprintf(msg, sizeof msg, "window %d is larger than the %dx%d model input", s->window,
                 s->info.width, s->info.height);
        return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "%s", msg);
    }
    return EVMAP_OK;
}

/* A sampler of o's kind for window k (NULL for fill=mean: made per image). */
static evmap_status make_sampler(const explain_options *o, explain_state *s, int k,
                                 evmap_sampler **out, char *source, size_t source_size,
                                 evmap_error *err) {
    if (!strcmp(o->mo.sampler_kind, "marginal"))
        return make_marginal(o, s, k, out, err);
    if (!strcmp(o->mo.sampler_kind, "constant")) {
        if (!strcmp(o->mo.fill, "mean"))
            return EVMAP_OK; /* per image */
        float fill[3];
        for (int c = 0; c < 3; c++)
            fill[c] = strcmp(o->mo.fill, "zero") ? o->mo.occlusion_value : 0.0f;
        snprintf(source, source_size, "fill %s", o->mo.fill);
        return evmap_sampler_constant(fill, s->info.channels, k, out, err);
    }
    return fit_conditional(o, s, k, out, source, source_size, err);
}

/* The efficient method's coarse sampler: window K2 (default 2k). */
static evmap_status prepare_coarse_sampler(const explain_options *o, explain_state *s,
                                           evmap_error *err) {
    char source[1024], msg[512];
    int k2 = o->mo.coarse_window ? o->mo.coarse_window : 2 * s->window;
    if (k2 <= s->window || k2 > s->info.height || k2 > s->info.width) {
        snprintf(msg, sizeof msg,
                 "--coarse-window %d must be larger than the window (%d) and fit the %dx%d input",
                 k2, s->window, s->info.width, s->info.height);
        return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "%s", msg);
    }
    if (o->mo.coarse_sampler_file) {
        char tag[256];
        evmap_status st =
            evmap_sampler_load(o->mo.coarse_sampler_file, &s->coarse_sampler, tag, sizeof tag, err);
        if (st == EVMAP_OK && evmap_sampler_window(s->coarse_sampler) != k2) {
            snprintf(msg, sizeof msg, "--coarse-sampler-file '%s' has window %d, not %d",
                     o->mo.coarse_sampler_file, evmap_sampler_window(s->coarse_sampler), k2);
            return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "%s", msg);
        }
        return st;
    }
    if (o->mo.sampler_file && !strcmp(evmap_sampler_kind_name(s->sampler), "conditional") &&
        o->mo.n_references == 0)
        return cli_fail(
            err, EVMAP_ERR_INVALID_ARGUMENT,
            "--refine below 1 needs a sampler for the coarse window too: give "
            "--coarse-sampler-file F (evmap fit-sampler --window K2) or --reference SRC");
    return make_sampler(o, s, k2, &s->coarse_sampler, source, sizeof source, err);
}

evmap_status explain_prepare_sampler(const explain_options *o, explain_state *s, evmap_error *err) {
    s->window =
        o->mo.window ? o->mo.window : evmap_pda_default_window(s->info.height, s->info.width);
    if (o->gradient)
        s->window = 1; /* no windows or sampler; only the classes are checked */
    evmap_status st = validate(o, s, err);
    if (st != EVMAP_OK || o->gradient)
        return st;
    if (o->mo.sampler_file)
        st = load_sampler_file(o, s, err);
    else
        st = make_sampler(o, s, s->window, &s->sampler, s->sampler_source, sizeof s->sampler_source,
                          err);
    if (st == EVMAP_OK && !strcmp(o->method, "efficient") && o->mo.refine < 1)
        st = prepare_coarse_sampler(o, s, err);
    return st;
}

/* Class indices sorted by descending probability (first k). */
static void top_k(const float *p, int n, int k, int *out) {
    for (int i = 0; i < k; i++) {
        int best = -1;
        for (int c = 0; c < n; c++) {
            bool taken = false;
            for (int j = 0; j < i; j++)
                taken |= out[j] == c;
            if (!taken && (best < 0 || p[c] > p[best]))
                best = c;
        }
        out[i] = best;
    }
}

static int choose_targets(const explain_options *o, const explain_state *s, int *targets) {
    if (o->target_layer[0])
        return 1;
    if (o->n_classes) {
        memcpy(targets, o->classes, sizeof(int) * (size_t)o->n_classes);
        return o->n_classes;
    }
    int k = o->top ? o->top : 1;
    if (k > s->info.num_classes)
        k = s->info.num_classes;
    top_k(s->probs, s->info.num_classes, k, targets);
    return k;
}

/* Per-image constant sampler filled with the image's channel means. */
static evmap_status mean_fill_sampler(explain_state *s, int k, evmap_sampler **out,
                                      evmap_error *err) {
    size_t pixels = (size_t)s->info.height * (size_t)s->info.width;
    float fill[3] = {0, 0, 0};
    for (int c = 0; c < s->info.channels; c++) {
        double sum = 0;
        for (size_t i = 0; i < pixels; i++)
            sum += s->input[(size_t)c * pixels + i];
        fill[c] = (float)(sum / (double)pixels);
    }
    return evmap_sampler_constant(fill, s->info.channels, k, out, err);
}

/* The maps of o's method for s->input through the method table. */
static evmap_status explain_maps(const explain_options *o, explain_state *s,
                                 const evmap_sampler *per_image,
                                 const evmap_sampler *coarse_per_image, const int *targets,
                                 int n_targets, cli_progress *progress, evmap_explain_stats *stats,
                                 evmap_error *err) {
    method_options mo = o->mo;
    mo.sampler = s->sampler ? s->sampler : per_image;
    mo.coarse_sampler = s->coarse_sampler ? s->coarse_sampler : coarse_per_image;
    mo.progress = cli_progress_update;
    mo.progress_user = progress;
    return method_map(o->info, &mo, s->model, s->input, targets, n_targets, s->maps, stats, err);
}

/* A model with a free side runs each image at its own size: sets it and
 * remakes what depends on it. A size the model or the options cannot take
 * fails this image only (s->size_refused). */
static evmap_status resize_for(const explain_options *o, explain_state *s, const char *stem,
                               int width, int height, evmap_error *err) {
    if (width == s->info.width && height == s->info.height)
        return EVMAP_OK;
    evmap_status st = evmap_model_set_input_size(s->model, height, width, err);
    if (st == EVMAP_OK)
        st = evmap_model_get_info(s->model, &s->info, err);
    if (st == EVMAP_OK)
        st = validate(o, s, err);
    if (st == EVMAP_OK)
        return size_buffers(o, s, err);
    char msg[sizeof err->message];
    snprintf(msg, sizeof msg, "%s", err->message);
    s->size_refused = true;
    return cli_fail(err, st, "%s: %s", stem, msg);
}

/* Loads image index into s->input at the size the model runs it at. */
static evmap_status load_image(const explain_options *o, explain_state *s, size_t index,
                               evmap_error *err) {
    evmap_image *img = NULL;
    evmap_preprocess pre;
    int w, h;
    evmap_status st =
        cli_load_image(s->set, index, &s->info, &o->input.preprocess, &img, &pre, &w, &h, err);
    if (st == EVMAP_OK)
        st = resize_for(o, s, evmap_image_set_name(s->set, index), w, h, err);
    if (st == EVMAP_OK)
        st = evmap_preprocess_image(img, &pre, s->info.channels, s->info.height, s->info.width,
                                    s->input, err);
    evmap_image_free(img);
    return st;
}

evmap_status explain_image(const explain_options *o, explain_state *s, size_t index,
                           evmap_error *err) {
    static int targets[EXPLAIN_MAX_CLASSES];
    evmap_sampler *per_image = NULL, *coarse_per_image = NULL;
    s->size_refused = false;
    s->resumed = false;
    evmap_status st = load_image(o, s, index, err);
    if (st == EVMAP_OK) {
        explain_resume_input(s);
        if (o->resume && explain_resume_complete(o, s, evmap_image_set_name(s->set, index))) {
            s->resumed = true;
            return EVMAP_OK;
        }
    }
    if (st == EVMAP_OK)
        st = evmap_runner_classify(s->classifier, s->input, 1, s->probs, err);
    bool coarse = !strcmp(o->method, "efficient") && o->mo.refine < 1;
    int k2 = o->mo.coarse_window ? o->mo.coarse_window : 2 * s->window;
    if (st == EVMAP_OK && !s->sampler && !o->gradient)
        st = mean_fill_sampler(s, s->window, &per_image, err);
    if (st == EVMAP_OK && coarse && !s->coarse_sampler)
        st = mean_fill_sampler(s, k2, &coarse_per_image, err);
    if (st != EVMAP_OK) {
        evmap_sampler_free(per_image);
        return st;
    }
    int n_targets = choose_targets(o, s, targets);
    cli_progress progress;
    const char *stem = evmap_image_set_name(s->set, index);
    evmap_explain_stats stats = {0};
    cli_progress_start(&progress, stem, o->info->unit, o->quiet);
    st =
        explain_maps(o, s, per_image, coarse_per_image, targets, n_targets, &progress, &stats, err);
    /* PDA, efficient and occlusion: the sampler the JSON describes */
    const char *sampler_kind =
        o->gradient ? NULL : evmap_sampler_kind_name(s->sampler ? s->sampler : per_image);
    if (st != EVMAP_OK)
        cli_progress_abandon(&progress);
    float vmax_used[EXPLAIN_MAX_CLASSES];
    explain_result result = {
        .stem = stem,
        .image_path = evmap_image_set_path(s->set, index),
        .targets = targets,
        .n_targets = n_targets,
        .vmax_used = vmax_used,
        .stats = &stats,
        .sampler_kind = sampler_kind,
        .samples_used = sampler_kind && !strcmp(sampler_kind, "constant") ? 1 : o->mo.pda_samples,
    };
    if (st == EVMAP_OK)
        st = explain_write_maps(o, s, &result, vmax_used, err);
    if (st == EVMAP_OK)
        st = explain_write_json(o, s, &result, err);
    evmap_sampler_free(per_image);
    evmap_sampler_free(coarse_per_image);
    return st;
}
