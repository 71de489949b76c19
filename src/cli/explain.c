/* evmap explain: evidence maps for images (PDA, occlusion and the gradient family). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "explain.h"
#include "report.h"

static const char explain_help[] =
    "usage: evmap explain --model M.onnx --out DIR [options] IMAGE...\n"
    "\n"
    "Draws evidence maps: for every pixel, how much it speaks for (red) or against\n"
    "(blue) a class. For each image and class c it writes DIR/<stem>.<method>.c<c>.npy\n"
    "(float32 H x W map), DIR/<stem>.<method>.c<c>.png (the map over a gray copy of\n"
    "the image) and DIR/<stem>.<method>.json (parameters, classes, probabilities,\n"
    "timings).\n"
    "\n"
    "methods (--method):\n"
    "  pda          Prediction Difference Analysis, log2 odds (default)\n"
    "  efficient    PDA with the network above --split linearised and adaptive\n"
    "               refinement (--refine); DESIGN.md 1.3, docs/efficient.md\n"
    "  occlusion    PDA with the constant sampler (--fill), one draw, log2 odds\n"
    "  saliency     max over channels of |gradient of the score|\n"
    "  gradxinput   gradient x input, summed over channels\n"
    "  ig           Integrated Gradients (--steps, --baseline)\n"
    "  smoothgrad   saliency averaged over noisy copies (--noise, --samples, --seed)\n"
    "  gradcam      Grad-CAM on --layer (default: the last convolution), upsampled\n"
    "  guided       guided backpropagation, summed over channels\n"
    "\n"
    "options:\n"
    "  --model FILE          ONNX classifier (required)\n"
    "  --out DIR             output folder (created if missing; required)\n"
    "  --method NAME         the method (default pda)\n"
    "  --labels FILE         class names, one per line\n"
    "  --class c1,c2,...     classes to explain (default: the top-1 class)\n"
    "  --top K               explain the K most likely classes\n"
    "  --target LAYER:CH     explain channel CH of the layer output named LAYER\n"
    "                        (its mean activation) instead of a class\n"
    "PDA, efficient and occlusion:\n"
    "  --window k            window size (default 10, or max(2, round(side/7)) for\n"
    "                        images under 100 px: 4 for 28x28)\n"
    "  --stride s            window step (default 1)\n"
    "  --fill zero|mean|V    constant sampler value in model-input units (default\n"
    "                        zero; mean: the image's per-channel mean)\n"
    "  --laplace-n N         Laplace correction with training-set size N (100000)\n"
    "  --no-laplace          no Laplace correction\n"
    "  --roi x,y,w,h         only windows inside this rectangle (rest of the map NaN)\n"
    "  --no-locality         naive PDA: every sample through the whole network\n"
    "                        (default: exact locality recomputes only each window's\n"
    "                        receptive-field cone on cached activations; same maps)\n"
    "efficient (takes every PDA option too):\n"
    "  --split L             layer where each window's samples are averaged: a layer\n"
    "                        output's name, input, output (= exact PDA) or auto\n"
    "                        (default: the end of a cheap stem, else input; input\n"
    "                        with --no-locality)\n"
    "  --expand window|image expand around each window's mean activation at the\n"
    "                        split (default; layers above run once per window) or\n"
    "                        around the image (one backward pass per class)\n"
    "  --grid N              adaptive window grid: windows every N positions first,\n"
    "                        then finer where their evidence changes, interpolated\n"
    "                        elsewhere (default: k/2; 1: every position)\n"
    "  --grid-threshold T    refine a grid cell when its corners differ by more\n"
    "                        than T x the evidence's range (default 1: never)\n"
    "  --refine Q            instead of the grid: a coarse pass, then only the\n"
    "                        fraction Q of windows with the largest coarse evidence\n"
    "  --coarse-window K2    the coarse pass's window, moved by k (default 2k)\n"
    "  --coarse-sampler-file F   a sampler for window K2 (else fitted like --sampler)\n"
    "PDA and efficient:\n"
    "  --samples S           draws per window (default 10)\n"
    "  --pad p               ring around the window for the conditional sampler (2)\n"
    "  --sampler NAME        conditional (default), marginal or constant\n"
    "  --sampler-file F      a sampler saved by fit-sampler or an earlier explain\n"
    "  --reference SRC       reference images (file, folder or IDX; repeatable):\n"
    "                        fits the conditional sampler (first 2000 images), or\n"
    "                        gives the marginal sampler its first S images\n"
    "  --patches N           patches the conditional sampler is fitted on (20000)\n"
    "  --joint-channels      one Gaussian over all channels (conditional)\n"
    "gradient methods:\n"
    "  --score logodds|logit what is differentiated: the class's natural log-odds\n"
    "                        log(p/(1-p)) (default) or its logit\n"
    "  --steps N             ig: path steps (default 50)\n"
    "  --baseline B          ig: zero (default), mean (the image's channel means) or\n"
    "                        blur (Gaussian blur, sigma = longer side / 10)\n"
    "  --noise F             smoothgrad: noise sigma as a fraction of the image's\n"
    "                        value range (default 0.15)\n"
    "  --samples S           smoothgrad: noisy copies (default 50)\n"
    "  --layer NAME          gradcam: the feature maps to weight (a 4-D layer output)\n"
    "common:\n"
    "  --seed n              random seed (default 0)\n"
    "  --vmax V              colour scale +-V (default: each map's max |value|)\n"
    "  --side-by-side        put the original image beside the map\n"
    "  --batch N             images per forward pass (default 64; ig, smoothgrad 16)\n"
    "  --threads N           threads (default: the CPUs this process may use; maps\n"
    "                        are the same bits for any number)\n" CLI_MAX_MEMORY_HELP
        CLI_LAYOUT_HELP "  --preprocess P, --mean, --std, --size   as for classify (default none)\n"
    "  --shard I/N           explain only images i with i mod N = I (0-based; N tasks\n"
    "                        of an array job cover every image once)\n"
    "  --resume              skip images whose outputs in --out are complete and\n"
    "                        from the same model, image and settings (redo the rest)\n"
    "  --report              also write --out/report.html (see 'evmap report')\n"
    "  --quiet               no progress output\n";

static int parse_class_list(const char *s, explain_options *o) {
    char buf[4096];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long v;
        if (o->n_classes >= EXPLAIN_MAX_CLASSES || !cli_parse_int(tok, 0, 1000000, &v))
            return -1;
        o->classes[o->n_classes++] = (int)v;
    }
    return o->n_classes > 0 ? 0 : -1;
}

static int parse_target(const char *s, explain_options *o) {
    const char *colon = strrchr(s, ':');
    long ch;
    if (!colon || colon == s || !cli_parse_int(colon + 1, 0, 1000000, &ch))
        return -1;
    size_t n = (size_t)(colon - s);
    if (n >= sizeof o->target_layer)
        return -1;
    memcpy(o->target_layer, s, n);
    o->target_layer[n] = '\0';
    o->target_channel = (int)ch;
    return 0;
}

/* The method's entry in the table; evaluate's baselines are no explanation. */
static int parse_method(const char *v, explain_options *o) {
    snprintf(o->method, sizeof o->method, "%s", v);
    const method_info *m = method_find(v);
    if (!m || (m->flags & METHOD_EVALUATE_ONLY))
        return -1;
    o->info = m;
    o->gradient = (m->flags & METHOD_GRADIENT) != 0;
    o->gradient_method = (evmap_gradient_method)m->gradient;
    return 0;
}

/* Options with a numeric value that only explain has. */
static int parse_number_option(const char *a, const char *v, explain_options *o) {
    long n;
    if (!strcmp(a, "--top")) {
        if (!cli_parse_int(v, 1, 1000000, &n))
            return cli_usage_error("explain", "%s must be a whole number from %ld to %ld, not '%s'",
                                   a, 1L, 1000000L, v);
        o->top = (int)n;
        return 1;
    }
    if (!strcmp(a, "--shard")) {
        if (!cli_parse_shard(v, 1000000, &o->shard, &o->shards))
            return cli_usage_error("explain",
                                   "--shard must be I/N with 0 <= I < N (e.g. 3/8: the fourth "
                                   "of eight parts), not '%s'",
                                   v);
        return 1;
    }
    if (!strcmp(a, "--vmax")) {
        float f;
        if (!cli_parse_float(v, &f) || f <= 0)
            return cli_usage_error("explain", "%s must be a positive number", a);
        o->vmax = f;
        return 1;
    }
    return 0;
}

static int parse_text_option(const char *a, const char *v, explain_options *o) {
    if (!strcmp(a, "--model"))
        o->model_path = v;
    else if (!strcmp(a, "--out"))
        o->out_dir = v;
    else if (!strcmp(a, "--labels"))
        o->labels_path = v;
    else if (!strcmp(a, "--method")) {
        if (parse_method(v, o))
            return cli_usage_error("explain",
                                   "--method must be pda, occlusion, saliency, gradxinput, ig, "
                                   "smoothgrad, gradcam or guided, not '%s'",
                                   v);
    } else if (!strcmp(a, "--class")) {
        if (parse_class_list(v, o))
            return cli_usage_error("explain", "--class must be class indices like 3 or 0,4,9");
    } else if (!strcmp(a, "--target")) {
        if (parse_target(v, o))
            return cli_usage_error("explain", "--target must be LAYER:CHANNEL, e.g. relu_3:12");
    } else
        return 0;
    return 1;
}

static void set_defaults(explain_options *o, char **images, char **references) {
    memset(o, 0, sizeof *o);
    o->images = images;
    method_options_init(&o->mo, references);
    o->target_channel = -1;
    o->shards = 1;
    parse_method("pda", o);
    evmap_preprocess_init(&o->input.preprocess, EVMAP_PREPROCESS_NONE);
}

/* Refuses options the method does not take; settles what explain reads
 * differently from evaluate. */
static int finish_method(explain_options *o) {
    if (method_option_groups_check("explain", o->info, o->given))
        return EXIT_USAGE;
    method_options *mo = &o->mo;
    if (mo->no_laplace) /* explain: --no-laplace wins over any --laplace-n */
        mo->laplace_n = 0;
    /* the last --fill counts, a number or not */
    mo->occlusion = strcmp(mo->fill, "mean") ? EVMAP_BASELINE_ZERO : EVMAP_BASELINE_MEAN;
    mo->occlusion_value_given = strcmp(mo->fill, "zero") && strcmp(mo->fill, "mean");
    if (!strcmp(o->method, "occlusion")) {
        snprintf(mo->sampler_kind, sizeof mo->sampler_kind, "constant");
        mo->pda_samples = 1;
    }
    if (o->target_layer[0]) {
        mo->target_layer = o->target_layer;
        mo->target_channel = o->target_channel;
    }
    return EXIT_OK;
}

/* Options that change no output, left out of the run's settings (--resume
 * compares those): where outputs go, which share of the images, how many
 * threads. (--batch stays in: BLAS sums in an order that depends on the
 * matrix shapes, so another batch can change a map's last bits.) */
static bool changes_no_output(const char *a) {
    static const char *const names[] = {"--out",   "--shard",      "--resume", "--threads",
                                        "--quiet", "--max-memory", "--report"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(a, names[i]))
            return true;
    return false;
}

/* Files whose bytes the run key holds (explain_resume.c): their names may
 * change between runs. */
static bool keyed_by_content(const char *a) {
    return !strcmp(a, "--model") || !strcmp(a, "--sampler-file") ||
           !strcmp(a, "--coarse-sampler-file") || !strcmp(a, "--labels");
}

/* Appends argv[first..last] to the settings that --resume compares. */
static void record_settings(explain_options *o, char **argv, int first, int last) {
    if (changes_no_output(argv[first]))
        return;
    if (keyed_by_content(argv[first]))
        last = first;
    for (int i = first; i <= last; i++) {
        size_t n = strlen(argv[i]) + 1; /* with its terminator as the separator */
        if (o->settings_len + n > sizeof o->settings) {
            o->settings_overflow = true;
            return;
        }
        memcpy(o->settings + o->settings_len, argv[i], n);
        o->settings_len += n;
    }
}

/* One option or image at argv[*i]: 0 (an option, *i at its last token), 1
 * (an image), -1 (help printed) or EXIT_USAGE. */
static int parse_one(int argc, char **argv, int *i, explain_options *o) {
    const char *a = argv[*i];
    int consumed = cli_parse_input_option("explain", argc, argv, i, &o->input);
    if (consumed < 0)
        return EXIT_USAGE;
    if (consumed)
        return 0;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
        fputs(explain_help, stdout);
        return -1;
    }
    if (method_flag_parse(METHOD_CMD_EXPLAIN, a, &o->mo, &o->given))
        return 0;
    if (!strcmp(a, "--quiet") || !strcmp(a, "--side-by-side") || !strcmp(a, "--resume") ||
        !strcmp(a, "--report")) {
        o->report |= !strcmp(a, "--report");
        o->quiet |= !strcmp(a, "--quiet");
        o->side_by_side |= !strcmp(a, "--side-by-side");
        o->resume |= !strcmp(a, "--resume");
        return 0;
    }
    if (a[0] != '-' || a[1] == '\0')
        return 1;
    if (*i + 1 >= argc)
        return cli_usage_error("explain", "%s needs a value or is unknown", a);
    int r = method_option_parse(METHOD_CMD_EXPLAIN, a, argv[*i + 1], &o->mo, &o->given);
    if (r == 0)
        r = parse_number_option(a, argv[*i + 1], o);
    if (r == 0)
        r = parse_text_option(a, argv[*i + 1], o);
    if (r == EXIT_USAGE)
        return EXIT_USAGE;
    if (r == 0)
        return cli_usage_error("explain", "unknown option '%s'", a);
    (*i)++;
    return 0;
}

/* Returns EXIT_OK, EXIT_USAGE, or -1 after printing help. */
static int parse_options(int argc, char **argv, explain_options *o) {
    for (int i = 1; i < argc; i++) {
        int first = i, r = parse_one(argc, argv, &i, o);
        if (r == 1)
            o->images[o->n_images++] = argv[i];
        else if (r != 0)
            return r;
        else
            record_settings(o, argv, first, i);
    }
    if (!o->model_path)
        return cli_usage_error("explain", "--model is required");
    if (!o->out_dir)
        return cli_usage_error("explain", "--out DIR is required");
    if (o->n_images == 0)
        return cli_usage_error("explain", "no images given");
    if (o->n_classes && o->top)
        return cli_usage_error("explain", "give either --class or --top, not both");
    if (o->target_layer[0] && (o->n_classes || o->top))
        return cli_usage_error("explain", "--target explains a hidden unit; drop --class/--top");
    cli_input_finish(&o->input);
    return finish_method(o);
}

int cmd_explain(int argc, char **argv) {
    char **images = calloc((size_t)argc, sizeof(char *));
    char **references = calloc((size_t)argc, sizeof(char *));
    if (!images || !references) {
        free(images);
        free(references);
        return EXIT_RUNTIME;
    }
    explain_options o;
    set_defaults(&o, images, references);
    int rc = parse_options(argc, argv, &o);
    if (rc == EXIT_OK) {
        explain_state s = {.index_fd = -1};
        evmap_error err = {0};
        cli_install_interrupt_handler();
        evmap_status st = explain_open(&o, &s, &err);
        if (st == EVMAP_OK)
            st = cli_make_out_dir(o.out_dir, &err);
        if (st == EVMAP_OK)
            st = explain_prepare_sampler(&o, &s, &err);
        if (st == EVMAP_OK)
            st = explain_resume_open(&o, &s, &err);
        size_t n = st == EVMAP_OK ? evmap_image_set_count(s.set) : 0, refused = 0, done = 0,
               resumed = 0;
        if (st == EVMAP_OK && o.resume)
            explain_resume_clean(&o, &s, n);
        if (st == EVMAP_OK && (o.resume || o.shards > 1)) /* the cluster workflow */
            st = explain_index_open(&o, &s, n, &err);
        for (size_t i = (size_t)o.shard; st == EVMAP_OK && i < n; i += (size_t)o.shards) {
            st = explain_image(&o, &s, i, &err);
            done += st == EVMAP_OK && !s.resumed;
            resumed += st == EVMAP_OK && s.resumed;
            if (st == EVMAP_OK)
                explain_index_record(&o, &s, i, s.resumed ? "resumed" : "done", NULL);
            else if (st != EVMAP_ERR_CANCELLED)
                explain_index_record(&o, &s, i, "failed", err.message);
            if (st != EVMAP_OK && s.size_refused && n > 1) { /* the others go on */
                cli_report(&err);
                refused++;
                st = EVMAP_OK;
            }
        }
        if (st == EVMAP_OK && refused)
            st = cli_fail(&err, EVMAP_ERR_UNSUPPORTED,
                          "%zu of %zu images could not be explained at their size (above); the "
                          "others are in %s/",
                          refused, n, o.out_dir);
        if (st == EVMAP_ERR_CANCELLED) {
            fprintf(stderr,
                    "evmap: interrupted; finished images are in '%s', the current one "
                    "was not written\n",
                    o.out_dir);
            rc = 130;
        } else {
            rc = st == EVMAP_OK ? EXIT_OK : cli_report(&err);
        }
        if (st == EVMAP_OK && !o.quiet && resumed)
            fprintf(stderr, "evmap: %zu image(s) already complete in %s/ (--resume)\n", resumed,
                    o.out_dir);
        if (st == EVMAP_OK && !o.quiet)
            fprintf(stderr, "evmap: wrote %zu image(s) to %s/%s\n", done, o.out_dir,
                    o.shards > 1 ? " (this shard)" : "");
        explain_index_close(&s);
        explain_state_free(&s);
        if (rc == EXIT_OK && o.report)
            rc = report_write(o.out_dir, NULL, o.quiet);
    }
    free(images);
    free(references);
    return rc < 0 ? EXIT_OK : rc;
}
