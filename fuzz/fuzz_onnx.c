/*
 * libFuzzer harness for the ONNX loader: protobuf parsing, graph construction
 * and node validation (evm_onnx_load_memory), then shape inference and
 * constant folding by planning the raw graph at its declared input shapes,
 * then the public path: evmap_model_load_memory_limited, runners for batch 1 and 2,
 * and one forward pass when the activations are small.
 *
 * Work is capped so that the fuzzer explores parsers rather than waiting on
 * big convolutions: planning at declared shapes only when the inputs are
 * small, runners and the forward pass only when batch-1 activations are.
 */
#include "fuzz_common.h"

#include "engine/model_internal.h"
#include "engine/onnx_load.h"
#include "engine/plan.h"

#define MAX_INPUT_ELEMENTS ((size_t)1 << 20)    /* declared-shape planning */
#define MAX_ACTIVATION_BYTES ((size_t)64 << 20) /* runners for batch 1 and 2 */
#define MAX_FORWARD_BYTES ((size_t)4 << 20)     /* one forward pass */
/* The memory limits the harness sets (--max-memory's checks): planning at
 * declared shapes under one, the public path under the other. */
#define DECLARED_MEMORY_LIMIT ((uint64_t)512 << 20)
#define MODEL_MEMORY_LIMIT ((uint64_t)192 << 20)

/* Plans the raw graph with each input at its declared shape (when every
 * dimension is known and the inputs are small): reaches the shape inference
 * of every operator, not only those in image classifiers. */
static void plan_declared(const evm_graph *g) {
    if (g->n_inputs < 1 || g->n_inputs > 16)
        return;
    evm_tensor shapes[16];
    memset(shapes, 0, sizeof shapes);
    size_t total = 0;
    for (int i = 0; i < g->n_inputs; i++) {
        const evm_value *v = &g->values[g->inputs[i]];
        if (!v->has_shape)
            return;
        size_t count = 1;
        for (int d = 0; d < v->tensor.rank; d++)
            if (v->tensor.dims[d] < 0 || !evm_mul_size(count, (size_t)v->tensor.dims[d], &count))
                return;
        total += count;
        if (total > MAX_INPUT_ELEMENTS)
            return;
        shapes[i].dtype = v->tensor.dtype;
        shapes[i].rank = v->tensor.rank;
        memcpy(shapes[i].dims, v->tensor.dims, sizeof shapes[i].dims);
    }
    evm_plan *plan = NULL;
    evmap_error err = {0};
    evmap_status st = evm_plan_create(g, shapes, &plan, &err);
    evm_fuzz_check_error(st, &err);
    if (st == EVMAP_OK && plan->activation_bytes <= MAX_FORWARD_BYTES)
        evm_plan_run(plan);
    evm_plan_free(plan);
}

static void run_model(const uint8_t *data, size_t size) {
    evmap_model *model = NULL;
    evmap_error err = {0};
    evmap_status st = evmap_model_load_memory_limited(data, size, MODEL_MEMORY_LIMIT, &model, &err);
    evm_fuzz_check_error(st, &err);
    if (st != EVMAP_OK)
        return;
    evmap_model_info info;
    st = evmap_model_get_info(model, &info, &err);
    evm_fuzz_check_error(st, &err);
    evm_plan *probe = NULL;
    st = evm_model_plan(model, 1, &probe, &err);
    evm_fuzz_check_error(st, &err);
    size_t bytes = probe ? probe->activation_bytes : SIZE_MAX;
    evm_plan_free(probe);
    if (bytes > MAX_ACTIVATION_BYTES) {
        evmap_model_free(model);
        return;
    }
    for (int batch = 1; batch <= 2; batch++) {
        evmap_runner *runner = NULL;
        st = evmap_runner_create(model, batch, 1, &runner, &err);
        evm_fuzz_check_error(st, &err);
        if (st == EVMAP_OK && batch == 1 && bytes <= MAX_FORWARD_BYTES) {
            size_t per_image = (size_t)info.channels * (size_t)info.height * (size_t)info.width;
            float *input = calloc(per_image, sizeof(float));
            float *probs = calloc((size_t)info.num_classes, sizeof(float));
            if (input && probs) {
                for (size_t i = 0; i < per_image; i++)
                    input[i] = (float)(i % 7) / 7.0f;
                st = evmap_runner_classify(runner, input, 1, probs, &err);
                evm_fuzz_check_error(st, &err);
            }
            free(input);
            free(probs);
        }
        evmap_runner_free(runner);
    }
    evmap_model_free(model);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    evm_graph *graph = NULL;
    evmap_error err = {0};
    evmap_status st = evm_onnx_load_memory(data, size, &graph, &err);
    evm_fuzz_check_error(st, &err);
    if (st == EVMAP_OK) {
        graph->max_memory = DECLARED_MEMORY_LIMIT;
        plan_declared(graph);
        evm_graph_free(graph);
        run_model(data, size);
    }
    return 0;
}
