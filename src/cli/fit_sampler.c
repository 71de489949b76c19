/* evmap fit-sampler: fits PDA's conditional sampler once, for reuse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char fit_help[] =
    "usage: evmap fit-sampler (--model M.onnx | --size WxH) [options] -o FILE SRC...\n"
    "\n"
    "Fits the conditional Gaussian sampler of Prediction Difference Analysis on\n"
    "random patches of the reference images SRC (files, folders, IDX files; the\n"
    "first 2000 images) and saves it for 'evmap explain --sampler-file FILE'.\n"
    "\n"
    "options:\n"
    "  -o, --out FILE        where to save the sampler (required)\n"
    "  --model M.onnx        take channels and input size from the model\n"
    "  --window k            window size (default: as explain chooses for the size)\n"
    "  --pad p               ring around the window (default 2)\n"
    "  --joint-channels      one Gaussian over all channels\n"
    "  --patches N           random patches to fit on (default 20000)\n"
    "  --seed n              random seed (default 0)\n"
    "  --preprocess P, --mean, --std, --size   as for explain (default none)\n" CLI_MAX_MEMORY_HELP
        CLI_LAYOUT_HELP "  --quiet               no summary line\n";

#define FIT_MAX_IMAGES 2000

typedef struct fit_options {
    const char *out;
    const char *model_path;
    cli_input_options input;
    evmap_sampler_fit_options fit;
    bool window_given;
    bool quiet;
    char **sources;
    int n_sources;
} fit_options;

static int parse(int argc, char **argv, fit_options *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long v;
        int consumed = cli_parse_input_option("fit-sampler", argc, argv, &i, &o->input);
        if (consumed < 0)
            return EXIT_USAGE;
        if (consumed)
            continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(fit_help, stdout);
            return -1;
        }
        if (!strcmp(a, "--joint-channels")) {
            o->fit.joint_channels = 1;
            continue;
        }
        if (!strcmp(a, "--quiet")) {
            o->quiet = true;
            continue;
        }
        if (a[0] != '-' || a[1] == '\0') {
            o->sources[o->n_sources++] = argv[i];
            continue;
        }
        if (i + 1 >= argc)
            return cli_usage_error("fit-sampler", "%s needs a value or is unknown", a);
        const char *val = argv[++i];
        if (!strcmp(a, "-o") || !strcmp(a, "--out"))
            o->out = val;
        else if (!strcmp(a, "--model"))
            o->model_path = val;
        else if (!strcmp(a, "--window") && cli_parse_int(val, 1, 64, &v)) {
            o->fit.window = (int)v;
            o->window_given = true;
        } else if (!strcmp(a, "--pad") && cli_parse_int(val, 0, 16, &v))
            o->fit.pad = (int)v;
        else if (!strcmp(a, "--patches") && cli_parse_int(val, 100, 100000000L, &v))
            o->fit.patches = (size_t)v;
        else if (!strcmp(a, "--seed") && cli_parse_int(val, 0, 2147483647L, &v))
            o->fit.seed = (uint64_t)v;
        else if (!strcmp(a, "--window") || !strcmp(a, "--pad") || !strcmp(a, "--patches") ||
                 !strcmp(a, "--seed"))
            return cli_usage_error("fit-sampler", "bad value '%s' for %s", val, a);
        else
            return cli_usage_error("fit-sampler", "unknown option '%s'", a);
    }
    if (!o->out)
        return cli_usage_error("fit-sampler", "-o FILE is required");
    if (o->n_sources == 0)
        return cli_usage_error("fit-sampler", "no reference images given");
    cli_input_finish(&o->input);
    return EXIT_OK;
}

/* Input shape from the model, or from the first image after preprocessing. */
static evmap_status input_shape(const fit_options *o, evmap_model_info *shape, evmap_error *err) {
    memset(shape, 0, sizeof *shape);
    if (o->model_path) {
        evmap_model *model = NULL;
        evmap_status st = cli_load_model(o->model_path, &o->input, &model, err);
        if (st == EVMAP_OK)
            st = evmap_model_get_info(model, shape, err);
        evmap_model_free(model);
        return st;
    }
    evmap_image_set *set = NULL;
    evmap_image *img = NULL;
    evmap_status st = evmap_image_set_create(&set, err);
    evmap_image_set_limit_memory(set, o->input.max_memory);
    if (st == EVMAP_OK)
        st = evmap_image_set_add(set, o->sources[0], err);
    if (st == EVMAP_OK && evmap_image_set_count(set) == 0) {
        err->status = st = EVMAP_ERR_INVALID_ARGUMENT;
        snprintf(err->message, sizeof err->message, "'%s' holds no images", o->sources[0]);
    }
    if (st == EVMAP_OK)
        st = evmap_image_set_load(set, 0, &img, err);
    if (st == EVMAP_OK) {
        const evmap_preprocess *p = &o->input.preprocess;
        shape->channels = img->channels;
        shape->width = p->preset == EVMAP_PREPROCESS_IMAGENET ? 224
                       : p->width                             ? p->width
                                                              : img->width;
        shape->height = p->preset == EVMAP_PREPROCESS_IMAGENET ? 224
                        : p->height                            ? p->height
                                                               : img->height;
    }
    evmap_image_free(img);
    evmap_image_set_free(set);
    return st;
}

int cmd_fit_sampler(int argc, char **argv) {
    fit_options o = {0};
    evmap_sampler_fit_options_init(&o.fit);
    o.fit.window = 0;
    evmap_preprocess_init(&o.input.preprocess, EVMAP_PREPROCESS_NONE);
    o.sources = calloc((size_t)argc, sizeof(char *));
    if (!o.sources)
        return EXIT_RUNTIME;
    int rc = parse(argc, argv, &o);
    if (rc != EXIT_OK) {
        free(o.sources);
        return rc < 0 ? EXIT_OK : rc;
    }
    evmap_error err = {0};
    evmap_model_info shape;
    float *stack = NULL;
    size_t n = 0;
    evmap_sampler *sampler = NULL;
    evmap_status st = input_shape(&o, &shape, &err);
    if (st == EVMAP_OK && !o.window_given)
        o.fit.window = evmap_pda_default_window(shape.height, shape.width);
    if (st == EVMAP_OK)
        st = cli_load_stack(o.sources, o.n_sources, FIT_MAX_IMAGES, &o.input, &shape, &stack, &n,
                            &err);
    if (st == EVMAP_OK)
        st = evmap_sampler_fit(stack, n, shape.channels, shape.height, shape.width, &o.fit,
                               &sampler, &err);
    char tag[256];
    cli_preprocess_tag(&o.input.preprocess, &shape, tag, sizeof tag);
    if (st == EVMAP_OK)
        st = evmap_sampler_save(sampler, tag, o.out, &err);
    if (st == EVMAP_OK && !o.quiet)
        printf("fitted a conditional sampler (window %d, pad %d%s) on %zu patches of %zu "
               "images (%s); saved to %s\n",
               o.fit.window, o.fit.pad, o.fit.joint_channels ? ", joint channels" : "",
               o.fit.patches, n, tag, o.out);
    rc = st == EVMAP_OK ? EXIT_OK : cli_report(&err);
    evmap_sampler_free(sampler);
    free(stack);
    free(o.sources);
    return rc;
}
