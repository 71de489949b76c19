/* Receptive-field arithmetic shared by the operators (DESIGN.md 1.2). */
#include "op.h"

evm_region evm_region_union(evm_region a, evm_region b) {
    if (a.kind == EVM_REGION_NONE)
        return b;
    if (b.kind == EVM_REGION_NONE)
        return a;
    if (a.kind == EVM_REGION_ALL || b.kind == EVM_REGION_ALL)
        return (evm_region){.kind = EVM_REGION_ALL};
    evm_region r = a;
    r.y0 = a.y0 < b.y0 ? a.y0 : b.y0;
    r.x0 = a.x0 < b.x0 ? a.x0 : b.x0;
    r.y1 = a.y1 > b.y1 ? a.y1 : b.y1;
    r.x1 = a.x1 > b.x1 ? a.x1 : b.x1;
    return r;
}

evm_region evm_region_clip(int64_t y0, int64_t y1, int64_t x0, int64_t x1, int64_t h, int64_t w) {
    y0 = y0 < 0 ? 0 : y0;
    x0 = x0 < 0 ? 0 : x0;
    y1 = y1 > h ? h : y1;
    x1 = x1 > w ? w : x1;
    if (y0 >= y1 || x0 >= x1)
        return (evm_region){.kind = EVM_REGION_NONE};
    if (y0 == 0 && x0 == 0 && y1 == h && x1 == w)
        return (evm_region){.kind = EVM_REGION_ALL};
    return (evm_region){EVM_REGION_RECT, y0, y1, x0, x1};
}

/* floor(a / b) and ceil(a / b) for b > 0 and any sign of a. */
static int64_t floor_div(int64_t a, int64_t b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}
static int64_t ceil_div(int64_t a, int64_t b) {
    return a >= 0 ? (a + b - 1) / b : -(-a / b);
}

/* Outputs o along one axis whose taps o * s - p + t * d (t < k) reach [a, b):
 * the first tap must not be past b - 1 and the last not before a. */
static void axis_field(const evm_window2d *w, int axis, int64_t a, int64_t b, int64_t *lo,
                       int64_t *hi) {
    int64_t s = w->stride[axis], p = w->pad_begin[axis];
    int64_t reach = (int64_t)(w->kernel[axis] - 1) * w->dilation[axis];
    *lo = ceil_div(a + p - reach, s);
    *hi = floor_div(b - 1 + p, s) + 1;
}

/* Taps along one axis of outputs [a, b): from the first output's first tap
 * to the last output's last one. */
static void axis_reads(const evm_window2d *w, int axis, int64_t a, int64_t b, int64_t *lo,
                       int64_t *hi) {
    int64_t s = w->stride[axis], p = w->pad_begin[axis];
    int64_t reach = (int64_t)(w->kernel[axis] - 1) * w->dilation[axis];
    *lo = a * s - p;
    *hi = (b - 1) * s - p + reach + 1;
}

typedef void (*axis_map)(const evm_window2d *w, int axis, int64_t a, int64_t b, int64_t *lo,
                         int64_t *hi);

/* Rectangle r mapped axis by axis, clipped to an h x w map. */
static evm_region map_rect(const evm_window2d *w, axis_map map, int64_t h, int64_t wd,
                           const evm_region *r) {
    if (r->kind != EVM_REGION_RECT)
        return *r;
    int64_t y0, y1, x0, x1;
    map(w, 0, r->y0, r->y1, &y0, &y1);
    map(w, 1, r->x0, r->x1, &x0, &x1);
    return evm_region_clip(y0, y1, x0, x1, h, wd);
}

evm_region evm_window2d_field(const evm_window2d *resolved, int64_t out_h, int64_t out_w,
                              const evm_region *in) {
    return map_rect(resolved, axis_field, out_h, out_w, in);
}

evm_region evm_window2d_reads(const evm_window2d *resolved, int64_t in_h, int64_t in_w,
                              const evm_region *out) {
    return map_rect(resolved, axis_reads, in_h, in_w, out);
}

evm_region evm_field_pointwise(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               const evm_region *in_regions) {
    for (int j = 1; j < node->n_inputs; j++)
        if (in_regions[j].kind != EVM_REGION_NONE)
            return (evm_region){.kind = EVM_REGION_ALL};
    if (in[0]->rank != 4 || !evm_same_shape(in[0], out[0]))
        return (evm_region){.kind = EVM_REGION_ALL};
    return in_regions[0];
}
