/*
 * Localisation metrics (src/evaluate/localisation.c) against hand
 * computations on maps small enough to count by eye:
 *  - pointing game: hit, miss, a miss turned into a hit by the tolerance
 *    (Euclidean: a diagonal neighbour is 1.41 px away), ties at the maximum
 *    counted in proportion, an all-NaN map;
 *  - relevance mass: positive evidence only, negative and NaN ignored;
 *  - relevance rank and top-q IoU, with ties straddling the cut;
 *  - a constant map scores exactly the uniform baselines;
 *  - bad arguments (empty mask, top fraction, tolerance) are refused.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

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

static int near(double a, double b) {
    return fabs(a - b) <= 1e-12;
}

/* 4 × 4 mask with the object at (row 1, col 1) and (row 1, col 2). */
static const unsigned char mask4[16] = {0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};

static evmap_localisation run(const float *map, const unsigned char *mask, int h, int w,
                              int tolerance, double q) {
    evmap_localisation r;
    memset(&r, 0, sizeof r);
    evmap_error err = {0};
    evmap_status st = evmap_eval_localisation(map, mask, h, w, tolerance, q, &r, &err);
    if (st != EVMAP_OK)
        printf("  error: %s\n", err.message);
    check(st == EVMAP_OK, "localisation runs");
    return r;
}

static void test_pointing(void) {
    float map[16] = {0};
    map[5] = 3; /* on the object */
    check(run(map, mask4, 4, 4, 0, 0.25).pointing == 1, "pointing: maximum on the object");
    map[5] = 0;
    map[15] = 3; /* (3, 3) */
    check(run(map, mask4, 4, 4, 0, 0.25).pointing == 0, "pointing: maximum off the object");
    /* (3, 3) is sqrt(2^2 + 1^2) = 2.24 px from (1, 2): a miss at 2, a hit at 3. */
    check(run(map, mask4, 4, 4, 2, 0.25).pointing == 0, "pointing: 2.24 px is beyond 2");
    check(run(map, mask4, 4, 4, 3, 0.25).pointing == 1, "pointing: 2.24 px is within 3");
    map[15] = 0;
    map[11] = 3; /* (2, 3): distance from (1, 2) is sqrt(2) */
    check(run(map, mask4, 4, 4, 1, 0.25).pointing == 0, "pointing: diagonal is 1.41 > 1");
    map[11] = 0;
    map[7] = 3; /* (1, 3): 1 px right of (1, 2) */
    check(run(map, mask4, 4, 4, 1, 0.25).pointing == 1, "pointing: 1 px within tolerance 1");
    /* Three tied maxima, one on the object: 1/3. */
    float tied[16] = {0};
    tied[5] = tied[0] = tied[15] = 2;
    check(near(run(tied, mask4, 4, 4, 0, 0.25).pointing, 1.0 / 3), "pointing: ties share");
    float nan_map[16];
    for (int i = 0; i < 16; i++)
        nan_map[i] = NAN;
    check(isnan(run(nan_map, mask4, 4, 4, 0, 0.25).pointing), "pointing: NaN map gives NaN");
}

static void test_mass(void) {
    /* Positive evidence: 3 + 1 inside, 2 + 2 outside; -5 and NaN ignored. */
    float map[16] = {0};
    map[5] = 3;
    map[6] = 1;
    map[0] = 2;
    map[15] = 2;
    map[9] = -5;
    map[10] = NAN;
    evmap_localisation r = run(map, mask4, 4, 4, 0, 0.25);
    check(near(r.mass, 4.0 / 8.0), "mass: 4 of 8");
    float negative[16];
    for (int i = 0; i < 16; i++)
        negative[i] = -1;
    check(isnan(run(negative, mask4, 4, 4, 0, 0.25).mass), "mass: no positive evidence is NaN");
}

static void test_rank_and_iou(void) {
    /* |mask| = 2. Map: 5 off the object, 4 on it, then 1 tied on 14 pixels of
     * which one is on the object. Top 2 = {5 (out), 4 (in)}: rank 1/2. */
    float map[16];
    for (int i = 0; i < 16; i++)
        map[i] = 1;
    map[0] = 5;
    map[5] = 4;
    evmap_localisation r = run(map, mask4, 4, 4, 0, 0.25);
    check(near(r.rank, 0.5), "rank: one of the top two");
    /* Top 25 % = 4 pixels: 5, 4 and 2 of the 14 tied, of which 1 of 14 is
     * inside: expected intersection 1 + 2/14; IoU = I / (4 + 2 - I). */
    double inter = 1 + 2.0 / 14;
    check(near(r.iou, inter / (6 - inter)), "iou: ties straddling the cut");
    /* 2 at pixels 0 (out) and 5 (in), 1 elsewhere: the top two hold one. */
    float two[16];
    for (int i = 0; i < 16; i++)
        two[i] = 1;
    two[0] = two[5] = 2;
    check(near(run(two, mask4, 4, 4, 0, 0.25).rank, 0.5), "rank: exact top two");
    /* Three tied at 2 ({0, 5, 6}) for two places: 2 · (2/3) inside. */
    two[6] = 2;
    check(near(run(two, mask4, 4, 4, 0, 0.25).rank, (2.0 * 2 / 3) / 2), "rank: tied cut shared");
    /* A perfect map: rank 1, IoU with q = |mask|/n is 1. */
    float perfect[16] = {0};
    perfect[5] = perfect[6] = 1;
    r = run(perfect, mask4, 4, 4, 0, 2.0 / 16);
    check(r.rank == 1 && near(r.iou, 1) && r.mass == 1 && r.pointing == 1, "perfect map");
}

static void test_uniform(void) {
    /* 6 × 5 with a 2 × 3 object: a constant map scores the baselines. */
    unsigned char mask[30] = {0};
    mask[6] = mask[7] = mask[8] = mask[11] = mask[12] = mask[13] = 1;
    float flat[30];
    for (int i = 0; i < 30; i++)
        flat[i] = 0.7f;
    evmap_localisation r = run(flat, mask, 6, 5, 1, 0.3);
    double a = 6.0 / 30, q = 9.0 / 30;
    check(near(r.area, a), "uniform: area");
    check(near(r.mass, a) && near(r.rank, a), "uniform: mass and rank equal the area");
    check(near(r.iou, r.iou_uniform) && near(r.iou_uniform, q * a / (q + a - q * a)),
          "uniform: IoU baseline");
    /* Dilation by 1 (4-neighbours): rows 0-3, cols 1-3 plus cols 0 and 4 on rows
     * 1-2: 3 + 5 + 5 + 3 = 16 pixels. */
    check(near(r.pointing_uniform, 16.0 / 30) && near(r.pointing, r.pointing_uniform),
          "uniform: pointing baseline is the dilated area");
}

static void test_bad_arguments(void) {
    evmap_localisation r;
    evmap_error err = {0};
    float map[16] = {0};
    unsigned char empty[16] = {0};
    check(evmap_eval_localisation(map, empty, 4, 4, 0, 0.1, &r, &err) ==
                  EVMAP_ERR_INVALID_ARGUMENT &&
              strstr(err.message, "no object pixel"),
          "empty mask refused");
    check(evmap_eval_localisation(map, mask4, 4, 4, 0, 0, &r, &err) == EVMAP_ERR_INVALID_ARGUMENT,
          "top fraction 0 refused");
    check(evmap_eval_localisation(map, mask4, 4, 4, 0, 1.5, &r, &err) == EVMAP_ERR_INVALID_ARGUMENT,
          "top fraction 1.5 refused");
    check(evmap_eval_localisation(map, mask4, 4, 4, -1, 0.1, &r, &err) ==
              EVMAP_ERR_INVALID_ARGUMENT,
          "negative tolerance refused");
    check(evmap_eval_localisation(NULL, mask4, 4, 4, 0, 0.1, &r, &err) ==
              EVMAP_ERR_INVALID_ARGUMENT,
          "NULL map refused");
}

int main(void) {
    test_pointing();
    test_mass();
    test_rank_and_iou();
    test_uniform();
    test_bad_arguments();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
