/* evmap explain: evidence maps for images (PDA, occlusion and the gradient family). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "explain.h"

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
    "  --split L             layer above which the network is linearised: a layer\n"
    "                        output's name, input, output (= exact PDA) or auto\n"
    "                        (default)\n"
    "  --expand window|image expand around each window's mean activation at the\n"
    "                        split (default; layers above run once per window) or\n"
    "                        around the image (one backward pass per class)\n"
    "  --refine Q            coarse pass, then only the fraction Q of windows with\n"
    "                        the largest coarse evidence (default 1: no coarse pass)\n"
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
    "  --threads N           threads (default: all cores)\n" CLI_MAX_MEMORY_HELP
    "  --preprocess P, --mean, --std, --size   as for classify (default none)\n"
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

static int parse_roi(const char *s, explain_options *o) {
    int v[4];
    if (!cli_parse_int_list(s, ',', 0, 65535, v, 4) || v[2] < 1 || v[3] < 1)
        return -1;
    memcpy(o->roi, v, sizeof v);
    return 0;
}

static int parse_fill(const char *s, explain_options *o) {
    if (!strcmp(s, "zero") || !strcmp(s, "mean")) {
        snprintf(o->fill, sizeof o->fill, "%s", s);
        return 0;
    }
    float v;
    if (!cli_parse_float(s, &v))
        return -1;
    snprintf(o->fill, sizeof o->fill, "%s", s);
    o->fill_value = v;
    return 0;
}

static bool is_flag(const char *a) {
    return !strcmp(a, "--quiet") || !strcmp(a, "--side-by-side") || !strcmp(a, "--no-laplace") ||
           !strcmp(a, "--no-locality") || !strcmp(a, "--joint-channels");
}

/* Which GIVEN_* group an option belongs to (0: every method takes it). */
static unsigned option_group(const char *a) {
    static const struct {
        const char *name;
        unsigned group;
    } groups[] = {
        {"--sampler", GIVEN_PDA_SAMPLING},
        {"--sampler-file", GIVEN_PDA_SAMPLING},
        {"--reference", GIVEN_PDA_SAMPLING},
        {"--pad", GIVEN_PDA_SAMPLING},
        {"--patches", GIVEN_PDA_SAMPLING},
        {"--joint-channels", GIVEN_PDA_SAMPLING},
        {"--window", GIVEN_WINDOWS},
        {"--stride", GIVEN_WINDOWS},
        {"--roi", GIVEN_WINDOWS},
        {"--laplace-n", GIVEN_WINDOWS},
        {"--no-laplace", GIVEN_WINDOWS},
        {"--no-locality", GIVEN_WINDOWS},
        {"--fill", GIVEN_WINDOWS},
        {"--samples", GIVEN_SAMPLES},
        {"--score", GIVEN_GRADIENT},
        {"--steps", GIVEN_STEPS},
        {"--baseline", GIVEN_STEPS},
        {"--noise", GIVEN_NOISE},
        {"--layer", GIVEN_LAYER},
        {"--split", GIVEN_EFFICIENT},
        {"--refine", GIVEN_EFFICIENT},
        {"--coarse-window", GIVEN_EFFICIENT},
        {"--coarse-sampler-file", GIVEN_EFFICIENT},
        {"--expand", GIVEN_EFFICIENT},
    };
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++)
        if (!strcmp(a, groups[i].name))
            return groups[i].group;
    return 0;
}

/* The option groups each method accepts. */
static unsigned method_groups(const explain_options *o) {
    if (!strcmp(o->method, "pda"))
        return GIVEN_PDA_SAMPLING | GIVEN_WINDOWS | GIVEN_SAMPLES;
    if (!strcmp(o->method, "efficient"))
        return GIVEN_PDA_SAMPLING | GIVEN_WINDOWS | GIVEN_SAMPLES | GIVEN_EFFICIENT;
    if (!strcmp(o->method, "occlusion"))
        return GIVEN_WINDOWS;
    unsigned g = GIVEN_GRADIENT;
    if (o->gradient_method == EVMAP_GRADIENT_IG)
        g |= GIVEN_STEPS;
    if (o->gradient_method == EVMAP_GRADIENT_SMOOTHGRAD)
        g |= GIVEN_NOISE | GIVEN_SAMPLES;
    if (o->gradient_method == EVMAP_GRADIENT_GRADCAM)
        g |= GIVEN_LAYER;
    return g;
}

static int parse_method(const char *v, explain_options *o) {
    snprintf(o->method, sizeof o->method, "%s", v);
    if (!strcmp(v, "pda") || !strcmp(v, "occlusion") || !strcmp(v, "efficient")) {
        o->gradient = false;
        return 0;
    }
    for (int m = EVMAP_GRADIENT_SALIENCY; m <= EVMAP_GRADIENT_GUIDED; m++)
        if (!strcmp(v, evmap_gradient_method_name((evmap_gradient_method)m))) {
            o->gradient = true;
            o->gradient_method = (evmap_gradient_method)m;
            return 0;
        }
    return -1;
}

/* Options with a numeric value: name, bounds, destination. */
static int parse_number_option(const char *a, const char *v, explain_options *o) {
    struct {
        const char *name;
        long min, max;
        int *dest;
    } ints[] = {
        {"--window", 1, 1024, &o->window},
        {"--pad", 0, 16, &o->pad},
        {"--samples", 1, 100000, &o->samples},
        {"--stride", 1, 1024, &o->stride},
        {"--top", 1, 1000000, &o->top},
        {"--batch", 1, 65536, &o->batch},
        {"--threads", 1, 1024, &o->threads},
        {"--steps", 1, 10000, &o->steps},
        {"--coarse-window", 2, 1024, &o->coarse_window},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (strcmp(a, ints[i].name))
            continue;
        long n;
        if (!cli_parse_int(v, ints[i].min, ints[i].max, &n))
            return cli_usage_error("explain", "%s must be a whole number from %ld to %ld, not '%s'",
                                   a, ints[i].min, ints[i].max, v);
        *ints[i].dest = (int)n;
        if (ints[i].dest == &o->pad)
            o->pad_given = true;
        return 1;
    }
    long n;
    if (!strcmp(a, "--seed")) {
        if (!cli_parse_int(v, 0, 2147483647L, &n))
            return cli_usage_error("explain", "--seed must be a non-negative whole number");
        o->seed = (uint64_t)n;
        return 1;
    }
    if (!strcmp(a, "--patches")) {
        if (!cli_parse_int(v, 100, 100000000L, &n))
            return cli_usage_error("explain", "--patches must be from 100 to 100000000");
        o->patches = (size_t)n;
        return 1;
    }
    if (!strcmp(a, "--refine")) {
        float f;
        if (!cli_parse_float(v, &f) || !(f > 0 && f <= 1))
            return cli_usage_error("explain", "--refine must be a fraction in (0, 1], not '%s'", v);
        o->refine = f;
        return 1;
    }
    if (!strcmp(a, "--noise")) {
        float f;
        if (!cli_parse_float(v, &f) || f < 0 || f > 10)
            return cli_usage_error("explain", "--noise must be a number from 0 to 10, not '%s'", v);
        o->noise = f;
        return 1;
    }
    if (!strcmp(a, "--laplace-n") || !strcmp(a, "--vmax")) {
        float f;
        if (!cli_parse_float(v, &f) || f <= 0)
            return cli_usage_error("explain", "%s must be a positive number", a);
        *(!strcmp(a, "--vmax") ? &o->vmax : &o->laplace_n) = f;
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
    else if (!strcmp(a, "--sampler-file"))
        o->sampler_file = v;
    else if (!strcmp(a, "--reference"))
        o->references[o->n_references++] = (char *)v;
    else if (!strcmp(a, "--method")) {
        if (parse_method(v, o))
            return cli_usage_error("explain",
                                   "--method must be pda, occlusion, saliency, gradxinput, ig, "
                                   "smoothgrad, gradcam or guided, not '%s'",
                                   v);
    } else if (!strcmp(a, "--score")) {
        if (strcmp(v, "logodds") && strcmp(v, "logit"))
            return cli_usage_error("explain", "--score must be logodds or logit, not '%s'", v);
        o->score = strcmp(v, "logit") ? EVMAP_SCORE_LOGODDS : EVMAP_SCORE_LOGIT;
    } else if (!strcmp(a, "--baseline")) {
        if (strcmp(v, "zero") && strcmp(v, "mean") && strcmp(v, "blur"))
            return cli_usage_error("explain", "--baseline must be zero, mean or blur, not '%s'", v);
        o->baseline = !strcmp(v, "zero")   ? EVMAP_BASELINE_ZERO
                      : !strcmp(v, "mean") ? EVMAP_BASELINE_MEAN
                                           : EVMAP_BASELINE_BLUR;
    } else if (!strcmp(a, "--split")) {
        if (strlen(v) >= sizeof o->split || !v[0])
            return cli_usage_error("explain", "--split must name a layer, input, output or auto");
        snprintf(o->split, sizeof o->split, "%s", v);
    } else if (!strcmp(a, "--expand")) {
        if (strcmp(v, "window") && strcmp(v, "image"))
            return cli_usage_error("explain", "--expand must be window or image, not '%s'", v);
        o->around_image = !strcmp(v, "image");
    } else if (!strcmp(a, "--coarse-sampler-file")) {
        o->coarse_sampler_file = v;
    } else if (!strcmp(a, "--layer")) {
        if (strlen(v) >= sizeof o->layer || !v[0])
            return cli_usage_error("explain", "--layer must name a layer output");
        snprintf(o->layer, sizeof o->layer, "%s", v);
    } else if (!strcmp(a, "--sampler")) {
        if (strcmp(v, "conditional") && strcmp(v, "marginal") && strcmp(v, "constant"))
            return cli_usage_error(
                "explain", "--sampler must be conditional, marginal or constant, not '%s'", v);
        snprintf(o->sampler, sizeof o->sampler, "%s", v);
    } else if (!strcmp(a, "--class")) {
        if (parse_class_list(v, o))
            return cli_usage_error("explain", "--class must be class indices like 3 or 0,4,9");
    } else if (!strcmp(a, "--target")) {
        if (parse_target(v, o))
            return cli_usage_error("explain", "--target must be LAYER:CHANNEL, e.g. relu_3:12");
    } else if (!strcmp(a, "--roi")) {
        if (parse_roi(v, o))
            return cli_usage_error("explain",
                                   "--roi must be x,y,width,height with width, height > 0");
    } else if (!strcmp(a, "--fill")) {
        if (parse_fill(v, o))
            return cli_usage_error("explain", "--fill must be zero, mean or a number");
    } else
        return 0;
    return 1;
}

static void set_defaults(explain_options *o, char **images) {
    memset(o, 0, sizeof *o);
    o->images = images;
    o->samples = 10;
    o->stride = 1;
    o->pad = 2;
    o->laplace_n = 100000;
    o->patches = 20000;
    o->target_channel = -1;
    o->steps = 50;
    o->refine = 1.0;
    o->noise = 0.15f;
    snprintf(o->method, sizeof o->method, "pda");
    snprintf(o->sampler, sizeof o->sampler, "conditional");
    snprintf(o->fill, sizeof o->fill, "zero");
    evmap_preprocess_init(&o->input.preprocess, EVMAP_PREPROCESS_NONE);
}

/* Refuses options the method does not take; sets the method's defaults. */
static int finish_method(explain_options *o) {
    static const char *const group_names[] = {
        "--sampler, --sampler-file, --reference, --pad, --patches and --joint-channels",
        "--window, --stride, --roi, --fill, --laplace-n, --no-laplace and --no-locality",
        "--samples",
        "--score",
        "--steps and --baseline",
        "--noise",
        "--layer",
        "--split, --expand, --refine, --coarse-window and --coarse-sampler-file",
    };
    unsigned extra = o->given & ~method_groups(o);
    for (unsigned g = 0; g < sizeof group_names / sizeof group_names[0]; g++)
        if (extra & (1u << g))
            return cli_usage_error("explain", "--method %s does not take %s", o->method,
                                   group_names[g]);
    if (!strcmp(o->method, "occlusion")) {
        snprintf(o->sampler, sizeof o->sampler, "constant");
        o->samples = 1;
    }
    if (o->gradient && o->gradient_method == EVMAP_GRADIENT_SMOOTHGRAD &&
        !(o->given & GIVEN_SAMPLES))
        o->samples = 50;
    return EXIT_OK;
}

/* Returns EXIT_OK, EXIT_USAGE, or -1 after printing help. */
static int parse_options(int argc, char **argv, explain_options *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int consumed = cli_parse_input_option("explain", argc, argv, &i, &o->input);
        if (consumed < 0)
            return EXIT_USAGE;
        if (consumed)
            continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(explain_help, stdout);
            return -1;
        }
        o->given |= option_group(a);
        if (is_flag(a)) {
            o->quiet |= !strcmp(a, "--quiet");
            o->side_by_side |= !strcmp(a, "--side-by-side");
            o->no_laplace |= !strcmp(a, "--no-laplace");
            o->no_locality |= !strcmp(a, "--no-locality");
            o->joint_channels |= !strcmp(a, "--joint-channels");
            continue;
        }
        if (a[0] != '-' || a[1] == '\0') {
            o->images[o->n_images++] = argv[i];
            continue;
        }
        if (i + 1 >= argc)
            return cli_usage_error("explain", "%s needs a value or is unknown", a);
        int r = parse_number_option(a, argv[i + 1], o);
        if (r == 0)
            r = parse_text_option(a, argv[i + 1], o);
        if (r == EXIT_USAGE)
            return EXIT_USAGE;
        if (r == 0)
            return cli_usage_error("explain", "unknown option '%s'", a);
        i++;
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
    set_defaults(&o, images);
    o.references = references;
    int rc = parse_options(argc, argv, &o);
    if (rc == EXIT_OK) {
        explain_state s = {0};
        evmap_error err = {0};
        cli_install_interrupt_handler();
        evmap_status st = explain_open(&o, &s, &err);
        if (st == EVMAP_OK)
            st = cli_make_out_dir(o.out_dir, &err);
        if (st == EVMAP_OK)
            st = explain_prepare_sampler(&o, &s, &err);
        for (size_t i = 0; st == EVMAP_OK && i < evmap_image_set_count(s.set); i++)
            st = explain_image(&o, &s, i, &err);
        if (st == EVMAP_ERR_CANCELLED) {
            fprintf(stderr,
                    "evmap: interrupted; finished images are in '%s', the current one "
                    "was not written\n",
                    o.out_dir);
            rc = 130;
        } else {
            rc = st == EVMAP_OK ? EXIT_OK : cli_report(&err);
        }
        if (st == EVMAP_OK && !o.quiet)
            fprintf(stderr, "evmap: wrote %zu image(s) to %s/\n", evmap_image_set_count(s.set),
                    o.out_dir);
        explain_state_free(&s);
    }
    free(images);
    free(references);
    return rc < 0 ? EXIT_OK : rc;
}
