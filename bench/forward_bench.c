/*
 * Times evmap's forward pass: loads a model, plans a batch, runs it a number
 * of times on a fixed random input and prints the median seconds per pass.
 * usage: forward_bench MODEL.onnx BATCH THREADS REPEATS
 */
#include <stdio.h>
#include <stdlib.h>
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

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: forward_bench MODEL.onnx BATCH THREADS REPEATS\n");
        return 2;
    }
    cli_tune_blas(argv); /* the same OpenBLAS kernels the evmap command uses */
    int batch = atoi(argv[2]), threads = atoi(argv[3]), repeats = atoi(argv[4]);
    if (repeats < 1 || repeats > 1000)
        repeats = 5;
    evmap_error err = {0};
    evmap_model *model = NULL;
    evmap_runner *runner = NULL;
    if (evmap_model_load(argv[1], &model, &err) != EVMAP_OK ||
        evmap_runner_create(model, batch, threads, &runner, &err) != EVMAP_OK) {
        fprintf(stderr, "forward_bench: %s\n", err.message);
        evmap_model_free(model);
        return 1;
    }
    evm_tensor *in = evm_plan_input(runner->plan, 0);
    srand(1);
    for (size_t i = 0; i < in->count; i++)
        evm_f32(in)[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    evm_runner_set_threads(runner);
    evm_plan_run(runner->plan); /* warm-up: page faults, thread start */
    double *times = malloc(sizeof(double) * (size_t)repeats);
    for (int r = 0; r < repeats; r++) {
        double t0 = now();
        evm_plan_run(runner->plan);
        times[r] = now() - t0;
    }
    qsort(times, (size_t)repeats, sizeof(double), compare_doubles);
    printf("%.6f\n", times[repeats / 2]);
    free(times);
    evmap_runner_free(runner);
    evmap_model_free(model);
    return 0;
}
