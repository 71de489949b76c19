/* evmap evaluate: the table on stdout, evaluate.csv, evaluate.json and the
 * plots of the mean deletion and insertion curves. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/atomic_file.h"
#include "evaluate.h"
#include "json.h"

static const char *const fill_names[] = {"zero", "mean", "blur"};

eval_summary eval_summarise(const double *values, size_t n, size_t stride) {
    eval_summary r = {.mean = NAN, .se = NAN, .n = 0};
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(values[i * stride])) {
            sum += values[i * stride];
            r.n++;
        }
    if (r.n == 0)
        return r;
    r.mean = sum / (double)r.n;
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(values[i * stride]))
            ss += (values[i * stride] - r.mean) * (values[i * stride] - r.mean);
    /* Standard error of the mean: sample standard deviation / sqrt(n). */
    r.se = r.n > 1 ? sqrt(ss / (double)(r.n - 1) / (double)r.n) : 0;
    return r;
}

/* The metrics in table order: name, per-image values, what is better. */
typedef struct metric_column {
    unsigned flag;
    const char *title;
    const char *better;
    const char *key; /* CSV and JSON */
} metric_column;

static const metric_column columns[] = {
    {METRIC_DELETION, "deletion AUC", "(lower better)", "deletion_auc"},
    {METRIC_INSERTION, "insertion AUC", "(higher better)", "insertion_auc"},
    {METRIC_AOPC, "AOPC", "(higher better)", "aopc"},
    {METRIC_SENSITIVITY, "max-sensitivity", "(lower better)", "max_sensitivity"},
    {METRIC_TIME, "seconds/image", "(lower better)", "seconds"},
    {METRIC_LOCALISATION, "pointing game", "(higher better)", "pointing_game"},
    {METRIC_LOCALISATION, "relevance mass", "(higher better)", "relevance_mass"},
    {METRIC_LOCALISATION, "relevance rank", "(higher better)", "relevance_rank"},
    {METRIC_LOCALISATION, "IoU top-q", "(higher better)", "iou_top"},
};
#define N_COLUMNS (sizeof columns / sizeof columns[0])

static const double *column_values(const eval_method_result *r, size_t c) {
    const double *v[] = {r->deletion_auc, r->insertion_auc, r->aopc, r->sensitivity, r->seconds,
                         r->pointing,     r->mass,          r->rank, r->iou};
    return v[c];
}

/* Prints s padded to width columns on screen (UTF-8 aware). */
static void cell(FILE *f, const char *s, int width) {
    int shown = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        shown += (*p & 0xC0) != 0x80;
    fputs(s, f);
    for (; shown < width; shown++)
        fputc(' ', f);
}

static double accuracy(const eval_state *s) {
    size_t right = 0;
    for (size_t i = 0; i < s->done; i++)
        right += s->images[i].label == s->images[i].predicted;
    return s->done ? 100.0 * (double)right / (double)s->done : NAN;
}

static void print_header(const eval_options *o, const eval_state *s, FILE *f) {
    fprintf(f, "evmap evaluate: %s, %zu image(s) at %d x %d", o->model_path, s->done, s->info.width,
            s->info.height);
    if (s->labels)
        fprintf(f, ", top-1 accuracy %.1f %%", accuracy(s));
    fprintf(f, "\nclass explained: %s\n",
            o->explain_label ? "the true label (--labels-idx)" : "the model's top-1 class");
    if (o->metrics & (METRIC_DELETION | METRIC_INSERTION))
        fprintf(f, "deletion/insertion: %d steps, removed pixels become %s\n", o->steps,
                fill_names[o->fill]);
    if (o->metrics & METRIC_AOPC)
        fprintf(f, "AOPC: the best %d of %d regions of %dx%d px, removed pixels become %s\n",
                s->aopc_l, s->n_regions, s->aopc_k, s->aopc_k, fill_names[o->fill]);
    if (o->metrics & METRIC_SENSITIVITY)
        fprintf(f,
                "max-sensitivity: L2-normalised maps, %d copies with uniform noise of radius "
                "%g x the image's range\n",
                o->sensitivity_samples, (double)o->sensitivity_radius);
    fprintf(f, "mean ± standard error over the images\n\n");
}

/* A constant map's localisation scores per image (NaN for other columns). */
static void uniform_values(const eval_state *s, size_t c, double *out) {
    for (size_t i = 0; i < s->done; i++) {
        const eval_image *im = &s->images[i];
        const char *key = columns[c].key;
        out[i] = !strcmp(key, "pointing_game")            ? im->pointing_uniform
                 : !strcmp(key, "iou_top")                ? im->iou_uniform
                 : columns[c].flag == METRIC_LOCALISATION ? im->area
                                                          : NAN;
    }
}

static void print_row(const eval_options *o, const char *name, const double *const *values,
                      size_t n, unsigned flags, FILE *f) {
    cell(f, name, 13);
    for (size_t c = 0; c < N_COLUMNS; c++) {
        if (!(o->metrics & flags & columns[c].flag))
            continue;
        eval_summary e = eval_summarise(values[c], n, 1);
        char text[64] = "-";
        if (e.n)
            snprintf(text, sizeof text, "%.4f ± %.4f", e.mean, e.se);
        cell(f, text, 18);
    }
    fputc('\n', f);
}

/* The methods' rows for the columns in flags, and the uniform map's where
 * it has scores. */
static void print_block(const eval_options *o, const eval_state *s, unsigned flags, FILE *f) {
    const double *values[N_COLUMNS];
    cell(f, "method", 13);
    for (size_t c = 0; c < N_COLUMNS; c++)
        if (o->metrics & flags & columns[c].flag)
            cell(f, columns[c].title, 18);
    fputc('\n', f);
    cell(f, "", 13);
    for (size_t c = 0; c < N_COLUMNS; c++)
        if (o->metrics & flags & columns[c].flag)
            cell(f, columns[c].better, 18);
    fputc('\n', f);
    for (int m = 0; m < o->n_methods; m++) {
        for (size_t c = 0; c < N_COLUMNS; c++)
            values[c] = column_values(&s->results[m], c);
        print_row(o, o->methods[m]->name, values, s->done, flags, f);
    }
    if (!(flags & METRIC_LOCALISATION))
        return;
    double *buf = malloc(sizeof(double) * (s->done ? s->done : 1) * N_COLUMNS);
    if (!buf)
        return;
    for (size_t c = 0; c < N_COLUMNS; c++) {
        uniform_values(s, c, buf + c * s->done);
        values[c] = buf + c * s->done;
    }
    print_row(o, "(uniform)", values, s->done, flags, f);
    free(buf);
}

void eval_print_table(const eval_options *o, const eval_state *s, FILE *f) {
    print_header(o, s, f);
    print_block(o, s, METRIC_ALL & ~(unsigned)METRIC_LOCALISATION, f);
    if (!(o->metrics & METRIC_LOCALISATION))
        return;
    fprintf(f,
            "\nlocalisation against the masks: pointing game within %d px, IoU of the top %g %% "
            "of the pixels;\n(uniform): what a constant map scores\n\n",
            s->tolerance, 100 * o->iou_top);
    print_block(o, s, METRIC_LOCALISATION, f);
}

/* ------------------------------------------------------------------ CSV */

static void csv_row(const char *name, const double *const *values, size_t n, FILE *f) {
    fprintf(f, "%s,%zu", name, n);
    for (size_t c = 0; c < N_COLUMNS; c++) {
        eval_summary e = eval_summarise(values[c], n, 1);
        if (e.n)
            fprintf(f, ",%.9g,%.9g,%zu", e.mean, e.se, e.n);
        else
            fputs(",,,0", f);
    }
    fputc('\n', f);
}

/* One row per method; with --masks a last row "(uniform)": a constant map. */
static void csv_rows(const eval_options *o, const eval_state *s, double *buf, FILE *f) {
    const double *values[N_COLUMNS];
    fputs("method,images", f);
    for (size_t c = 0; c < N_COLUMNS; c++)
        fprintf(f, ",%s,%s_se,%s_n", columns[c].key, columns[c].key, columns[c].key);
    fputc('\n', f);
    for (int m = 0; m < o->n_methods; m++) {
        for (size_t c = 0; c < N_COLUMNS; c++)
            values[c] = column_values(&s->results[m], c);
        csv_row(o->methods[m]->name, values, s->done, f);
    }
    if (!(o->metrics & METRIC_LOCALISATION))
        return;
    for (size_t c = 0; c < N_COLUMNS; c++) {
        uniform_values(s, c, buf + c * s->done);
        values[c] = buf + c * s->done;
    }
    csv_row("(uniform)", values, s->done, f);
}

/* Built in memory, then written atomically. */
static evmap_status write_csv(const eval_options *o, const eval_state *s, const char *path,
                              evmap_error *err) {
    char *buf = NULL;
    size_t size = 0;
    double *scratch = malloc(sizeof(double) * (s->done ? s->done : 1) * N_COLUMNS);
    FILE *mem = scratch ? open_memstream(&buf, &size) : NULL;
    if (mem) {
        csv_rows(o, s, scratch, mem);
        if (fclose(mem) != 0)
            size = 0;
    }
    evmap_status st = EVMAP_OK;
    if (!mem || !size) {
        err->status = st = EVMAP_ERR_OUT_OF_MEMORY;
        snprintf(err->message, sizeof err->message, "out of memory writing '%s'", path);
    }
    evm_atomic_file af;
    if (st == EVMAP_OK)
        st = evm_atomic_open(&af, path, err);
    if (st == EVMAP_OK) {
        st = evm_atomic_write(&af, buf, size, err);
        if (st == EVMAP_OK)
            st = evm_atomic_commit(&af, err);
        evm_atomic_abort(&af);
    }
    free(buf);
    free(scratch);
    return st;
}

/* ----------------------------------------------------------------- JSON */

static void write_numbers(json_writer *j, const char *key, const double *v, int n) {
    json_key(j, key);
    json_begin_array(j);
    for (int i = 0; i < n; i++)
        json_number(j, v[i]);
    json_end_array(j);
}

/* Mean of each point over the finished images (NaN skipped). */
static void mean_curve(const double *curves, size_t images, int points, double *out) {
    for (int t = 0; t < points; t++)
        out[t] = eval_summarise(curves + t, images, (size_t)points).mean;
}

static void write_parameters(json_writer *j, const eval_options *o, const eval_state *s) {
    json_key(j, "parameters");
    json_begin_object(j);
    json_key_string(j, "class", o->explain_label ? "label" : "predicted");
    json_key_int(j, "steps", o->steps);
    json_key_string(j, "fill", fill_names[o->fill]);
    json_key_int(j, "aopc_window", s->aopc_k);
    json_key_int(j, "aopc_regions", s->aopc_l);
    json_key_int(j, "regions", s->n_regions);
    json_key_number(j, "sensitivity_radius", o->sensitivity_radius);
    json_key_int(j, "sensitivity_samples", o->sensitivity_samples);
    json_key(j, "sensitivity_methods");
    json_begin_array(j);
    for (int m = 0; m < o->n_methods; m++)
        if (o->sensitivity_for[m] && (o->metrics & METRIC_SENSITIVITY))
            json_string(j, o->methods[m]->name);
    json_end_array(j);
    json_key_int(j, "seed", (long long)o->mo.seed);
    if (s->sampler) {
        json_key_string(j, "pda_sampler", s->sampler_source);
        json_key_int(j, "pda_window", evmap_sampler_window(s->sampler));
        json_key_int(j, "pda_samples", o->mo.pda_samples);
    }
    json_key_int(j, "stride", o->mo.stride);
    json_key_string(j, "score", o->mo.score == EVMAP_SCORE_LOGIT ? "logit" : "logodds");
    json_key_int(j, "ig_steps", o->mo.ig_steps);
    json_key_string(j, "ig_baseline", fill_names[o->mo.ig_baseline]);
    json_key_number(j, "smoothgrad_noise", o->mo.smoothgrad_noise);
    json_key_int(j, "smoothgrad_samples", o->mo.smoothgrad_samples);
    if (o->metrics & METRIC_LOCALISATION) {
        json_key_string(j, "masks", o->masks);
        json_key_int(j, "pointing_tolerance", s->tolerance);
        json_key_number(j, "iou_top", o->iou_top);
    }
    json_end_object(j);
}

static void write_summaries(json_writer *j, const eval_options *o, const eval_state *s,
                            double *buf) {
    json_key(j, "methods");
    json_begin_object(j);
    for (int m = 0; m < o->n_methods; m++) {
        const eval_method_result *r = &s->results[m];
        json_key(j, o->methods[m]->name);
        json_begin_object(j);
        for (size_t c = 0; c < N_COLUMNS; c++) {
            eval_summary e = eval_summarise(column_values(r, c), s->done, 1);
            json_key(j, columns[c].key);
            json_begin_object(j);
            json_key_number(j, "mean", e.mean);
            json_key_number(j, "se", e.se);
            json_key_int(j, "n", (long long)e.n);
            json_end_object(j);
        }
        mean_curve(r->deletion, s->done, s->points, buf);
        write_numbers(j, "mean_deletion", buf, s->points);
        mean_curve(r->insertion, s->done, s->points, buf);
        write_numbers(j, "mean_insertion", buf, s->points);
        mean_curve(r->aopc_curve, s->done, s->aopc_l, buf);
        write_numbers(j, "mean_aopc_curve", buf, s->aopc_l);
        json_end_object(j);
    }
    json_end_object(j);
}

/* A constant map's localisation scores (mean over the images, and each). */
static void write_uniform(json_writer *j, const eval_state *s, double *buf) {
    json_key(j, "uniform");
    json_begin_object(j);
    for (size_t c = 0; c < N_COLUMNS; c++) {
        if (columns[c].flag != METRIC_LOCALISATION)
            continue;
        uniform_values(s, c, buf);
        eval_summary e = eval_summarise(buf, s->done, 1);
        json_key(j, columns[c].key);
        json_begin_object(j);
        json_key_number(j, "mean", e.mean);
        json_key_number(j, "se", e.se);
        json_key_int(j, "n", (long long)e.n);
        json_end_object(j);
    }
    json_end_object(j);
}

static void write_image(json_writer *j, const eval_options *o, const eval_state *s, size_t i) {
    const eval_image *im = &s->images[i];
    json_begin_object(j);
    json_key_int(j, "index", (long long)i);
    json_key_string(j, "name", evmap_image_set_name(s->set, i));
    json_key(j, "label");
    if (im->label >= 0)
        json_int(j, im->label);
    else
        json_null(j);
    json_key_int(j, "predicted", im->predicted);
    json_key_int(j, "class", im->cls);
    if (s->names.count)
        json_key_string(j, "class_name", cli_label(&s->names, im->cls));
    json_key_number(j, "probability", im->p);
    if (o->metrics & METRIC_LOCALISATION) {
        json_key(j, "uniform");
        json_begin_object(j);
        json_key_number(j, "mask_area", im->area);
        json_key_number(j, "pointing_game", im->pointing_uniform);
        json_key_number(j, "iou_top", im->iou_uniform);
        json_end_object(j);
    }
    json_key(j, "methods");
    json_begin_object(j);
    for (int m = 0; m < o->n_methods; m++) {
        const eval_method_result *r = &s->results[m];
        json_key(j, o->methods[m]->name);
        json_begin_object(j);
        for (size_t c = 0; c < N_COLUMNS; c++)
            json_key_number(j, columns[c].key, column_values(r, c)[i]);
        write_numbers(j, "deletion", r->deletion + i * (size_t)s->points, s->points);
        write_numbers(j, "insertion", r->insertion + i * (size_t)s->points, s->points);
        write_numbers(j, "aopc_curve", r->aopc_curve + i * (size_t)s->aopc_l, s->aopc_l);
        json_end_object(j);
    }
    json_end_object(j);
    json_end_object(j);
}

/* Every image this run evaluated, under its index in the data sources. */
static void write_per_image(json_writer *j, const eval_options *o, const eval_state *s) {
    json_key(j, "per_image");
    json_begin_array(j);
    for (size_t i = 0; i < s->done; i++)
        if (s->images[i].evaluated)
            write_image(j, o, s, i);
    json_end_array(j);
}

/* The command line as run (the parts of a sharded run read it back). */
static void write_command(json_writer *j, const eval_options *o) {
    json_key(j, "command");
    json_begin_array(j);
    json_string(j, "evmap");
    for (int i = 0; i < o->argc; i++)
        json_string(j, o->argv[i]);
    json_end_array(j);
}

static evmap_status write_json(const eval_options *o, const eval_state *s, const char *path,
                               evmap_error *err) {
    size_t most = (size_t)(s->points > s->aopc_l ? s->points : s->aopc_l);
    double *buf = malloc(sizeof(double) * (most > s->done ? most : s->done));
    if (!buf) {
        err->status = EVMAP_ERR_OUT_OF_MEMORY;
        snprintf(err->message, sizeof err->message, "out of memory writing '%s'", path);
        return err->status;
    }
    json_writer j;
    json_start(&j);
    json_begin_object(&j);
    write_command(&j, o);
    json_key_string(&j, "model", o->model_path);
    json_key_int(&j, "images", (long long)s->done);
    json_key(&j, "input_size"); /* width, height: what every image ran at */
    json_begin_array(&j);
    json_number(&j, s->info.width);
    json_number(&j, s->info.height);
    json_end_array(&j);
    json_key_bool(&j, "complete", s->done == s->n_images);
    json_key_number(&j, "accuracy_percent", s->labels ? accuracy(s) : NAN);
    json_key_number(&j, "seconds", s->seconds);
    write_parameters(&j, o, s);
    write_numbers(&j, "fraction", s->x, s->points);
    write_summaries(&j, o, s, buf);
    if (o->metrics & METRIC_LOCALISATION)
        write_uniform(&j, s, buf);
    write_per_image(&j, o, s);
    json_end_object(&j);
    free(buf);
    return json_finish(&j, path, err);
}

evmap_status eval_write_part(const eval_options *o, const eval_state *s, evmap_error *err) {
    json_writer j;
    json_start(&j);
    j.exact = true; /* --merge summarises these numbers as a single run would */
    json_begin_object(&j);
    write_command(&j, o);
    json_key_int(&j, "shard", o->shard);
    json_key_int(&j, "shards", o->shards);
    json_key_int(&j, "images", (long long)s->n_images); /* of the whole run */
    json_key_number(&j, "seconds", s->seconds);
    write_parameters(&j, o, s);
    write_per_image(&j, o, s);
    json_end_object(&j);
    char path[1024];
    snprintf(path, sizeof path, "%s/evaluate.part-%d-of-%d.json", o->out_dir, o->shard, o->shards);
    return json_finish(&j, path, err);
}

/* ---------------------------------------------------------------- plots */

static evmap_status write_plot(const eval_options *o, const eval_state *s, bool deletion,
                               const char *path, evmap_error *err) {
    int n = o->n_methods, points = s->points;
    double *y = malloc(sizeof(double) * (size_t)points * (size_t)n);
    evmap_plot_series *series = calloc((size_t)n, sizeof *series);
    char(*names)[64] = calloc((size_t)n, sizeof *names);
    evmap_status st = EVMAP_OK;
    if (!y || !series || !names) {
        err->status = st = EVMAP_ERR_OUT_OF_MEMORY;
        snprintf(err->message, sizeof err->message, "out of memory plotting '%s'", path);
    }
    for (int m = 0; st == EVMAP_OK && m < n; m++) {
        const eval_method_result *r = &s->results[m];
        mean_curve(deletion ? r->deletion : r->insertion, s->done, points, y + m * points);
        eval_summary auc =
            eval_summarise(deletion ? r->deletion_auc : r->insertion_auc, s->done, 1);
        snprintf(names[m], sizeof names[m], "%s (AUC %.3f)", o->methods[m]->name, auc.mean);
        series[m] = (evmap_plot_series){names[m], s->x, y + m * points, points};
    }
    char title[160];
    snprintf(title, sizeof title, "%s, %zu images, fill %s",
             deletion ? "Deletion (lower AUC is better)" : "Insertion (higher AUC is better)",
             s->done, fill_names[o->fill]);
    evmap_plot p;
    evmap_plot_init(&p);
    p.title = title;
    p.x_label = deletion ? "fraction of pixels deleted, most evidence first"
                         : "fraction of pixels inserted, most evidence first";
    p.width = 900;
    p.height = 480;
    p.y_label = "mean p(class)";
    p.x_min = 0;
    p.x_max = 1;
    p.y_min = 0;
    p.y_max = 1;
    p.series = series;
    p.n_series = n;
    if (st == EVMAP_OK)
        st = evmap_plot_png(path, &p, err);
    free(y);
    free(series);
    free(names);
    return st;
}

evmap_status eval_write_outputs(const eval_options *o, const eval_state *s, evmap_error *err) {
    char path[1024];
    snprintf(path, sizeof path, "%s/evaluate.csv", o->out_dir);
    evmap_status st = write_csv(o, s, path, err);
    snprintf(path, sizeof path, "%s/evaluate.json", o->out_dir);
    if (st == EVMAP_OK)
        st = write_json(o, s, path, err);
    snprintf(path, sizeof path, "%s/deletion.png", o->out_dir);
    if (st == EVMAP_OK && (o->metrics & METRIC_DELETION))
        st = write_plot(o, s, true, path, err);
    snprintf(path, sizeof path, "%s/insertion.png", o->out_dir);
    if (st == EVMAP_OK && (o->metrics & METRIC_INSERTION))
        st = write_plot(o, s, false, path, err);
    return st;
}
