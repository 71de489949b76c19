/*
 * The one-gradient maps (DESIGN.md 1.4): saliency (Simonyan et al. 2014:
 * max over channels of |df/dx|), gradient × input (sum over channels of
 * x · df/dx) and guided backpropagation (Springenberg et al. 2015: the
 * gradient with only positive gradients passed back through Relu, summed
 * over channels). One forward pass, one backward pass per target.
 */
#include <math.h>
#include <string.h>

#include "gradient_internal.h"

/* Reduces a C × H × W gradient g (of image x) to one H × W map. */
static void reduce_channels(evmap_gradient_method method, const float *g, const float *x, int c,
                            size_t plane, float *map) {
    for (size_t i = 0; i < plane; i++) {
        double v = 0;
        for (int ch = 0; ch < c; ch++) {
            double gi = g[(size_t)ch * plane + i];
            if (method == EVMAP_GRADIENT_SALIENCY)
                v = fmax(v, fabs(gi));
            else if (method == EVMAP_GRADIENT_GRADXINPUT)
                v += gi * (double)x[(size_t)ch * plane + i];
            else
                v += gi;
        }
        map[i] = (float)v;
    }
}

evmap_status grad_single_maps(grad_run *r, const evmap_gradient_options *o, const float *input,
                              float *maps, evmap_error *err) {
    size_t plane = (size_t)r->h * (size_t)r->w;
    r->mode = o->method == EVMAP_GRADIENT_GUIDED ? EVM_BACKWARD_GUIDED : EVM_BACKWARD_EXACT;
    r->total = (size_t)r->n_targets;
    memcpy(grad_run_input(r), input, sizeof(float) * r->image_floats);
    evmap_status st = grad_run_forward(r, err);
    for (int t = 0; st == EVMAP_OK && t < r->n_targets; t++) {
        st = grad_run_backward(r, t, 1, NULL, err);
        if (st == EVMAP_OK)
            reduce_channels(o->method, evm_f32(grad_run_result(r)), input, r->c, plane,
                            maps + (size_t)t * plane);
    }
    return st;
}
