/*
 * The gradient family's public entry points (DESIGN.md 1.4): options,
 * evmap_input_gradient and evmap_gradient_map, which plans the run and hands
 * it to the method's file.
 */
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "gradient_internal.h"

static const char *const method_names[] = {
    [EVMAP_GRADIENT_SALIENCY] = "saliency",
    [EVMAP_GRADIENT_GRADXINPUT] = "gradxinput",
    [EVMAP_GRADIENT_IG] = "ig",
    [EVMAP_GRADIENT_SMOOTHGRAD] = "smoothgrad",
    [EVMAP_GRADIENT_GRADCAM] = "gradcam",
    [EVMAP_GRADIENT_GUIDED] = "guided",
};

const char *evmap_gradient_method_name(evmap_gradient_method method) {
    if ((unsigned)method >= sizeof method_names / sizeof method_names[0])
        return "unknown";
    return method_names[method];
}

void evmap_gradient_options_init(evmap_gradient_options *o) {
    memset(o, 0, sizeof *o);
    o->steps = 50;
    o->noise = 0.15f;
    o->samples = 50;
    o->batch = 16;
    o->target_channel = -1;
}

evmap_status evmap_input_gradient(const evmap_model *model, const float *input, evmap_score score,
                                  const int *classes, int n_classes, float *grads, double *scores,
                                  evmap_error *err) {
    if (!model || !input || !classes || n_classes < 1 || !grads)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "evmap_input_gradient: bad argument");
    grad_run r;
    grad_target target = {.score = score, .classes = classes, .n_classes = n_classes};
    evmap_status st = grad_run_open(&r, model, 1, 0, &target, NULL, err);
    if (st == EVMAP_OK) {
        memcpy(grad_run_input(&r), input, sizeof(float) * r.image_floats);
        st = grad_run_forward(&r, err);
    }
    for (int t = 0; st == EVMAP_OK && t < n_classes; t++) {
        st = grad_run_backward(&r, t, 1, scores ? scores + t : NULL, err);
        if (st == EVMAP_OK)
            memcpy(grads + (size_t)t * r.image_floats, evm_f32(grad_run_result(&r)),
                   sizeof(float) * r.image_floats);
    }
    grad_run_close(&r);
    return st;
}

static evmap_status check_options(const evmap_gradient_options *o, evmap_error *err) {
    if ((unsigned)o->method > EVMAP_GRADIENT_GUIDED)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "unknown gradient method %d", o->method);
    if (o->score != EVMAP_SCORE_LOGODDS && o->score != EVMAP_SCORE_LOGIT)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "unknown score %d", o->score);
    if (o->steps < 1 || o->steps > 10000)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "--steps must be 1 to 10000, not %d",
                        o->steps);
    if (o->samples < 1 || o->samples > 100000)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "--samples must be 1 to 100000, not %d",
                        o->samples);
    if (!(o->noise >= 0.0f && o->noise <= 10.0f))
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "--noise must be 0 to 10, not %g",
                        (double)o->noise);
    if (o->batch < 1 || o->batch > 65536)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "--batch must be 1 to 65536, not %d",
                        o->batch);
    if ((unsigned)o->baseline > EVMAP_BASELINE_BLUR)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "unknown baseline %d", o->baseline);
    return EVMAP_OK;
}

/* Images per pass: IG and SmoothGrad batch their path or noisy images. */
static int pass_batch(const evmap_gradient_options *o) {
    int n = o->method == EVMAP_GRADIENT_IG           ? o->steps
            : o->method == EVMAP_GRADIENT_SMOOTHGRAD ? o->samples
                                                     : 1;
    return n < o->batch ? n : o->batch;
}

static evmap_status cam_layer(const evmap_model *model, const evmap_gradient_options *o,
                              const char **name, evmap_error *err) {
    *name = o->layer;
    if (o->method != EVMAP_GRADIENT_GRADCAM || o->layer)
        return EVMAP_OK;
    int v = grad_cam_default_layer(model);
    if (v < 0)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "Grad-CAM: the model has no convolution; name a 4-D layer with --layer");
    *name = model->graph->values[v].name;
    return EVMAP_OK;
}

static evmap_status run_method(grad_run *r, const evmap_gradient_options *o, const float *input,
                               float *maps, evmap_error *err) {
    switch (o->method) {
    case EVMAP_GRADIENT_IG: return grad_integrated_maps(r, o, input, maps, err);
    case EVMAP_GRADIENT_SMOOTHGRAD: return grad_smooth_maps(r, o, input, maps, err);
    case EVMAP_GRADIENT_GRADCAM: return grad_cam_maps(r, o, input, maps, err);
    default: return grad_single_maps(r, o, input, maps, err);
    }
}

evmap_status evmap_gradient_map(const evmap_model *model, const float *input,
                                const evmap_gradient_options *options, float *maps,
                                evmap_explain_stats *stats, evmap_error *err) {
    if (!model || !input || !options || !maps)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "evmap_gradient_map: NULL argument");
    double t0 = evm_seconds();
    const char *layer = NULL;
    evmap_status st = check_options(options, err);
    if (st == EVMAP_OK)
        st = cam_layer(model, options, &layer, err);
    if (st != EVMAP_OK)
        return st;
    grad_run r;
    grad_target target = {.score = options->score,
                          .classes = options->classes,
                          .n_classes = options->n_classes,
                          .target_layer = options->target_layer,
                          .target_channel = options->target_channel};
    st = grad_run_open(&r, model, pass_batch(options), options->threads, &target, layer, err);
    r.progress = options->progress;
    r.progress_user = options->progress_user;
    if (st == EVMAP_OK)
        st = run_method(&r, options, input, maps, err);
    if (st == EVMAP_OK && stats) {
        memset(stats, 0, sizeof *stats);
        stats->forward_images = r.forward_images;
        stats->backward_images = r.backward_images;
        stats->seconds = evm_seconds() - t0;
        if (layer)
            snprintf(stats->layer, sizeof stats->layer, "%s", layer);
    }
    grad_run_close(&r);
    return st;
}
