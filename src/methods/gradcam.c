/*
 * Grad-CAM (Selvaraju et al. 2017): for a layer's feature maps A_k (K × h ×
 * w), weights α_k = mean over positions of df/dA_k; the map is
 * ReLU(Σ_k α_k A_k), upsampled to the input bilinearly with PyTorch's
 * align_corners=False convention (pixel centres line up).
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "gradient_internal.h"

/* Source index and weight of the next cell along one axis. */
static void source_index(int dst, int in, int out, int *i0, int *i1, double *frac) {
    double s = ((double)dst + 0.5) * ((double)in / out) - 0.5;
    if (s < 0)
        s = 0;
    *i0 = (int)s;
    *i1 = *i0 + 1 < in ? *i0 + 1 : *i0;
    *frac = s - *i0;
}

static void upsample(const double *cam, int h, int w, float *map, int oh, int ow) {
    for (int y = 0; y < oh; y++) {
        int y0, y1;
        double fy;
        source_index(y, h, oh, &y0, &y1, &fy);
        for (int x = 0; x < ow; x++) {
            int x0, x1;
            double fx;
            source_index(x, w, ow, &x0, &x1, &fx);
            const double *r0 = cam + (size_t)y0 * (size_t)w, *r1 = cam + (size_t)y1 * (size_t)w;
            double top = r0[x0] * (1 - fx) + r0[x1] * fx;
            double bottom = r1[x0] * (1 - fx) + r1[x1] * fx;
            map[(size_t)y * ow + x] = (float)(top * (1 - fy) + bottom * fy);
        }
    }
}

/* cam = ReLU(Σ_k α_k A_k) for one image's K × plane activations and gradients. */
static void weighted_maps(const float *a, const float *g, size_t k, size_t plane, double *cam) {
    memset(cam, 0, sizeof(double) * plane);
    for (size_t ch = 0; ch < k; ch++) {
        double alpha = 0;
        for (size_t i = 0; i < plane; i++)
            alpha += g[ch * plane + i];
        alpha /= (double)plane;
        for (size_t i = 0; i < plane; i++)
            cam[i] += alpha * a[ch * plane + i];
    }
    for (size_t i = 0; i < plane; i++)
        cam[i] = cam[i] > 0 ? cam[i] : 0;
}

evmap_status grad_cam_maps(grad_run *r, const evmap_gradient_options *o, const float *input,
                           float *maps, evmap_error *err) {
    (void)o;
    const evm_tensor *a = grad_run_activation(r);
    if (a->rank != 4 || a->dims[0] != 1)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "--layer: Grad-CAM needs a 4-D feature map (N×C×H×W), and '%s' is not one",
                        r->model->graph->values[r->wrt_value].name);
    /* upsample indexes the map with ints and reads at least one cell */
    if (a->dims[2] < 1 || a->dims[3] < 1 || a->dims[2] > INT_MAX || a->dims[3] > INT_MAX)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "--layer: '%s' has an empty or too large feature map (%lld x %lld)",
                        r->model->graph->values[r->wrt_value].name, (long long)a->dims[2],
                        (long long)a->dims[3]);
    size_t k = (size_t)a->dims[1], h = (size_t)a->dims[2], w = (size_t)a->dims[3];
    double *cam = malloc(sizeof(double) * h * w);
    if (!cam)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
    r->total = (size_t)r->n_targets;
    memcpy(grad_run_input(r), input, sizeof(float) * r->image_floats);
    evmap_status st = grad_run_forward(r, err);
    size_t plane = (size_t)r->h * (size_t)r->w;
    for (int t = 0; st == EVMAP_OK && t < r->n_targets; t++) {
        st = grad_run_backward(r, t, 1, NULL, err);
        if (st != EVMAP_OK)
            break;
        weighted_maps(evm_f32(a), evm_f32(grad_run_result(r)), k, h * w, cam);
        upsample(cam, (int)h, (int)w, maps + (size_t)t * plane, r->h, r->w);
    }
    free(cam);
    return st;
}
