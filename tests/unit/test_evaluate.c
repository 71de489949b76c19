/*
 * Evidence-map metrics (src/evaluate/evaluate.c) against hand computations:
 *  - pixel order: descending values, raster order among ties, NaN last;
 *  - step pixel counts and the perturbed images of deletion and insertion;
 *  - trapezoid AUC of small curves worked out by hand;
 *  - AOPC regions (tiling with cut edge tiles, ranking by sums, NaN-only
 *    regions last) and the AOPC average;
 *  - fill images (zero, channel means, a blur that keeps constants and sums);
 *  - uniform noise bounds and reproducibility;
 *  - the normalised map distance of max-sensitivity;
 *  - line plots: size of the PNG, legend colours present, bad arguments.
 */
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evmap.h"

static int passed, failed;

static void check(int ok, const char *what) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL: %s\n", what);
    }
}

static int same_ints(const int *a, const int *b, int n) {
    for (int i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

static int near(double a, double b, double tol) {
    return fabs(a - b) <= tol;
}

static void test_pixel_order(void) {
    evmap_error err = {0};
    /* 2 × 3 map: 0.5 twice (raster order kept), NaN last, negative before NaN. */
    const float map[6] = {0.5f, NAN, 2.0f, 0.5f, -1.0f, 3.0f};
    const int want[6] = {5, 2, 0, 3, 4, 1};
    int order[6];
    check(evmap_eval_pixel_order(map, 2, 3, order, &err) == EVMAP_OK, "pixel order runs");
    check(same_ints(order, want, 6), "pixel order: descending, ties in raster order, NaN last");
    const float flat[4] = {0, 0, 0, 0};
    const int raster[4] = {0, 1, 2, 3};
    evmap_eval_pixel_order(flat, 2, 2, order, &err);
    check(same_ints(order, raster, 4), "a constant map keeps raster order");
    check(evmap_eval_pixel_order(NULL, 2, 2, order, &err) == EVMAP_ERR_INVALID_ARGUMENT &&
              err.message[0],
          "a NULL map is refused with a message");
}

static void test_steps_and_replace(void) {
    check(evmap_eval_step_pixels(784, 50, 0) == 0, "step 0 changes nothing");
    check(evmap_eval_step_pixels(784, 50, 1) == 15, "step 1 of 50 over 784 pixels: 15");
    check(evmap_eval_step_pixels(784, 50, 25) == 392, "step 25 of 50: half");
    check(evmap_eval_step_pixels(784, 50, 50) == 784, "the last step changes all");
    check(evmap_eval_step_pixels(10, 3, 2) == 6, "floor(2 * 10 / 3) = 6");

    /* Two channels of 2 × 2; remove pixels 3 then 0 from the image. */
    const float image[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const float fill[8] = {-1, -2, -3, -4, -5, -6, -7, -8};
    const int order[4] = {3, 0, 1, 2};
    float out[8];
    evmap_eval_replace(image, fill, 2, 2, 2, order, 2, out);
    const float want[8] = {-1, 2, 3, -4, -5, 6, 7, -8};
    check(!memcmp(out, want, sizeof want), "deletion replaces the first pixels in every channel");
    evmap_eval_replace(fill, image, 2, 2, 2, order, 1, out);
    const float insert[8] = {-1, -2, -3, 4, -5, -6, -7, 8};
    check(!memcmp(out, insert, sizeof insert), "insertion reveals the first pixels");
    evmap_eval_replace(image, fill, 2, 2, 2, order, 0, out);
    check(!memcmp(out, image, sizeof image), "count 0 copies the image");
}

static void test_auc(void) {
    const double x[3] = {0, 0.5, 1}, y[3] = {1, 0.5, 0};
    check(near(evmap_eval_auc(x, y, 3), 0.5, 1e-15), "AUC of a straight line from 1 to 0: 0.5");
    const double x2[4] = {0, 0.25, 0.5, 1}, y2[4] = {1, 0, 0, 0};
    check(near(evmap_eval_auc(x2, y2, 4), 0.125, 1e-15), "AUC of a fast drop: 0.125");
    const double x3[3] = {0, 0.1, 1}, y3[3] = {0.2, 0.4, 1.0};
    /* 0.1 * 0.3 + 0.9 * 0.7 = 0.03 + 0.63 */
    check(near(evmap_eval_auc(x3, y3, 3), 0.66, 1e-12), "AUC with unequal steps: 0.66");
    check(evmap_eval_auc(x3, y3, 1) == 0, "one point has no area");
}

static void test_regions(void) {
    evmap_error err = {0};
    check(evmap_eval_region_count(28, 28, 4) == 49, "28x28 in 4x4 regions: 49");
    check(evmap_eval_region_count(5, 3, 2) == 6, "5x3 in 2x2 regions: 3 rows x 2 columns");
    /* 3 × 3 map, k = 2: regions (raster) A = {0,1,3,4}, B = {2,5}, C = {6,7}, D = {8}. */
    const float map[9] = {1, 1, 5, 1, 1, 0, -1, -1, 2};
    int order[9];
    size_t end[4];
    check(evmap_eval_region_order(map, 3, 3, 2, order, end, &err) == EVMAP_OK, "regions run");
    /* Sums: A 4, B 5, C -2, D 2 -> B, A, D, C. */
    const int want[9] = {2, 5, 0, 1, 3, 4, 8, 6, 7};
    check(same_ints(order, want, 9), "regions ranked by summed evidence, pixels listed");
    check(end[0] == 2 && end[1] == 6 && end[2] == 7 && end[3] == 9, "region ends are cumulative");
    const float nan_region[4] = {NAN, -5, NAN, -6};
    int o2[4];
    size_t e2[4];
    evmap_eval_region_order(nan_region, 2, 2, 1, o2, e2, &err); /* 1x1 regions */
    const int want2[4] = {1, 3, 0, 2};
    check(same_ints(o2, want2, 4), "NaN-only regions come last");
    check(evmap_eval_region_order(map, 3, 3, 0, order, end, &err) == EVMAP_ERR_INVALID_ARGUMENT,
          "region size 0 is refused");
    const double p[3] = {0.5, 0.25, 0.0};
    check(near(evmap_eval_aopc(0.75, p, 3), (0.25 + 0.5 + 0.75) / 3, 1e-15),
          "AOPC averages the drops over L regions");
    check(isnan(evmap_eval_aopc(0.75, p, 0)), "AOPC of no regions is NaN");
}

static void test_fill(void) {
    evmap_error err = {0};
    float image[2 * 4 * 5], out[2 * 4 * 5];
    for (int i = 0; i < 40; i++)
        image[i] = (float)(i % 7) - (i >= 20 ? 10.0f : 0.0f);
    evmap_eval_fill(image, 2, 4, 5, EVMAP_BASELINE_ZERO, out, &err);
    int zero = 1;
    for (int i = 0; i < 40; i++)
        zero &= out[i] == 0;
    check(zero, "zero fill");
    evmap_eval_fill(image, 2, 4, 5, EVMAP_BASELINE_MEAN, out, &err);
    double m0 = 0, m1 = 0;
    for (int i = 0; i < 20; i++) {
        m0 += image[i] / 20.0;
        m1 += image[20 + i] / 20.0;
    }
    check(near(out[0], m0, 1e-5) && near(out[19], m0, 1e-5) && near(out[20], m1, 1e-5) &&
              near(out[39], m1, 1e-5),
          "mean fill: each channel's mean");
    float flat[3 * 6 * 6], blurred[3 * 6 * 6];
    for (int i = 0; i < 108; i++)
        flat[i] = 0.25f;
    check(evmap_eval_fill(flat, 3, 6, 6, EVMAP_BASELINE_BLUR, blurred, &err) == EVMAP_OK,
          "blur fill runs");
    int constant = 1;
    for (int i = 0; i < 108; i++)
        constant &= near(blurred[i], 0.25, 1e-6);
    check(constant, "blurring a constant image keeps it");
    /* A single bright pixel in the middle of a large image spreads out but
     * keeps its total (the kernel is normalised; edges are far away). */
    static float dot[41 * 41], spread[41 * 41];
    dot[20 * 41 + 20] = 1;
    evmap_eval_fill(dot, 1, 41, 41, EVMAP_BASELINE_BLUR, spread, &err);
    double total = 0;
    for (int i = 0; i < 41 * 41; i++)
        total += spread[i];
    check(near(total, 1.0, 1e-5) && spread[20 * 41 + 20] < 0.1f &&
              near(spread[20 * 41 + 21], spread[21 * 41 + 20], 1e-7),
          "blur: mass kept, peak spread, symmetric");
}

static void test_noise_and_distance(void) {
    float x[1000], a[1000], b[1000];
    for (int i = 0; i < 1000; i++)
        x[i] = (float)i / 1000.0f;
    evmap_eval_uniform_noise(x, 1000, 0.02f, 7, a);
    evmap_eval_uniform_noise(x, 1000, 0.02f, 7, b);
    double lo = 1, hi = -1, mean = 0;
    for (int i = 0; i < 1000; i++) {
        double d = (double)a[i] - (double)x[i];
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
        mean += d / 1000;
    }
    check(!memcmp(a, b, sizeof a), "noise is reproducible for a seed");
    check(lo >= -0.0200001 && hi <= 0.0200001 && lo < -0.018 && hi > 0.018,
          "noise fills [-r, r] and stays inside");
    check(fabs(mean) < 0.002, "noise has mean about 0");
    evmap_eval_uniform_noise(x, 1000, 0.02f, 8, b);
    check(memcmp(a, b, sizeof a) != 0, "another seed, other noise");

    const float m[4] = {3, 4, 0, 0}, scaled[4] = {6, 8, 0, 0}, other[4] = {0, 0, 3, 4};
    check(near(evmap_eval_map_distance(m, scaled, 4), 0, 1e-12), "scaling a map changes nothing");
    check(near(evmap_eval_map_distance(m, other, 4), sqrt(2.0), 1e-12),
          "orthogonal maps are sqrt(2) apart");
    const float neg[4] = {-3, -4, 0, 0}, with_nan[4] = {3, 4, NAN, 0}, zero[4] = {0, 0, 0, 0};
    check(near(evmap_eval_map_distance(m, neg, 4), 2, 1e-12), "opposite maps are 2 apart");
    check(near(evmap_eval_map_distance(m, with_nan, 4), 0, 1e-12), "NaN counts as 0");
    check(isnan(evmap_eval_map_distance(zero, m, 4)), "an all-zero map has no direction: NaN");
    /* (3,4)/5 vs (4,3)/5: difference (-1, 1)/5. */
    const float swapped[4] = {4, 3, 0, 0};
    check(near(evmap_eval_map_distance(m, swapped, 4), sqrt(2.0) / 5, 1e-12),
          "distance of two unit vectors by hand");
}

/* Reads a PNG back: size and whether a colour occurs. */
static int png_has_colour(const char *path, int *w, int *h, const uint8_t rgb[3]) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path))
        return -1;
    img.format = PNG_FORMAT_RGB;
    uint8_t *buf = malloc(PNG_IMAGE_SIZE(img));
    if (!buf || !png_image_finish_read(&img, NULL, buf, 0, NULL)) {
        free(buf);
        return -1;
    }
    *w = (int)img.width;
    *h = (int)img.height;
    int found = 0;
    for (size_t i = 0; i < (size_t)img.width * img.height && !found; i++)
        found = !memcmp(buf + 3 * i, rgb, 3);
    free(buf);
    return found;
}

static void test_plot(void) {
    char dir[] = "/tmp/evmap-plot-XXXXXX", path[256];
    if (!mkdtemp(dir)) {
        check(0, "mkdtemp");
        return;
    }
    snprintf(path, sizeof path, "%s/curves.png", dir);
    double x[11], y1[11], y2[11];
    for (int i = 0; i <= 10; i++) {
        x[i] = i / 10.0;
        y1[i] = 1 - x[i] * x[i];
        y2[i] = i == 5 ? NAN : exp(-3 * x[i]);
    }
    evmap_plot_series s[2] = {{"pda (0.12)", x, y1, 11}, {"saliency", x, y2, 11}};
    evmap_plot p;
    evmap_plot_init(&p);
    p.title = "Deletion: Fashion-MNIST";
    p.x_label = "fraction of pixels deleted";
    p.y_label = "mean p(class)";
    p.y_min = 0;
    p.y_max = 1;
    p.series = s;
    p.n_series = 2;
    evmap_error err = {0};
    check(evmap_plot_png(path, &p, &err) == EVMAP_OK, "plot written");
    int w = 0, h = 0;
    const uint8_t first[3] = {0, 90, 200}, second[3] = {230, 110, 0};
    check(png_has_colour(path, &w, &h, first) == 1 && w == 760 && h == 440,
          "plot: default size, first series colour drawn");
    check(png_has_colour(path, &w, &h, second) == 1, "plot: second series colour drawn");
    p.width = 100;
    check(evmap_plot_png(path, &p, &err) == EVMAP_ERR_INVALID_ARGUMENT && err.message[0],
          "a too small plot is refused");
    p.width = 0;
    p.n_series = 33;
    check(evmap_plot_png(path, &p, &err) == EVMAP_ERR_INVALID_ARGUMENT, "too many series refused");
    p.n_series = 2;
    snprintf(path, sizeof path, "%s/missing/x.png", dir);
    check(evmap_plot_png(path, &p, &err) == EVMAP_ERR_IO, "a missing folder is an I/O error");
    if (getenv("EVMAP_KEEP_PLOT")) {
        printf("plot kept in %s\n", dir);
        return;
    }
    snprintf(path, sizeof path, "%s/curves.png", dir);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    test_pixel_order();
    test_steps_and_replace();
    test_auc();
    test_regions();
    test_fill();
    test_noise_and_distance();
    test_plot();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
