/*
 * Replays the inputs kept in tests/regressions/<harness>/ — inputs that once
 * crashed, leaked or tripped a sanitizer in a fuzz harness (fuzz/fuzz_*.c),
 * plus hand-made edge cases — through the same harness bodies, built without
 * libFuzzer. Each input must end in a clean error or a success; a harness
 * check that fails calls abort(), which is caught here and counted. Under
 * `make asan` the sanitizers watch every replay.
 * Usage: test_regressions [DIR]   (default tests/regressions)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each harness's entry point gets its own name. */
#define LLVMFuzzerTestOneInput fuzz_onnx_one
#include "../../fuzz/fuzz_onnx.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_png_one
#include "../../fuzz/fuzz_png.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_jpeg_one
#include "../../fuzz/fuzz_jpeg.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_idx_one
#include "../../fuzz/fuzz_idx.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_sampler_one
#include "../../fuzz/fuzz_sampler.c"
#undef LLVMFuzzerTestOneInput

typedef int (*harness_fn)(const uint8_t *data, size_t size);

static const struct {
    const char *name;
    harness_fn run;
} harnesses[] = {
    {"onnx", fuzz_onnx_one}, {"png", fuzz_png_one},         {"jpeg", fuzz_jpeg_one},
    {"idx", fuzz_idx_one},   {"sampler", fuzz_sampler_one},
};

static sigjmp_buf on_abort;

static void abort_handler(int sig) {
    (void)sig;
    siglongjmp(on_abort, 1);
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static uint8_t *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        uint8_t *grown = realloc(buf, cap * 2);
        if (!grown) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = grown;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    *size = len;
    return buf;
}

/* Runs one input; false when a harness check aborted. */
static bool replay_one(harness_fn run, const uint8_t *data, size_t size) {
    if (sigsetjmp(on_abort, 1) != 0)
        return false;
    run(data, size);
    return true;
}

/* Replays every regular file of dir/name; returns failures, adds to *passed. */
static int replay_folder(const char *root, const char *name, harness_fn run, int *passed) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    DIR *d = opendir(dir);
    if (!d)
        return 0; /* no kept inputs for this harness */
    char **files = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            char **grown = realloc(files, cap * sizeof *files);
            if (!grown)
                abort();
            files = grown;
        }
        files[n++] = strdup(de->d_name);
    }
    closedir(d);
    if (n)
        qsort(files, n, sizeof *files, compare_names);
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        size_t size = 0;
        uint8_t *data = read_all(path, &size);
        if (!data) {
            printf("FAIL %s: cannot read it\n", path);
            failed++;
        } else if (replay_one(run, data, size)) {
            (*passed)++;
        } else {
            printf("FAIL %s: a harness check failed (see the message above)\n", path);
            failed++;
        }
        free(data);
        free(files[i]);
    }
    free(files);
    return failed;
}

int main(int argc, char **argv) {
    const char *root = argc > 1 ? argv[1] : "tests/regressions";
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = abort_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGABRT, &sa, NULL);
    int passed = 0, failed = 0;
    for (size_t h = 0; h < sizeof harnesses / sizeof harnesses[0]; h++)
        failed += replay_folder(root, harnesses[h].name, harnesses[h].run, &passed);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
