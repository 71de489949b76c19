/* evmap explain: writing the maps (NPY, PNG) and the JSON summary of one image. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explain.h"
#include "json.h"

/* Output file name for target t: "<stem>.<method>.c<c>" or
 * "<stem>.<method>.unit-<layer>-<ch>". */
static void target_name(const explain_options *o, const char *stem, const int *targets, int t,
                        char *buf, size_t size) {
    if (!o->target_layer[0]) {
        snprintf(buf, size, "%s.%s.c%d", stem, o->method, targets[t]);
        return;
    }
    char layer[256];
    size_t n = 0;
    for (const char *p = o->target_layer; *p && n + 1 < sizeof layer; p++)
        layer[n++] = (*p == '/' || *p == ' ' || *p == ':') ? '_' : *p;
    layer[n] = '\0';
    snprintf(buf, size, "%s.%s.unit-%s-%d", stem, o->method, layer, o->target_channel);
}

/* The model input mapped back to [0,1] pixels for the picture's background. */
static evmap_status background_image(const explain_options *o, const explain_state *s,
                                     evmap_image *img, evmap_error *err) {
    const evmap_preprocess *p = &o->input.preprocess;
    size_t pixels = (size_t)s->info.height * (size_t)s->info.width;
    img->width = s->info.width;
    img->height = s->info.height;
    img->channels = s->info.channels;
    img->pixels = malloc(sizeof(float) * pixels * (size_t)img->channels);
    if (!img->pixels) {
        err->status = EVMAP_ERR_OUT_OF_MEMORY;
        snprintf(err->message, sizeof err->message, "out of memory");
        return err->status;
    }
    for (int c = 0; c < img->channels; c++)
        for (size_t i = 0; i < pixels; i++) {
            float v = s->input[(size_t)c * pixels + i] * p->std[c] + p->mean[c];
            img->pixels[(size_t)c * pixels + i] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
    return EVMAP_OK;
}

evmap_status explain_write_maps(const explain_options *o, const explain_state *s,
                                const explain_result *r, float *vmax_used, evmap_error *err) {
    evmap_image background = {0};
    evmap_status st = background_image(o, s, &background, err);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.input.png", o->out_dir, r->stem);
    if (st == EVMAP_OK) /* what the model saw, for the report and for checking preprocessing */
        st = evmap_write_image_png(path, &background, err);
    evmap_render_options ro;
    evmap_render_options_init(&ro);
    ro.vmax = o->vmax;
    ro.side_by_side = o->side_by_side;
    ro.colorbar = 1;
    size_t pixels = (size_t)s->info.height * (size_t)s->info.width;
    for (int t = 0; st == EVMAP_OK && t < r->n_targets; t++) {
        char name[512];
        target_name(o, r->stem, r->targets, t, name, sizeof name);
        const float *map = s->maps + pixels * (size_t)t;
        snprintf(path, sizeof path, "%s/%s.npy", o->out_dir, name);
        st = evmap_write_npy(path, map, s->info.height, s->info.width, err);
        snprintf(path, sizeof path, "%s/%s.png", o->out_dir, name);
        if (st == EVMAP_OK)
            st = evmap_render_png(path, &background, map, s->info.height, s->info.width, &ro,
                                  &vmax_used[t], err);
    }
    free(background.pixels);
    return st;
}

static const char *const baseline_names[] = {"zero", "mean", "blur"};

static void write_gradient_parameters(json_writer *j, const explain_options *o,
                                      const explain_result *r) {
    json_key_string(j, "score", o->mo.score == EVMAP_SCORE_LOGIT ? "logit" : "logodds");
    if (o->gradient_method == EVMAP_GRADIENT_IG) {
        json_key_int(j, "steps", o->mo.ig_steps);
        json_key_string(j, "baseline", baseline_names[o->mo.ig_baseline]);
    }
    if (o->gradient_method == EVMAP_GRADIENT_SMOOTHGRAD) {
        json_key_number(j, "noise", o->mo.smoothgrad_noise);
        json_key_int(j, "samples", o->mo.smoothgrad_samples);
        json_key_int(j, "seed", (long long)o->mo.seed);
    }
    if (o->gradient_method == EVMAP_GRADIENT_GRADCAM)
        json_key_string(j, "layer", r->stats->layer);
}

static void write_pda_parameters(json_writer *j, const explain_options *o, const explain_state *s,
                                 const explain_result *r) {
    json_key_int(j, "window", s->window);
    if (!strcmp(r->sampler_kind, "conditional"))
        json_key_int(j, "pad", evmap_sampler_pad(s->sampler));
    json_key_int(j, "samples", r->samples_used);
    json_key_int(j, "stride", o->mo.stride);
    json_key_string(j, "sampler", r->sampler_kind);
    json_key_string(j, "sampler_source", s->sampler_source[0] ? s->sampler_source : "fill mean");
    if (!strcmp(r->sampler_kind, "conditional") && !o->mo.sampler_file) {
        json_key_int(j, "patches", (long long)o->mo.patches);
        json_key_bool(j, "joint_channels", o->mo.joint_channels);
    }
    if (!strcmp(r->sampler_kind, "constant"))
        json_key_string(j, "fill", o->mo.fill);
    json_key(j, "laplace_n");
    if (o->mo.no_laplace)
        json_null(j);
    else
        json_number(j, o->mo.laplace_n);
    json_key(j, "roi");
    if (o->mo.roi[2] > 0) {
        json_begin_array(j);
        for (int i = 0; i < 4; i++)
            json_int(j, o->mo.roi[i]);
        json_end_array(j);
    } else {
        json_null(j);
    }
    json_key_int(j, "seed", (long long)o->mo.seed);
    if (!strcmp(o->method, "efficient")) {
        json_key_string(j, "split", r->stats->layer);
        json_key_string(j, "expand", o->mo.around_image ? "image" : "window");
        json_key_number(j, "refine", o->mo.refine);
        if (o->mo.refine >= 1) {
            json_key_int(j, "grid",
                         o->mo.grid ? o->mo.grid
                                    : evmap_efficient_default_grid(s->info.height, s->info.width,
                                                                   s->window));
            json_key_number(j, "grid_threshold",
                            o->mo.grid_threshold >= 0
                                ? o->mo.grid_threshold
                                : evmap_efficient_default_grid_threshold(s->info.height,
                                                                         s->info.width, s->window));
            json_key_int(j, "grid_levels", r->stats->grid_levels);
            json_key_int(j, "grid_positions", (long long)r->stats->grid_positions);
            json_key_int(j, "coarse_windows", (long long)r->stats->coarse_windows);
        }
        if (o->mo.refine < 1) {
            json_key_int(j, "coarse_window",
                         o->mo.coarse_window ? o->mo.coarse_window : 2 * s->window);
            json_key_int(j, "coarse_windows", (long long)r->stats->coarse_windows);
        }
    }
}

static void write_parameters(json_writer *j, const explain_options *o, const explain_state *s,
                             const explain_result *r) {
    json_key(j, "parameters");
    json_begin_object(j);
    if (o->gradient)
        write_gradient_parameters(j, o, r);
    else
        write_pda_parameters(j, o, s, r);
    json_end_object(j);
}

/* What the map's numbers measure. */
static const char *map_units(const explain_options *o) {
    if (!o->gradient)
        return o->target_layer[0] ? "activation difference" : "log2 odds";
    const char *f = o->target_layer[0]                 ? "mean activation"
                    : o->mo.score == EVMAP_SCORE_LOGIT ? "logit"
                                                       : "natural log-odds";
    static char units[96];
    switch (o->gradient_method) {
    case EVMAP_GRADIENT_SALIENCY:
    case EVMAP_GRADIENT_SMOOTHGRAD: snprintf(units, sizeof units, "|d %s / d input|", f); break;
    case EVMAP_GRADIENT_GUIDED: snprintf(units, sizeof units, "guided d %s / d input", f); break;
    case EVMAP_GRADIENT_GRADCAM:
        snprintf(units, sizeof units, "%s per feature-map unit (Grad-CAM)", f);
        break;
    default: snprintf(units, sizeof units, "%s", f);
    }
    return units;
}

static void write_targets(json_writer *j, const explain_options *o, const explain_state *s,
                          const explain_result *r) {
    json_key(j, o->target_layer[0] ? "units" : "classes");
    json_begin_array(j);
    for (int t = 0; t < r->n_targets; t++) {
        char name[512], file[600];
        target_name(o, r->stem, r->targets, t, name, sizeof name);
        json_begin_object(j);
        if (o->target_layer[0]) {
            json_key_string(j, "layer", o->target_layer);
            json_key_int(j, "channel", o->target_channel);
        } else {
            int c = r->targets[t];
            json_key_int(j, "class", c);
            json_key_string(j, "label", cli_label(&s->labels, c));
            json_key_number(j, "prob", s->probs[c]);
        }
        snprintf(file, sizeof file, "%s.npy", name);
        json_key_string(j, "npy", file);
        snprintf(file, sizeof file, "%s.png", name);
        json_key_string(j, "png", file);
        json_key_number(j, "vmax", r->vmax_used[t]);
        json_end_object(j);
    }
    json_end_array(j);
}

/* The "resume" member: the files this image's targets wrote. */
static evmap_status resume_block(json_writer *j, const explain_options *o, const explain_state *s,
                                 const explain_result *r, evmap_error *err) {
    char(*names)[600] = malloc(sizeof *names * (2 * (size_t)r->n_targets + 1));
    const char **files = malloc(sizeof *files * (2 * (size_t)r->n_targets + 1));
    evmap_status st = EVMAP_OK;
    if (!names || !files)
        st = cli_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
    for (int t = 0; st == EVMAP_OK && t < r->n_targets; t++)
        for (int e = 0; e < 2; e++) {
            char *name = names[2 * t + e];
            target_name(o, r->stem, r->targets, t, name, sizeof names[0] - 8);
            strcat(name, e ? ".png" : ".npy");
            files[2 * t + e] = name;
        }
    if (st == EVMAP_OK) {
        snprintf(names[2 * r->n_targets], sizeof names[0], "%s.input.png", r->stem);
        files[2 * r->n_targets] = names[2 * r->n_targets];
        st = explain_resume_write(j, o, s, files, 2 * r->n_targets + 1, err);
    }
    free(names);
    free(files);
    return st;
}

evmap_status explain_write_json(const explain_options *o, const explain_state *s,
                                const explain_result *r, evmap_error *err) {
    json_writer j;
    json_start(&j);
    json_begin_object(&j);
    json_key_string(&j, "image", r->image_path);
    json_key_string(&j, "stem", r->stem);
    json_key_string(&j, "model", o->model_path);
    json_key_string(&j, "method", o->method);
    char tag[256];
    cli_preprocess_tag(&o->input.preprocess, &s->info, tag, sizeof tag);
    json_key_string(&j, "input", tag);
    json_key(&j, "input_size"); /* width, height: what the model ran at */
    json_begin_array(&j);
    json_number(&j, s->info.width);
    json_number(&j, s->info.height);
    json_end_array(&j);
    char input_png[600];
    snprintf(input_png, sizeof input_png, "%s.input.png", r->stem);
    json_key_string(&j, "input_png", input_png);
    json_key_string(&j, "layout", evmap_layout_name(s->info.layout));
    json_key_string(&j, "units", map_units(o));
    write_parameters(&j, o, s, r);
    write_targets(&j, o, s, r);
    json_key(&j, "probs");
    json_begin_array(&j);
    for (int c = 0; c < s->info.num_classes; c++)
        json_number(&j, s->probs[c]);
    json_end_array(&j);
    json_key_string(&j, "output",
                    s->info.ends_in_softmax ? "probabilities"
                                            : "logits (softmax applied by evmap)");
    const evmap_explain_stats *st = r->stats;
    json_key_int(&j, "forward_passes", (long long)st->forward_images);
    json_key_number(&j, "seconds", st->seconds);
    if (o->gradient) {
        json_key_int(&j, "backward_passes", (long long)st->backward_images);
    } else {
        json_key_int(&j, "windows", (long long)st->windows);
        json_key(&j, "locality");
        json_begin_object(&j);
        json_key_bool(&j, "enabled", st->locality != 0);
        json_key_int(&j, "local_steps", st->local_steps);
        json_key_int(&j, "steps", st->total_steps);
        json_key_number(&j, "macs", st->macs);
        json_key_number(&j, "macs_naive", st->macs_naive);
        json_key_number(&j, "arithmetic_fraction",
                        st->macs_naive > 0 ? st->macs / st->macs_naive : 1.0);
        json_key_int(&j, "cache_bytes", (long long)st->cache_bytes);
        json_key_int(&j, "engines", st->local_engines);
        json_end_object(&j);
    }
    evmap_status status = resume_block(&j, o, s, r, err);
    json_end_object(&j);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.%s.json", o->out_dir, r->stem, o->method);
    if (status != EVMAP_OK) {
        free(json_take(&j, &(size_t){0}));
        return status;
    }
    return json_finish(&j, path, err);
}
