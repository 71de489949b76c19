/*
 * libFuzzer harness for sampler files (src/samplers/sampler_file.c): header and size
 * checks, checksum, Gaussian validation and the factorizations done on load
 * (evm_sampler_load through the public evmap_sampler_load). A sampler that
 * loads then draws and computes conditional means over a small image, so the
 * factors a file leads to are exercised too. The loader takes a path, so the
 * input is served from a memory file.
 *
 * Every input is loaded twice: as given, and with its trailing checksum
 * recomputed, so that mutations reach the checks behind the checksum
 * (Gaussian validation, factorization) instead of all failing at it.
 */
#include "fuzz_common.h"

#include "base/rng.h"
#include "samplers/sampler_api.h"

#define MAX_DRAW_FLOATS ((size_t)1 << 22)

static void exercise(const evm_sampler *s) {
    int channels = evm_sampler_channels(s);
    int side = evm_sampler_window(s) + 2 * evm_sampler_pad(s) + 2;
    evmap_error err = {0};
    evmap_status st = evm_sampler_check(s, channels, side, side, &err);
    evm_fuzz_check_error(st, &err);
    if (st != EVMAP_OK)
        return;
    size_t k = (size_t)evm_sampler_window(s);
    size_t image_floats = (size_t)channels * (size_t)side * (size_t)side;
    size_t out_floats = 2 * (size_t)channels * k * k;
    size_t scratch_floats = evm_sampler_scratch_floats(s);
    if (scratch_floats > MAX_DRAW_FLOATS)
        return;
    float *image = malloc(image_floats * sizeof(float));
    float *out = malloc(out_floats * sizeof(float));
    float *scratch = malloc((scratch_floats ? scratch_floats : 1) * sizeof(float));
    if (image && out && scratch) {
        for (size_t i = 0; i < image_floats; i++)
            image[i] = (float)(i % 5) / 5.0f;
        evm_rng rng;
        evm_rng_seed(&rng, 1);
        int corner = side - (int)k; /* the last valid window position */
        evm_sampler_draw(s, image, side, side, 0, 0, 2, 0, &rng, scratch, out);
        evm_sampler_draw(s, image, side, side, corner, corner, 2, 0, &rng, scratch, out);
        evm_sampler_conditional_mean(s, image, side, side, corner / 2, corner / 2, scratch, out);
    }
    free(image);
    free(out);
    free(scratch);
}

static void load(const uint8_t *data, size_t size) {
    char path[64];
    evm_fuzz_file(data, size, path, sizeof path);
    evmap_error err = {0};
    evmap_sampler *sampler = NULL;
    char tag[256];
    evmap_status st = evmap_sampler_load(path, &sampler, tag, sizeof tag, &err);
    evm_fuzz_check_error(st, &err);
    if (st == EVMAP_OK) {
        if (!memchr(tag, '\0', sizeof tag))
            abort();
        exercise(sampler->impl);
    }
    evmap_sampler_free(sampler);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load(data, size);
    if (size < 8 + 44)
        return 0;
    /* The file's hash: FNV-1a over every byte before the last 8, little-endian. */
    uint8_t *copy = malloc(size);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    uint64_t hash = 0xcbf29ce484222325u;
    for (size_t i = 0; i < size - 8; i++) {
        hash ^= copy[i];
        hash *= 0x100000001b3u;
    }
    for (int i = 0; i < 8; i++)
        copy[size - 8 + i] = (uint8_t)(hash >> (8 * i));
    if (memcmp(copy, data, size) != 0)
        load(copy, size);
    free(copy);
    return 0;
}
