/*
 * Integrated Gradients (Sundararajan et al. 2017): (x − x0) times the
 * gradient integrated along the straight path from a baseline x0 to x,
 * summed over channels. By the fundamental theorem of calculus the map sums
 * to f(x) − f(x0) up to the quadrature's error. The integral uses m-point
 * Gauss–Legendre quadrature (Captum's default too): on ReLU networks, whose
 * gradient jumps along the path, it met the 1 % completeness bar at 200
 * steps where the midpoint and trapezoid rules missed it (1.0–1.5 % on the
 * Fashion-MNIST demo images). The path images are batched; one forward pass
 * per batch serves every target.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/blur.h"
#include "base/error.h"
#include "gradient_internal.h"

static evmap_status make_baseline(const grad_run *r, evmap_baseline kind, const float *x, float *x0,
                                  evmap_error *err) {
    size_t plane = (size_t)r->h * (size_t)r->w;
    if (kind == EVMAP_BASELINE_ZERO) {
        memset(x0, 0, sizeof(float) * r->image_floats);
    } else if (kind == EVMAP_BASELINE_MEAN) {
        for (int ch = 0; ch < r->c; ch++) {
            double sum = 0;
            for (size_t i = 0; i < plane; i++)
                sum += x[(size_t)ch * plane + i];
            for (size_t i = 0; i < plane; i++)
                x0[(size_t)ch * plane + i] = (float)(sum / (double)plane);
        }
    } else {
        return evm_blur_image(x, r->c, r->h, r->w, x0, err);
    }
    return EVMAP_OK;
}

/* Nodes and weights of m-point Gauss–Legendre quadrature on [0, 1]: the
 * roots of the Legendre polynomial P_m by Newton's method from the usual
 * cosine guesses, weights 2 / ((1 − t²) P_m'(t)²), halved for [0, 1]. */
static void gauss_legendre(int m, double *nodes, double *weights) {
    for (int i = 0; i < (m + 1) / 2; i++) {
        double t = cos(M_PI * (i + 0.75) / (m + 0.5)), dp = 1;
        for (int iter = 0; iter < 100; iter++) {
            double p0 = 1, p1 = t; /* P_0, P_1; recurrence up to P_m */
            for (int k = 2; k <= m; k++) {
                double pk = ((2 * k - 1) * t * p1 - (k - 1) * p0) / k;
                p0 = p1;
                p1 = pk;
            }
            dp = m * (t * p1 - p0) / (t * t - 1);
            double step = p1 / dp;
            t -= step;
            if (fabs(step) < 1e-15)
                break;
        }
        double w = 2 / ((1 - t * t) * dp * dp);
        nodes[i] = (1 - t) / 2;
        nodes[m - 1 - i] = (1 + t) / 2;
        weights[i] = weights[m - 1 - i] = w / 2;
    }
}

/* Fills the batch with path images for steps [first, first + count). */
static void fill_path(grad_run *r, const float *x, const float *x0, int first, int count,
                      const double *alphas) {
    float *in = grad_run_input(r);
    for (int b = 0; b < count; b++) {
        double alpha = alphas[first + b];
        float *row = in + (size_t)b * r->image_floats;
        for (size_t i = 0; i < r->image_floats; i++)
            row[i] = (float)(x0[i] + alpha * ((double)x[i] - x0[i]));
    }
    memset(in + (size_t)count * r->image_floats, 0,
           sizeof(float) * r->image_floats * (size_t)(r->batch - count));
}

static void add_rows(const grad_run *r, const float *g, int count, const double *weights,
                     double *sum) {
    for (int b = 0; b < count; b++)
        for (size_t i = 0; i < r->image_floats; i++)
            sum[i] += weights[b] * g[(size_t)b * r->image_floats + i];
}

evmap_status grad_integrated_maps(grad_run *r, const evmap_gradient_options *o, const float *input,
                                  float *maps, evmap_error *err) {
    size_t plane = (size_t)r->h * (size_t)r->w, n = r->image_floats;
    int steps = o->steps;
    size_t sums_count; /* n_targets comes from the caller unbounded */
    if (!evm_mul_size(n, (size_t)r->n_targets, &sums_count))
        return evm_fail(err, EVMAP_ERR_TOO_LARGE, "%d targets are too many", r->n_targets);
    float *x0 = malloc(sizeof(float) * n);
    double *sums = calloc(sums_count, sizeof(double));
    double *alphas = malloc(sizeof(double) * 2 * (size_t)steps), *weights = alphas + steps;
    evmap_status st = x0 && sums && alphas
                          ? make_baseline(r, o->baseline, input, x0, err)
                          : evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
    if (st == EVMAP_OK)
        gauss_legendre(steps, alphas, weights);
    r->total = (size_t)r->n_targets * (size_t)((steps + r->batch - 1) / r->batch);
    for (int first = 0; st == EVMAP_OK && first < steps; first += r->batch) {
        int count = steps - first < r->batch ? steps - first : r->batch;
        st = grad_run_resize(r, count, err);
        if (st == EVMAP_OK) {
            fill_path(r, input, x0, first, count, alphas);
            st = grad_run_forward(r, err);
        }
        for (int t = 0; st == EVMAP_OK && t < r->n_targets; t++) {
            st = grad_run_backward(r, t, count, NULL, err);
            if (st == EVMAP_OK)
                add_rows(r, evm_f32(grad_run_result(r)), count, weights + first,
                         sums + (size_t)t * n);
        }
    }
    for (int t = 0; st == EVMAP_OK && t < r->n_targets; t++)
        for (size_t i = 0; i < plane; i++) {
            double v = 0;
            for (int ch = 0; ch < r->c; ch++) {
                size_t k = (size_t)ch * plane + i;
                v += ((double)input[k] - x0[k]) * sums[(size_t)t * n + k];
            }
            maps[(size_t)t * plane + i] = (float)v;
        }
    free(x0);
    free(sums);
    free(alphas);
    return st;
}
