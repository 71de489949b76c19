/*
 * Method options on the command line: one table of every option that tunes
 * a method, with each command's spelling (explain's --samples is evaluate's
 * --pda-samples and --smoothgrad-samples), the group explain checks against
 * the method (method_info.options), where the value goes and what a bad
 * value says. explain and evaluate parse their own options around it.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "methods.h"

void method_options_init(method_options *o, char **references) {
    memset(o, 0, sizeof *o);
    o->pda_samples = 10;
    o->stride = 1;
    o->laplace_n = 100000;
    o->refine = 1.0;
    o->grid_threshold = -1; /* the default for the image */
    o->occlusion = EVMAP_BASELINE_ZERO;
    snprintf(o->fill, sizeof o->fill, "zero");
    o->score = EVMAP_SCORE_LOGODDS;
    o->ig_steps = 50;
    o->ig_baseline = EVMAP_BASELINE_ZERO;
    o->smoothgrad_noise = 0.15f;
    o->smoothgrad_samples = 50;
    o->references = references;
    snprintf(o->sampler_kind, sizeof o->sampler_kind, "conditional");
    o->pad = 2;
    o->patches = 20000;
    o->target_channel = -1;
}

typedef enum {
    KIND_INT,           /* int in [min, max] */
    KIND_SEED,          /* uint64_t in [min, max] */
    KIND_COUNT,         /* size_t in [min, max] */
    KIND_F32,           /* float in [min, max] (min excluded with min_open) */
    KIND_F64,           /* double, the same */
    KIND_SCORE,         /* logodds or logit */
    KIND_BASELINE,      /* zero, mean or blur */
    KIND_FILL,          /* zero, mean or a number (occlusion's fill) */
    KIND_NAME,          /* a non-empty name under 256 characters */
    KIND_OPTIONAL_NAME, /* a name; empty: NULL */
    KIND_EXPAND,        /* window or image */
    KIND_SAMPLER,       /* conditional, marginal or constant */
    KIND_ROI,           /* x,y,w,h */
    KIND_PATH,          /* a file name */
    KIND_REFERENCE,     /* one more reference source */
} option_kind;

#define NO_FIELD ((size_t)-1)
#define FIELD(f) offsetof(method_options, f)

typedef struct option_spec {
    const char *name[2]; /* explain's and evaluate's spelling; NULL: that command lacks it */
    unsigned group;      /* MOPT_* */
    option_kind kind;
    double min, max;
    bool min_open;
    size_t field;    /* where the value goes */
    size_t also;     /* a second int it sets, or NO_FIELD */
    const char *bad; /* message for a bad value: {o} the option, {v} the value;
                      * NULL for KIND_INT's "must be a whole number from ..." */
} option_spec;

#define OPTION(explain, evaluate, group, kind, min, max, min_open, field, bad)                     \
    { {explain, evaluate}, group, kind, min, max, min_open, FIELD(field), NO_FIELD, bad }
#define INT_OPTION(explain, evaluate, group, min, max, field)                                      \
    OPTION(explain, evaluate, group, KIND_INT, min, max, false, field, NULL)

static const option_spec specs[] = {
    INT_OPTION("--window", "--window", MOPT_WINDOWS, 1, 1024, window),
    INT_OPTION("--stride", "--stride", MOPT_WINDOWS, 1, 1024, stride),
    INT_OPTION("--pad", "--pad", MOPT_SAMPLING, 0, 16, pad),
    /* explain's --samples is PDA's draws and SmoothGrad's copies alike */
    /* clang-format off */
    {{"--samples", NULL}, MOPT_SAMPLES, KIND_INT, 1, 100000, false, FIELD(pda_samples),
     FIELD(smoothgrad_samples), NULL},
    /* clang-format on */
    INT_OPTION(NULL, "--pda-samples", MOPT_SAMPLES, 1, 100000, pda_samples),
    INT_OPTION(NULL, "--smoothgrad-samples", MOPT_SAMPLES, 1, 100000, smoothgrad_samples),
    INT_OPTION("--steps", "--ig-steps", MOPT_STEPS, 1, 10000, ig_steps),
    INT_OPTION("--batch", "--batch", 0, 1, 65536, batch),
    INT_OPTION("--threads", "--threads", 0, 1, 1024, threads),
    INT_OPTION("--coarse-window", NULL, MOPT_EFFICIENT, 2, 1024, coarse_window),
    INT_OPTION("--grid", "--grid", MOPT_EFFICIENT, 1, 1024, grid),
    OPTION("--grid-threshold", "--grid-threshold", MOPT_EFFICIENT, KIND_F64, 0, HUGE_VAL, false,
           grid_threshold, "{o} must be a number >= 0, not '{v}'"),
    /* the two commands word a bad --seed and --patches differently */
    OPTION("--seed", NULL, 0, KIND_SEED, 0, 2147483647.0, false, seed,
           "{o} must be a non-negative whole number"),
    OPTION(NULL, "--seed", 0, KIND_SEED, 0, 2147483647.0, false, seed, "{o}: bad value '{v}'"),
    OPTION("--patches", NULL, MOPT_SAMPLING, KIND_COUNT, 100, 1e8, false, patches,
           "{o} must be from 100 to 100000000"),
    OPTION(NULL, "--patches", MOPT_SAMPLING, KIND_COUNT, 100, 1e8, false, patches,
           "{o}: bad value '{v}'"),
    OPTION("--laplace-n", "--laplace-n", MOPT_WINDOWS, KIND_F64, 0, HUGE_VAL, true, laplace_n,
           "{o} must be a positive number"),
    OPTION("--refine", NULL, MOPT_EFFICIENT, KIND_F64, 0, 1, true, refine,
           "{o} must be a fraction in (0, 1], not '{v}'"),
    OPTION("--noise", "--smoothgrad-noise", MOPT_NOISE, KIND_F32, 0, 10, false, smoothgrad_noise,
           "{o} must be a number from 0 to 10, not '{v}'"),
    OPTION("--score", "--score", MOPT_SCORE, KIND_SCORE, 0, 0, false, score,
           "{o} must be logodds or logit, not '{v}'"),
    OPTION("--baseline", NULL, MOPT_STEPS, KIND_BASELINE, 0, 0, false, ig_baseline,
           "{o} must be zero, mean or blur, not '{v}'"),
    OPTION(NULL, "--ig-baseline", MOPT_STEPS, KIND_BASELINE, 0, 0, false, ig_baseline,
           "{o} must be blur, mean or zero, not '{v}'"),
    OPTION("--fill", NULL, MOPT_WINDOWS, KIND_FILL, 0, 0, false, fill,
           "{o} must be zero, mean or a number"),
    OPTION(NULL, "--occlusion-fill", MOPT_WINDOWS, KIND_FILL, 0, 0, false, fill,
           "{o} must be zero, mean or a number, not '{v}'"),
    OPTION("--layer", NULL, MOPT_LAYER, KIND_NAME, 0, 0, false, gradcam_layer,
           "{o} must name a layer output"),
    OPTION(NULL, "--gradcam-layer", MOPT_LAYER, KIND_OPTIONAL_NAME, 0, 0, false, gradcam_layer,
           NULL),
    OPTION("--split", NULL, MOPT_EFFICIENT, KIND_NAME, 0, 0, false, split,
           "{o} must name a layer, input, output or auto"),
    OPTION("--expand", NULL, MOPT_EFFICIENT, KIND_EXPAND, 0, 0, false, around_image,
           "{o} must be window or image, not '{v}'"),
    OPTION("--coarse-sampler-file", NULL, MOPT_EFFICIENT, KIND_PATH, 0, 0, false,
           coarse_sampler_file, NULL),
    OPTION("--sampler", NULL, MOPT_SAMPLING, KIND_SAMPLER, 0, 0, false, sampler_kind,
           "{o} must be conditional, marginal or constant, not '{v}'"),
    OPTION("--sampler-file", "--sampler-file", MOPT_SAMPLING, KIND_PATH, 0, 0, false, sampler_file,
           NULL),
    OPTION("--reference", "--reference", MOPT_SAMPLING, KIND_REFERENCE, 0, 0, false, references,
           NULL),
    OPTION("--roi", NULL, MOPT_WINDOWS, KIND_ROI, 0, 0, false, roi,
           "{o} must be x,y,width,height with width, height > 0"),
};

static const char *const command_names[] = {"explain", "evaluate"};

/* Prints the spec's message for a bad value; returns EXIT_USAGE. */
static int bad_value(method_command cmd, const option_spec *s, const char *a, const char *v) {
    char msg[1024];
    size_t n = 0;
    for (const char *p = s->bad; *p && n + 1 < sizeof msg; p++) {
        const char *insert = !strncmp(p, "{o}", 3) ? a : !strncmp(p, "{v}", 3) ? v : NULL;
        if (!insert) {
            msg[n++] = *p;
            continue;
        }
        n += (size_t)snprintf(msg + n, sizeof msg - n, "%s", insert);
        n = n < sizeof msg ? n : sizeof msg - 1;
        p += 2;
    }
    msg[n] = '\0';
    return cli_usage_error(command_names[cmd], "%s", msg);
}

static bool parse_float_in(const option_spec *s, const char *v, double *out) {
    float f;
    if (!cli_parse_float(v, &f) || (s->min_open ? !(f > s->min) : f < s->min) || f > s->max)
        return false;
    *out = f;
    return true;
}

static bool parse_baseline(const char *v, evmap_baseline *out) {
    static const char *const names[] = {"zero", "mean", "blur"};
    static const evmap_baseline values[] = {EVMAP_BASELINE_ZERO, EVMAP_BASELINE_MEAN,
                                            EVMAP_BASELINE_BLUR};
    for (int i = 0; i < 3; i++)
        if (!strcmp(v, names[i])) {
            *out = values[i];
            return true;
        }
    return false;
}

/* Occlusion's fill; a number, once given, outlasts a later zero or mean
 * (explain re-reads the last fill as typed from o->fill). */
static bool parse_fill(const char *v, method_options *o) {
    float f;
    if (cli_parse_float(v, &f)) {
        o->occlusion_value = f;
        o->occlusion_value_given = true;
    } else if (!strcmp(v, "zero") || !strcmp(v, "mean")) {
        o->occlusion = strcmp(v, "zero") ? EVMAP_BASELINE_MEAN : EVMAP_BASELINE_ZERO;
    } else {
        return false;
    }
    snprintf(o->fill, sizeof o->fill, "%s", v);
    return true;
}

static bool parse_roi(const char *v, int *roi) {
    int r[4];
    if (!cli_parse_int_list(v, ',', 0, 65535, r, 4) || r[2] < 1 || r[3] < 1)
        return false;
    memcpy(roi, r, sizeof r);
    return true;
}

/* The choices: true when v is one of them (stored), false when not. */
static bool parse_choice(const option_spec *s, const char *v, method_options *o, void *dest) {
    switch (s->kind) {
    case KIND_SCORE:
        if (strcmp(v, "logodds") && strcmp(v, "logit"))
            return false;
        *(evmap_score *)dest = strcmp(v, "logit") ? EVMAP_SCORE_LOGODDS : EVMAP_SCORE_LOGIT;
        return true;
    case KIND_BASELINE: return parse_baseline(v, dest);
    case KIND_FILL: return parse_fill(v, o);
    case KIND_EXPAND:
        if (strcmp(v, "window") && strcmp(v, "image"))
            return false;
        *(bool *)dest = !strcmp(v, "image");
        return true;
    case KIND_SAMPLER:
        if (strcmp(v, "conditional") && strcmp(v, "marginal") && strcmp(v, "constant"))
            return false;
        snprintf(o->sampler_kind, sizeof o->sampler_kind, "%s", v);
        return true;
    case KIND_ROI: return parse_roi(v, dest);
    default: return false;
    }
}

/* Numbers and names: true when v is valid (stored). */
static bool parse_value(const option_spec *s, const char *v, method_options *o, void *dest) {
    long n;
    double d;
    switch (s->kind) {
    case KIND_INT:
    case KIND_SEED:
    case KIND_COUNT:
        if (!cli_parse_int(v, (long)s->min, (long)s->max, &n))
            return false;
        if (s->kind == KIND_INT)
            *(int *)dest = (int)n;
        else if (s->kind == KIND_SEED)
            *(uint64_t *)dest = (uint64_t)n;
        else
            *(size_t *)dest = (size_t)n;
        if (s->also != NO_FIELD)
            *(int *)((char *)o + s->also) = (int)n;
        o->pad_given |= dest == &o->pad;
        return true;
    case KIND_F32:
    case KIND_F64:
        if (!parse_float_in(s, v, &d))
            return false;
        if (s->kind == KIND_F32)
            *(float *)dest = (float)d;
        else
            *(double *)dest = d;
        return true;
    case KIND_NAME:
        if (!v[0] || strlen(v) >= 256)
            return false;
        *(const char **)dest = v;
        return true;
    case KIND_OPTIONAL_NAME: *(const char **)dest = v[0] ? v : NULL; return true;
    case KIND_PATH: *(const char **)dest = v; return true;
    case KIND_REFERENCE: o->references[o->n_references++] = (char *)v; return true;
    default: return parse_choice(s, v, o, dest);
    }
}

static const option_spec *find_spec(method_command cmd, const char *a) {
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        if (specs[i].name[cmd] && !strcmp(specs[i].name[cmd], a))
            return &specs[i];
    return NULL;
}

int method_option_parse(method_command cmd, const char *a, const char *v, method_options *o,
                        unsigned *given) {
    const option_spec *s = find_spec(cmd, a);
    if (!s)
        return 0;
    *given |= s->group;
    if (parse_value(s, v, o, (char *)o + s->field))
        return 1;
    if (s->kind == KIND_INT)
        return cli_usage_error(command_names[cmd],
                               "%s must be a whole number from %ld to %ld, not '%s'", a,
                               (long)s->min, (long)s->max, v);
    return bad_value(cmd, s, a, v);
}

int method_flag_parse(method_command cmd, const char *a, method_options *o, unsigned *given) {
    if (!strcmp(a, "--no-laplace")) {
        o->no_laplace = true;
        o->laplace_n = 0;
    } else if (!strcmp(a, "--no-locality")) {
        o->no_locality = true;
    } else if (cmd == METHOD_CMD_EXPLAIN && !strcmp(a, "--joint-channels")) {
        o->joint_channels = true;
        *given |= MOPT_SAMPLING;
        return 1;
    } else {
        return 0;
    }
    *given |= MOPT_WINDOWS;
    return 1;
}

int method_option_groups_check(const char *command, const method_info *m, unsigned given) {
    static const char *const group_names[] = {
        "--sampler, --sampler-file, --reference, --pad, --patches and --joint-channels",
        "--window, --stride, --roi, --fill, --laplace-n, --no-laplace and --no-locality",
        "--samples",
        "--score",
        "--steps and --baseline",
        "--noise",
        "--layer",
        ("--split, --expand, --grid, --grid-threshold, --refine, --coarse-window and "
         "--coarse-sampler-file"),
    };
    unsigned extra = given & ~m->options;
    for (unsigned g = 0; g < sizeof group_names / sizeof group_names[0]; g++)
        if (extra & (1u << g))
            return cli_usage_error(command, "--method %s does not take %s", m->name,
                                   group_names[g]);
    return EXIT_OK;
}
