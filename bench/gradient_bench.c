/*
 * Times evmap's saliency map against its own forward pass: loads a model,
 * then prints the median seconds of one batch-1 forward pass and of one
 * whole evmap_gradient_map call (saliency of the top class's log-odds:
 * planning, forward, backward, reduction) on a fixed random input.
 * usage: gradient_bench MODEL.onnx THREADS REPEATS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "evmap.h"
#include "engine/model_internal.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof(double), compare_doubles);
    return t[n / 2];
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: gradient_bench MODEL.onnx THREADS REPEATS\n");
        return 2;
    }
    cli_tune_blas(argv); /* the same OpenBLAS kernels the evmap command uses */
    int threads = atoi(argv[2]), repeats = atoi(argv[3]);
    if (repeats < 1 || repeats > 1000)
        repeats = 5;
    evmap_error err = {0};
    evmap_model *model = NULL;
    evmap_runner *runner = NULL;
    if (evmap_model_load(argv[1], &model, &err) != EVMAP_OK ||
        evmap_runner_create(model, 1, threads, &runner, &err) != EVMAP_OK) {
        fprintf(stderr, "gradient_bench: %s\n", err.message);
        evmap_model_free(model);
        return 1;
    }
    evm_tensor *in = evm_plan_input(runner->plan, 0);
    srand(1);
    for (size_t i = 0; i < in->count; i++)
        evm_f32(in)[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    float *input = malloc(sizeof(float) * in->count);
    float *probs = malloc(sizeof(float) * (size_t)model->info.num_classes);
    float *map = malloc(sizeof(float) * (size_t)model->info.height * (size_t)model->info.width);
    double *forward = malloc(sizeof(double) * (size_t)repeats);
    double *saliency = malloc(sizeof(double) * (size_t)repeats);
    memcpy(input, in->data, sizeof(float) * in->count);
    evm_runner_set_threads(runner);
    evmap_runner_classify(runner, input, 1, probs, &err); /* warm-up */
    int top = 0;
    for (int c = 1; c < model->info.num_classes; c++)
        top = probs[c] > probs[top] ? c : top;
    for (int r = 0; r < repeats; r++) {
        double t0 = now();
        evm_plan_run(runner->plan);
        forward[r] = now() - t0;
    }
    evmap_gradient_options o;
    evmap_gradient_options_init(&o);
    o.classes = &top;
    o.n_classes = 1;
    o.threads = threads;
    int rc = 0;
    for (int r = 0; r <= repeats && rc == 0; r++) {
        double t0 = now();
        if (evmap_gradient_map(model, input, &o, map, NULL, &err) != EVMAP_OK) {
            fprintf(stderr, "gradient_bench: %s\n", err.message);
            rc = 1;
        }
        if (r > 0) /* the first call warms up */
            saliency[r - 1] = now() - t0;
    }
    if (rc == 0)
        printf("%.6f %.6f\n", median(forward, repeats), median(saliency, repeats));
    free(input);
    free(probs);
    free(map);
    free(forward);
    free(saliency);
    evmap_runner_free(runner);
    evmap_model_free(model);
    return rc;
}
