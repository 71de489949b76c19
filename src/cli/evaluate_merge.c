/*
 * evmap evaluate --merge DIR: the parts that `evmap evaluate --shard I/N
 * --out DIR` runs wrote (evaluate.part-I-of-N.json, numbers with 17 digits)
 * become the outputs of one run over every image: the command line is read
 * back from the parts (so the options, methods and images are the run's
 * own), every image's results are put where that run would have computed
 * them, and the usual table, evaluate.json, evaluate.csv and plots follow.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evaluate.h"
#include "json_read.h"

#define MAX_PARTS 4096

struct eval_parts {
    jv *part[MAX_PARTS]; /* by shard */
    int shards;
    long images;
    char **argv; /* the command without "evmap" and --shard I/N */
    int argc;
};

void eval_parts_free(eval_parts *p) {
    if (!p)
        return;
    for (int i = 0; i < MAX_PARTS; i++)
        jv_free(p->part[i]);
    free(p->argv);
    free(p);
}

/* The command array without "evmap" and the --shard pair, for comparing
 * parts and for parsing. */
static bool command_of(const jv *doc, char ***argv, int *argc) {
    const jv *cmd = jv_get(doc, "command");
    if (!cmd || cmd->type != JV_ARRAY || cmd->n < 2)
        return false;
    *argv = calloc((size_t)cmd->n + 1, sizeof **argv);
    if (!*argv)
        return false;
    *argc = 0;
    for (int i = 1; i < cmd->n; i++) {
        const char *a = jv_string(&cmd->items[i]);
        if (!a)
            return false;
        if (!strcmp(a, "--shard")) {
            i++;
            continue;
        }
        (*argv)[(*argc)++] = (char *)a;
    }
    return true;
}

static bool same_command(char **a, int na, char **b, int nb) {
    if (na != nb)
        return false;
    for (int i = 0; i < na; i++)
        if (strcmp(a[i], b[i]))
            return false;
    return true;
}

/* Reads DIR/name (a part) into p->part[its shard]. */
static evmap_status read_part(eval_parts *p, const char *dir, const char *name, evmap_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    jv *doc = jv_read_file(path);
    double shard, shards, images;
    if (!doc || !jv_number(jv_get(doc, "shard"), &shard) ||
        !jv_number(jv_get(doc, "shards"), &shards) || !jv_number(jv_get(doc, "images"), &images) ||
        shards < 1 || shards > MAX_PARTS || shard < 0 || shard >= shards || images < 1) {
        jv_free(doc);
        return cli_fail(err, EVMAP_ERR_BAD_FILE,
                        "%s is not a part written by evmap evaluate --shard; remove it or run "
                        "that shard again",
                        path);
    }
    char **argv = NULL;
    int argc = 0;
    bool ok = command_of(doc, &argv, &argc);
    if (ok && p->argv &&
        (!same_command(argv, argc, p->argv, p->argc) || (int)shards != p->shards ||
         (long)images != p->images))
        ok = false;
    if (!ok || p->part[(int)shard]) {
        free(argv);
        jv_free(doc);
        return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "%s: %s; the folder must hold the parts of one evaluate command only", path,
                        !ok ? "another command or shard count than the other parts"
                            : "a second part for the same shard");
    }
    if (!p->argv) {
        p->argv = argv;
        p->argc = argc;
        p->shards = (int)shards;
        p->images = (long)images;
    } else {
        free(argv);
    }
    p->part[(int)shard] = doc;
    return EVMAP_OK;
}

static bool is_part_name(const char *name) {
    size_t n = strlen(name);
    return !strncmp(name, "evaluate.part-", 14) && n > 19 && !strcmp(name + n - 5, ".json");
}

evmap_status eval_parts_read(const char *dir, eval_parts **out, evmap_error *err) {
    *out = NULL;
    eval_parts *p = calloc(1, sizeof *p);
    DIR *d = opendir(dir);
    if (!p || !d) {
        free(p);
        if (d)
            closedir(d);
        return cli_fail(err, EVMAP_ERR_IO, "cannot open the folder '%s'", dir);
    }
    evmap_status st = EVMAP_OK;
    struct dirent *e;
    while (st == EVMAP_OK && (e = readdir(d)))
        if (is_part_name(e->d_name))
            st = read_part(p, dir, e->d_name, err);
    closedir(d);
    if (st == EVMAP_OK && !p->argv)
        st = cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                      "%s has no evaluate.part-I-of-N.json files (written by evmap evaluate "
                      "--shard I/N --out %s)",
                      dir, dir);
    for (int i = 0; st == EVMAP_OK && i < p->shards; i++)
        if (!p->part[i])
            st = cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                          "%s: shard %d/%d is missing (evaluate.part-%d-of-%d.json); run it, "
                          "then merge again",
                          dir, i, p->shards, i, p->shards);
    if (st != EVMAP_OK) {
        eval_parts_free(p);
        return st;
    }
    *out = p;
    return EVMAP_OK;
}

void eval_parts_command(const eval_parts *p, int *argc, char ***argv) {
    *argc = p->argc;
    *argv = p->argv;
}

/* A number or null (NaN). */
static double number_or_nan(const jv *v) {
    double x;
    return jv_number(v, &x) ? x : NAN;
}

static void fill_curve(const jv *values, double *out, int n) {
    for (int t = 0; t < n; t++)
        out[t] = values && values->type == JV_ARRAY && t < values->n
                     ? number_or_nan(&values->items[t])
                     : NAN;
}

static void fill_method(const jv *m, const eval_state *s, const eval_method_result *r, size_t i) {
    double *scalars[] = {r->deletion_auc, r->insertion_auc, r->aopc, r->sensitivity, r->seconds,
                         r->pointing,     r->mass,          r->rank, r->iou};
    const char *keys[] = {"deletion_auc",    "insertion_auc",  "aopc",
                          "max_sensitivity", "seconds",        "pointing_game",
                          "relevance_mass",  "relevance_rank", "iou_top"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        scalars[k][i] = number_or_nan(jv_get(m, keys[k]));
    fill_curve(jv_get(m, "deletion"), r->deletion + i * (size_t)s->points, s->points);
    fill_curve(jv_get(m, "insertion"), r->insertion + i * (size_t)s->points, s->points);
    fill_curve(jv_get(m, "aopc_curve"), r->aopc_curve + i * (size_t)s->aopc_l, s->aopc_l);
}

/* One per-image entry into s; false when it does not fit the run. */
static bool fill_image(const jv *e, const eval_options *o, eval_state *s) {
    double index, predicted, cls;
    if (!jv_number(jv_get(e, "index"), &index) || index < 0 || index >= (double)s->n_images ||
        !jv_number(jv_get(e, "predicted"), &predicted) || !jv_number(jv_get(e, "class"), &cls))
        return false;
    size_t i = (size_t)index;
    eval_image *im = &s->images[i];
    double label;
    im->label = jv_number(jv_get(e, "label"), &label) ? (int)label : -1;
    im->predicted = (int)predicted;
    im->cls = (int)cls;
    im->p = number_or_nan(jv_get(e, "probability"));
    const jv *u = jv_get(e, "uniform");
    im->area = number_or_nan(jv_get(u, "mask_area"));
    im->pointing_uniform = number_or_nan(jv_get(u, "pointing_game"));
    im->iou_uniform = number_or_nan(jv_get(u, "iou_top"));
    const jv *methods = jv_get(e, "methods");
    for (int m = 0; m < o->n_methods; m++) {
        const jv *r = jv_get(methods, o->methods[m]->name);
        if (!r)
            return false;
        fill_method(r, s, &s->results[m], i);
    }
    im->evaluated = true;
    return true;
}

evmap_status eval_parts_fill(const eval_parts *p, const eval_options *o, eval_state *s,
                             evmap_error *err) {
    if ((long)s->n_images != p->images)
        return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "the parts cover %ld images, but their data sources now hold %zu; merge "
                        "where the run's images are unchanged",
                        p->images, s->n_images);
    s->seconds = 0;
    for (int k = 0; k < p->shards; k++) {
        const jv *list = jv_get(p->part[k], "per_image");
        s->seconds += number_or_nan(jv_get(p->part[k], "seconds"));
        for (int e = 0; list && list->type == JV_ARRAY && e < list->n; e++)
            if (!fill_image(&list->items[e], o, s))
                return cli_fail(err, EVMAP_ERR_BAD_FILE,
                                "part %d/%d: per-image entry %d does not fit the command's "
                                "methods and images",
                                k, p->shards, e);
    }
    size_t missing = 0, first = 0;
    for (size_t i = s->n_images; i-- > 0;)
        if (!s->images[i].evaluated) {
            missing++;
            first = i;
        }
    if (missing)
        return cli_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "%zu of %zu images have no results in the parts (the first: image %zu, "
                        "%s, shard %zu/%d); run that shard to the end, then merge again",
                        missing, s->n_images, first, evmap_image_set_name(s->set, first),
                        first % (size_t)p->shards, p->shards);
    s->done = s->n_images;
    return EVMAP_OK;
}
