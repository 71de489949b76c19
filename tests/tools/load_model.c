/*
 * Test tool: loads a model through the public loading API, so that Python
 * tests can check it in every build (ctypes cannot load a sanitized
 * library). Prints "ok" or the status name and message on one line.
 * usage: load_model memory MODEL.onnx      (evmap_model_load_memory)
 *        load_model file MODEL.onnx LAYOUT  (evmap_model_load_with_options;
 *                                           LAYOUT a number, as the enum)
 *        load_model defaults               (evmap_model_load_options_init)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evmap.h"

static int report(evmap_status st, const evmap_error *err) {
    if (st == EVMAP_OK)
        printf("ok\n");
    else
        printf("%s: %s\n", evmap_status_name(st), err->message);
    return 0;
}

static int load_memory(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return 2;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = size > 0 ? malloc((size_t)size) : NULL;
    size_t got = data ? fread(data, 1, (size_t)size, f) : 0;
    fclose(f);
    if (!data || got != (size_t)size) {
        free(data);
        return 2;
    }
    evmap_model *model = NULL;
    evmap_error err = {0};
    evmap_status st = evmap_model_load_memory(data, (size_t)size, &model, &err);
    evmap_model_free(model);
    free(data);
    return report(st, &err);
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "defaults")) {
        evmap_model_load_options o;
        memset(&o, 0xff, sizeof o);
        evmap_model_load_options_init(&o);
        printf("layout %d max_memory %llu\n", (int)o.layout, (unsigned long long)o.max_memory);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "memory"))
        return load_memory(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "file")) {
        evmap_model_load_options o;
        evmap_model_load_options_init(&o);
        o.layout = (evmap_layout)atoi(argv[3]);
        evmap_model *model = NULL;
        evmap_error err = {0};
        evmap_status st = evmap_model_load_with_options(argv[2], &o, &model, &err);
        evmap_model_free(model);
        return report(st, &err);
    }
    fprintf(stderr, "usage: load_model memory|file MODEL [LAYOUT] | defaults\n");
    return 2;
}
