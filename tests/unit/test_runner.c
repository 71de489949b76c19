/*
 * Batching does the work of the images given, not of full batches: a
 * runner's partial batch runs at its own size (evmap_runner_images_run
 * counts the images pushed through the network), its probabilities match
 * the same images run one at a time, and IG and SmoothGrad with a number of
 * steps or samples that the batch does not divide push exactly that many
 * images forward and backward (evmap_explain_stats).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evmap.h"

static int passed, failed;

static void check(int ok, const char *what) {
    if (ok)
        passed++;
    else
        failed++;
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
}

/* n Fashion-MNIST-sized images with distinct content. */
static float *make_images(size_t n, size_t floats) {
    float *x = malloc(sizeof(float) * n * floats);
    for (size_t i = 0; x && i < n * floats; i++)
        x[i] = (float)((i * 2654435761u) % 1000u) / 1000.0f;
    return x;
}

static float max_abs_diff(const float *a, const float *b, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmaxf(m, fabsf(a[i] - b[i]));
    return m;
}

static void runner_checks(const evmap_model *model, const evmap_model_info *info) {
    size_t floats = (size_t)info->channels * (size_t)info->height * (size_t)info->width;
    size_t k = (size_t)info->num_classes, n = 17;
    float *x = make_images(n, floats);
    float *probs = malloc(sizeof(float) * n * k), *single = malloc(sizeof(float) * n * k);
    evmap_runner *batched = NULL, *one = NULL;
    evmap_error err = {0};
    int ok = x && probs && single &&
             evmap_runner_create(model, 16, 1, &batched, &err) == EVMAP_OK &&
             evmap_runner_create(model, 1, 1, &one, &err) == EVMAP_OK;
    /* 17 images at batch 16: one full batch, then a batch of 1, twice over
     * (the second tail reuses the tail plan), then a tail of another size. */
    for (int round = 0; ok && round < 2; round++) {
        ok = evmap_runner_classify(batched, x, 16, probs, &err) == EVMAP_OK &&
             evmap_runner_classify(batched, x + 16 * floats, 1, probs + 16 * k, &err) == EVMAP_OK;
    }
    ok = ok && evmap_runner_classify(batched, x, 5, probs, &err) == EVMAP_OK;
    for (size_t i = 0; ok && i < n; i++)
        ok = evmap_runner_classify(one, x + i * floats, 1, single + i * k, &err) == EVMAP_OK;
    if (!ok)
        printf("runner: %s\n", err.message);
    check(ok, "runners classify 16 + 1, 16 + 1 and 5 images at batch 16");
    char what[160];
    unsigned long long run = ok ? (unsigned long long)evmap_runner_images_run(batched) : 0;
    snprintf(what, sizeof what,
             "a partial batch does the work of its own images: %llu images pushed for "
             "16 + 1 + 16 + 1 + 5 (a full batch for each tail would be 80)",
             run);
    check(ok && run == 39, what);
    /* Only the first 5 rows of probs are fresh; rows 5..16 are from the 16 + 1 round. */
    float d = ok ? max_abs_diff(probs, single, n * k) : INFINITY;
    snprintf(what, sizeof what,
             "batched, tail and one-at-a-time probabilities agree: max |diff| %.2e", d);
    check(d <= 1e-5f, what);
    check(ok && evmap_runner_images_run(one) == n, "a batch-1 runner counts one image a call");
    evmap_runner_free(batched);
    evmap_runner_free(one);
    free(x);
    free(probs);
    free(single);
}

static void gradient_checks(const evmap_model *model, const evmap_model_info *info) {
    size_t floats = (size_t)info->channels * (size_t)info->height * (size_t)info->width;
    float *x = make_images(1, floats);
    float *map = malloc(sizeof(float) * (size_t)info->height * (size_t)info->width);
    int cls = 3;
    struct {
        evmap_gradient_method method;
        int n;
    } cases[] = {{EVMAP_GRADIENT_IG, 20}, {EVMAP_GRADIENT_SMOOTHGRAD, 19}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        evmap_gradient_options o;
        evmap_gradient_options_init(&o);
        o.method = cases[c].method;
        o.classes = &cls;
        o.n_classes = 1;
        o.batch = 16;
        o.threads = 1;
        if (o.method == EVMAP_GRADIENT_IG)
            o.steps = cases[c].n;
        else
            o.samples = cases[c].n;
        evmap_explain_stats stats;
        evmap_error err = {0};
        int ok = x && map && evmap_gradient_map(model, x, &o, map, &stats, &err) == EVMAP_OK;
        if (!ok)
            printf("gradient: %s\n", err.message);
        char what[200];
        snprintf(what, sizeof what,
                 "%s with %d %s at batch 16: %zu images forward, %zu backward (want %d each)",
                 evmap_gradient_method_name(o.method), cases[c].n,
                 o.method == EVMAP_GRADIENT_IG ? "steps" : "samples", ok ? stats.forward_images : 0,
                 ok ? stats.backward_images : 0, cases[c].n);
        check(ok && stats.forward_images == (size_t)cases[c].n &&
                  stats.backward_images == (size_t)cases[c].n,
              what);
    }
    free(x);
    free(map);
}

int main(void) {
    evmap_error err = {0};
    evmap_model *model = NULL;
    evmap_model_info info;
    if (evmap_model_load("models/fashion_cnn.onnx", &model, &err) != EVMAP_OK ||
        evmap_model_get_info(model, &info, &err) != EVMAP_OK) {
        printf("FAIL loading models/fashion_cnn.onnx: %s\n", err.message);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    /* a fixed-size model keeps its size (free sizes: tests/test_free_sizes.py) */
    check(!info.free_height && !info.free_width, "fashion_cnn's input size is fixed");
    check(evmap_model_set_input_size(model, info.height, info.width, &err) == EVMAP_OK,
          "setting a fixed model to its own size is allowed");
    check(evmap_model_set_input_size(model, info.height + 1, info.width, &err) ==
                  EVMAP_ERR_INVALID_ARGUMENT &&
              strstr(err.message, "fixed at 28 x 28") != NULL,
          "setting a fixed model to another size is refused, naming its size");
    check(evmap_model_set_input_size(model, 0, 5, &err) == EVMAP_ERR_INVALID_ARGUMENT,
          "a zero side is refused");
    runner_checks(model, &info);
    gradient_checks(model, &info);
    evmap_model_free(model);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
