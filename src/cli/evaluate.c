/* evmap evaluate: judges evidence-map methods with deletion, insertion,
 * AOPC, max-sensitivity and time over a set of images. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evaluate.h"
#include "report.h"

static const char evaluate_help[] =
    "usage: evmap evaluate --model M.onnx --methods m1,m2,... --data SRC [options]\n"
    "\n"
    "Computes each method's evidence map for every image and judges it; prints a\n"
    "table (methods x metrics, mean +- standard error over the images) and, with\n"
    "--out DIR, writes DIR/evaluate.csv, DIR/evaluate.json (parameters, summaries,\n"
    "every image's curves) and the mean curves as DIR/deletion.png and\n"
    "DIR/insertion.png. The class explained is the model's top-1 class for each\n"
    "image (--explain-class label: the true label).\n"
    "\n"
    "metrics (--metrics, default all):\n"
    "  deletion     pixels removed in order of evidence (most first) in --steps\n"
    "               equal chunks; p(class) after each; area under the curve over\n"
    "               the fraction removed (lower is better)\n"
    "  insertion    pixels revealed on the fill image in the same order (higher\n"
    "               is better)\n"
    "  aopc         mean drop of p(class) as the best k x k regions are removed\n"
    "               one after another, over the first L (higher is better)\n"
    "  sensitivity  max-sensitivity: largest distance between the L2-normalised\n"
    "               map and the maps of copies with uniform noise (lower is better)\n"
    "  time         seconds per map\n"
    "  localisation with --masks: pointing game (the map's maximum within --pointing-\n"
    "               tolerance px of the object), relevance mass (share of the\n"
    "               positive evidence on the object), relevance rank (share of\n"
    "               the |object| highest pixels on it), IoU of the --iou-top\n"
    "               highest pixels with the object; higher is better, and a\n"
    "               constant map's scores are printed as 'uniform'\n"
    "\n"
    "options:\n"
    "  --model FILE            ONNX classifier (required)\n"
    "  --methods LIST          methods, comma-separated (required; see below)\n"
    "  --data SRC              images: file, folder or IDX (repeatable; plain\n"
    "                          arguments count as --data too)\n"
    "  --limit N               only the first N images\n"
    "  --labels-idx FILE       true labels (IDX): accuracy, --explain-class label\n"
    "  --labels FILE           class names, one per line (for the JSON)\n"
    "  --explain-class C       predicted (default) or label\n"
    "  --metrics LIST          deletion,insertion,aopc,sensitivity,time,localisation\n"
    "                          (default all; localisation when --masks is given)\n"
    "  --masks SRC             object masks (white = object): folder or IDX, one per\n"
    "                          image, matched by name or else in order, the images'\n"
    "                          size; resized and cropped as the images are\n"
    "  --pointing-tolerance P  pointing game radius in px (default 15 at 224x224,\n"
    "                          scaled to the input's shorter side)\n"
    "  --iou-top Q             fraction of the pixels for the IoU (default 0.1)\n"
    "  --steps N               deletion/insertion steps (default 50)\n"
    "  --fill F                what removed pixels become: blur (Gaussian blur of\n"
    "                          the image, sigma = longer side / 10; default), mean\n"
    "                          (the image's channel means) or zero (model input 0)\n"
    "  --aopc-window k         AOPC region size (default: PDA's window, 4 for 28x28)\n"
    "  --aopc-regions L        regions removed for AOPC (default 10 % of them)\n"
    "  --sensitivity-radius R  noise in [-r, r], r = R x (max - min of the image)\n"
    "                          (default 0.02)\n"
    "  --sensitivity-samples N noisy copies (default 10)\n"
    "  --sensitivity-methods L methods to measure it for: a list, all or none\n"
    "                          (default: all but the expensive ones, pda)\n"
    "  --out DIR               output folder (created if missing)\n"
    "  --shard I/N             evaluate only images i with i mod N = I (0-based) and\n"
    "                          write DIR/evaluate.part-I-of-N.json; then\n"
    "  --merge DIR             (alone, from the same folder) turns the N parts into\n"
    "                          the table and files of one run over every image\n"
    "  --seed n                random seed (noise, samplers; default 0)\n"
    "  --batch N               images per forward pass (default steps + 1, <= 256)\n"
    "  --threads N             threads (default: the CPUs this process may use)\n"
    "  --max-memory SIZE       as for classify (default: this machine's memory less 1G)\n"
    "  --layout L              as for classify (default auto)\n"
    "  --preprocess P, --mean, --std, --size   as for classify (default none)\n"
    "  --report                also write --out/report.html (see 'evmap report')\n"
    "  --quiet                 no progress output\n"
    "method options:\n"
    "  --sampler-file F        pda: conditional sampler from 'evmap fit-sampler'\n"
    "  --reference SRC         pda: fit the conditional sampler on these images\n"
    "                          (first 2000; saved in DIR when --out is given)\n"
    "  --pad p, --patches N    pda: sampler ring (2) and patches (20000) when fitting\n"
    "  --pda-samples S         pda: draws per window (default 10)\n"
    "  --window k              pda and occlusion: window (default as explain)\n"
    "  --stride s              pda and occlusion: window step (default 1)\n"
    "  --laplace-n N, --no-laplace, --no-locality   pda and occlusion, as explain\n"
    "  --grid N, --grid-threshold T   efficient: its adaptive window grid, as explain\n"
    "  --occlusion-fill F      occlusion: zero (default), mean or a number\n"
    "  --score S               gradient methods: logodds (default) or logit\n"
    "  --ig-steps N            ig: path steps (default 50)\n"
    "  --ig-baseline B         ig: zero (default), mean or blur\n"
    "  --smoothgrad-noise F    smoothgrad: sigma / image range (default 0.15)\n"
    "  --smoothgrad-samples N  smoothgrad: noisy copies (default 50)\n"
    "  --gradcam-layer NAME    gradcam: layer (default: the last convolution)\n";

static void print_methods(void) {
    int n;
    const method_info *t = method_table(&n);
    printf("\nmethods:\n");
    for (int i = 0; i < n; i++)
        printf("  %-12s %s\n", t[i].name, t[i].summary);
}

/* ------------------------------------------------------------- lists */

/* Calls fn on every comma-separated item of list; stops at the first non-zero. */
static int each_item(const char *list, int (*fn)(const char *item, void *user), void *user) {
    char buf[1024];
    if (strlen(list) >= sizeof buf)
        return cli_usage_error("evaluate", "list too long: '%.40s...'", list);
    strcpy(buf, list);
    char *save = NULL;
    int any = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save), any = 1) {
        int r = fn(tok, user);
        if (r)
            return r;
    }
    return any ? 0 : cli_usage_error("evaluate", "empty list '%s'", list);
}

static int add_method(const char *name, void *user) {
    eval_options *o = user;
    const method_info *m = method_find(name);
    if (!m)
        return cli_usage_error("evaluate", "unknown method '%s' (methods: %s)", name,
                               method_names());
    for (int i = 0; i < o->n_methods; i++)
        if (o->methods[i] == m)
            return cli_usage_error("evaluate", "method '%s' is listed twice", name);
    if (o->n_methods >= EVAL_MAX_METHODS)
        return cli_usage_error("evaluate", "at most %d methods", EVAL_MAX_METHODS);
    o->methods[o->n_methods++] = m;
    return 0;
}

static int add_metric(const char *name, void *user) {
    static const char *const names[] = {"deletion",    "insertion", "aopc",
                                        "sensitivity", "time",      "localisation"};
    eval_options *o = user;
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i])) {
            o->metrics |= 1u << i;
            return 0;
        }
    return cli_usage_error(
        "evaluate",
        "unknown metric '%s' (metrics: deletion, insertion, aopc, sensitivity, time, localisation)",
        name);
}

static int check_sensitivity_method(const char *name, void *user) {
    eval_options *o = user;
    for (int i = 0; i < o->n_methods; i++)
        if (!strcmp(o->methods[i]->name, name)) {
            o->sensitivity_for[i] = true;
            return 0;
        }
    return cli_usage_error("evaluate", "--sensitivity-methods names '%s', which --methods lacks",
                           name);
}

/* Which methods get max-sensitivity: the list, all, none, or the cheap ones. */
static int choose_sensitivity_methods(eval_options *o) {
    const char *l = o->sensitivity_list;
    for (int i = 0; i < o->n_methods; i++)
        o->sensitivity_for[i] = o->sensitivity_methods_given
                                    ? !strcmp(l, "all")
                                    : !(o->methods[i]->flags & METHOD_EXPENSIVE);
    if (!o->sensitivity_methods_given || !strcmp(l, "all") || !strcmp(l, "none"))
        return 0;
    return each_item(l, check_sensitivity_method, o);
}

/* ----------------------------------------------------------- options */

static int parse_int_option(const char *a, const char *v, eval_options *o) {
    int limit = 0;
    struct {
        const char *name;
        long min, max;
        int *dest;
    } ints[] = {
        {"--steps", 1, 10000, &o->steps},
        {"--limit", 1, 1000000000L, &limit},
        {"--aopc-window", 1, 1024, &o->aopc_window},
        {"--aopc-regions", 1, 1000000, &o->aopc_regions},
        {"--sensitivity-samples", 1, 10000, &o->sensitivity_samples},
        {"--pointing-tolerance", 0, 4096, &o->pointing_tolerance},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (strcmp(a, ints[i].name))
            continue;
        long n;
        if (!cli_parse_int(v, ints[i].min, ints[i].max, &n))
            return cli_usage_error("evaluate",
                                   "%s must be a whole number from %ld to %ld, not '%s'", a,
                                   ints[i].min, ints[i].max, v);
        *ints[i].dest = (int)n;
        if (ints[i].dest == &limit)
            o->limit = (size_t)n;
        return 1;
    }
    return 0;
}

static int parse_number_option(const char *a, const char *v, eval_options *o) {
    if (!strcmp(a, "--shard")) {
        if (!cli_parse_shard(v, 4096, &o->shard, &o->shards))
            return cli_usage_error("evaluate",
                                   "--shard must be I/N with 0 <= I < N <= 4096 (e.g. 3/8), not "
                                   "'%s'",
                                   v);
        return 1;
    }
    if (!strcmp(a, "--sensitivity-radius")) {
        float f;
        if (!cli_parse_float(v, &f) || f < 0 || f > 10)
            return cli_usage_error("evaluate", "%s must be a number from 0 to 10, not '%s'", a, v);
        o->sensitivity_radius = f;
        return 1;
    }
    if (!strcmp(a, "--iou-top")) {
        float f;
        if (!cli_parse_float(v, &f) || !(f > 0 && f <= 1))
            return cli_usage_error("evaluate", "%s must be a fraction above 0, at most 1, not '%s'",
                                   a, v);
        o->iou_top = f;
        return 1;
    }
    return parse_int_option(a, v, o);
}

static int parse_choice_option(const char *a, const char *v, eval_options *o) {
    if (!strcmp(a, "--fill")) {
        if (!strcmp(v, "zero") || !strcmp(v, "mean") || !strcmp(v, "blur")) {
            o->fill = !strcmp(v, "zero")   ? EVMAP_BASELINE_ZERO
                      : !strcmp(v, "mean") ? EVMAP_BASELINE_MEAN
                                           : EVMAP_BASELINE_BLUR;
            return 1;
        }
        return cli_usage_error("evaluate", "%s must be blur, mean or zero, not '%s'", a, v);
    }
    if (!strcmp(a, "--explain-class")) {
        if (strcmp(v, "predicted") && strcmp(v, "label"))
            return cli_usage_error("evaluate",
                                   "--explain-class must be predicted or label, not '%s'", v);
        o->explain_label = !strcmp(v, "label");
        return 1;
    }
    return 0;
}

static int parse_text_option(const char *a, const char *v, eval_options *o) {
    if (!strcmp(a, "--model"))
        o->model_path = v;
    else if (!strcmp(a, "--data"))
        o->data[o->n_data++] = (char *)v;
    else if (!strcmp(a, "--labels-idx"))
        o->labels_idx = v;
    else if (!strcmp(a, "--labels"))
        o->labels_path = v;
    else if (!strcmp(a, "--out"))
        o->out_dir = v;
    else if (!strcmp(a, "--masks"))
        o->masks = v;
    else if (!strcmp(a, "--methods"))
        return each_item(v, add_method, o) ? EXIT_USAGE : 1;
    else if (!strcmp(a, "--metrics")) {
        o->metrics = 0;
        o->metrics_given = true;
        return each_item(v, add_metric, o) ? EXIT_USAGE : 1;
    } else if (!strcmp(a, "--sensitivity-methods")) {
        if (strlen(v) >= sizeof o->sensitivity_list || !v[0])
            return cli_usage_error("evaluate", "--sensitivity-methods: a list, all or none");
        snprintf(o->sensitivity_list, sizeof o->sensitivity_list, "%s", v);
        o->sensitivity_methods_given = true;
    } else
        return parse_choice_option(a, v, o);
    return 1;
}

static void set_defaults(eval_options *o, int argc, char **argv, char **data, char **references) {
    memset(o, 0, sizeof *o);
    o->argc = argc;
    o->argv = argv;
    o->data = data;
    o->metrics = METRIC_ALL;
    o->steps = 50;
    o->fill = EVMAP_BASELINE_BLUR;
    o->sensitivity_radius = 0.02f;
    o->sensitivity_samples = 10;
    o->pointing_tolerance = -1;
    o->iou_top = 0.1;
    o->shards = 1;
    method_options_init(&o->mo, references);
    evmap_preprocess_init(&o->input.preprocess, EVMAP_PREPROCESS_NONE);
}

static int parse_flag(const char *a, eval_options *o) {
    unsigned given = 0; /* evaluate takes every method option for every method */
    if (!strcmp(a, "--quiet"))
        o->quiet = true;
    else if (!strcmp(a, "--report"))
        o->report = true;
    else
        return method_flag_parse(METHOD_CMD_EVALUATE, a, &o->mo, &given);
    return 1;
}

static int finish_options(eval_options *o) {
    if (!o->model_path)
        return cli_usage_error("evaluate", "--model is required");
    if (o->n_methods == 0)
        return cli_usage_error("evaluate", "--methods is required (methods: %s)", method_names());
    if (o->n_data == 0)
        return cli_usage_error("evaluate", "no images given (--data SRC)");
    if (o->mo.sampler_file && o->mo.n_references)
        return cli_usage_error("evaluate", "give --sampler-file or --reference, not both");
    if (!o->metrics_given && !o->masks)
        o->metrics &= ~(unsigned)METRIC_LOCALISATION;
    if ((o->metrics & METRIC_LOCALISATION) && !o->masks)
        return cli_usage_error("evaluate", "the localisation metrics need the object masks "
                                           "(--masks SRC)");
    if (o->masks && !(o->metrics & METRIC_LOCALISATION))
        return cli_usage_error("evaluate", "--masks is given but --metrics does not list "
                                           "localisation");
    cli_input_finish(&o->input);
    if (o->shards > 1 && !o->out_dir)
        return cli_usage_error("evaluate", "--shard writes its part into --out DIR; give it");
    if (o->report && !o->out_dir)
        return cli_usage_error("evaluate", "--report writes into --out DIR; give it");
    return choose_sensitivity_methods(o) ? EXIT_USAGE : EXIT_OK;
}

/* Returns EXIT_OK, EXIT_USAGE, or -1 after printing help. */
static int parse_options(int argc, char **argv, eval_options *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int consumed = cli_parse_input_option("evaluate", argc, argv, &i, &o->input);
        if (consumed < 0)
            return EXIT_USAGE;
        if (consumed)
            continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(evaluate_help, stdout);
            print_methods();
            return -1;
        }
        if (parse_flag(a, o))
            continue;
        if (a[0] != '-' || a[1] == '\0') {
            o->data[o->n_data++] = argv[i];
            continue;
        }
        if (i + 1 >= argc)
            return cli_usage_error("evaluate", "%s needs a value or is unknown", a);
        unsigned given = 0;
        int r = method_option_parse(METHOD_CMD_EVALUATE, a, argv[i + 1], &o->mo, &given);
        if (r == 0)
            r = parse_number_option(a, argv[i + 1], o);
        if (r == 0)
            r = parse_text_option(a, argv[i + 1], o);
        if (r == EXIT_USAGE)
            return EXIT_USAGE;
        if (r == 0)
            return cli_usage_error("evaluate", "unknown option '%s'", a);
        i++;
    }
    return finish_options(o);
}

/* --------------------------------------------------------------- run */

/* Every image, with a progress line per image and Ctrl-C between batches. */
static evmap_status run_all(eval_options *o, eval_state *s, evmap_error *err) {
    cli_progress images, inner;
    cli_progress_start(&images, "evaluate", "images", o->quiet);
    cli_progress_start(&inner, "", "", true); /* only polls for Ctrl-C */
    o->mo.progress = cli_progress_update;
    o->mo.progress_user = &inner;
    double t0 = cli_seconds();
    evmap_status st = EVMAP_OK;
    size_t mine = (s->n_images - (size_t)o->shard + (size_t)o->shards - 1) / (size_t)o->shards;
    for (size_t k = 0; st == EVMAP_OK && k < mine; k++) {
        st = eval_image_run(o, s, (size_t)o->shard + k * (size_t)o->shards, err);
        if (st == EVMAP_OK && cli_progress_update(&images, k + 1, mine))
            st = err->status = EVMAP_ERR_CANCELLED;
    }
    s->seconds = cli_seconds() - t0;
    if (st != EVMAP_OK)
        cli_progress_abandon(&images);
    return st;
}

/* Table and files for the finished images (all of them, or those before Ctrl-C). */
static int finish(const eval_options *o, eval_state *s, evmap_status st, evmap_error *err) {
    bool cancelled = st == EVMAP_ERR_CANCELLED;
    if (cancelled && s->done == 0)
        fprintf(stderr, "evmap: interrupted before the first image was finished; nothing was "
                        "written\n");
    if (st != EVMAP_OK && !(cancelled && s->done > 0))
        return cancelled ? 130 : cli_report(err);
    if (o->shards > 1 && !cancelled) { /* the table comes with --merge */
        evmap_status wst = eval_write_part(o, s, err);
        if (wst == EVMAP_OK && !o->quiet)
            fprintf(stderr,
                    "evmap: wrote %s/evaluate.part-%d-of-%d.json; when every shard is done, "
                    "'evmap evaluate --merge %s' gives the results\n",
                    o->out_dir, o->shard, o->shards, o->out_dir);
        return wst == EVMAP_OK ? EXIT_OK : cli_report(err);
    }
    if (o->shards > 1) {
        fprintf(stderr, "evmap: interrupted; this shard wrote nothing (run it again)\n");
        return 130;
    }
    eval_print_table(o, s, stdout);
    fflush(stdout);
    evmap_status wst = o->out_dir ? eval_write_outputs(o, s, err) : EVMAP_OK;
    if (wst != EVMAP_OK)
        return cli_report(err);
    if (cancelled) {
        fprintf(stderr,
                "evmap: interrupted after %zu of %zu images; the results above%s cover "
                "only those\n",
                s->done, s->n_images, o->out_dir ? " and in the output folder" : "");
        return 130;
    }
    if (o->out_dir && !o->quiet)
        fprintf(stderr, "evmap: wrote the results to %s/\n", o->out_dir);
    return o->report && o->out_dir ? report_write(o->out_dir, NULL, o->quiet) : EXIT_OK;
}

/* evmap evaluate --merge DIR: the shards' parts as one run (evaluate_merge.c). */
static int merge(const char *dir) {
    eval_parts *parts = NULL;
    evmap_error err = {0};
    evmap_status st = eval_parts_read(dir, &parts, &err);
    if (st != EVMAP_OK)
        return cli_report(&err);
    int argc;
    char **argv;
    eval_parts_command(parts, &argc, &argv);
    char **data = calloc((size_t)argc + 1, sizeof(char *));
    char **references = calloc((size_t)argc + 1, sizeof(char *));
    eval_options *o = malloc(sizeof *o);
    int rc = data && references && o ? EXIT_OK : EXIT_RUNTIME;
    if (rc == EXIT_OK) {
        set_defaults(o, argc, argv, data, references);
        rc = parse_options(argc, argv, o);
    }
    if (rc == EXIT_OK) {
        o->out_dir = dir;
        eval_state s = {0};
        st = eval_open(o, &s, &err);
        if (st == EVMAP_OK) /* for the parameters the JSON reports */
            st = eval_prepare_sampler(o, &s, &err);
        if (st == EVMAP_OK)
            st = eval_parts_fill(parts, o, &s, &err);
        rc = finish(o, &s, st, &err);
        eval_state_free(&s);
    }
    free(data);
    free(references);
    free(o);
    eval_parts_free(parts);
    return rc < 0 ? EXIT_USAGE : rc;
}

int cmd_evaluate(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--merge"))
        return merge(argv[2]);
    char **data = calloc((size_t)argc, sizeof(char *));
    char **references = calloc((size_t)argc, sizeof(char *));
    eval_options *o = malloc(sizeof *o);
    if (!data || !references || !o) {
        free(data);
        free(references);
        free(o);
        return EXIT_RUNTIME;
    }
    set_defaults(o, argc, argv, data, references);
    int rc = parse_options(argc, argv, o);
    if (rc == EXIT_OK) {
        eval_state s = {0};
        evmap_error err = {0};
        cli_install_interrupt_handler();
        evmap_status st = eval_open(o, &s, &err);
        if (st == EVMAP_OK && o->out_dir)
            st = cli_make_out_dir(o->out_dir, &err);
        if (st == EVMAP_OK)
            st = eval_prepare_sampler(o, &s, &err);
        if (st == EVMAP_OK)
            st = run_all(o, &s, &err);
        rc = finish(o, &s, st, &err);
        eval_state_free(&s);
    }
    free(data);
    free(references);
    free(o);
    return rc < 0 ? EXIT_OK : rc;
}
