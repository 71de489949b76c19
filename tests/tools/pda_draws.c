/*
 * Test tool: the conditional sampler's draws and parameters, so that
 * tests/test_pda.py can check PDA with the conditional sampler against a
 * numpy + PyTorch reference and the draws against the conditional Gaussian.
 *
 *   pda_draws SAMPLER.evs IMAGE.f32 C H W params OUT.f64
 *       per group (one per channel, or one joint): mean (dim), covariance
 *       (dim x dim), then the per-channel clip range lo[C], hi[C]; float64
 *   pda_draws SAMPLER.evs IMAGE.f32 C H W replay X,Y,W,H STRIDE S SEED OUT.f32
 *       the draws evmap_pda makes for the windows of the stride grid inside
 *       the region (x, y, w, h): one generator seeded with SEED, windows in
 *       raster order, S draws of C x k x k floats each (pda.c's loop)
 *   pda_draws SAMPLER.evs IMAGE.f32 C H W many Y X COUNT SEED OUT.f32
 *       COUNT draws for the window at row Y, column X
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "samplers/sampler_internal.h"

static int read_floats(const char *path, float *out, size_t n) {
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(out, sizeof(float), n, f) : 0;
    if (f)
        fclose(f);
    if (got != n)
        fprintf(stderr, "pda_draws: cannot read %zu floats from %s\n", n, path);
    return got == n;
}

static int write_all(const char *path, const void *data, size_t size, size_t n) {
    FILE *f = fopen(path, "wb");
    size_t put = f ? fwrite(data, size, n, f) : 0;
    if (f && fclose(f) != 0)
        put = 0;
    if (put != n)
        fprintf(stderr, "pda_draws: cannot write %s\n", path);
    return put == n;
}

static int write_params(const evm_sampler *s, const char *path) {
    size_t n = s->dim, g = (size_t)s->groups, c = (size_t)s->channels;
    size_t total = g * (n + n * n) + 2 * c;
    double *out = malloc(sizeof(double) * total);
    if (!out)
        return 0;
    double *p = out;
    for (size_t i = 0; i < g; i++) {
        memcpy(p, s->mean + i * n, sizeof(double) * n);
        p += n;
        memcpy(p, s->cov + i * n * n, sizeof(double) * n * n);
        p += n * n;
    }
    for (size_t i = 0; i < c; i++)
        *p++ = s->lo[i];
    for (size_t i = 0; i < c; i++)
        *p++ = s->hi[i];
    int ok = write_all(path, out, sizeof(double), total);
    free(out);
    return ok;
}

/* Draws into a growing file: windows (or one window) at a time. */
static int draw_to(const evm_sampler *s, const float *image, int h, int w, const int *ys,
                   const int *xs, size_t windows, int count, uint64_t seed, const char *path) {
    size_t per = (size_t)count * (size_t)s->channels * (size_t)s->window * (size_t)s->window;
    float *draws = malloc(sizeof(float) * per);
    float *scratch = malloc(sizeof(float) * (evm_sampler_scratch_floats(s) + 1));
    FILE *f = fopen(path, "wb");
    int ok = draws && scratch && f;
    evm_rng rng;
    evm_rng_seed(&rng, seed);
    for (size_t i = 0; ok && i < windows; i++) {
        evm_sampler_draw(s, image, h, w, ys[i], xs[i], count, 0, &rng, scratch, draws);
        ok = fwrite(draws, sizeof(float), per, f) == per;
    }
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok)
        fprintf(stderr, "pda_draws: cannot write %s\n", path);
    free(draws);
    free(scratch);
    return ok;
}

static int replay(const evm_sampler *s, const float *image, int h, int w, char **argv) {
    int rx, ry, rw, rh;
    if (sscanf(argv[0], "%d,%d,%d,%d", &rx, &ry, &rw, &rh) != 4)
        return 0;
    int stride = atoi(argv[1]), count = atoi(argv[2]), k = s->window;
    uint64_t seed = strtoull(argv[3], NULL, 10);
    if (stride < 1 || count < 1)
        return 0;
    size_t cap = (size_t)h * (size_t)w, n = 0;
    int *ys = malloc(sizeof(int) * cap), *xs = malloc(sizeof(int) * cap);
    if (!ys || !xs) {
        free(ys);
        free(xs);
        return 0;
    }
    /* the grid of the whole image, then the windows inside the region */
    for (int y = 0; y + k <= h; y += stride)
        for (int x = 0; x + k <= w; x += stride)
            if (y >= ry && x >= rx && y + k <= ry + rh && x + k <= rx + rw) {
                ys[n] = y;
                xs[n++] = x;
            }
    int ok = draw_to(s, image, h, w, ys, xs, n, count, seed, argv[4]);
    free(ys);
    free(xs);
    return ok;
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: pda_draws SAMPLER.evs IMAGE.f32 C H W params|replay|many ...\n");
        return 2;
    }
    int c = atoi(argv[3]), h = atoi(argv[4]), w = atoi(argv[5]);
    const char *mode = argv[6];
    evmap_error err = {0};
    evm_sampler *s = NULL;
    char tag[256];
    float *image = NULL;
    int ok = 0;
    if (c < 1 || h < 1 || w < 1 || (size_t)c * (size_t)h * (size_t)w > ((size_t)1 << 26)) {
        fprintf(stderr, "pda_draws: bad image size\n");
        return 2;
    }
    if (evm_sampler_load(argv[1], &s, tag, sizeof tag, &err) != EVMAP_OK) {
        fprintf(stderr, "pda_draws: %s\n", err.message);
        return 1;
    }
    if (evm_sampler_get_kind(s) != EVM_SAMPLER_CONDITIONAL ||
        evm_sampler_check(s, c, h, w, &err) != EVMAP_OK) {
        fprintf(stderr, "pda_draws: not a conditional sampler for %dx%dx%d images\n", c, h, w);
        goto done;
    }
    image = malloc(sizeof(float) * (size_t)c * (size_t)h * (size_t)w);
    if (!image || !read_floats(argv[2], image, (size_t)c * (size_t)h * (size_t)w))
        goto done;
    if (!strcmp(mode, "params") && argc == 8) {
        ok = write_params(s, argv[7]);
    } else if (!strcmp(mode, "replay") && argc == 12) {
        ok = replay(s, image, h, w, argv + 7);
    } else if (!strcmp(mode, "many") && argc == 12) {
        int y = atoi(argv[7]), x = atoi(argv[8]), count = atoi(argv[9]);
        if (y >= 0 && x >= 0 && y + s->window <= h && x + s->window <= w && count > 0)
            ok = draw_to(s, image, h, w, &y, &x, 1, count, strtoull(argv[10], NULL, 10), argv[11]);
    } else {
        fprintf(stderr, "pda_draws: unknown mode or wrong arguments\n");
    }
done:
    free(image);
    evm_sampler_free(s);
    return ok ? 0 : 1;
}
