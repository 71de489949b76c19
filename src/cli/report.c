/*
 * evmap report DIR [-o FILE]: one self-contained HTML page (report_page.c)
 * from what explain and evaluate left in DIR. The per-image JSON files and
 * their NPY maps are the source of truth: every class map of every method
 * is embedded as float32 values (base64), with the model input picture
 * (<stem>.input.png), the class, probability, timing and parameters;
 * evaluate.json, when present, is embedded whole. No network access, no
 * external files.
 */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "io/atomic_file.h"
#include "json.h"
#include "json_read.h"
#include "report.h"

static const char report_help[] =
    "usage: evmap report DIR [-o FILE]\n"
    "\n"
    "Writes one self-contained HTML page (default DIR/report.html) from the\n"
    "outputs of 'evmap explain --out DIR' and 'evmap evaluate --out DIR': per\n"
    "image the input and every method's maps on one colour scale per unit (or\n"
    "one per map), the value under the pointer, class, probability and timing;\n"
    "a sortable, filterable table of the images; evaluate's metrics and curves.\n"
    "The page needs no network and no other file.\n";

typedef struct report {
    const char *dir;
    FILE *f; /* the page, in memory */
    char *buf;
    size_t size;
    int images, maps;
} report;

/* ------------------------------------------------------------ reading */

/* The float32 data of one of evmap's NPY maps, height × width; NULL when
 * the file is missing or not such a map. */
static const unsigned char *npy_floats(const unsigned char *b, size_t n, int height, int width) {
    if (n < 10 || memcmp(b, "\x93NUMPY", 6) || b[6] != 1)
        return NULL;
    size_t header = (size_t)b[8] | (size_t)b[9] << 8;
    if (10 + header > n)
        return NULL;
    char dict[256];
    size_t len = header < sizeof dict - 1 ? header : sizeof dict - 1;
    memcpy(dict, b + 10, len);
    dict[len] = '\0';
    char shape[64];
    snprintf(shape, sizeof shape, "(%d, %d)", height, width);
    if (!strstr(dict, "'<f4'") || !strstr(dict, shape) || strstr(dict, "True"))
        return NULL;
    return n - 10 - header == (size_t)height * (size_t)width * 4 ? b + 10 + header : NULL;
}

/* -------------------------------------------------------- copying JSON */

/* Writes a parsed value back (for the parameters and evaluate.json). */
static void write_value(json_writer *j, const jv *v) {
    switch (v->type) {
    case JV_NULL: json_null(j); break;
    case JV_BOOL: json_bool(j, v->boolean); break;
    case JV_NUMBER: json_number(j, v->number); break;
    case JV_STRING: json_string(j, v->string); break;
    case JV_ARRAY:
        json_begin_array(j);
        for (int i = 0; i < v->n; i++)
            write_value(j, &v->items[i]);
        json_end_array(j);
        break;
    case JV_OBJECT:
        json_begin_object(j);
        for (int i = 0; i < v->n; i++) {
            json_key(j, v->keys[i]);
            write_value(j, &v->items[i]);
        }
        json_end_object(j);
        break;
    }
}

typedef struct explain_doc {
    jv *doc;
    const char *stem, *method;
    int width, height;
} explain_doc;

/* Whether doc is an explain summary with class maps (hidden units have no
 * class and are left out). */
static bool is_explain(jv *doc, explain_doc *e) {
    const jv *size = jv_get(doc, "input_size"), *classes = jv_get(doc, "classes");
    double w, h;
    e->doc = doc;
    e->stem = jv_string(jv_get(doc, "stem"));
    e->method = jv_string(jv_get(doc, "method"));
    if (!e->stem || !e->method || !classes || classes->type != JV_ARRAY || !size ||
        size->type != JV_ARRAY || size->n != 2 || !jv_number(&size->items[0], &w) ||
        !jv_number(&size->items[1], &h) || w < 1 || h < 1 || w > 8192 || h > 8192)
        return false;
    e->width = (int)w;
    e->height = (int)h;
    return true;
}

static int by_stem_then_method(const void *a, const void *b) {
    const explain_doc *x = a, *y = b;
    int c = strcmp(x->stem, y->stem);
    return c ? c : strcmp(x->method, y->method);
}

static bool is_json_name(const char *name) {
    size_t n = strlen(name);
    return n > 5 && !strcmp(name + n - 5, ".json") && strcmp(name, "evaluate.json") &&
           strcmp(name, "index.json") && strncmp(name, "evaluate.part-", 14);
}

/* Every explain summary in dir, sorted; a malformed .json is an error. */
static evmap_status read_docs(const char *dir, explain_doc **out, size_t *n, evmap_error *err) {
    DIR *d = opendir(dir);
    if (!d)
        return cli_fail(err, EVMAP_ERR_IO, "cannot open the folder '%s'", dir);
    size_t cap = 0;
    *n = 0;
    *out = NULL;
    evmap_status st = EVMAP_OK;
    struct dirent *e;
    while (st == EVMAP_OK && (e = readdir(d))) {
        if (!is_json_name(e->d_name))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        jv *doc = jv_read_file(path);
        explain_doc ed;
        if (!doc) {
            st = cli_fail(err, EVMAP_ERR_BAD_FILE,
                          "%s is not valid JSON (a damaged output?); remove it or explain that "
                          "image again",
                          path);
            break;
        }
        if (!is_explain(doc, &ed)) {
            jv_free(doc);
            continue;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            explain_doc *grown = realloc(*out, cap * sizeof *grown);
            if (!grown) {
                jv_free(doc);
                st = cli_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
                break;
            }
            *out = grown;
        }
        (*out)[(*n)++] = ed;
    }
    closedir(d);
    if (*n)
        qsort(*out, *n, sizeof **out, by_stem_then_method);
    return st;
}

/* ------------------------------------------------------------- writing */

static const char *text_or_empty(const jv *v) {
    const char *s = jv_string(v);
    return s ? s : "";
}

static double number_or_nan(const jv *v) {
    double x;
    return jv_number(v, &x) ? x : (double)NAN;
}

/* One class map: its numbers and the values of its NPY file. */
static evmap_status write_map(report *r, json_writer *j, const explain_doc *e, const jv *cls,
                              evmap_error *err) {
    const char *npy = jv_string(jv_get(cls, "npy"));
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", r->dir, npy ? npy : "");
    size_t n = 0;
    unsigned char *bytes =
        npy && !strchr(npy, '/') ? cli_read_file(path, (size_t)1 << 30, &n) : NULL;
    const unsigned char *values = bytes ? npy_floats(bytes, n, e->height, e->width) : NULL;
    if (!values) {
        free(bytes);
        return cli_fail(err, EVMAP_ERR_BAD_FILE,
                        "%s: missing, or not the %d x %d map its JSON describes; explain '%s' "
                        "again",
                        path, e->width, e->height, e->stem);
    }
    json_begin_object(j);
    json_key_string(j, "method", e->method);
    json_key_string(j, "units", text_or_empty(jv_get(e->doc, "units")));
    json_key_number(j, "class", number_or_nan(jv_get(cls, "class")));
    json_key_string(j, "label", text_or_empty(jv_get(cls, "label")));
    json_key_number(j, "prob", number_or_nan(jv_get(cls, "prob")));
    json_key_number(j, "seconds", number_or_nan(jv_get(e->doc, "seconds")));
    json_key_int(j, "width", e->width);
    json_key_int(j, "height", e->height);
    const jv *params = jv_get(e->doc, "parameters");
    if (params) {
        json_key(j, "parameters");
        write_value(j, params);
    }
    json_key(j, "values");
    json_base64(j, values, (size_t)e->width * (size_t)e->height * 4);
    json_end_object(j);
    free(bytes);
    r->maps++;
    return EVMAP_OK;
}

/* The input picture as base64 (null when explain did not write one). */
static void write_input(report *r, json_writer *j, const explain_doc *e) {
    const char *name = jv_string(jv_get(e->doc, "input_png"));
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", r->dir, name ? name : "");
    size_t n = 0;
    unsigned char *png =
        name && !strchr(name, '/') ? cli_read_file(path, (size_t)1 << 28, &n) : NULL;
    json_key(j, "input_png");
    if (!png || n < 8 || memcmp(png, "\x89PNG", 4))
        json_null(j);
    else
        json_base64(j, png, n);
    free(png);
}

/* One image: the docs [first, last) share its stem. */
static evmap_status write_image(report *r, json_writer *j, const explain_doc *docs, size_t first,
                                size_t last, evmap_error *err) {
    const explain_doc *e = &docs[first];
    json_begin_object(j);
    json_key_string(j, "stem", e->stem);
    json_key_string(j, "image", text_or_empty(jv_get(e->doc, "image")));
    json_key_int(j, "width", e->width);
    json_key_int(j, "height", e->height);
    write_input(r, j, e);
    json_key(j, "maps");
    json_begin_array(j);
    evmap_status st = EVMAP_OK;
    for (size_t d = first; st == EVMAP_OK && d < last; d++) {
        const jv *classes = jv_get(docs[d].doc, "classes");
        for (int c = 0; st == EVMAP_OK && c < classes->n; c++)
            st = write_map(r, j, &docs[d], &classes->items[c], err);
    }
    json_end_array(j);
    json_end_object(j);
    r->images++;
    return st;
}

static evmap_status write_data(report *r, const explain_doc *docs, size_t n, const jv *evaluate,
                               evmap_error *err) {
    json_writer j;
    json_start(&j);
    j.compact = true;
    json_begin_object(&j);
    json_key_string(&j, "dir", r->dir);
    json_key(&j, "images");
    json_begin_array(&j);
    evmap_status st = EVMAP_OK;
    for (size_t i = 0; st == EVMAP_OK && i < n;) {
        size_t k = i + 1;
        while (k < n && !strcmp(docs[k].stem, docs[i].stem))
            k++;
        st = write_image(r, &j, docs, i, k, err);
        i = k;
    }
    json_end_array(&j);
    json_key(&j, "evaluate");
    if (evaluate)
        write_value(&j, evaluate);
    else
        json_null(&j);
    json_end_object(&j);
    size_t len;
    char *text = json_take(&j, &len);
    if (!text)
        return st == EVMAP_OK ? cli_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory") : st;
    /* "</" cannot end the script element early: the JSON escapes it */
    for (size_t i = 0; st == EVMAP_OK && i < len; i++) {
        if (text[i] == '<' && i + 1 < len && text[i + 1] == '/')
            fputs("<\\", r->f);
        else
            fputc(text[i], r->f);
    }
    free(text);
    return st;
}

static evmap_status build(report *r, const char *out, evmap_error *err) {
    explain_doc *docs = NULL;
    size_t n = 0;
    evmap_status st = read_docs(r->dir, &docs, &n, err);
    char path[4096];
    snprintf(path, sizeof path, "%s/evaluate.json", r->dir);
    jv *evaluate = st == EVMAP_OK ? jv_read_file(path) : NULL;
    if (st == EVMAP_OK && n == 0 && !evaluate)
        st = cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                      "%s holds no evmap explain or evaluate results; run 'evmap explain --out "
                      "%s' (or evaluate) first",
                      r->dir, r->dir);
    r->f = st == EVMAP_OK ? open_memstream(&r->buf, &r->size) : NULL;
    if (st == EVMAP_OK && !r->f)
        st = cli_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
    if (st == EVMAP_OK) {
        fputs(report_page_head, r->f);
        fputs("<script id=\"data\" type=\"application/json\">", r->f);
        st = write_data(r, docs, n, evaluate, err);
        fputs("</script>\n", r->f);
        fputs(report_page_tail, r->f);
    }
    if (r->f && fclose(r->f) != 0 && st == EVMAP_OK)
        st = cli_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
    r->f = NULL;
    evm_atomic_file af;
    if (st == EVMAP_OK)
        st = evm_atomic_open(&af, out, err);
    if (st == EVMAP_OK) {
        st = evm_atomic_write(&af, r->buf, r->size, err);
        if (st == EVMAP_OK)
            st = evm_atomic_commit(&af, err);
        evm_atomic_abort(&af);
    }
    for (size_t i = 0; i < n; i++)
        jv_free(docs[i].doc);
    free(docs);
    jv_free(evaluate);
    free(r->buf);
    return st;
}

int report_write(const char *dir, const char *out, bool quiet) {
    char default_out[4096];
    snprintf(default_out, sizeof default_out, "%s/report.html", dir);
    report r = {.dir = dir};
    evmap_error err = {0};
    evmap_status st = build(&r, out ? out : default_out, &err);
    if (st != EVMAP_OK)
        return cli_report(&err) == EXIT_RUNTIME ? EXIT_RUNTIME : EXIT_USAGE;
    if (!quiet)
        fprintf(stderr, "evmap report: %d images, %d maps: wrote %s (%.1f MB)\n", r.images, r.maps,
                out ? out : default_out, (double)r.size / 1e6);
    return EXIT_OK;
}

int cmd_report(int argc, char **argv) {
    const char *dir = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(report_help, stdout);
            return EXIT_OK;
        }
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--out")) && i + 1 < argc)
            out = argv[++i];
        else if (argv[i][0] != '-' && !dir)
            dir = argv[i];
        else
            return cli_usage_error("report", "unexpected '%s'", argv[i]);
    }
    if (!dir)
        return cli_usage_error("report", "give the folder of a run (its --out)");
    return report_write(dir, out, false);
}
