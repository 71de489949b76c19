/*
 * Preprocessing: image → model input (channels × height × width floats).
 *
 * Resizing reproduces torchvision.transforms.Resize(..., antialias=True) on a
 * float tensor, i.e. PyTorch's separable antialiased bilinear kernel
 * (_upsample_bilinear2d_aa, align_corners=False): a triangle filter widened
 * by the scale factor when downscaling, weights normalised per output pixel,
 * horizontal pass then vertical pass, float arithmetic in the same order.
 * Only the output pixels inside the crop window are computed; each equals
 * the pixel a full resize followed by a crop would give.
 *
 * Channels are matched after resizing (resizing is linear, so the order does
 * not change the result): gray is replicated to RGB, RGB becomes luminance
 * 0.299 R + 0.587 G + 0.114 B for 1-channel models. A 1-channel model is
 * normalised with mean[0] and std[0].
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "image_internal.h"
#include "base/tensor.h"

static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
static const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};

#define IMAGENET_RESIZE 256
#define IMAGENET_CROP 224

void evmap_preprocess_init(evmap_preprocess *p, evmap_preprocess_preset preset) {
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->preset = preset;
    for (int c = 0; c < 3; c++) {
        p->mean[c] = preset == EVMAP_PREPROCESS_IMAGENET ? imagenet_mean[c] : 0.0f;
        p->std[c] = preset == EVMAP_PREPROCESS_IMAGENET ? imagenet_std[c] : 1.0f;
    }
    if (preset == EVMAP_PREPROCESS_IMAGENET) /* informational: the crop size */
        p->width = p->height = IMAGENET_CROP;
}

/* Where the model input comes from: the image is resized to rw × rh and the
 * window (x0, y0, cw × ch) of the result is kept. */
typedef struct geometry {
    int rw, rh;
    int x0, y0, cw, ch;
} geometry;

/* torchvision's CenterCrop offset: int(round(d / 2.0)), Python's round
 * halving to even (58.5 → 58, 59.5 → 60). */
static int center_offset(int d) {
    int half = d / 2;
    if (d % 2 != 0 && half % 2 != 0)
        half++;
    return half;
}

static evmap_status plan_geometry(const evmap_image *img, const evmap_preprocess *p, geometry *g,
                                  evmap_error *err) {
    *g = (geometry){img->width, img->height, 0, 0, img->width, img->height};
    switch (p->preset) {
    case EVMAP_PREPROCESS_NONE: return EVMAP_OK;
    case EVMAP_PREPROCESS_IMAGENET: {
        /* torchvision: short side = 256, long = int(256 * long / short). */
        int shortside = img->width <= img->height ? img->width : img->height;
        int longside = img->width <= img->height ? img->height : img->width;
        int newlong = (int)((double)IMAGENET_RESIZE * longside / shortside);
        g->rw = img->width <= img->height ? IMAGENET_RESIZE : newlong;
        g->rh = img->width <= img->height ? newlong : IMAGENET_RESIZE;
        g->cw = g->ch = IMAGENET_CROP;
        g->x0 = center_offset(g->rw - IMAGENET_CROP);
        g->y0 = center_offset(g->rh - IMAGENET_CROP);
        break;
    }
    case EVMAP_PREPROCESS_CUSTOM:
        if (p->width < 0 || p->height < 0)
            return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                            "preprocessing size %d x %d is negative; give a positive size or 0 "
                            "to keep the image's",
                            p->width, p->height);
        /* Each side separately: 0 keeps the image's. */
        g->rw = g->cw = p->width ? p->width : img->width;
        g->rh = g->ch = p->height ? p->height : img->height;
        /* The whole resized image is the output here, so it gets the limits
         * of any image (IMAGENET only ever computes its 224 x 224 crop). */
        return evm_image_check_size((uint64_t)g->rw, (uint64_t)g->rh, 0, "the resized image", err);
    default:
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "unknown preprocessing preset %d",
                        (int)p->preset);
    }
    return EVMAP_OK;
}

/* Filter taps of one axis for the output indices [first, first + n). */
typedef struct taps {
    int max;    /* taps per output index (stride of weights) */
    int *start; /* first input index per output */
    int *count; /* taps used per output */
    float *weights;
} taps;

static void taps_free(taps *t) {
    free(t->start);
    free(t->count);
    free(t->weights);
}

static float triangle(float x) {
    x = fabsf(x);
    return x < 1.0f ? 1.0f - x : 0.0f;
}

/* PyTorch's _compute_weights_aa for bilinear (interp_size 2), in float. */
static evmap_status taps_make(taps *t, int in, int out, int first, int n, evmap_error *err) {
    memset(t, 0, sizeof *t);
    float scale = (float)in / (float)out;
    float support = scale >= 1.0f ? scale : 1.0f;
    float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
    t->max = (int)ceilf(support) * 2 + 1;
    t->start = malloc(sizeof(int) * (size_t)n);
    t->count = malloc(sizeof(int) * (size_t)n);
    t->weights = malloc(sizeof(float) * (size_t)n * (size_t)t->max);
    if (!t->start || !t->count || !t->weights) {
        taps_free(t);
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "cannot allocate resize weights");
    }
    for (int k = 0; k < n; k++) {
        int i = first + k;
        float center = (float)(scale * (i + 0.5));
        int xmin = (int)(center - support + 0.5);
        int xmax = (int)(center + support + 0.5);
        xmin = xmin < 0 ? 0 : xmin;
        xmax = xmax > in ? in : xmax;
        int count = xmax - xmin;
        if (count > t->max)
            count = t->max;
        float *w = t->weights + (size_t)k * (size_t)t->max;
        float total = 0.0f;
        for (int j = 0; j < count; j++) {
            w[j] = triangle((float)((j + xmin - center + 0.5) * invscale));
            total += w[j];
        }
        for (int j = 0; j < count && total != 0.0f; j++)
            w[j] /= total;
        t->start[k] = xmin;
        t->count[k] = count;
    }
    return EVMAP_OK;
}

/* Resizes one plane (iw wide) to rw × rh and writes the window g into dst
 * (g->cw × g->ch). tmp holds (input rows) × g->cw floats; only the rows the
 * vertical taps read are filled. */
static void resample_plane(const float *src, int iw, const taps *tx, const taps *ty,
                           const geometry *g, float *tmp, float *dst) {
    int y_lo = ty->start[0];
    int y_hi = ty->start[g->ch - 1] + ty->count[g->ch - 1];
    for (int y = y_lo; y < y_hi; y++) {
        const float *row = src + (size_t)y * (size_t)iw;
        float *out = tmp + (size_t)y * (size_t)g->cw;
        for (int x = 0; x < g->cw; x++) {
            const float *w = tx->weights + (size_t)x * (size_t)tx->max;
            const float *s = row + tx->start[x];
            float acc = s[0] * w[0];
            for (int j = 1; j < tx->count[x]; j++)
                acc += s[j] * w[j];
            out[x] = acc;
        }
    }
    for (int y = 0; y < g->ch; y++) {
        const float *w = ty->weights + (size_t)y * (size_t)ty->max;
        const float *s = tmp + (size_t)ty->start[y] * (size_t)g->cw;
        float *out = dst + (size_t)y * (size_t)g->cw;
        for (int x = 0; x < g->cw; x++) {
            float acc = s[x] * w[0];
            for (int j = 1; j < ty->count[y]; j++)
                acc += s[(size_t)j * (size_t)g->cw + (size_t)x] * w[j];
            out[x] = acc;
        }
    }
}

/* Copies the window g of one plane (no resize). */
static void crop_plane(const float *src, int iw, const geometry *g, float *dst) {
    for (int y = 0; y < g->ch; y++)
        memcpy(dst + (size_t)y * (size_t)g->cw,
               src + (size_t)(y + g->y0) * (size_t)iw + (size_t)g->x0,
               sizeof(float) * (size_t)g->cw);
}

/* Fills planes (img->channels × ch × cw) with the resized, cropped image. */
static evmap_status resize_image(const evmap_image *img, const geometry *g, float *planes,
                                 evmap_error *err) {
    size_t in_plane = (size_t)img->width * (size_t)img->height;
    size_t out_plane = (size_t)g->cw * (size_t)g->ch;
    if (g->rw == img->width && g->rh == img->height) {
        for (int c = 0; c < img->channels; c++)
            crop_plane(img->pixels + (size_t)c * in_plane, img->width, g,
                       planes + (size_t)c * out_plane);
        return EVMAP_OK;
    }
    taps tx, ty;
    float *tmp = NULL;
    evmap_status st = taps_make(&tx, img->width, g->rw, g->x0, g->cw, err);
    if (st != EVMAP_OK)
        return st;
    st = taps_make(&ty, img->height, g->rh, g->y0, g->ch, err);
    if (st != EVMAP_OK)
        goto done;
    tmp = malloc(sizeof(float) * (size_t)img->height * (size_t)g->cw);
    if (!tmp) {
        st = evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "cannot allocate a resize buffer");
        goto done;
    }
    for (int c = 0; c < img->channels; c++)
        resample_plane(img->pixels + (size_t)c * in_plane, img->width, &tx, &ty, g, tmp,
                       planes + (size_t)c * out_plane);
done:
    taps_free(&tx);
    taps_free(&ty);
    free(tmp);
    return st;
}

/* Maps image channels to model channels and normalises. */
static void write_output(const float *planes, int in_channels, int channels, size_t n,
                         const float *mean, const float *std, float *out) {
    for (int c = 0; c < channels; c++) {
        float *dst = out + (size_t)c * n;
        if (channels == 1 && in_channels == 3) {
            const float *r = planes, *gr = planes + n, *b = planes + 2 * n;
            for (size_t i = 0; i < n; i++)
                dst[i] = (0.299f * r[i] + 0.587f * gr[i] + 0.114f * b[i] - mean[0]) / std[0];
        } else {
            const float *s = planes + (in_channels == 1 ? 0 : (size_t)c * n);
            for (size_t i = 0; i < n; i++)
                dst[i] = (s[i] - mean[c]) / std[c];
        }
    }
}

static evmap_status check_arguments(const evmap_image *image, const evmap_preprocess *p,
                                    int channels, int height, int width, const float *out,
                                    evmap_error *err) {
    if (!image || !p || !out || !image->pixels)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "evmap_preprocess_image: image, its pixels, p and out must not be NULL");
    if ((image->channels != 1 && image->channels != 3) || image->width <= 0 || image->height <= 0)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "image of %d x %d pixels with %d channels is not valid; images have 1 or "
                        "3 channels",
                        image->width, image->height, image->channels);
    /* A caller's own image gets the limits of a decoded one, which bound the
     * resize arithmetic (IMAGENET's 256 * long / short side, the taps). */
    evmap_status st =
        evm_image_check_size((uint64_t)image->width, (uint64_t)image->height, 0, "the image", err);
    if (st != EVMAP_OK)
        return st;
    if ((channels != 1 && channels != 3) || height <= 0 || width <= 0)
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED,
                        "the model expects %d channels of %d x %d; evmap feeds 1 or 3 channels "
                        "of a positive size",
                        channels, width, height);
    if (p->preset != EVMAP_PREPROCESS_NONE)
        for (int c = 0; c < 3; c++)
            if (!(p->std[c] != 0.0f) || !isfinite(p->std[c]) || !isfinite(p->mean[c]))
                return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                                "preprocessing mean %g / std %g of channel %d is not usable; "
                                "std must be finite and non-zero",
                                (double)p->mean[c], (double)p->std[c], c);
    return EVMAP_OK;
}

evmap_status evmap_preprocess_size(const evmap_image *image, const evmap_preprocess *p, int *width,
                                   int *height, evmap_error *err) {
    if (!image || !p || !width || !height)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "evmap_preprocess_size: NULL argument");
    if (image->width <= 0 || image->height <= 0)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "image of %d x %d pixels is not valid",
                        image->width, image->height);
    geometry g;
    evmap_status st = plan_geometry(image, p, &g, err);
    if (st == EVMAP_OK)
        *width = g.cw, *height = g.ch;
    return st;
}

static const char *preset_name(evmap_preprocess_preset preset) {
    switch (preset) {
    case EVMAP_PREPROCESS_NONE: return "none";
    case EVMAP_PREPROCESS_IMAGENET: return "imagenet";
    default: return "custom";
    }
}

evmap_status evmap_preprocess_image(const evmap_image *image, const evmap_preprocess *p,
                                    int channels, int height, int width, float *out,
                                    evmap_error *err) {
    evmap_status st = check_arguments(image, p, channels, height, width, out, err);
    if (st != EVMAP_OK)
        return st;
    geometry g;
    st = plan_geometry(image, p, &g, err);
    if (st != EVMAP_OK)
        return st;
    if (g.cw != width || g.ch != height)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "the image is %d x %d pixels after '%s' preprocessing (from %d x %d) but "
                        "the model expects %d x %d (width x height); choose a preprocessing "
                        "that resizes to the model's size",
                        g.cw, g.ch, preset_name(p->preset), image->width, image->height, width,
                        height);
    size_t n = (size_t)g.cw * (size_t)g.ch;
    float *planes = malloc(sizeof(float) * n * (size_t)image->channels);
    if (!planes)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "cannot allocate a preprocessing buffer");
    st = resize_image(image, &g, planes, err);
    if (st == EVMAP_OK) {
        const float zero[3] = {0, 0, 0}, one[3] = {1, 1, 1};
        int none = p->preset == EVMAP_PREPROCESS_NONE;
        write_output(planes, image->channels, channels, n, none ? zero : p->mean,
                     none ? one : p->std, out);
    }
    free(planes);
    return st;
}
