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
    "  --size WxH            resize to this size instead of the preset's (a model\n"
    "                        with a free input size runs each image at its own\n"
    "                        size otherwise; docs/models.md)\n"
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
                         bool softmax_applied, evmap_layout layout, const int *size) {
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
        printf("], \"softmax_applied\": %s, \"layout\": \"%s\", \"input_size\": [%d, %d]}\n",
               softmax_applied ? "true" : "false", evmap_layout_name(layout), size[0], size[1]);
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

/* Images of different sizes (a model with a free side) never share a batch:
 * each size has a bucket holding a runner planned for it and the images
 * waiting for a full batch. At most MAX_SIZES buckets are open, together
 * within --max-memory; results are printed in input order from a ring of the
 * last RING_BATCHES × batch images. */
enum { MAX_SIZES = 4, RING_BATCHES = 2 * MAX_SIZES, MAX_FAILED_SIZES = 16 };

typedef struct size_bucket {
    int width, height; /* 0 x 0: unused */
    evmap_runner *runner;
    float *inputs;   /* batch × C × H × W */
    size_t *members; /* the images waiting in inputs */
    int count;
    uint64_t last_used;
} size_bucket;

typedef enum { PENDING = 0, DONE, FAILED } image_state;

typedef struct classify_state {
    evmap_model *model;
    evmap_model_info info;
    evmap_image_set *set;
    cli_labels labels;
    uint8_t *truth;
    size_t n_truth;
    int batch;
    size_bucket buckets[MAX_SIZES];
    uint64_t clock;
    int failed_sizes[MAX_FAILED_SIZES][2]; /* sizes the model refused */
    char failed_messages[MAX_FAILED_SIZES][512];
    int n_failed_sizes;
    /* results of images [cursor, cursor + ring) by index modulo ring */
    size_t ring, cursor;
    float *ring_probs;
    float *batch_probs; /* batch × K: one flush's probabilities */
    int *ring_size;     /* width, height */
    uint8_t *ring_state;
    int *order;
    size_t correct, classified, failed;
    char failed_names[256];
} classify_state;

static void bucket_release(size_bucket *b) {
    evmap_runner_free(b->runner);
    free(b->inputs);
    free(b->members);
    *b = (size_bucket){0};
}

static void state_free(classify_state *s) {
    for (int i = 0; i < MAX_SIZES; i++)
        bucket_release(&s->buckets[i]);
    evmap_model_free(s->model);
    evmap_image_set_free(s->set);
    cli_labels_free(&s->labels);
    evmap_idx_free_labels(s->truth);
    free(s->ring_probs);
    free(s->batch_probs);
    free(s->ring_size);
    free(s->ring_state);
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

/* Prints the results of the images at the cursor that are ready, in order. */
static void print_ready(const classify_options *o, classify_state *s) {
    size_t n = evmap_image_set_count(s->set);
    int k = s->info.num_classes;
    while (s->cursor < n && s->ring_state[s->cursor % s->ring] != PENDING) {
        size_t slot = s->cursor % s->ring;
        if (s->ring_state[slot] == DONE) {
            const float *p = s->ring_probs + (size_t)k * slot;
            if (!o->quiet)
                print_result(o, s->set, s->cursor, p, k, s->order, &s->labels,
                             !s->info.ends_in_softmax, s->info.layout, s->ring_size + 2 * slot);
            if (s->truth) {
                top_classes(p, k, 1, s->order);
                s->correct += s->order[0] == s->truth[s->cursor];
            }
            s->classified++;
        }
        s->ring_state[slot] = PENDING;
        s->cursor++;
    }
}

/* Runs the images waiting in bucket b and stores their results. */
static evmap_status flush(classify_state *s, size_bucket *b, evmap_error *err) {
    if (b->count == 0)
        return EVMAP_OK;
    int k = s->info.num_classes;
    float *probs = s->batch_probs;
    evmap_status st = evmap_runner_classify(b->runner, b->inputs, b->count, probs, err);
    for (int i = 0; st == EVMAP_OK && i < b->count; i++) {
        size_t slot = b->members[i] % s->ring;
        memcpy(s->ring_probs + (size_t)k * slot, probs + (size_t)k * (size_t)i,
               sizeof(float) * (size_t)k);
        s->ring_size[2 * slot] = b->width;
        s->ring_size[2 * slot + 1] = b->height;
        s->ring_state[slot] = DONE;
    }
    b->count = 0;
    return st;
}

/* The refusal recorded for width x height, or NULL. */
static const char *failed_size(const classify_state *s, int width, int height) {
    for (int i = 0; i < s->n_failed_sizes; i++)
        if (s->failed_sizes[i][0] == width && s->failed_sizes[i][1] == height)
            return s->failed_messages[i];
    return NULL;
}

static uint64_t bucket_memory(const classify_state *s, const size_bucket *b) {
    return evmap_runner_memory(b->runner) + sizeof(float) * (size_t)s->batch *
                                                (size_t)s->info.channels * (size_t)b->width *
                                                (size_t)b->height;
}

/* A runner for the model's current size within what --max-memory leaves
 * beside the open buckets; when that is too little, the others are run and
 * closed first. */
static evmap_status runner_within_memory(const classify_options *o, classify_state *s,
                                         size_bucket *b, evmap_error *err) {
    uint64_t limit = o->input.max_memory, others = 0;
    for (int i = 0; i < MAX_SIZES; i++)
        if (&s->buckets[i] != b)
            others += bucket_memory(s, &s->buckets[i]);
    if (limit && others) {
        evmap_model_limit_memory(s->model, limit > others ? limit - others : 1);
        evmap_status st = evmap_runner_create(s->model, s->batch, o->threads, &b->runner, err);
        evmap_model_limit_memory(s->model, limit);
        if (st != EVMAP_ERR_TOO_LARGE)
            return st;
        for (int i = 0; i < MAX_SIZES; i++) {
            if (&s->buckets[i] == b)
                continue;
            st = flush(s, &s->buckets[i], err);
            if (st != EVMAP_OK)
                return st;
            bucket_release(&s->buckets[i]);
        }
    }
    return evmap_runner_create(s->model, s->batch, o->threads, &b->runner, err);
}

/* Opens a bucket for width x height in slot b (flushed and emptied first).
 * A size the model refuses is recorded and reported as EVMAP_ERR_UNSUPPORTED. */
static evmap_status bucket_open(const classify_options *o, classify_state *s, size_bucket *b,
                                int width, int height, evmap_error *err) {
    evmap_status st = flush(s, b, err);
    if (st != EVMAP_OK)
        return st;
    bucket_release(b);
    st = evmap_model_set_input_size(s->model, height, width, err);
    if (st == EVMAP_OK)
        st = runner_within_memory(o, s, b, err);
    if (st != EVMAP_OK) {
        if (s->n_failed_sizes < MAX_FAILED_SIZES) {
            int i = s->n_failed_sizes++;
            s->failed_sizes[i][0] = width, s->failed_sizes[i][1] = height;
            snprintf(s->failed_messages[i], sizeof s->failed_messages[i], "%s", err->message);
        }
        return st;
    }
    size_t per_image = (size_t)s->info.channels * (size_t)width * (size_t)height;
    b->inputs = malloc(sizeof(float) * per_image * (size_t)s->batch);
    b->members = malloc(sizeof(size_t) * (size_t)s->batch);
    if (!b->inputs || !b->members)
        return cli_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory for a batch of %d x %d images",
                        width, height);
    b->width = width;
    b->height = height;
    return EVMAP_OK;
}

/* The bucket for width x height: an open one, a free slot, or the least
 * recently used one, flushed. */
static evmap_status bucket_for(const classify_options *o, classify_state *s, int width, int height,
                               size_bucket **out, evmap_error *err) {
    size_bucket *pick = &s->buckets[0];
    for (int i = 0; i < MAX_SIZES; i++) {
        size_bucket *b = &s->buckets[i];
        if (b->runner && b->width == width && b->height == height) {
            *out = b;
            b->last_used = ++s->clock;
            return EVMAP_OK;
        }
        if (!b->runner ? pick->runner != NULL : pick->runner && b->last_used < pick->last_used)
            pick = b;
    }
    evmap_status st = bucket_open(o, s, pick, width, height, err);
    pick->last_used = ++s->clock;
    *out = st == EVMAP_OK ? pick : NULL;
    return st;
}

/* One image the model cannot run at its size: reported, and the run goes on
 * (a single image's refusal is the run's error instead). */
static void note_failure(classify_state *s, size_t index, const char *message, evmap_error *err) {
    const char *name = evmap_image_set_name(s->set, index);
    if (evmap_image_set_count(s->set) > 1)
        fprintf(stderr, "evmap: %s: %s\n", name, message);
    else
        cli_fail(err, EVMAP_ERR_UNSUPPORTED, "%s: %s", name, message);
    size_t used = strlen(s->failed_names);
    if (used < sizeof s->failed_names - 1)
        snprintf(s->failed_names + used, sizeof s->failed_names - used, "%s%s",
                 s->failed ? ", " : "", name);
    s->failed++;
    s->ring_state[index % s->ring] = FAILED;
}

/* Keeps the ring from overflowing: runs the bucket that holds the image at
 * the cursor while image index would not fit. */
static evmap_status make_room(const classify_options *o, classify_state *s, size_t index,
                              evmap_error *err) {
    print_ready(o, s);
    while (index - s->cursor >= s->ring) {
        size_bucket *holder = NULL;
        for (int i = 0; i < MAX_SIZES && !holder; i++)
            for (int j = 0; j < s->buckets[i].count; j++)
                if (s->buckets[i].members[j] == s->cursor)
                    holder = &s->buckets[i];
        if (!holder)
            return cli_fail(err, EVMAP_ERR_INTERNAL, "classify: image %zu is in no batch",
                            s->cursor);
        evmap_status st = flush(s, holder, err);
        if (st != EVMAP_OK)
            return st;
        print_ready(o, s);
    }
    return EVMAP_OK;
}

/* Loads image index and adds it to the batch of its size. */
static evmap_status add_image(const classify_options *o, classify_state *s, size_t index,
                              evmap_error *err) {
    evmap_image *img = NULL;
    evmap_preprocess pre;
    int width, height;
    evmap_status st = cli_load_image(s->set, index, &s->info, &o->input.preprocess, &img, &pre,
                                     &width, &height, err);
    const char *refused = st == EVMAP_OK ? failed_size(s, width, height) : NULL;
    size_bucket *b = NULL;
    if (st == EVMAP_OK && !refused)
        st = bucket_for(o, s, width, height, &b, err);
    bool free_size = s->info.free_height || s->info.free_width;
    if (refused || (free_size && st != EVMAP_OK && !b && st != EVMAP_ERR_IO &&
                    st != EVMAP_ERR_BAD_FILE && st != EVMAP_ERR_INTERNAL)) {
        /* this size only: the other images go on */
        char message[sizeof err->message];
        snprintf(message, sizeof message, "%s", refused ? refused : err->message);
        note_failure(s, index, message, err);
        evmap_image_free(img);
        return EVMAP_OK;
    }
    if (st == EVMAP_OK) {
        size_t per_image = (size_t)s->info.channels * (size_t)width * (size_t)height;
        st = evmap_preprocess_image(img, &pre, s->info.channels, height, width,
                                    b->inputs + per_image * (size_t)b->count, err);
    }
    evmap_image_free(img);
    if (st != EVMAP_OK)
        return st;
    b->members[b->count++] = index;
    return b->count == s->batch ? flush(s, b, err) : EVMAP_OK;
}

static evmap_status classify_all(const classify_options *o, classify_state *s, evmap_error *err) {
    size_t n = evmap_image_set_count(s->set);
    s->batch = (size_t)o->batch > n ? (int)n : o->batch;
    s->ring = (size_t)s->batch * RING_BATCHES;
    int k = s->info.num_classes;
    s->ring_probs = malloc(sizeof(float) * (size_t)k * s->ring);
    s->batch_probs = malloc(sizeof(float) * (size_t)k * (size_t)s->batch);
    s->ring_size = malloc(sizeof(int) * 2 * s->ring);
    s->ring_state = calloc(s->ring, 1);
    s->order = malloc(sizeof(int) * (size_t)k);
    if (!s->ring_probs || !s->batch_probs || !s->ring_size || !s->ring_state || !s->order)
        return cli_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
    evmap_status st = EVMAP_OK;
    for (size_t i = 0; st == EVMAP_OK && i < n; i++) {
        st = make_room(o, s, i, err);
        if (st == EVMAP_OK)
            st = add_image(o, s, i, err);
    }
    for (int i = 0; st == EVMAP_OK && i < MAX_SIZES; i++)
        st = flush(s, &s->buckets[i], err);
    if (st != EVMAP_OK)
        return st;
    print_ready(o, s);
    if (s->truth && s->classified)
        printf("accuracy: %zu/%zu = %.2f%%\n", s->correct, s->classified,
               100.0 * (double)s->correct / (double)s->classified);
    if (s->failed && n > 1)
        return cli_fail(err, EVMAP_ERR_UNSUPPORTED,
                        "%zu of %zu images could not be classified at their size (%s%s); the "
                        "others were",
                        s->failed, n, s->failed_names,
                        strlen(s->failed_names) >= sizeof s->failed_names - 1 ? ", ..." : "");
    return s->failed ? err->status : EVMAP_OK;
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
