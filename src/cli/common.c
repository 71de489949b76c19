/* Helpers shared by the evmap subcommands. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

evmap_status cli_fail(evmap_error *err, evmap_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    err->status = st;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return st;
}

int cli_report(const evmap_error *err) {
    fprintf(stderr, "evmap: %s\n", err->message[0] ? err->message : evmap_status_name(err->status));
    return evmap_status_is_bad_input(err->status) ? EXIT_USAGE : EXIT_RUNTIME;
}

int cli_usage_error(const char *command, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "evmap %s: ", command);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'evmap %s --help')\n", command);
    return EXIT_USAGE;
}

evmap_status cli_make_out_dir(const char *dir, evmap_error *err) {
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (S_ISDIR(sb.st_mode))
            return EVMAP_OK;
        err->status = EVMAP_ERR_INVALID_ARGUMENT;
        snprintf(err->message, sizeof err->message, "--out '%s' exists and is not a folder", dir);
        return err->status;
    }
    if (mkdir(dir, 0777) != 0) {
        err->status = EVMAP_ERR_IO;
        snprintf(err->message, sizeof err->message, "cannot create output folder '%s': %s", dir,
                 strerror(errno));
        return err->status;
    }
    return EVMAP_OK;
}

bool cli_parse_int(const char *s, long min, long max, long *out) {
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool cli_parse_int_list(const char *s, char sep, long min, long max, int *out, int n) {
    char buf[256];
    if (!s || strlen(s) >= sizeof buf)
        return false;
    strcpy(buf, s);
    char *field = buf;
    for (int i = 0; i < n; i++) {
        char *next = strchr(field, sep);
        if ((next == NULL) != (i == n - 1))
            return false; /* too few or too many fields */
        if (next)
            *next = '\0';
        long v;
        if (!cli_parse_int(field, min, max, &v))
            return false;
        out[i] = (int)v;
        if (next)
            field = next + 1;
    }
    return true;
}

bool cli_parse_float(const char *s, float *out) {
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool cli_parse_floats(const char *s, float *out, int n) {
    char buf[256];
    if (!s || strlen(s) >= sizeof buf)
        return false;
    strcpy(buf, s);
    char *save = NULL, *tok = strtok_r(buf, ",", &save);
    int i = 0;
    for (; tok && i < n; i++, tok = strtok_r(NULL, ",", &save))
        if (!cli_parse_float(tok, &out[i]))
            return false;
    return i == n && !tok;
}

void cli_labels_free(cli_labels *labels) {
    if (!labels)
        return;
    for (int i = 0; i < labels->count; i++)
        free(labels->names[i]);
    free(labels->names);
    labels->names = NULL;
    labels->count = 0;
}

evmap_status cli_labels_load(const char *path, cli_labels *labels, evmap_error *err) {
    memset(labels, 0, sizeof *labels);
    FILE *f = fopen(path, "r");
    if (!f) {
        err->status = EVMAP_ERR_IO;
        snprintf(err->message, sizeof err->message, "cannot open labels file '%s': %s", path,
                 strerror(errno));
        return err->status;
    }
    char line[1024];
    int cap = 0;
    evmap_status st = EVMAP_OK;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (labels->count == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown =
                cap <= 1000000 ? realloc(labels->names, sizeof(char *) * (size_t)cap) : NULL;
            if (!grown) {
                st = cap > 1000000 ? EVMAP_ERR_TOO_LARGE : EVMAP_ERR_OUT_OF_MEMORY;
                snprintf(err->message, sizeof err->message,
                         "labels file '%s' has more than a million lines; give one class name "
                         "per line",
                         path);
                break;
            }
            labels->names = grown;
        }
        labels->names[labels->count] = strdup(line);
        if (!labels->names[labels->count]) {
            st = EVMAP_ERR_OUT_OF_MEMORY;
            snprintf(err->message, sizeof err->message, "out of memory reading '%s'", path);
            break;
        }
        labels->count++;
    }
    fclose(f);
    if (st != EVMAP_OK) {
        err->status = st;
        cli_labels_free(labels);
    }
    return st;
}

const char *cli_label(const cli_labels *labels, int c) {
    return labels && c >= 0 && c < labels->count ? labels->names[c] : "";
}

bool cli_parse_memory(const char *s, uint64_t *out) {
    if (!strcmp(s, "none")) {
        *out = 0;
        return true;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0) || *s == '-' || *s == '+' || isspace((unsigned char)*s))
        return false;
    double scale = 1;
    const char *units = "KMGT";
    const char *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
    if (u) {
        for (const char *p = units; p <= u; p++)
            scale *= 1024;
        end++;
        if (!strcmp(end, "iB") || !strcmp(end, "B"))
            end += strlen(end);
    } else if (!strcmp(end, "B")) {
        end++;
    }
    if (*end || v * scale >= 18446744073709551616.0)
        return false;
    *out = (uint64_t)(v * scale);
    return true;
}

int cli_parse_input_option(const char *command, int argc, char **argv, int *i,
                           cli_input_options *opt) {
    const char *name = argv[*i];
    bool known = !strcmp(name, "--preprocess") || !strcmp(name, "--mean") ||
                 !strcmp(name, "--std") || !strcmp(name, "--size") ||
                 !strcmp(name, "--max-memory") || !strcmp(name, "--layout");
    if (!known)
        return 0;
    if (*i + 1 >= argc) {
        cli_usage_error(command, "%s needs a value", name);
        return -1;
    }
    const char *value = argv[++*i];
    if (!strcmp(name, "--max-memory")) {
        if (!cli_parse_memory(value, &opt->max_memory)) {
            cli_usage_error(command,
                            "--max-memory must be a size like 8G, 512M or 1073741824 (bytes), or "
                            "0 for no limit, not '%s'",
                            value);
            return -1;
        }
        opt->have_max_memory = true;
    } else if (!strcmp(name, "--layout")) {
        if (!strcmp(value, "auto"))
            opt->layout = EVMAP_LAYOUT_AUTO;
        else if (!strcmp(value, "nchw"))
            opt->layout = EVMAP_LAYOUT_NCHW;
        else if (!strcmp(value, "nhwc"))
            opt->layout = EVMAP_LAYOUT_NHWC;
        else {
            cli_usage_error(command, "--layout must be 'auto', 'nchw' or 'nhwc', not '%s'", value);
            return -1;
        }
    } else if (!strcmp(name, "--preprocess")) {
        if (!strcmp(value, "none"))
            opt->preprocess.preset = EVMAP_PREPROCESS_NONE;
        else if (!strcmp(value, "imagenet"))
            opt->preprocess.preset = EVMAP_PREPROCESS_IMAGENET;
        else {
            cli_usage_error(command, "--preprocess must be 'none' or 'imagenet', not '%s'", value);
            return -1;
        }
    } else if (!strcmp(name, "--mean") || !strcmp(name, "--std")) {
        float v[3];
        bool one = cli_parse_floats(value, v, 1);
        if (one)
            v[1] = v[2] = v[0];
        if (!one && !cli_parse_floats(value, v, 3)) {
            cli_usage_error(command, "%s must be one or three numbers (a,b,c), not '%s'", name,
                            value);
            return -1;
        }
        bool is_std = !strcmp(name, "--std");
        for (int c = 0; c < 3; c++) {
            if (is_std && v[c] <= 0) {
                cli_usage_error(command, "--std values must be positive");
                return -1;
            }
            (is_std ? opt->preprocess.std : opt->preprocess.mean)[c] = v[c];
        }
        *(is_std ? &opt->have_std : &opt->have_mean) = true;
    } else {
        int wh[2];
        if (!cli_parse_int_list(value, 'x', 1, 65535, wh, 2)) {
            cli_usage_error(command, "--size must be WIDTHxHEIGHT (e.g. 224x224), not '%s'", value);
            return -1;
        }
        opt->preprocess.width = wh[0];
        opt->preprocess.height = wh[1];
        opt->have_size = true;
    }
    return 1;
}

void cli_input_finish(cli_input_options *opt) {
    if (!opt->have_max_memory)
        opt->max_memory = evmap_default_memory_limit();
    /* The preset's mean and std where none were given. --size turns the
     * preset into CUSTOM (a plain resize); without it the preset's resize and
     * crop stay. */
    evmap_preprocess given = opt->preprocess;
    evmap_preprocess_preset preset = opt->have_size ? EVMAP_PREPROCESS_CUSTOM : given.preset;
    if (preset == EVMAP_PREPROCESS_NONE && (opt->have_mean || opt->have_std))
        preset = EVMAP_PREPROCESS_CUSTOM; /* none, normalised: size kept (0 x 0) */
    evmap_preprocess base;
    evmap_preprocess_init(&base, given.preset);
    evmap_preprocess_init(&opt->preprocess, preset);
    for (int c = 0; c < 3; c++) {
        opt->preprocess.mean[c] = opt->have_mean ? given.mean[c] : base.mean[c];
        opt->preprocess.std[c] = opt->have_std ? given.std[c] : base.std[c];
    }
    if (preset == EVMAP_PREPROCESS_CUSTOM) {
        opt->preprocess.width = opt->have_size ? given.width : 0;
        opt->preprocess.height = opt->have_size ? given.height : 0;
    }
}

evmap_status cli_load_model(const char *path, const cli_input_options *opt, evmap_model **out,
                            evmap_error *err) {
    evmap_model_load_options lo;
    evmap_model_load_options_init(&lo);
    lo.max_memory = opt->max_memory;
    lo.layout = opt->layout;
    return evmap_model_load_with_options(path, &lo, out, err);
}

/* pre, turned into a plain resize to width x height with its normalisation. */
static evmap_preprocess resize_to(const evmap_preprocess *pre, int width, int height) {
    evmap_preprocess r;
    evmap_preprocess_init(&r, EVMAP_PREPROCESS_CUSTOM);
    if (pre->preset != EVMAP_PREPROCESS_NONE) {
        memcpy(r.mean, pre->mean, sizeof r.mean);
        memcpy(r.std, pre->std, sizeof r.std);
    }
    r.width = width;
    r.height = height;
    return r;
}

static int scaled_side(int side, int to, int from) {
    long v = lround((double)side * to / from);
    return v < 1 ? 1 : v > 65535 ? 65535 : (int)v;
}

evmap_status cli_image_geometry(const evmap_model_info *info, const evmap_image *img,
                                const evmap_preprocess *pre, evmap_preprocess *out, int *width,
                                int *height, evmap_error *err) {
    *out = *pre;
    *width = info->width;
    *height = info->height;
    if (!info->free_height && !info->free_width)
        return EVMAP_OK; /* evmap_preprocess_image checks the size */
    int w, h;
    evmap_status st = evmap_preprocess_size(img, pre, &w, &h, err);
    if (st != EVMAP_OK)
        return st;
    /* No size asked for: a fixed side is met by resizing, keeping the aspect ratio. */
    bool sized = pre->preset == EVMAP_PREPROCESS_IMAGENET ||
                 (pre->preset == EVMAP_PREPROCESS_CUSTOM && (pre->width || pre->height));
    if (!sized && !info->free_height && h != info->height) {
        w = info->free_width ? scaled_side(w, info->height, h) : info->width;
        h = info->height;
        *out = resize_to(pre, w, h);
    } else if (!sized && !info->free_width && w != info->width) {
        h = info->free_height ? scaled_side(h, info->width, w) : info->height;
        w = info->width;
        *out = resize_to(pre, w, h);
    }
    *width = w;
    *height = h;
    return EVMAP_OK;
}

evmap_status cli_load_image(const evmap_image_set *set, size_t index, const evmap_model_info *info,
                            const evmap_preprocess *pre, evmap_image **img, evmap_preprocess *out,
                            int *width, int *height, evmap_error *err) {
    *img = NULL;
    evmap_status st = evmap_image_set_load(set, index, img, err);
    if (st == EVMAP_OK)
        st = cli_image_geometry(info, *img, pre, out, width, height, err);
    return st;
}

evmap_status cli_size_to_image(evmap_model *model, evmap_model_info *info,
                               const evmap_image_set *set, size_t index,
                               const evmap_preprocess *pre, evmap_error *err) {
    if (!info->free_height && !info->free_width)
        return EVMAP_OK;
    evmap_image *img = NULL;
    evmap_preprocess own;
    int w, h;
    evmap_status st = cli_load_image(set, index, info, pre, &img, &own, &w, &h, err);
    evmap_image_free(img);
    if (st == EVMAP_OK)
        st = evmap_model_set_input_size(model, h, w, err);
    if (st == EVMAP_OK)
        st = evmap_model_get_info(model, info, err);
    return st;
}

evmap_status cli_load_input(const evmap_image_set *set, size_t index, const evmap_preprocess *pre,
                            const evmap_model_info *info, float *out, evmap_error *err) {
    evmap_image *img = NULL;
    evmap_status st = evmap_image_set_load(set, index, &img, err);
    evmap_preprocess own = *pre;
    /* a model with a free side: every image is resized to its current size */
    if (st == EVMAP_OK && (info->free_height || info->free_width))
        own = resize_to(pre, info->width, info->height);
    if (st == EVMAP_OK)
        st = evmap_preprocess_image(img, &own, info->channels, info->height, info->width, out, err);
    evmap_image_free(img);
    return st;
}

unsigned char *cli_read_file(const char *path, size_t max, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    *n = 0;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size >= 0 && (size_t)size <= max && fseek(f, 0, SEEK_SET) == 0) {
            buf = malloc((size_t)size + 1);
            if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
                free(buf);
                buf = NULL;
            }
            *n = (size_t)size;
        }
    }
    fclose(f);
    return buf;
}

bool cli_parse_shard(const char *v, int max_shards, int *shard, int *shards) {
    int v2[2];
    if (!cli_parse_int_list(v, '/', 0, max_shards, v2, 2) || v2[1] < 1 || v2[0] >= v2[1])
        return false;
    *shard = v2[0];
    *shards = v2[1];
    return true;
}
