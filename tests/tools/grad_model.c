/*
 * Test tool: the gradient of a class score of one image with respect to the
 * input, through the public API (evmap_input_gradient), so that Python tests
 * can compare evmap with PyTorch autograd. Prints the score. --dump writes
 * the forward activations of named values (from a batch-1 plan like the
 * gradient's), so that a reference can follow evmap's MaxPool choices.
 * usage: grad_model [--size W H] MODEL.onnx INPUT.f32 logit|logodds CLASS OUTPUT.f32
 *                   [--dump VALUE FILE.f32]...
 *        grad_model --kinks
 * INPUT.f32 holds C × H × W floats of the model's input size (--size: a
 * model with free sides set to W × H first). --kinks prints
 * "OP RULE" for every operator whose derivative has kinks (from the operator
 * table) and fails when an operator with a backward has not declared them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evmap.h"
#include "engine/model_internal.h"
#include "ops/op.h"

static int write_floats(const char *path, const float *v, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(v, sizeof(float), n, f) == n;
    if (f)
        ok &= fclose(f) == 0;
    if (!ok)
        fprintf(stderr, "grad_model: cannot write %s\n", path);
    return ok;
}

/* Runs a batch-1 plan on x and writes the values named in argv pairs. */
static int dump_values(const evmap_model *model, const float *x, size_t n, int argc, char **argv) {
    evmap_error err = {0};
    evm_plan *plan = NULL;
    if (evm_model_plan(model, 1, &plan, &err) != EVMAP_OK) {
        fprintf(stderr, "grad_model: %s\n", err.message);
        return 0;
    }
    memcpy(evm_plan_input(plan, 0)->data, x, sizeof(float) * n);
    evm_plan_run(plan);
    int ok = 1;
    for (int i = 0; ok && i + 2 < argc; i += 3) {
        int v = evm_graph_find_value(model->graph, argv[i + 1]);
        if (strcmp(argv[i], "--dump") || v < 0 || !plan->values[v].data) {
            fprintf(stderr, "grad_model: cannot dump '%s'\n", argv[i + 1]);
            ok = 0;
            break;
        }
        ok = write_floats(argv[i + 2], evm_f32(&plan->values[v]), plan->values[v].count);
    }
    evm_plan_free(plan);
    return ok;
}

static int print_kinks(void) {
    int ok = 1;
    for (int k = 0; k < EVM_OP_KIND_COUNT; k++) {
        const evm_op_def *op = evm_op_get((evm_op_kind)k);
        if (op->backward && op->kinks == EVM_KINKS_UNDECLARED) {
            fprintf(stderr, "grad_model: %s has a backward but no kinks declared\n", op->name);
            ok = 0;
        } else if (op->backward && op->kinks != EVM_KINKS_NONE) {
            printf("%s %s\n", op->name, evm_kinks_name(op->kinks));
        }
    }
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--kinks"))
        return print_kinks();
    int size_w = 0, size_h = 0;
    if (argc > 3 && !strcmp(argv[1], "--size")) {
        size_w = atoi(argv[2]);
        size_h = atoi(argv[3]);
        argv += 3;
        argc -= 3;
    }
    if (argc < 6 || (argc - 6) % 3 || (strcmp(argv[3], "logit") && strcmp(argv[3], "logodds"))) {
        fprintf(stderr, "usage: grad_model MODEL.onnx INPUT.f32 logit|logodds CLASS OUTPUT.f32 "
                        "[--dump VALUE FILE.f32]...\n");
        return 2;
    }
    evmap_error err = {0};
    evmap_model *model = NULL;
    evmap_model_info info;
    float *x = NULL, *g = NULL;
    int rc = 1;
    if (evmap_model_load(argv[1], &model, &err) != EVMAP_OK ||
        (size_w > 0 && evmap_model_set_input_size(model, size_h, size_w, &err) != EVMAP_OK) ||
        evmap_model_get_info(model, &info, &err) != EVMAP_OK)
        goto fail;
    size_t n = (size_t)info.channels * (size_t)info.height * (size_t)info.width;
    x = malloc(sizeof(float) * n);
    g = malloc(sizeof(float) * n);
    FILE *f = fopen(argv[2], "rb");
    size_t got = f && x ? fread(x, sizeof(float), n, f) : 0;
    if (f)
        fclose(f);
    if (got != n || !g) {
        fprintf(stderr, "grad_model: cannot read %zu floats from %s\n", n, argv[2]);
        goto done;
    }
    int cls = atoi(argv[4]);
    double score;
    evmap_score kind = strcmp(argv[3], "logit") ? EVMAP_SCORE_LOGODDS : EVMAP_SCORE_LOGIT;
    if (evmap_input_gradient(model, x, kind, &cls, 1, g, &score, &err) != EVMAP_OK)
        goto fail;
    if (!write_floats(argv[5], g, n) || !dump_values(model, x, n, argc - 6, argv + 6))
        goto done;
    printf("%.17g\n", score);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "grad_model: %s\n", err.message);
done:
    free(x);
    free(g);
    evmap_model_free(model);
    return rc;
}
