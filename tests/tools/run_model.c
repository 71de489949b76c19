/*
 * Test tool: runs an ONNX model on a raw float32 input and writes the raw
 * float32 output, so that Python tests can compare evmap with PyTorch.
 * usage: run_model MODEL.onnx INPUT.f32 N C H W OUTPUT.f32
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/onnx_load.h"
#include "engine/plan.h"

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: run_model MODEL.onnx INPUT.f32 N C H W OUTPUT.f32\n");
        return 2;
    }
    evmap_error err = {0};
    evm_graph *g = NULL;
    evm_plan *plan = NULL;
    int rc = 1;
    if (evm_onnx_load_file(argv[1], &g, &err) != EVMAP_OK)
        goto fail;
    evm_tensor shape = {.dtype = EVM_DTYPE_FLOAT};
    int64_t dims[4];
    for (int i = 0; i < 4; i++)
        dims[i] = atoll(argv[3 + i]);
    if (evm_tensor_set_shape(&shape, 4, dims, &err) != EVMAP_OK ||
        evm_plan_create(g, &shape, &plan, &err) != EVMAP_OK)
        goto fail;
    evm_tensor *in = evm_plan_input(plan, 0);
    FILE *f = fopen(argv[2], "rb");
    if (!f || fread(in->data, sizeof(float), in->count, f) != in->count) {
        fprintf(stderr, "run_model: cannot read %zu floats from %s\n", in->count, argv[2]);
        if (f)
            fclose(f);
        goto done;
    }
    fclose(f);
    evm_plan_run(plan);
    const evm_tensor *out = evm_plan_output(plan, 0);
    f = fopen(argv[7], "wb");
    if (!f || fwrite(out->data, sizeof(float), out->count, f) != out->count) {
        fprintf(stderr, "run_model: cannot write %s\n", argv[7]);
        if (f)
            fclose(f);
        goto done;
    }
    fclose(f);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "run_model: %s\n", err.message);
done:
    evm_plan_free(plan);
    evm_graph_free(g);
    return rc;
}
