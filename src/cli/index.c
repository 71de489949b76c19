/*
 * evmap index DIR: merges the index parts that sharded or resumed explain
 * runs appended to DIR (explain_resume.c) into DIR/index.csv and
 * DIR/index.json, reading each finished image's own JSON for its classes,
 * probabilities, timings and files, and reports the images that are missing
 * (a shard that never ran or was killed) or failed. Exit 0 when every image
 * of every method is done, 1 when some are not, 2 when DIR has no parts or
 * they contradict each other.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "io/atomic_file.h"
#include "json.h"
#include "json_read.h"

#define INDEX_MAX_METHODS 16
#define INDEX_SHOWN_MISSING 10

typedef enum { IMAGE_MISSING, IMAGE_DONE, IMAGE_FAILED } image_status;

typedef struct index_image {
    image_status status;
    char *stem, *path, *json, *error; /* from the parts (NULL when unknown) */
    jv *doc;                          /* the image's own JSON, once read */
} index_image;

typedef struct index_method {
    char name[32];
    long shards, images;
    index_image *list; /* images entries */
    long done, failed, missing;
} index_method;

typedef struct index_run {
    const char *dir;
    index_method methods[INDEX_MAX_METHODS];
    int n_methods;
    int parts;
} index_run;

static const char index_help[] =
    "usage: evmap index DIR\n"
    "\n"
    "Merges the index parts that 'evmap explain --shard I/N' or '--resume' wrote\n"
    "into DIR (index-METHOD.part-I-of-N.jsonl) into DIR/index.csv and\n"
    "DIR/index.json: one row per image and class (method, image, class, label,\n"
    "probability, seconds, files), and lists images that are missing or failed.\n"
    "Exit codes: 0 every image done, 1 some missing or failed, 2 no parts in DIR\n"
    "or parts that disagree.\n";

static const char *text_or_empty(const jv *v) {
    const char *s = jv_string(v);
    return s ? s : "";
}

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

static void set_text(char **dst, const char *s) {
    free(*dst);
    *dst = dup_or_null(s);
}

static void free_run(index_run *r) {
    for (int m = 0; m < r->n_methods; m++) {
        index_method *im = &r->methods[m];
        for (long i = 0; im->list && i < im->images; i++) {
            index_image *e = &im->list[i];
            free(e->stem);
            free(e->path);
            free(e->json);
            free(e->error);
            jv_free(e->doc);
        }
        free(im->list);
    }
}

/* The method's entry, made from a header line the first time; NULL (err
 * set) when the header disagrees with an earlier part. */
static index_method *method_for(index_run *r, const jv *header, const char *file,
                                evmap_error *err) {
    const char *name = jv_string(jv_get(header, "method"));
    double shards, images;
    if (!name || strlen(name) >= sizeof r->methods[0].name ||
        !jv_number(jv_get(header, "shards"), &shards) ||
        !jv_number(jv_get(header, "images"), &images) || shards < 1 || images < 0 || images > 1e9) {
        cli_fail(err, EVMAP_ERR_BAD_FILE, "%s/%s: a header line is malformed", r->dir, file);
        return NULL;
    }
    for (int m = 0; m < r->n_methods; m++) {
        index_method *im = &r->methods[m];
        if (strcmp(im->name, name))
            continue;
        if (im->shards != (long)shards || im->images != (long)images) {
            cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                     "%s/%s: a run of %ld images in %ld shards, but an earlier part has %ld "
                     "images in %ld shards for method %s; remove the parts of the old run",
                     r->dir, file, (long)images, (long)shards, im->images, im->shards, name);
            return NULL;
        }
        return im;
    }
    if (r->n_methods == INDEX_MAX_METHODS) {
        cli_fail(err, EVMAP_ERR_TOO_LARGE, "%s: more than %d methods", r->dir, INDEX_MAX_METHODS);
        return NULL;
    }
    index_method *im = &r->methods[r->n_methods];
    snprintf(im->name, sizeof im->name, "%s", name);
    im->shards = (long)shards;
    im->images = (long)images;
    im->list = calloc((size_t)images + 1, sizeof *im->list);
    if (!im->list) {
        cli_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
        return NULL;
    }
    r->n_methods++;
    return im;
}

/* A header names every image of the run, in order. */
static void read_header_stems(index_method *im, const jv *header) {
    const jv *stems = jv_get(header, "stems");
    if (!stems || stems->type != JV_ARRAY)
        return;
    for (long i = 0; i < stems->n && i < im->images; i++)
        if (!im->list[i].stem && jv_string(&stems->items[i]))
            set_text(&im->list[i].stem, stems->items[i].string);
}

static void read_record(index_method *im, const jv *rec) {
    double index;
    const char *status = jv_string(jv_get(rec, "status"));
    if (!jv_number(jv_get(rec, "index"), &index) || index < 0 || index >= (double)im->images ||
        !status)
        return;
    index_image *e = &im->list[(long)index];
    set_text(&e->stem, jv_string(jv_get(rec, "stem")));
    set_text(&e->path, jv_string(jv_get(rec, "image")));
    /* the last line about an image is its latest state */
    bool done = !strcmp(status, "done") || !strcmp(status, "resumed");
    e->status = done ? IMAGE_DONE : IMAGE_FAILED;
    set_text(&e->json, done ? jv_string(jv_get(rec, "json")) : NULL);
    set_text(&e->error, done ? NULL : jv_string(jv_get(rec, "error")));
}

/* Reads one part file line by line; a torn last line is skipped. */
static evmap_status read_part(index_run *r, const char *file, evmap_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", r->dir, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return cli_fail(err, EVMAP_ERR_IO, "cannot read '%s'", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    index_method *im = NULL;
    evmap_status st = EVMAP_OK;
    while (st == EVMAP_OK && (len = getline(&line, &cap, f)) > 0) {
        jv *v = jv_parse(line, (size_t)len);
        if (v && jv_get(v, "shards")) {
            im = method_for(r, v, file, err);
            st = im ? EVMAP_OK : err->status;
            if (im)
                read_header_stems(im, v);
        } else if (v && im) {
            read_record(im, v);
        }
        jv_free(v);
    }
    free(line);
    fclose(f);
    r->parts++;
    return st;
}

static bool is_part_name(const char *name) {
    size_t n = strlen(name);
    return !strncmp(name, "index-", 6) && strstr(name, ".part-") && n > 6 &&
           !strcmp(name + n - 6, ".jsonl");
}

static evmap_status read_parts(index_run *r, evmap_error *err) {
    DIR *d = opendir(r->dir);
    if (!d)
        return cli_fail(err, EVMAP_ERR_IO, "cannot open the folder '%s'", r->dir);
    evmap_status st = EVMAP_OK;
    struct dirent *e;
    while (st == EVMAP_OK && (e = readdir(d)))
        if (is_part_name(e->d_name))
            st = read_part(r, e->d_name, err);
    closedir(d);
    if (st == EVMAP_OK && r->parts == 0)
        st = cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                      "%s has no index parts (index-METHOD.part-I-of-N.jsonl); they are written "
                      "by 'evmap explain --shard I/N' or '--resume'",
                      r->dir);
    return st;
}

/* Done images whose own JSON is gone or unreadable count as missing. */
static void check_images(index_run *r) {
    for (int m = 0; m < r->n_methods; m++) {
        index_method *im = &r->methods[m];
        for (long i = 0; i < im->images; i++) {
            index_image *e = &im->list[i];
            if (e->status == IMAGE_DONE) {
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", r->dir, e->json ? e->json : "");
                e->doc = e->json && !strchr(e->json, '/') ? jv_read_file(path) : NULL;
                if (!e->doc)
                    e->status = IMAGE_MISSING;
            }
            im->done += e->status == IMAGE_DONE;
            im->failed += e->status == IMAGE_FAILED;
            im->missing += e->status == IMAGE_MISSING;
        }
    }
}

static void csv_field(FILE *f, const char *s, bool last) {
    s = s ? s : "";
    if (strpbrk(s, ",\"\n\r")) {
        fputc('"', f);
        for (; *s; s++) {
            if (*s == '"')
                fputc('"', f);
            fputc(*s, f);
        }
        fputc('"', f);
    } else {
        fputs(s, f);
    }
    fputc(last ? '\n' : ',', f);
}

static const char *status_name(image_status s) {
    return s == IMAGE_DONE ? "done" : s == IMAGE_FAILED ? "failed" : "missing";
}

/* One CSV row per image and target (one row for images without a map). */
static void csv_rows(FILE *f, const index_method *im, long i) {
    const index_image *e = &im->list[i];
    const jv *classes = jv_get(e->doc, "classes");
    double seconds = 0;
    char sec[32] = "", idx[32];
    if (jv_number(jv_get(e->doc, "seconds"), &seconds))
        snprintf(sec, sizeof sec, "%.6g", seconds);
    snprintf(idx, sizeof idx, "%ld", i);
    int rows = classes && classes->type == JV_ARRAY && classes->n > 0 ? classes->n : 1;
    for (int t = 0; t < rows; t++) {
        const jv *c = classes && t < classes->n ? &classes->items[t] : NULL;
        double cls, prob;
        char cbuf[32] = "", pbuf[32] = "";
        if (jv_number(jv_get(c, "class"), &cls))
            snprintf(cbuf, sizeof cbuf, "%.0f", cls);
        if (jv_number(jv_get(c, "prob"), &prob))
            snprintf(pbuf, sizeof pbuf, "%.9g", prob);
        csv_field(f, im->name, false);
        csv_field(f, idx, false);
        csv_field(f, e->stem, false);
        csv_field(f, e->path, false);
        csv_field(f, status_name(e->status), false);
        csv_field(f, cbuf, false);
        csv_field(f, jv_string(jv_get(c, "label")), false);
        csv_field(f, pbuf, false);
        csv_field(f, sec, false);
        csv_field(f, jv_string(jv_get(c, "npy")), false);
        csv_field(f, jv_string(jv_get(c, "png")), false);
        csv_field(f, e->error, true);
    }
}

static evmap_status write_csv(const index_run *r, evmap_error *err) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f)
        return cli_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
    fputs("method,index,stem,image,status,class,label,prob,seconds,npy,png,error\n", f);
    for (int m = 0; m < r->n_methods; m++)
        for (long i = 0; i < r->methods[m].images; i++)
            csv_rows(f, &r->methods[m], i);
    fclose(f);
    char path[4096];
    snprintf(path, sizeof path, "%s/index.csv", r->dir);
    evm_atomic_file af;
    evmap_status st = evm_atomic_open(&af, path, err);
    if (st == EVMAP_OK)
        st = evm_atomic_write(&af, buf, size, err);
    if (st == EVMAP_OK)
        st = evm_atomic_commit(&af, err);
    evm_atomic_abort(&af);
    free(buf);
    return st;
}

static void json_image(json_writer *j, const index_method *im, long i) {
    const index_image *e = &im->list[i];
    json_begin_object(j);
    json_key_string(j, "method", im->name);
    json_key_int(j, "index", i);
    json_key_string(j, "stem", e->stem ? e->stem : "");
    json_key_string(j, "image", e->path ? e->path : "");
    json_key_string(j, "status", status_name(e->status));
    if (e->error)
        json_key_string(j, "error", e->error);
    double seconds;
    if (jv_number(jv_get(e->doc, "seconds"), &seconds))
        json_key_number(j, "seconds", seconds);
    if (e->json && e->status == IMAGE_DONE)
        json_key_string(j, "json", e->json);
    const jv *classes = jv_get(e->doc, "classes");
    json_key(j, "classes");
    json_begin_array(j);
    for (int t = 0; classes && classes->type == JV_ARRAY && t < classes->n; t++) {
        const jv *c = &classes->items[t];
        double cls, prob;
        json_begin_object(j);
        if (jv_number(jv_get(c, "class"), &cls))
            json_key_int(j, "class", (long long)cls);
        json_key_string(j, "label", text_or_empty(jv_get(c, "label")));
        if (jv_number(jv_get(c, "prob"), &prob))
            json_key_number(j, "prob", prob);
        json_key_string(j, "npy", text_or_empty(jv_get(c, "npy")));
        json_key_string(j, "png", text_or_empty(jv_get(c, "png")));
        json_end_object(j);
    }
    json_end_array(j);
    json_end_object(j);
}

static evmap_status write_json(const index_run *r, bool complete, evmap_error *err) {
    json_writer j;
    json_start(&j);
    json_begin_object(&j);
    json_key_bool(&j, "complete", complete);
    json_key(&j, "methods");
    json_begin_array(&j);
    for (int m = 0; m < r->n_methods; m++) {
        const index_method *im = &r->methods[m];
        json_begin_object(&j);
        json_key_string(&j, "method", im->name);
        json_key_int(&j, "shards", im->shards);
        json_key_int(&j, "images", im->images);
        json_key_int(&j, "done", im->done);
        json_key_int(&j, "failed", im->failed);
        json_key_int(&j, "missing", im->missing);
        json_end_object(&j);
    }
    json_end_array(&j);
    json_key(&j, "images");
    json_begin_array(&j);
    for (int m = 0; m < r->n_methods; m++)
        for (long i = 0; i < r->methods[m].images; i++)
            json_image(&j, &r->methods[m], i);
    json_end_array(&j);
    json_end_object(&j);
    char path[4096];
    snprintf(path, sizeof path, "%s/index.json", r->dir);
    return json_finish(&j, path, err);
}

/* Prints the summary and up to INDEX_SHOWN_MISSING unfinished images per
 * method; true when every image is done. */
static bool report(const index_run *r) {
    bool complete = true;
    for (int m = 0; m < r->n_methods; m++) {
        const index_method *im = &r->methods[m];
        fprintf(stderr, "evmap index: %s: %ld of %ld images done (%ld shards)", im->name, im->done,
                im->images, im->shards);
        if (im->failed || im->missing)
            fprintf(stderr, "; %ld failed, %ld missing", im->failed, im->missing);
        fputc('\n', stderr);
        complete &= im->done == im->images;
        int shown = 0;
        for (long i = 0; i < im->images && shown < INDEX_SHOWN_MISSING; i++) {
            const index_image *e = &im->list[i];
            if (e->status == IMAGE_DONE)
                continue;
            fprintf(stderr, "  %s: image %ld (%s, shard %ld/%ld)%s%s\n", status_name(e->status), i,
                    e->stem ? e->stem : "name unknown", i % im->shards, im->shards,
                    e->error ? ": " : "", e->error ? e->error : "");
            shown++;
        }
        if (im->done + shown < im->images)
            fprintf(stderr, "  ... and %ld more (index.csv lists them all)\n",
                    im->images - im->done - shown);
    }
    return complete;
}

int cmd_index(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(index_help, stdout);
        return EXIT_OK;
    }
    if (argc != 2 || argv[1][0] == '-')
        return cli_usage_error("index", "give exactly one folder (the --out of the runs)");
    index_run r = {.dir = argv[1]};
    evmap_error err = {0};
    evmap_status st = read_parts(&r, &err);
    bool complete = false;
    if (st == EVMAP_OK) {
        check_images(&r);
        complete = report(&r);
        st = write_csv(&r, &err);
    }
    if (st == EVMAP_OK)
        st = write_json(&r, complete, &err);
    free_run(&r);
    if (st != EVMAP_OK)
        return cli_report(&err) == EXIT_RUNTIME ? EXIT_RUNTIME : EXIT_USAGE;
    fprintf(stderr, "evmap index: wrote %s/index.csv and %s/index.json\n", r.dir, r.dir);
    return complete ? EXIT_OK : EXIT_RUNTIME;
}
