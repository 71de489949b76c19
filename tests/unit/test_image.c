/*
 * Images and preprocessing against independent references.
 *
 * tests/image_reference.py (run with $PYTHON, default /usr/bin/python3) fills
 * a temporary folder with PNG/JPEG/IDX inputs — photographs from
 * scikit-image when installed, PNG variants encoded byte by byte (palette,
 * 1/2/4/16-bit, gray+alpha, interlaced) — plus reference pixels decoded by
 * PIL or taken from the source arrays, and torchvision's preprocessing of
 * the same images. This program decodes the same files with evmap and
 * compares. Run from the repository root; the folder is removed at the end.
 *
 * Preprocessing (IMAGENET: Resize(256, antialias=True) + CenterCrop(224) +
 * Normalize) is compared with torchvision 0.14 three ways; max abs
 * differences after normalisation, measured on skimage's chelsea.png
 * (451 x 300, downscaled) and a 200 x 333 crop of camera.png (upscaled):
 *   float tensor pipeline          7.8e-7 / 7.2e-7  (checked <= 1e-4)
 *   uint8 tensor (Resize rounds)   8.8e-3           (checked <= 2e-2)
 *   PIL image (PIL's resize)       1.7e-2           (checked <= 2e-2)
 * The first is the same kernel in the same float order; the uint8 pipeline
 * differs by its rounding, at most 0.5/255/0.224 = 8.8e-3; PIL rounds to
 * 8 bits between its passes and uses fixed-point weights.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evmap.h"

static int passed, failed;
static char dir[256];

static void check(int ok, const char *fmt, ...) {
    if (ok) {
        passed++;
        return;
    }
    failed++;
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

/* Path of a file in the reference folder (rotating buffers, so a call may
 * use several at once). */
static const char *in_dir(const char *name) {
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

static void *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

/* Reads a reference of exactly count floats, or NULL (reported). */
static float *read_ref(const char *name, size_t count) {
    size_t size = 0;
    float *ref = read_all(in_dir(name), &size);
    if (ref && size != count * sizeof(float)) {
        free(ref);
        ref = NULL;
    }
    check(ref != NULL, "reference %s missing or not %zu floats", name, count);
    return ref;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d)
            m = d != d ? INFINITY : d;
    }
    return m;
}

static size_t pixel_count(const evmap_image *img) {
    return (size_t)img->width * (size_t)img->height * (size_t)img->channels;
}

/* ------------------------------------------------------------- decoding */

/* Decoded pixels must equal the reference: both sides compute v / max in
 * float from the same integers, so the tolerance only absorbs rounding. */
#define DECODE_TOL 1e-6

static void decode_case(const char *name, int w, int h, int c, const char *ref_name) {
    evmap_error err = {0};
    evmap_image *img = NULL;
    evmap_status st = evmap_image_load(in_dir(name), &img, &err);
    check(st == EVMAP_OK, "decode %s: %s", name, err.message);
    if (st != EVMAP_OK)
        return;
    check(img->width == w && img->height == h && img->channels == c,
          "decode %s: got %dx%dx%d, want %dx%dx%d", name, img->width, img->height, img->channels, w,
          h, c);
    if (img->width == w && img->height == h && img->channels == c) {
        float *ref = read_ref(ref_name, pixel_count(img));
        if (ref) {
            double d = max_diff(img->pixels, ref, pixel_count(img));
            check(d <= DECODE_TOL, "decode %s: max abs difference %g", name, d);
        }
        free(ref);
    }
    /* The in-memory path must give the same pixels. */
    size_t size;
    void *bytes = read_all(in_dir(name), &size);
    evmap_image *mem = NULL;
    st = evmap_image_load_memory(bytes, size, &mem, &err);
    check(st == EVMAP_OK && mem->width == img->width && mem->height == img->height &&
              memcmp(mem->pixels, img->pixels, pixel_count(img) * sizeof(float)) == 0,
          "decode %s from memory differs from the file", name);
    free(bytes);
    evmap_image_free(mem);
    evmap_image_free(img);
}

static evmap_status status_named(const char *s) {
    if (strcmp(s, "bad_file") == 0)
        return EVMAP_ERR_BAD_FILE;
    if (strcmp(s, "unsupported") == 0)
        return EVMAP_ERR_UNSUPPORTED;
    if (strcmp(s, "io") == 0)
        return EVMAP_ERR_IO;
    if (strcmp(s, "limit") == 0)
        return EVMAP_ERR_TOO_LARGE;
    return EVMAP_OK;
}

static void check_error(evmap_status st, const evmap_error *err, evmap_status want,
                        const char *needle, const char *what) {
    check(st == want, "%s: status '%s', want '%s' (%s)", what, evmap_status_name(st),
          evmap_status_name(want), err->message);
    check(st == EVMAP_OK || (err->status == st && err->message[0] && !strchr(err->message, '\n') &&
                             strstr(err->message, needle)),
          "%s: message should name '%s': %s", what, needle, err->message);
}

static void fail_case(const char *name, const char *status) {
    evmap_error err = {0};
    evmap_image *img = (evmap_image *)&err; /* must be reset to NULL */
    evmap_status want = status_named(status);
    evmap_status st = evmap_image_load(in_dir(name), &img, &err);
    check_error(st, &err, want, name, name);
    check(img == NULL, "%s: out not NULL after failure", name);
    if (want == EVMAP_ERR_IO)
        return;
    size_t size;
    void *bytes = read_all(in_dir(name), &size);
    st = evmap_image_load_memory(bytes, size, &img, &err);
    check(st == want, "%s from memory: status '%s' (%s)", name, evmap_status_name(st), err.message);
    evmap_image_free(img);
    free(bytes);
}

static void test_cases_file(void) {
    FILE *f = fopen(in_dir("cases.txt"), "r");
    check(f != NULL, "cases.txt missing");
    if (!f)
        return;
    char line[512], kind[16], name[128], a[64], ref[160];
    int w, h, c, decodes = 0, fails = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "decode %127s %d %d %d %159s", name, &w, &h, &c, ref) == 5) {
            decode_case(name, w, h, c, ref);
            decodes++;
        } else if (sscanf(line, "fail %127s %63s", name, a) == 2) {
            fail_case(name, a);
            fails++;
        } else if (sscanf(line, "%15s", kind) == 1) {
            check(0, "cases.txt: unknown line %s", line);
        }
    }
    fclose(f);
    check(decodes >= 30 && fails >= 12, "cases.txt lists %d decodes and %d failures", decodes,
          fails);
}

static void test_api_edges(void) {
    evmap_error err = {0};
    evmap_image *img = NULL;
    evmap_image_free(NULL);
    check(evmap_image_load(in_dir("photo_rgb.png"), NULL, &err) == EVMAP_ERR_INVALID_ARGUMENT,
          "load with NULL out");
    check(evmap_image_load(NULL, &img, &err) == EVMAP_ERR_INVALID_ARGUMENT, "load NULL path");
    evmap_status st = evmap_image_load(dir, &img, &err);
    check_error(st, &err, EVMAP_ERR_IO, "folder", "load a folder");
    st = evmap_image_load_memory(NULL, 0, &img, &err);
    check_error(st, &err, EVMAP_ERR_BAD_FILE, "empty", "load empty memory");
    /* Errors without an evmap_error must still return the status. */
    check(evmap_image_load(in_dir("truncated.png"), &img, NULL) == EVMAP_ERR_BAD_FILE,
          "truncated PNG without err");
}

/* ------------------------------------------------------------------ IDX */

static evmap_image_set *new_set(void) {
    evmap_image_set *set = NULL;
    evmap_error err;
    if (evmap_image_set_create(&set, &err) != EVMAP_OK) {
        printf("cannot create a set: %s\n", err.message);
        exit(1);
    }
    return set;
}

/* Adds path to a fresh set expecting `want`; returns the set. */
static evmap_image_set *set_with(const char *path, evmap_status want, const char *needle) {
    evmap_image_set *set = new_set();
    evmap_error err = {0};
    evmap_status st = evmap_image_set_add(set, path, &err);
    check_error(st, &err, want, needle, path);
    return set;
}

static void test_idx_small(void) {
    const char *files[2] = {"small.idx3", "small-idx3-ubyte.gz"};
    const char *stems[2] = {"small", "small-idx3-ubyte"};
    float *ref = read_ref("small_idx.f32", 3 * 5 * 4);
    for (int f = 0; f < 2 && ref; f++) {
        evmap_image_set *set = set_with(in_dir(files[f]), EVMAP_OK, "");
        check(evmap_image_set_count(set) == 3, "%s: %zu entries", files[f],
              evmap_image_set_count(set));
        for (size_t i = 0; i < evmap_image_set_count(set); i++) {
            char want[64];
            snprintf(want, sizeof want, "%s_%zu", stems[f], i);
            const char *name = evmap_image_set_name(set, i);
            check(name && strcmp(name, want) == 0, "%s: name %s, want %s", files[f],
                  name ? name : "(null)", want);
            check(strcmp(evmap_image_set_path(set, i), in_dir(files[f])) == 0, "%s: path",
                  files[f]);
            evmap_image *img = NULL;
            evmap_error err;
            evmap_status st = evmap_image_set_load(set, i, &img, &err);
            check(st == EVMAP_OK && img->width == 4 && img->height == 5 && img->channels == 1 &&
                      max_diff(img->pixels, ref + i * 20, 20) == 0,
                  "%s: image %zu pixels", files[f], i);
            evmap_image_free(img);
        }
        evmap_image_set_free(set);
    }
    free(ref);
}

static void test_idx_errors(void) {
    evmap_image_set_free(set_with(in_dir("short.idx"), EVMAP_ERR_BAD_FILE, "short.idx"));
    evmap_image_set_free(set_with(in_dir("short.idx.gz"), EVMAP_ERR_BAD_FILE, "short.idx.gz"));
    /* 2^32 - 1 images: refused from the header, before any data is read. */
    evmap_image_set_free(
        set_with(in_dir("huge_header.idx"), EVMAP_ERR_TOO_LARGE, "huge_header.idx"));
    evmap_image_set_free(set_with(in_dir("long.idx"), EVMAP_ERR_BAD_FILE, "long.idx"));
    evmap_image_set_free(set_with(in_dir("float.idx"), EVMAP_ERR_UNSUPPORTED, "float"));
    evmap_image_set_free(
        set_with(in_dir("truncated.idx.gz"), EVMAP_ERR_BAD_FILE, "truncated.idx.gz"));
    evmap_image_set_free(
        set_with(in_dir("labels.idx1"), EVMAP_ERR_INVALID_ARGUMENT, "labels.idx1"));

    uint8_t *labels = NULL;
    size_t count = 0;
    evmap_error err = {0};
    evmap_status st = evmap_idx_load_labels(in_dir("labels.idx1"), &labels, &count, &err);
    static const uint8_t want[6] = {1, 2, 3, 250, 0, 9};
    check(st == EVMAP_OK && count == 6 && memcmp(labels, want, 6) == 0, "labels.idx1: %s",
          err.message);
    evmap_idx_free_labels(labels);
    evmap_idx_free_labels(NULL);
    st = evmap_idx_load_labels(in_dir("small.idx3"), &labels, &count, &err);
    check_error(st, &err, EVMAP_ERR_INVALID_ARGUMENT, "small.idx3", "images as labels");
    st = evmap_idx_load_labels(in_dir("short.idx"), &labels, &count, &err);
    check_error(st, &err, EVMAP_ERR_BAD_FILE, "short.idx", "short file as labels");
    st = evmap_idx_load_labels(in_dir("nothing.idx"), &labels, &count, &err);
    check_error(st, &err, EVMAP_ERR_IO, "nothing.idx", "missing labels file");
}

#define FASHION "/usr/share/datasets/fashion-mnist/"

static void test_fashion_mnist(void) {
    const char *images = FASHION "t10k-images-idx3-ubyte.gz";
    if (access(images, R_OK) != 0) {
        check(0, "%s is missing; run `make deps` (package dataset-fashion-mnist)", images);
        return;
    }
    evmap_image_set *set = set_with(images, EVMAP_OK, "");
    check(evmap_image_set_count(set) == 10000, "fashion: %zu images", evmap_image_set_count(set));
    check(strcmp(evmap_image_set_name(set, 0), "t10k-images-idx3-ubyte_0") == 0 &&
              strcmp(evmap_image_set_name(set, 9999), "t10k-images-idx3-ubyte_9999") == 0,
          "fashion: names %s", evmap_image_set_name(set, 0));
    static const size_t indices[4] = {0, 1, 1234, 9999}; /* as in image_reference.py */
    float *ref = read_ref("fmnist_images.f32", 4 * 28 * 28);
    for (int k = 0; k < 4 && ref; k++) {
        evmap_image *img = NULL;
        evmap_error err;
        evmap_status st = evmap_image_set_load(set, indices[k], &img, &err);
        check(st == EVMAP_OK && img->width == 28 && img->height == 28 && img->channels == 1 &&
                  max_diff(img->pixels, ref + (size_t)k * 784, 784) == 0,
              "fashion: image %zu differs from numpy", indices[k]);
        evmap_image_free(img);
    }
    free(ref);
    evmap_image *img = NULL;
    evmap_error err;
    evmap_status st = evmap_image_set_load(set, 10000, &img, &err);
    check_error(st, &err, EVMAP_ERR_INVALID_ARGUMENT, "10000", "fashion: index out of range");
    check(evmap_image_set_name(set, 10000) == NULL, "fashion: name out of range is NULL");
    evmap_image_set_free(set);

    uint8_t *labels = NULL;
    size_t count = 0, size = 0;
    st = evmap_idx_load_labels(FASHION "t10k-labels-idx1-ubyte.gz", &labels, &count, &err);
    uint8_t *want = read_all(in_dir("fmnist_labels.u8"), &size);
    check(st == EVMAP_OK && count == 10000 && want && size == count &&
              memcmp(labels, want, count) == 0,
          "fashion labels: %s", st == EVMAP_OK ? "differ from numpy" : err.message);
    evmap_idx_free_labels(labels);
    free(want);
}

/* -------------------------------------------------------------- folders */

static void test_folders(void) {
    evmap_image_set *set = set_with(in_dir("folder"), EVMAP_OK, "");
    static const char *names[4] = {"A2", "a", "b", "c"}; /* byte order; dot files skipped */
    static const char *files[4] = {"A2.png", "a.jpg", "b.PNG", "c.jpeg"};
    check(evmap_image_set_count(set) == 4, "folder: %zu images, want 4",
          evmap_image_set_count(set));
    for (size_t i = 0; i < 4 && i < evmap_image_set_count(set); i++) {
        char want[600];
        snprintf(want, sizeof want, "%s/folder/%s", dir, files[i]);
        check(strcmp(evmap_image_set_name(set, i), names[i]) == 0 &&
                  strcmp(evmap_image_set_path(set, i), want) == 0,
              "folder: entry %zu is %s (%s)", i, evmap_image_set_name(set, i),
              evmap_image_set_path(set, i));
        evmap_image *img = NULL;
        evmap_error err;
        evmap_status st = evmap_image_set_load(set, i, &img, &err);
        check(st == EVMAP_OK && img->width == 5 && img->height == 6 && img->channels == 3,
              "folder: load %s: %s", files[i], err.message);
        evmap_image_free(img);
    }
    /* Entries keep the order of adds; a failed add leaves the set unchanged. */
    evmap_error err = {0};
    evmap_status st = evmap_image_set_add(set, in_dir("photo_rgb.png"), &err);
    check(st == EVMAP_OK && evmap_image_set_count(set) == 5 &&
              strcmp(evmap_image_set_name(set, 4), "photo_rgb") == 0,
          "plain file after a folder: %s", err.message);
    st = evmap_image_set_add(set, in_dir("bad_folder"), &err);
    check_error(st, &err, EVMAP_ERR_BAD_FILE, "zz_fake.png", "folder with a fake PNG");
    check(evmap_image_set_count(set) == 5, "failed add changed the set (%zu entries)",
          evmap_image_set_count(set));
    st = evmap_image_set_add(set, in_dir("small.idx3"), &err);
    check(st == EVMAP_OK && evmap_image_set_count(set) == 8 &&
              strcmp(evmap_image_set_name(set, 7), "small_2") == 0,
          "IDX after folder: %s", err.message);
    evmap_image_set_free(set);

    evmap_image_set_free(set_with(in_dir("no_images"), EVMAP_ERR_INVALID_ARGUMENT, "no_images"));
    evmap_image_set_free(set_with(in_dir("missing"), EVMAP_ERR_IO, "missing"));
    evmap_image_set_free(
        set_with(in_dir("not_an_image.txt"), EVMAP_ERR_BAD_FILE, "not_an_image.txt"));
    evmap_image_set_free(set_with(in_dir("photo.gif"), EVMAP_ERR_UNSUPPORTED, "GIF"));
    evmap_image_set_free(NULL);
    check(evmap_image_set_count(NULL) == 0 && evmap_image_set_name(NULL, 0) == NULL,
          "NULL set accessors");
}

/* -------------------------------------------------------- preprocessing */

static evmap_image *load(const char *name) {
    evmap_image *img = NULL;
    evmap_error err;
    if (evmap_image_load(in_dir(name), &img, &err) != EVMAP_OK) {
        check(0, "load %s: %s", name, err.message);
        return NULL;
    }
    return img;
}

/* A new image holding the w x h window at (x0, y0) of img. */
static evmap_image *crop(const evmap_image *img, int x0, int y0, int w, int h) {
    evmap_image *out = malloc(sizeof *out);
    *out = (evmap_image){w, h, img->channels,
                         malloc(sizeof(float) * (size_t)w * (size_t)h * (size_t)img->channels)};
    for (int c = 0; c < img->channels; c++)
        for (int y = 0; y < h; y++)
            memcpy(out->pixels + ((size_t)c * (size_t)h + (size_t)y) * (size_t)w,
                   img->pixels +
                       ((size_t)c * (size_t)img->height + (size_t)(y0 + y)) * (size_t)img->width +
                       (size_t)x0,
                   sizeof(float) * (size_t)w);
    return out;
}

/* Preprocesses img and compares with a reference; returns the max abs diff
 * (INFINITY when something failed). */
static double preprocess_vs(const evmap_image *img, const evmap_preprocess *p, int c, int h, int w,
                            const char *ref_name) {
    size_t n = (size_t)c * (size_t)h * (size_t)w;
    float *out = malloc(n * sizeof(float));
    float *ref = read_ref(ref_name, n);
    evmap_error err;
    double d = INFINITY;
    evmap_status st = evmap_preprocess_image(img, p, c, h, w, out, &err);
    check(st == EVMAP_OK, "preprocess for %s: %s", ref_name, err.message);
    if (st == EVMAP_OK && ref)
        d = max_diff(out, ref, n);
    free(out);
    free(ref);
    return d;
}

static void test_imagenet(void) {
    evmap_image *rgb = load("photo_rgb.png"), *gray = load("photo_gray.png");
    if (!rgb || !gray)
        goto done;
    evmap_preprocess p;
    evmap_preprocess_init(&p, EVMAP_PREPROCESS_IMAGENET);
    double d = preprocess_vs(rgb, &p, 3, 224, 224, "imagenet_rgb.f32");
    printf("imagenet preprocessing vs torchvision (float tensor): max abs diff %.3g\n", d);
    check(d <= 1e-4, "imagenet rgb vs torchvision: %g", d);
    d = preprocess_vs(gray, &p, 3, 224, 224, "imagenet_gray.f32");
    printf("imagenet preprocessing of gray (upscaled) vs torchvision: max abs diff %.3g\n", d);
    check(d <= 1e-4, "imagenet gray vs torchvision: %g", d);
    evmap_image *left = crop(rgb, 0, 0, 400, 300);
    d = preprocess_vs(left, &p, 3, 224, 224, "imagenet_rgb400.f32");
    check(d <= 1e-4, "imagenet 400x300 (crop offset rounds half to even): %g", d);
    evmap_image_free(left);
    d = preprocess_vs(rgb, &p, 3, 224, 224, "imagenet_rgb_u8.f32");
    printf("imagenet preprocessing vs torchvision (uint8 tensor): max abs diff %.3g\n", d);
    check(d <= 2e-2, "imagenet rgb vs torchvision uint8 pipeline: %g", d);
    d = preprocess_vs(rgb, &p, 3, 224, 224, "imagenet_rgb_pil.f32");
    printf("imagenet preprocessing vs torchvision (PIL resize): max abs diff %.3g\n", d);
    check(d <= 2e-2, "imagenet rgb vs torchvision PIL pipeline: %g", d);

    float *out = malloc(sizeof(float) * 3 * 224 * 224);
    evmap_error err;
    evmap_status st = evmap_preprocess_image(rgb, &p, 3, 299, 299, out, &err);
    check_error(st, &err, EVMAP_ERR_INVALID_ARGUMENT, "299 x 299", "imagenet for a 299 model");
    check(strstr(err.message, "224 x 224") != NULL, "size message names 224: %s", err.message);
    free(out);
done:
    evmap_image_free(rgb);
    evmap_image_free(gray);
}

static void test_custom(void) {
    evmap_image *rgb = load("photo_rgb.png");
    if (!rgb)
        return;
    evmap_preprocess p;
    evmap_preprocess_init(&p, EVMAP_PREPROCESS_CUSTOM);
    check(p.mean[0] == 0 && p.std[2] == 1 && p.width == 0, "custom init values");
    p.width = 64;
    p.height = 48;
    const float mean[3] = {0.5f, 0.4f, 0.3f}, std[3] = {0.2f, 0.25f, 0.3f};
    memcpy(p.mean, mean, sizeof mean);
    memcpy(p.std, std, sizeof std);
    double d = preprocess_vs(rgb, &p, 3, 48, 64, "custom_rgb.f32");
    check(d <= 1e-4, "custom 64x48 vs torchvision: %g", d);

    /* 13 x 9 crop (x 60.., y 50..) upscaled to 40 x 31, no normalisation. */
    evmap_image *small = crop(rgb, 60, 50, 13, 9);
    evmap_preprocess_init(&p, EVMAP_PREPROCESS_CUSTOM);
    p.width = 40;
    p.height = 31;
    d = preprocess_vs(small, &p, 3, 31, 40, "custom_small.f32");
    check(d <= 1e-4, "custom upscale vs torchvision: %g", d);

    float out[3 * 13 * 9];
    evmap_error err;
    p.width = p.height = 0; /* keep the size */
    p.std[1] = 0;
    evmap_status st = evmap_preprocess_image(small, &p, 3, 9, 13, out, &err);
    check_error(st, &err, EVMAP_ERR_INVALID_ARGUMENT, "std", "custom with std 0");
    p.std[1] = 1;
    st = evmap_preprocess_image(small, &p, 3, 9, 13, out, &err);
    check(st == EVMAP_OK && memcmp(out, small->pixels, sizeof out) == 0,
          "custom without size or normalisation is the identity");
    evmap_image_free(small);
    evmap_image_free(rgb);
}

static void test_none_and_channels(void) {
    evmap_image *rgb = load("photo_rgb.png"), *gray = load("photo_gray.png");
    float *out = malloc(sizeof(float) * 3 * 451 * 333);
    evmap_preprocess p;
    evmap_error err;
    if (!rgb || !gray || !out)
        goto done;
    evmap_preprocess_init(&p, EVMAP_PREPROCESS_NONE);
    size_t n = (size_t)gray->width * (size_t)gray->height;
    evmap_status st = evmap_preprocess_image(gray, &p, 1, gray->height, gray->width, out, &err);
    check(st == EVMAP_OK && memcmp(out, gray->pixels, n * sizeof(float)) == 0,
          "none: gray unchanged (%s)", err.message);
    st = evmap_preprocess_image(gray, &p, 3, gray->height, gray->width, out, &err);
    check(st == EVMAP_OK && memcmp(out, gray->pixels, n * sizeof(float)) == 0 &&
              memcmp(out + 2 * n, gray->pixels, n * sizeof(float)) == 0,
          "none: gray replicated to 3 channels");
    st = evmap_preprocess_image(gray, &p, 1, 28, 28, out, &err);
    check_error(st, &err, EVMAP_ERR_INVALID_ARGUMENT, "200 x 333", "none: size mismatch");
    check(strstr(err.message, "28 x 28") != NULL, "none: message names the model size: %s",
          err.message);

    n = (size_t)rgb->width * (size_t)rgb->height;
    st = evmap_preprocess_image(rgb, &p, 1, rgb->height, rgb->width, out, &err);
    double d = 0;
    for (size_t i = 0; st == EVMAP_OK && i < n; i += 97) {
        double lum =
            0.299 * rgb->pixels[i] + 0.587 * rgb->pixels[n + i] + 0.114 * rgb->pixels[2 * n + i];
        d = fmax(d, fabs(lum - out[i]));
    }
    check(st == EVMAP_OK && d < 1e-6, "none: RGB to luminance (%g)", d);
    st = evmap_preprocess_image(rgb, &p, 4, rgb->height, rgb->width, out, &err);
    check(st != EVMAP_OK, "4-channel model refused");
    st = evmap_preprocess_image(NULL, &p, 1, 1, 1, out, &err);
    check(st == EVMAP_ERR_INVALID_ARGUMENT, "NULL image refused");
done:
    free(out);
    evmap_image_free(rgb);
    evmap_image_free(gray);
}

/* ----------------------------------------------------------------- main */

static int make_references(void) {
    const char *python = getenv("PYTHON");
    snprintf(dir, sizeof dir, "%s/evmap_test_image_XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 0;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' tests/image_reference.py '%s'",
             python && *python ? python : "/usr/bin/python3", dir);
    if (system(cmd) != 0) {
        printf("FAIL: %s did not run (run this test from the repository root)\n", cmd);
        return 0;
    }
    FILE *f = fopen(in_dir("photo_source.txt"), "r");
    char line[256];
    if (f && fgets(line, sizeof line, f))
        printf("photographs: %s", line);
    if (f)
        fclose(f);
    return 1;
}

int main(void) {
    if (make_references()) {
        test_cases_file();
        test_api_edges();
        test_idx_small();
        test_idx_errors();
        test_fashion_mnist();
        test_folders();
        test_imagenet();
        test_custom();
        test_none_and_channels();
    } else {
        failed++;
    }
    if (dir[0]) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            printf("warning: could not remove %s\n", dir);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
