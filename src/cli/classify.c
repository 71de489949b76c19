/* evmap classify: class probabilities for images, IDX files and folders. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "json.h"

static const char classify_help[] =
    "usage: evmap classify --model M.onnx [options] IMAGE...\n"
    "\n"
    "Prints the most likely classes of each image. IMAGE may be a PNG or JPEG file,\n"
    "a folder of them, or an IDX file (MNIST format, .gz allowed: every image in it).\n"
    "\n"
    "options:\n"
    "  --model FILE          ONNX classifier (required)\n"
    "  --labels FILE         class names, one per line\n"
    "  --labels-idx FILE     true labels (IDX); prints the accuracy at the end\n"
    "  --preprocess P        none (pixels in [0,1], no resize; default) or imagenet\n"
    "                        (resize 256, center crop 224, ImageNet mean/std)\n"
    "  --mean a,b,c          custom per-channel mean (after scaling to [0,1])\n"
    "  --std a,b,c           custom per-channel standard deviation\n"
    "  --size WxH            resize to this size instead of the preset's\n"
    "  --top K|all           classes shown per image (default 1)\n"
    "  --json                one JSON object per image and line; softmax_applied\n"
    "                        says whether evmap turned the model's logits into\n"
    "                        probabilities (false: the graph ends in Softmax)\n"
    "  --batch N             images per forward pass (default 16)\n"
    "  --threads N           threads (default: all cores)\n" CLI_MAX_MEMORY_HELP CLI_LAYOUT_HELP
    "  --quiet               print only the accuracy line (with --labels-idx)\n";

typedef struct classify_options {
    const char *model_path;
    const char *labels_path;
    const char *labels_idx_path;
    cli_input_options input;
    int top; /* 0: all */
    bool json;
    bool quiet;
    int batch;
    int threads;
    char **images;
    int n_images;
} classify_options;

static int parse_options(int argc, char **argv, classify_options *o) {
    o->top = 1;
    o->batch = 16;
    evmap_preprocess_init(&o->input.preprocess, EVMAP_PREPROCESS_NONE);
    o->images = calloc((size_t)argc, sizeof(char *));
    if (!o->images)
        return EXIT_RUNTIME;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long v;
        int consumed = cli_parse_input_option("classify", argc, argv, &i, &o->input);
        if (consumed < 0)
            return EXIT_USAGE;
        if (consumed)
            continue;
        bool has_value = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(classify_help, stdout);
            return -1;
        } else if (!strcmp(a, "--json")) {
            o->json = true;
        } else if (!strcmp(a, "--quiet")) {
            o->quiet = true;
        } else if (a[0] == '-' && a[1] == '-' && !has_value && strcmp(a, "--json") &&
                   strcmp(a, "--quiet")) {
            return cli_usage_error("classify", "%s needs a value", a);
        } else if (!strcmp(a, "--model")) {
            o->model_path = argv[++i];
        } else if (!strcmp(a, "--labels")) {
            o->labels_path = argv[++i];
        } else if (!strcmp(a, "--labels-idx")) {
            o->labels_idx_path = argv[++i];
        } else if (!strcmp(a, "--top")) {
            const char *t = argv[++i];
            if (!strcmp(t, "all"))
                o->top = 0;
            else if (cli_parse_int(t, 1, 1000000, &v))
                o->top = (int)v;
            else
                return cli_usage_error("classify", "--top must be a positive number or 'all'");
        } else if (!strcmp(a, "--batch")) {
            if (!cli_parse_int(argv[++i], 1, 4096, &v))
                return cli_usage_error("classify", "--batch must be between 1 and 4096");
            o->batch = (int)v;
        } else if (!strcmp(a, "--threads")) {
            if (!cli_parse_int(argv[++i], 1, 1024, &v))
                return cli_usage_error("classify", "--threads must be between 1 and 1024");
            o->threads = (int)v;
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli_usage_error("classify", "unknown option '%s'", a);
        } else {
            o->images[o->n_images++] = argv[i];
        }
    }
    if (!o->model_path)
        return cli_usage_error("classify", "--model is required");
    if (o->n_images == 0)
        return cli_usage_error("classify", "no images given");
    cli_input_finish(&o->input);
    return EXIT_OK;
}

/* Indices of the k largest probabilities, in descending order. */
static void top_classes(const float *p, int n, int k, int *order) {
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = 0; i < k; i++) {
        int best = i;
        for (int j = i + 1; j < n; j++)
            if (p[order[j]] > p[order[best]])
                best = j;
        int t = order[i];
        order[i] = order[best];
        order[best] = t;
    }
}

static void print_result(const classify_options *o, const evmap_image_set *set, size_t index,
                         const float *p, int k, int *order, const cli_labels *labels,
                         bool softmax_applied, evmap_layout layout) {
    int shown = o->top == 0 || o->top > k ? k : o->top;
    top_classes(p, k, shown, order);
    if (o->json) {
        printf("{\"image\": ");
        json_write_string(stdout, evmap_image_set_name(set, index));
        printf(", \"index\": %zu, \"probs\": [", index);
        for (int c = 0; c < k; c++)
            printf("%s%.9g", c ? ", " : "", (double)p[c]);
        printf("], \"top\": [");
        for (int i = 0; i < shown; i++) {
            printf("%s{\"class\": %d, \"label\": ", i ? ", " : "", order[i]);
            json_write_string(stdout, cli_label(labels, order[i]));
            printf(", \"prob\": %.9g}", (double)p[order[i]]);
        }
        printf("], \"softmax_applied\": %s, \"layout\": \"%s\"}\n",
               softmax_applied ? "true" : "false", evmap_layout_name(layout));
        return;
    }
    printf("%s", evmap_image_set_name(set, index));
    for (int i = 0; i < shown; i++) {
        const char *label = cli_label(labels, order[i]);
        printf("\t%d%s%s%s %.4f", order[i], *label ? " (" : "", label, *label ? ")" : "",
               (double)p[order[i]]);
    }
    putchar('\n');
}

typedef struct classify_state {
    evmap_model *model;
    evmap_model_info info;
    evmap_runner *runner;
    evmap_image_set *set;
    cli_labels labels;
    uint8_t *truth;
    size_t n_truth;
    float *inputs, *probs;
    int *order;
} classify_state;

static void state_free(classify_state *s) {
    evmap_runner_free(s->runner);
    evmap_model_free(s->model);
    evmap_image_set_free(s->set);
    cli_labels_free(&s->labels);
    evmap_idx_free_labels(s->truth);
    free(s->inputs);
    free(s->probs);
    free(s->order);
}

static evmap_status open_all(const classify_options *o, classify_state *s, evmap_error *err) {
    evmap_status st = cli_load_model(o->model_path, &o->input, &s->model, err);
    if (st == EVMAP_OK)
        st = evmap_model_get_info(s->model, &s->info, err);
    if (st == EVMAP_OK && o->labels_path) {
        st = cli_labels_load(o->labels_path, &s->labels, err);
        if (st == EVMAP_OK && s->labels.count != s->info.num_classes) {
            err->status = st = EVMAP_ERR_INVALID_ARGUMENT;
            snprintf(err->message, sizeof err->message,
                     "labels file '%s' has %d lines but the model has %d classes", o->labels_path,
                     s->labels.count, s->info.num_classes);
        }
    }
    if (st == EVMAP_OK)
        st = evmap_image_set_create(&s->set, err);
    evmap_image_set_limit_memory(s->set, o->input.max_memory);
    for (int i = 0; st == EVMAP_OK && i < o->n_images; i++)
        st = evmap_image_set_add(s->set, o->images[i], err);
    if (st == EVMAP_OK && o->labels_idx_path) {
        st = evmap_idx_load_labels(o->labels_idx_path, &s->truth, &s->n_truth, err);
        if (st == EVMAP_OK && s->n_truth != evmap_image_set_count(s->set)) {
            err->status = st = EVMAP_ERR_INVALID_ARGUMENT;
            snprintf(err->message, sizeof err->message, "'%s' has %zu labels for %zu images",
                     o->labels_idx_path, s->n_truth, evmap_image_set_count(s->set));
        }
    }
    return st;
}

static evmap_status classify_all(const classify_options *o, classify_state *s, evmap_error *err) {
    size_t n = evmap_image_set_count(s->set);
    int batch = (size_t)o->batch > n ? (int)n : o->batch;
    size_t per_image = (size_t)s->info.channels * s->info.height * s->info.width;
    int k = s->info.num_classes;
    s->inputs = malloc(sizeof(float) * per_image * (size_t)batch);
    s->probs = malloc(sizeof(float) * (size_t)k * (size_t)batch);
    s->order = malloc(sizeof(int) * (size_t)k);
    if (!s->inputs || !s->probs || !s->order) {
        err->status = EVMAP_ERR_OUT_OF_MEMORY;
        snprintf(err->message, sizeof err->message, "out of memory");
        return err->status;
    }
    evmap_status st = evmap_runner_create(s->model, batch, o->threads, &s->runner, err);
    size_t correct = 0;
    for (size_t first = 0; st == EVMAP_OK && first < n; first += (size_t)batch) {
        int count = n - first < (size_t)batch ? (int)(n - first) : batch;
        for (int i = 0; st == EVMAP_OK && i < count; i++)
            st = cli_load_input(s->set, first + (size_t)i, &o->input.preprocess, &s->info,
                                s->inputs + per_image * (size_t)i, err);
        if (st == EVMAP_OK)
            st = evmap_runner_classify(s->runner, s->inputs, count, s->probs, err);
        for (int i = 0; st == EVMAP_OK && i < count; i++) {
            const float *p = s->probs + (size_t)k * (size_t)i;
            if (!o->quiet)
                print_result(o, s->set, first + (size_t)i, p, k, s->order, &s->labels,
                             !s->info.ends_in_softmax, s->info.layout);
            if (s->truth) {
                top_classes(p, k, 1, s->order);
                correct += s->order[0] == s->truth[first + (size_t)i];
            }
        }
    }
    if (st == EVMAP_OK && s->truth)
        printf("accuracy: %zu/%zu = %.2f%%\n", correct, n, 100.0 * (double)correct / (double)n);
    return st;
}

int cmd_classify(int argc, char **argv) {
    classify_options o = {0};
    int rc = parse_options(argc, argv, &o);
    if (rc != EXIT_OK) {
        free(o.images);
        return rc < 0 ? EXIT_OK : rc;
    }
    classify_state s = {0};
    evmap_error err = {0};
    evmap_status st = open_all(&o, &s, &err);
    if (st == EVMAP_OK)
        st = classify_all(&o, &s, &err);
    rc = st == EVMAP_OK ? EXIT_OK : cli_report(&err);
    state_free(&s);
    free(o.images);
    return rc;
}
