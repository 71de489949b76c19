/*
 * Line plots as PNG (evmap_plot_png): a title, the y label above the y axis,
 * the plot area with a light grid at "nice" ticks (1, 2 or 5 times a power
 * of ten), the x label under the axis, and a legend right of the plot that
 * shows each series' colour and line style beside its name. Series take ten
 * distinct colours, then repeat them dashed. Lines are clipped to the plot
 * area; non-finite points break a line. The layout is computed before
 * anything is drawn; the PNG goes out through libpng's simplified writer
 * into an atomic file.
 */
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/atomic_file.h"
#include "base/error.h"
#include "render_plot.h"

#define DEFAULT_W 760
#define DEFAULT_H 440
#define MIN_SIDE 200
#define MAX_SIDE 4096
#define MAX_SERIES 32
#define FS 2        /* font scale */
#define PAD 12      /* outer margin */
#define TICK 5      /* tick length */
#define SAMPLE_W 28 /* legend line sample */
#define LINE_W 2    /* curve thickness */
#define DASH 10     /* dash and gap length of repeated colours */
#define TARGET_TICKS 5

static const uint8_t white[3] = {255, 255, 255};
static const uint8_t ink[3] = {32, 32, 32};
static const uint8_t grid_rgb[3] = {225, 225, 225};

/* Ten colours that stay apart on screen and in print. */
static const uint8_t palette[10][3] = {
    {0, 90, 200},  {230, 110, 0},  {0, 150, 60}, {210, 30, 40}, {130, 70, 190},
    {140, 90, 50}, {230, 80, 170}, {90, 90, 90}, {170, 170, 0}, {0, 170, 200},
};

typedef struct axis {
    double lo, hi; /* range shown */
    double step;   /* tick spacing */
    int decimals;  /* tick label precision */
} axis;

typedef struct plot_layout {
    int width, height;
    int left, top, right, bottom; /* the plot area: [left, right) × [top, bottom) */
    int legend_x;
    axis x, y;
} plot_layout;

void evmap_plot_init(evmap_plot *plot) {
    if (plot)
        memset(plot, 0, sizeof *plot);
}

/* ---------------------------------------------------------------- axes */

static void data_range(const evmap_plot *p, int use_x, double *lo, double *hi) {
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int s = 0; s < p->n_series; s++)
        for (int i = 0; i < p->series[s].points; i++) {
            double v = use_x ? p->series[s].x[i] : p->series[s].y[i];
            if (isfinite(v)) {
                *lo = v < *lo ? v : *lo;
                *hi = v > *hi ? v : *hi;
            }
        }
    if (!(*lo <= *hi)) {
        *lo = 0;
        *hi = 1;
    }
}

/* Ticks at multiples of 1, 2 or 5 × 10^k, about TARGET_TICKS of them. */
static axis make_axis(double lo, double hi) {
    if (hi - lo < 1e-12 * (fabs(lo) + fabs(hi)) || hi <= lo) {
        double half = fabs(lo) > 0 ? fabs(lo) * 0.5 : 0.5;
        lo -= half;
        hi += half;
    }
    double raw = (hi - lo) / TARGET_TICKS, mag = pow(10, floor(log10(raw)));
    double f = raw / mag, step = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
    int decimals = (int)ceil(-log10(step) - 1e-9);
    return (axis){.lo = lo, .hi = hi, .step = step, .decimals = decimals < 0 ? 0 : decimals};
}

static axis choose_axis(const evmap_plot *p, int use_x) {
    double lo = use_x ? p->x_min : p->y_min, hi = use_x ? p->x_max : p->y_max;
    if (!(isfinite(lo) && isfinite(hi)) || lo == hi)
        data_range(p, use_x, &lo, &hi);
    return make_axis(lo, hi);
}

static void tick_label(const axis *a, double v, char *buf, size_t size) {
    if (fabs(v) < a->step * 1e-6)
        v = 0; /* no "-0.00" */
    if (a->decimals <= 6 && fabs(v) < 1e7)
        snprintf(buf, size, "%.*f", a->decimals, v);
    else
        snprintf(buf, size, "%.3g", v);
}

/* First tick at or above lo; the tick count is bounded by the step. */
static double first_tick(const axis *a) {
    return ceil(a->lo / a->step - 1e-9) * a->step;
}

/* -------------------------------------------------------------- layout */

static int text_h(void) {
    return EVM_PLOT_TEXT_H * FS;
}

static int widest_tick_label(const axis *a) {
    int w = 0;
    char buf[64];
    for (double v = first_tick(a); v <= a->hi + a->step * 1e-9; v += a->step) {
        tick_label(a, v, buf, sizeof buf);
        int tw = evm_plot_text_width(buf, FS);
        w = tw > w ? tw : w;
    }
    return w;
}

static int legend_width(const evmap_plot *p) {
    int w = 0;
    for (int s = 0; s < p->n_series; s++) {
        int tw = evm_plot_text_width(p->series[s].name ? p->series[s].name : "", FS);
        w = tw > w ? tw : w;
    }
    return p->n_series ? SAMPLE_W + 8 + w : 0;
}

static evmap_status plan(plot_layout *l, const char *path, const evmap_plot *p, evmap_error *err) {
    memset(l, 0, sizeof *l);
    l->width = p->width ? p->width : DEFAULT_W;
    l->height = p->height ? p->height : DEFAULT_H;
    l->x = choose_axis(p, 1);
    l->y = choose_axis(p, 0);
    int line = text_h() + 8;
    l->top = PAD + (p->title ? line : 0) + line + TICK;
    l->left = PAD + widest_tick_label(&l->y) + TICK + 6;
    l->bottom = l->height - PAD - line - line;
    int legend = legend_width(p);
    l->right = l->width - PAD - (legend ? legend + 20 : 0);
    l->legend_x = l->right + 20;
    if (l->right - l->left < 60 || l->bottom - l->top < 60)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "cannot plot '%s': %d x %d pixels leave no room for the plot beside "
                        "its labels and legend; make it larger or the names shorter",
                        path, l->width, l->height);
    return EVMAP_OK;
}

static evmap_status check_plot(const char *path, const evmap_plot *p, evmap_error *err) {
    if (!path || !*path || !p)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "evmap_plot_png: needs a path and a plot");
    int w = p->width ? p->width : DEFAULT_W, h = p->height ? p->height : DEFAULT_H;
    if (w < MIN_SIDE || h < MIN_SIDE || w > MAX_SIDE || h > MAX_SIDE)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "cannot plot '%s': %d x %d pixels is outside %d..%d per side", path, w, h,
                        MIN_SIDE, MAX_SIDE);
    if (p->n_series < 0 || p->n_series > MAX_SERIES || (p->n_series && !p->series))
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "cannot plot '%s': %d series (0 to %d allowed)", path, p->n_series,
                        MAX_SERIES);
    for (int s = 0; s < p->n_series; s++)
        if (p->series[s].points < 0 ||
            (p->series[s].points && (!p->series[s].x || !p->series[s].y)))
            return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                            "cannot plot '%s': series %d has no points array", path, s);
    return EVMAP_OK;
}

/* ------------------------------------------------------------- drawing */

static double to_px_x(const plot_layout *l, double v) {
    return l->left + (v - l->x.lo) / (l->x.hi - l->x.lo) * (l->right - 1 - l->left);
}

static double to_px_y(const plot_layout *l, double v) {
    return l->bottom - 1 - (v - l->y.lo) / (l->y.hi - l->y.lo) * (l->bottom - 1 - l->top);
}

static void draw_grid_and_ticks(evm_canvas *c, const plot_layout *l) {
    char buf[64];
    for (double v = first_tick(&l->x); v <= l->x.hi + l->x.step * 1e-9; v += l->x.step) {
        int px = (int)lround(to_px_x(l, v));
        evm_canvas_fill(c, px, l->top, 1, l->bottom - l->top, grid_rgb);
        evm_canvas_fill(c, px, l->bottom, 1, TICK, ink);
        tick_label(&l->x, v, buf, sizeof buf);
        evm_plot_draw_text(c, px - evm_plot_text_width(buf, FS) / 2, l->bottom + TICK + 4, buf, FS,
                           ink);
    }
    for (double v = first_tick(&l->y); v <= l->y.hi + l->y.step * 1e-9; v += l->y.step) {
        int py = (int)lround(to_px_y(l, v));
        evm_canvas_fill(c, l->left, py, l->right - l->left, 1, grid_rgb);
        evm_canvas_fill(c, l->left - TICK, py, TICK, 1, ink);
        tick_label(&l->y, v, buf, sizeof buf);
        int tw = evm_plot_text_width(buf, FS);
        evm_plot_draw_text(c, l->left - TICK - 4 - tw, py - EVM_FONT_H * FS / 2, buf, FS, ink);
    }
}

static void draw_frame(evm_canvas *c, const plot_layout *l) {
    evm_canvas_fill(c, l->left - 1, l->top, 1, l->bottom - l->top + 1, ink);
    evm_canvas_fill(c, l->left - 1, l->bottom, l->right - l->left + 1, 1, ink);
}

/* Centred on the plot area, shifted to stay on the canvas when wider. */
static int centred_x(const plot_layout *l, int text_w) {
    int x = (l->left + l->right - text_w) / 2;
    if (x + text_w > l->width - PAD)
        x = l->width - PAD - text_w;
    return x < PAD ? PAD : x;
}

static void draw_labels(evm_canvas *c, const plot_layout *l, const evmap_plot *p) {
    int y = PAD, line = text_h() + 8;
    if (p->title) {
        evm_plot_draw_text(c, centred_x(l, evm_plot_text_width(p->title, FS)), y, p->title, FS,
                           ink);
        y += line;
    }
    if (p->y_label)
        evm_plot_draw_text(c, PAD, y, p->y_label, FS, ink);
    if (p->x_label)
        evm_plot_draw_text(c, centred_x(l, evm_plot_text_width(p->x_label, FS)),
                           l->bottom + TICK + 4 + line, p->x_label, FS, ink);
}

/* A square brush of LINE_W pixels, only inside the plot area. */
static void dab(evm_canvas *c, const plot_layout *l, double x, double y, const uint8_t rgb[3]) {
    int px = (int)lround(x - LINE_W / 2.0), py = (int)lround(y - LINE_W / 2.0);
    if (px < l->left || py < l->top || px + LINE_W > l->right || py + LINE_W > l->bottom)
        return;
    evm_canvas_fill(c, px, py, LINE_W, LINE_W, rgb);
}

/* A segment in steps of at most half a pixel; *walked carries the length
 * drawn so far along the polyline so that dashes continue across points. */
static void segment(evm_canvas *c, const plot_layout *l, double x0, double y0, double x1, double y1,
                    int dashed, const uint8_t rgb[3], double *walked) {
    double len = hypot(x1 - x0, y1 - y0);
    int n = (int)ceil(len * 2) + 1;
    for (int i = 0; i <= n; i++) {
        double t = (double)i / n, d = *walked + t * len;
        if (!dashed || (long)(d / DASH) % 2 == 0)
            dab(c, l, x0 + t * (x1 - x0), y0 + t * (y1 - y0), rgb);
    }
    *walked += len;
}

static void draw_series(evm_canvas *c, const plot_layout *l, const evmap_plot_series *s,
                        int index) {
    const uint8_t *rgb = palette[index % 10];
    int dashed = index >= 10;
    double walked = 0;
    for (int i = 1; i < s->points; i++) {
        double x0 = s->x[i - 1], y0 = s->y[i - 1], x1 = s->x[i], y1 = s->y[i];
        if (!(isfinite(x0) && isfinite(y0) && isfinite(x1) && isfinite(y1)))
            continue;
        /* Clamp far-away values so that pixel arithmetic stays small. */
        double px0 = fmin(fmax(to_px_x(l, x0), -1e5), 1e5),
               py0 = fmin(fmax(to_px_y(l, y0), -1e5), 1e5);
        double px1 = fmin(fmax(to_px_x(l, x1), -1e5), 1e5),
               py1 = fmin(fmax(to_px_y(l, y1), -1e5), 1e5);
        segment(c, l, px0, py0, px1, py1, dashed, rgb, &walked);
    }
}

static void draw_legend(evm_canvas *c, const plot_layout *l, const evmap_plot *p) {
    int row = text_h() + 6;
    for (int s = 0; s < p->n_series; s++) {
        int y = l->top + s * row;
        const uint8_t *rgb = palette[s % 10];
        for (int x = 0; x < SAMPLE_W; x++)
            if (s < 10 || (x / (DASH / 2)) % 2 == 0)
                evm_canvas_fill(c, l->legend_x + x, y + EVM_FONT_H * FS / 2 - 1, 1, LINE_W, rgb);
        evm_plot_draw_text(c, l->legend_x + SAMPLE_W + 8, y,
                           p->series[s].name ? p->series[s].name : "", FS, ink);
    }
}

/* ---------------------------------------------------------------- PNG */

static evmap_status write_png(const char *path, const evm_canvas *c, evmap_error *err) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)c->width;
    img.height = (png_uint_32)c->height;
    img.format = PNG_FORMAT_RGB;
    evm_atomic_file af;
    evmap_status st = evm_atomic_open(&af, path, err);
    if (st == EVMAP_OK && !png_image_write_to_stdio(&img, af.f, 0, c->rgb, 0, NULL))
        st = evm_fail(err, EVMAP_ERR_IO, "cannot write '%s' (libpng: %s); check free disk space",
                      path, img.message);
    if (st == EVMAP_OK)
        st = evm_atomic_commit(&af, err);
    png_image_free(&img);
    evm_atomic_abort(&af);
    return st;
}

evmap_status evmap_plot_png(const char *path, const evmap_plot *plot, evmap_error *err) {
    evmap_status st = check_plot(path, plot, err);
    plot_layout l;
    if (st == EVMAP_OK)
        st = plan(&l, path, plot, err);
    if (st != EVMAP_OK)
        return st;
    evm_canvas c = {.width = l.width, .height = l.height};
    c.rgb = malloc((size_t)l.width * (size_t)l.height * 3);
    if (!c.rgb)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory drawing '%s'", path);
    evm_canvas_fill(&c, 0, 0, c.width, c.height, white);
    draw_grid_and_ticks(&c, &l);
    draw_frame(&c, &l);
    for (int s = 0; s < plot->n_series; s++)
        draw_series(&c, &l, &plot->series[s], s);
    draw_labels(&c, &l, plot);
    draw_legend(&c, &l, plot);
    st = write_png(path, &c, err);
    free(c.rgb);
    return st;
}
