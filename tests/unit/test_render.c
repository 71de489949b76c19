/*
 * Map output: evmap_write_npy checked by NumPy itself (header, dtype, shape,
 * bit-exact values including NaN, infinities and -0.0), and evmap_render_png
 * checked by reading the PNG back with libpng: picture sizes for scale,
 * side_by_side and colorbar; the sign and symmetry of colours; saturation
 * and vmax; and that failures leave neither the file nor a temporary behind.
 * Everything happens in a fresh folder from mkdtemp that is removed at the end.
 */
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "evmap.h"

static int passed, failed;
static char dir[256]; /* the test's scratch folder */

static void check(int ok, const char *what) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL: %s\n", what);
    }
}

static const char *in_dir(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", dir, name);
    return buf;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Names in folder that contain ".tmp." (left-over temporary files). */
static int count_temporaries(const char *folder) {
    DIR *d = opendir(folder);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp."))
            n++;
    closedir(d);
    return n;
}

/* A failure message is one non-empty line. */
static int one_line(const evmap_error *err) {
    return err->message[0] && !strchr(err->message, '\n');
}

/* ------------------------------------------------------------------- NPY */

static const char npy_check_py[] =
    "import sys, numpy as np\n"
    "p, raw, h, w = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])\n"
    "d = open(p, 'rb').read()\n"
    "assert d[:8] == b'\\x93NUMPY\\x01\\x00', d[:8]\n"
    "hl = int.from_bytes(d[8:10], 'little')\n"
    "assert (10 + hl) % 64 == 0, hl\n"
    "assert d[10 + hl - 1:10 + hl] == b'\\n'\n"
    "assert len(d) == 10 + hl + h * w * 4, len(d)\n"
    "with open(p, 'rb') as f:\n"
    "    assert np.lib.format.read_magic(f) == (1, 0)\n"
    "    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)\n"
    "assert shape == (h, w) and fortran is False and dtype == np.dtype('<f4'), (shape, dtype)\n"
    "a = np.load(p)\n"
    "b = np.fromfile(raw, dtype='<f4').reshape(h, w)\n"
    "assert a.dtype == np.dtype('<f4') and a.shape == (h, w)\n"
    "assert np.array_equal(np.isnan(a), np.isnan(b)), 'NaN positions differ'\n"
    "assert np.array_equal(a.view('<u4'), b.view('<u4')), 'values differ'\n";

static const char *python(void) {
    const char *p = getenv("PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

/* The expected values as raw little-endian float32 for NumPy to compare. */
static int write_raw(const char *path, const float *v, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], 4);
        for (int b = 0; b < 4; b++)
            fputc((int)((bits >> (8 * b)) & 0xff), f);
    }
    return fclose(f) == 0;
}

static int numpy_agrees(const char *npy, const float *v, int h, int w) {
    char raw[512], script[512], cmd[2048];
    in_dir(raw, sizeof raw, "expected.raw");
    in_dir(script, sizeof script, "check_npy.py");
    FILE *f = fopen(script, "w");
    if (!f || fputs(npy_check_py, f) < 0 || fclose(f) != 0)
        return 0;
    if (!write_raw(raw, v, (size_t)h * (size_t)w))
        return 0;
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' '%s' %d %d", python(), script, npy, raw, h, w);
    int rc = system(cmd);
    return rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

/* Values that a byte-swapping or float-formatting bug would change. */
static float tricky_value(size_t i) {
    static const float specials[] = {0.0f,    -0.0f,    1.0f,     -1.0f,     FLT_MIN, 1e-45f,
                                     FLT_MAX, -FLT_MAX, INFINITY, -INFINITY, 0.1f,    -3.75f};
    size_t n = sizeof specials / sizeof specials[0];
    if (i % 17 == 5)
        return NAN;
    if (i < n)
        return specials[i];
    return (float)((double)(i * 2654435761u % 1000003u) / 7919.0 - 60.0);
}

static void test_npy_shape(int h, int w) {
    size_t n = (size_t)h * (size_t)w;
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = tricky_value(i);
    char path[512], what[128];
    in_dir(path, sizeof path, "map.npy");
    evmap_error err = {0};
    evmap_status st = evmap_write_npy(path, v, h, w, &err);
    snprintf(what, sizeof what, "npy %d x %d written", h, w);
    check(st == EVMAP_OK, what);
    snprintf(what, sizeof what, "npy %d x %d loads in NumPy with the same values", h, w);
    check(st == EVMAP_OK && numpy_agrees(path, v, h, w), what);
    free(v);
}

static void test_npy(void) {
    test_npy_shape(1, 1);
    test_npy_shape(3, 5);
    test_npy_shape(28, 28);
    test_npy_shape(224, 224);
    test_npy_shape(12345, 1); /* longer shape text: a different header padding */
    test_npy_shape(1, 100000);
    check(count_temporaries(dir) == 0, "npy leaves no temporary files");

    evmap_error err = {0};
    float v[4] = {1, 2, 3, 4};
    char path[512], missing[512];
    in_dir(missing, sizeof missing, "no_such_folder");
    snprintf(path, sizeof path, "%s/map.npy", missing);
    check(evmap_write_npy(path, v, 2, 2, &err) == EVMAP_ERR_IO && err.status == EVMAP_ERR_IO,
          "npy into a missing folder fails with EVMAP_ERR_IO");
    check(one_line(&err) && strstr(err.message, path),
          "npy I/O message is one line naming the path");
    check(!file_exists(missing), "npy into a missing folder creates nothing");

    /* A folder where the file should go: the temporary is created, the
     * rename fails, and the temporary must be removed. */
    char folder[512], inner[512];
    in_dir(folder, sizeof folder, "taken.npy");
    mkdir(folder, 0755);
    snprintf(inner, sizeof inner, "%s/keep", folder);
    mkdir(inner, 0755);
    check(evmap_write_npy(folder, v, 2, 2, &err) == EVMAP_ERR_IO,
          "npy over a folder fails with EVMAP_ERR_IO");
    check(count_temporaries(dir) == 0, "npy failure leaves no temporary file");

    in_dir(path, sizeof path, "bad.npy");
    check(evmap_write_npy(path, v, 0, 2, &err) == EVMAP_ERR_INVALID_ARGUMENT && one_line(&err),
          "npy of height 0 is an invalid argument");
    check(evmap_write_npy(path, NULL, 2, 2, &err) == EVMAP_ERR_INVALID_ARGUMENT,
          "npy of NULL values is an invalid argument");
    check(evmap_write_npy(NULL, v, 2, 2, &err) == EVMAP_ERR_INVALID_ARGUMENT,
          "npy with no path is an invalid argument");
    check(!file_exists(path), "invalid npy arguments write nothing");

    /* Replacing an existing file with a smaller one. */
    in_dir(path, sizeof path, "map.npy");
    check(evmap_write_npy(path, v, 2, 2, &err) == EVMAP_OK && numpy_agrees(path, v, 2, 2),
          "npy replaces an existing file");
}

/* ------------------------------------------------------------------- PNG */

typedef struct picture {
    int width, height;
    uint8_t *rgb;
} picture;

static int read_png(const char *path, picture *p) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    p->rgb = NULL;
    if (!png_image_begin_read_from_file(&img, path))
        return 0;
    img.format = PNG_FORMAT_RGB;
    p->width = (int)img.width;
    p->height = (int)img.height;
    p->rgb = malloc(PNG_IMAGE_SIZE(img));
    if (!p->rgb || !png_image_finish_read(&img, NULL, p->rgb, 0, NULL)) {
        png_image_free(&img);
        free(p->rgb);
        p->rgb = NULL;
        return 0;
    }
    return 1;
}

static const uint8_t *px(const picture *p, int x, int y) {
    return p->rgb + ((size_t)y * (size_t)p->width + (size_t)x) * 3;
}

/* The file itself is 8-bit RGB (colour type 2), not something libpng converted. */
static int is_rgb8(const char *path) {
    uint8_t h[26];
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    return n == sizeof h && h[24] == 8 && h[25] == 2;
}

static evmap_image *gray_image(int h, int w, float value) {
    evmap_image *img = calloc(1, sizeof *img);
    img->width = w;
    img->height = h;
    img->channels = 1;
    img->pixels = malloc((size_t)w * (size_t)h * sizeof(float));
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++)
        img->pixels[i] = value;
    return img;
}

static void free_image(evmap_image *img) {
    if (img)
        free(img->pixels);
    free(img);
}

/* Renders and reads back; 0 when either fails. */
static int render(const char *name, const evmap_image *bg, const float *map, int h, int w,
                  const evmap_render_options *o, float *vmax, picture *p) {
    char path[512];
    evmap_error err = {0};
    in_dir(path, sizeof path, name);
    if (evmap_render_png(path, bg, map, h, w, o, vmax, &err) != EVMAP_OK) {
        printf("render %s: %s\n", name, err.message);
        return 0;
    }
    return is_rgb8(path) && read_png(path, p);
}

static void check_size(int h, int w, const evmap_render_options *o, int want_h, int want_w,
                       const char *what) {
    evmap_image *bg = gray_image(h, w, 0.5f);
    float *map = calloc((size_t)h * (size_t)w, sizeof *map);
    picture p = {0};
    int ok = render("size.png", bg, map, h, w, o, NULL, &p);
    check(ok && p.height == want_h && p.width == want_w, what);
    if (ok && (p.height != want_h || p.width != want_w))
        printf("  got %d x %d, want %d x %d (width x height)\n", p.width, p.height, want_w, want_h);
    free(p.rgb);
    free(map);
    free_image(bg);
}

static void test_sizes(void) {
    evmap_render_options o;
    evmap_render_options_init(&o);
    check_size(28, 28, &o, 280, 280, "auto scale: 28 x 28 becomes 280 x 280");
    check_size(20, 30, &o, 260, 390, "auto scale uses the shorter side (20 -> 13x)");
    check_size(1, 1, &o, 16, 16, "auto scale is capped at 16");
    check_size(300, 400, &o, 300, 400, "auto scale keeps large maps at 1x");
    check_size(256, 1000, &o, 256, 1000, "auto scale: a 256 side is enough");
    check_size(255, 255, &o, 510, 510, "auto scale: 255 needs 2x");
    o.scale = 3;
    check_size(10, 20, &o, 30, 60, "explicit scale 3");
    check_size(28, 28, NULL, 280, 280, "NULL options mean the defaults");
}

/* Two renders of the same map, one with extras: the overlay must be the same. */
static int same_region(const picture *a, int ax, const picture *b, int bx, int w, int h) {
    for (int y = 0; y < h; y++)
        if (memcmp(px(a, ax, y), px(b, bx, y), (size_t)w * 3) != 0)
            return 0;
    return 1;
}

static void test_layouts(void) {
    int h = 10, w = 20;
    evmap_image *bg = gray_image(h, w, 0.2f);
    float map[200];
    for (int i = 0; i < h * w; i++)
        map[i] = (float)(i % w - 10) / 10.0f;
    evmap_render_options o;
    evmap_render_options_init(&o);
    o.scale = 3;
    picture plain = {0}, sbs = {0}, bar = {0}, small = {0};
    int ok = render("plain.png", bg, map, h, w, &o, NULL, &plain);
    o.side_by_side = 1;
    ok = render("sbs.png", bg, map, h, w, &o, NULL, &sbs) && ok;
    int gap = ok ? sbs.width - 2 * plain.width : -1;
    check(ok && sbs.height == 30 && gap >= 1 && gap <= 16,
          "side by side: two panels and a small gap");
    int white = ok;
    for (int y = 0; ok && y < sbs.height; y++)
        for (int x = plain.width; x < plain.width + gap; x++)
            white = white && !memcmp(px(&sbs, x, y), "\xff\xff\xff", 3);
    check(white, "side by side: the gap is white");
    check(ok && same_region(&plain, 0, &sbs, plain.width + gap, plain.width, 30),
          "side by side: the right panel is the plain overlay");
    check(ok && !memcmp(px(&sbs, 0, 0), "\x33\x33\x33", 3),
          "side by side: the left panel is the image itself (0.2 -> 51)");

    o.side_by_side = 0;
    o.scale = 0;
    picture auto_plain = {0};
    ok = render("auto.png", bg, map, h, w, &o, NULL, &auto_plain);
    o.colorbar = 1;
    ok = render("bar.png", bg, map, h, w, &o, NULL, &bar) && ok;
    check(ok && bar.height == auto_plain.height && bar.width > auto_plain.width,
          "colour bar: same height, wider");
    check(ok && same_region(&auto_plain, 0, &bar, 0, auto_plain.width, auto_plain.height),
          "colour bar: the overlay is unchanged");

    /* A picture too short for three labels grows; the map stays at the top. */
    o.scale = 1;
    o.side_by_side = 1;
    ok = render("small.png", bg, map, h, w, &o, NULL, &small);
    check(ok && small.height > h && small.width > 2 * w,
          "colour bar on a tiny map fits its labels");
    o.colorbar = 0;
    picture tiny = {0};
    ok = render("tiny.png", bg, map, h, w, &o, NULL, &tiny) && ok;
    check(ok && same_region(&tiny, 0, &small, 0, tiny.width, h),
          "colour bar on a tiny map keeps the panels unchanged");
    free(plain.rgb);
    free(sbs.rgb);
    free(bar.rgb);
    free(small.rgb);
    free(tiny.rgb);
    free(auto_plain.rgb);
    free_image(bg);
}

/* ------------------------------------------------------- colour checks */

#define SCALE 4

/* The colour of cell x of a one-row map, after checking that the whole
 * scale × scale block has it (nearest-neighbour upscaling). */
static const uint8_t *cell(const picture *p, int x, int *uniform) {
    const uint8_t *c = px(p, x * SCALE, 0);
    for (int dy = 0; dy < SCALE; dy++)
        for (int dx = 0; dx < SCALE; dx++)
            if (memcmp(px(p, x * SCALE + dx, dy), c, 3) != 0)
                *uniform = 0;
    return c;
}

static int is_gray(const uint8_t *c) {
    return c[0] == c[1] && c[1] == c[2];
}
static int red_dominant(const uint8_t *c) {
    return c[0] > c[1] + 20 && c[0] > c[2] + 20;
}
static int blue_dominant(const uint8_t *c) {
    return c[2] > c[0] + 20 && c[2] > c[1] + 20;
}
static int mirrored(const uint8_t *a, const uint8_t *b) {
    return a[0] == b[2] && a[1] == b[1] && a[2] == b[0];
}

/* Renders a 1 × n map over a uniform gray at SCALE; 0 on failure. */
static int render_row(const char *name, const float *map, int n, float vmax, float *vmax_used,
                      picture *p) {
    evmap_image *bg = gray_image(1, n, 0.6f);
    evmap_render_options o;
    evmap_render_options_init(&o);
    o.scale = SCALE;
    o.vmax = vmax;
    int ok = render(name, bg, map, 1, n, &o, vmax_used, p);
    free_image(bg);
    return ok && p->width == n * SCALE && p->height == SCALE;
}

static void test_colours(void) {
    float map[] = {0.5f,  -0.5f,    0.0f,      NAN,   1.0f,   -1.0f, 2.0f,
                   -2.0f, INFINITY, -INFINITY, 0.25f, -0.25f, 0.05f, -0.0f};
    int n = (int)(sizeof map / sizeof map[0]);
    picture p = {0};
    float used = 0;
    int ok = render_row("colours.png", map, n, 1.0f, &used, &p);
    check(ok && used == 1.0f, "explicit vmax is the one used");
    if (!ok) {
        free(p.rgb);
        return;
    }
    int uniform = 1;
    const uint8_t *c[14];
    for (int i = 0; i < n; i++)
        c[i] = cell(&p, i, &uniform);
    check(uniform, "each map cell is one uniform block");
    check(red_dominant(c[0]) && red_dominant(c[4]) && red_dominant(c[10]),
          "positive cells are red-dominant");
    check(blue_dominant(c[1]) && blue_dominant(c[5]) && blue_dominant(c[11]),
          "negative cells are blue-dominant");
    check(is_gray(c[2]) && is_gray(c[3]) && is_gray(c[13]), "zero, NaN and -0 cells are gray");
    check(!memcmp(c[2], c[3], 3) && !memcmp(c[2], c[13], 3), "NaN shows the same gray as zero");
    check(mirrored(c[0], c[1]) && mirrored(c[4], c[5]) && mirrored(c[10], c[11]),
          "symmetric values give mirrored colours");
    check(!memcmp(c[6], c[4], 3) && !memcmp(c[7], c[5], 3), "values beyond vmax saturate");
    check(!memcmp(c[8], c[4], 3) && !memcmp(c[9], c[5], 3), "infinities saturate");
    /* Stronger evidence moves further from the gray. */
    int d05 = abs(c[12][0] - c[2][0]) + abs(c[12][2] - c[2][2]);
    int d25 = abs(c[10][0] - c[10][2]), d50 = abs(c[0][0] - c[0][2]);
    int d100 = abs(c[4][0] - c[4][2]);
    check(d05 < 20 && d25 < d50 && d50 < d100, "colour strength grows with |value|");
    free(p.rgb);
}

static void test_vmax(void) {
    float auto_map[] = {0.5f, -3.0f, NAN, INFINITY, 2.0f};
    picture a = {0}, b = {0};
    float used = 0;
    int ok = render_row("auto_vmax.png", auto_map, 5, 0.0f, &used, &a);
    check(ok && used == 3.0f, "automatic vmax is the largest finite |value|");
    free(a.rgb);

    float zeros[] = {0.0f, 0.0f, 0.0f}, nans[] = {NAN, NAN};
    used = 0;
    ok = render_row("zeros.png", zeros, 3, 0.0f, &used, &a);
    check(ok && used == 1.0f && is_gray(px(&a, 0, 0)), "an all-zero map uses vmax 1");
    free(a.rgb);
    used = 0;
    ok = render_row("nans.png", nans, 2, -1.0f, &used, &a);
    check(ok && used == 1.0f && is_gray(px(&a, 0, 0)), "an all-NaN map uses vmax 1");
    free(a.rgb);

    /* The same value / vmax gives the same colour; 2 × vmax saturates. */
    float half[] = {0.5f, 2.0f}, one[] = {1.0f, 1.0f};
    ok = render_row("half.png", half, 2, 1.0f, NULL, &a);
    ok = render_row("one.png", one, 2, 2.0f, NULL, &b) && ok;
    check(ok && !memcmp(px(&a, 0, 0), px(&b, 0, 0), 3), "vmax sets the scale (0.5/1 == 1/2)");
    check(ok && memcmp(px(&a, SCALE, 0), px(&b, SCALE, 0), 3) != 0,
          "a value below vmax is not saturated (2/1 differs from 1/2)");
    free(a.rgb);
    free(b.rgb);
    float sat[] = {2.0f, 4.0f};
    ok = render_row("sat.png", sat, 2, 2.0f, NULL, &a);
    check(ok && !memcmp(px(&a, 0, 0), px(&a, SCALE, 0), 3), "2 x vmax looks like vmax");
    free(a.rgb);
}

/* A coloured background: the overlay is gray where the map is 0; the left
 * panel of side by side keeps the colour. */
static void test_rgb_background(void) {
    evmap_image *bg = gray_image(1, 2, 0.0f);
    free(bg->pixels);
    bg->channels = 3;
    bg->pixels = calloc(6, sizeof(float));
    bg->pixels[0] = 1.0f;     /* pixel 0 red */
    bg->pixels[2 + 1] = 1.0f; /* pixel 1 green */
    float map[2] = {0.0f, NAN};
    evmap_render_options o;
    evmap_render_options_init(&o);
    o.scale = SCALE;
    o.side_by_side = 1;
    picture p = {0};
    int ok = render("rgb.png", bg, map, 1, 2, &o, NULL, &p);
    int right = 2 * SCALE + (ok ? p.width - 4 * SCALE : 0);
    check(ok && !memcmp(px(&p, 0, 0), "\xff\x00\x00", 3) &&
              !memcmp(px(&p, SCALE, 0), "\x00\xff\x00", 3),
          "side by side shows the RGB image in colour");
    check(ok && is_gray(px(&p, right, 0)) && is_gray(px(&p, right + SCALE, 0)),
          "the overlay of an RGB image is gray where the map is 0 or NaN");
    check(ok && px(&p, right + SCALE, 0)[0] > px(&p, right, 0)[0],
          "gray follows luminance (green is brighter than red)");
    free(p.rgb);
    free_image(bg);
}

static void test_render_errors(void) {
    evmap_image *bg = gray_image(4, 4, 0.5f);
    float map[16] = {0};
    evmap_error err = {0};
    char path[512], missing[512];
    in_dir(missing, sizeof missing, "missing_folder");
    snprintf(path, sizeof path, "%s/out.png", missing);
    check(evmap_render_png(path, bg, map, 4, 4, NULL, NULL, &err) == EVMAP_ERR_IO &&
              err.status == EVMAP_ERR_IO,
          "png into a missing folder fails with EVMAP_ERR_IO");
    check(one_line(&err) && strstr(err.message, path),
          "png I/O message is one line naming the path");
    check(!file_exists(missing) && count_temporaries(dir) == 0,
          "png into a missing folder leaves nothing behind");

    char folder[512], inner[512];
    in_dir(folder, sizeof folder, "taken.png");
    mkdir(folder, 0755);
    snprintf(inner, sizeof inner, "%s/keep", folder);
    mkdir(inner, 0755);
    check(evmap_render_png(folder, bg, map, 4, 4, NULL, NULL, &err) == EVMAP_ERR_IO,
          "png over a folder fails with EVMAP_ERR_IO");
    check(count_temporaries(dir) == 0, "png failure after the temporary was made removes it");

    in_dir(path, sizeof path, "bad.png");
    check(evmap_render_png(path, bg, map, 4, 5, NULL, NULL, &err) == EVMAP_ERR_INVALID_ARGUMENT &&
              one_line(&err),
          "background size must match the map");
    evmap_render_options o;
    evmap_render_options_init(&o);
    o.scale = 17;
    check(evmap_render_png(path, bg, map, 4, 4, &o, NULL, &err) == EVMAP_ERR_INVALID_ARGUMENT,
          "scale above 16 is an invalid argument");
    o.scale = -1;
    check(evmap_render_png(path, bg, map, 4, 4, &o, NULL, &err) == EVMAP_ERR_INVALID_ARGUMENT,
          "negative scale is an invalid argument");
    o.scale = 0;
    o.vmax = NAN;
    check(evmap_render_png(path, bg, map, 4, 4, &o, NULL, &err) == EVMAP_ERR_INVALID_ARGUMENT,
          "NaN vmax is an invalid argument");
    check(evmap_render_png(path, NULL, map, 4, 4, NULL, NULL, &err) == EVMAP_ERR_INVALID_ARGUMENT,
          "a missing background is an invalid argument");
    check(evmap_render_png(path, bg, NULL, 4, 4, NULL, NULL, &err) == EVMAP_ERR_INVALID_ARGUMENT,
          "a missing map is an invalid argument");
    bg->channels = 2;
    check(evmap_render_png(path, bg, map, 4, 4, NULL, NULL, &err) == EVMAP_ERR_INVALID_ARGUMENT,
          "a 2-channel background is an invalid argument");
    check(!file_exists(path), "invalid arguments write nothing");

    /* Replacing an existing picture leaves exactly the new one. */
    bg->channels = 1;
    in_dir(path, sizeof path, "replace.png");
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("old", f);
        fclose(f);
    }
    picture p = {0};
    check(evmap_render_png(path, bg, map, 4, 4, NULL, NULL, &err) == EVMAP_OK &&
              read_png(path, &p) && p.width == 64 && count_temporaries(dir) == 0,
          "png replaces an existing file");
    free(p.rgb);
    free_image(bg);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/evmap_test_render.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        printf("cannot create a scratch folder under %s\n0 passed, 1 failed\n", dir);
        return 1;
    }
    test_npy();
    test_sizes();
    test_layouts();
    test_colours();
    test_vmax();
    test_rgb_background();
    test_render_errors();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("note: could not remove %s\n", dir);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
