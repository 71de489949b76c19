/*
 * ONNX operator conformance: runs every case of Debian's libonnx-testdata
 * whose operators evmap supports and compares each output with the expected
 * tensor (rtol 1e-4, atol 1e-5). Cases evmap deliberately rejects are listed
 * with their reason in out_of_scope.txt, and each reason with the text
 * evmap's rejection message must contain; a listed case that starts passing,
 * is rejected for another reason, or an unlisted case that is rejected, is a
 * failure, so the list stays true. A listed case rejected for its reason
 * counts as passed (evmap did what the list says); a listed case the test
 * data lacks (another libonnx-testdata version) as skipped.
 *
 * Cases that use operators evmap does not implement are not run; the same
 * file lists every such operator with its reason ("operator:" lines), and
 * each case is counted under the reason of its unimplemented operators (the
 * one listed first in the file when they differ). An unimplemented operator
 * the list lacks fails the case that uses it; a listed operator that evmap
 * now implements, or that no case uses any more, fails too, so that this
 * list stays true as well.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/onnx.pb-c.h"
#include "engine/onnx_load.h"
#include "ops/op.h"
#include "engine/plan.h"

#define MAX_CASES 4096
#define MAX_IO 16

typedef struct scope_entry {
    char name[160];
    char reason[240];
    const char *needle; /* text the rejection message must contain */
    int seen;
} scope_entry;

/* "reason: <reason> -> <text the rejection message contains>" */
typedef struct scope_reason {
    char reason[240];
    char needle[240];
} scope_reason;

#define MAX_REASONS 64

/* "operator: <op_type> -> <reason>": an operator evmap does not implement;
 * outside the default domain, op_type is written "<domain>.<op_type>" as
 * evmap's load error writes it. Reasons group operators, in file order. */
typedef struct scope_operator {
    char name[96];
    int group;
    int cases; /* cases that use it */
} scope_operator;

typedef struct scope_group {
    char reason[240];
    int cases; /* cases counted under this reason */
} scope_group;

#define MAX_OPERATORS 256
#define MAX_GROUPS 32
#define MAX_CASE_OPS 32

typedef struct runner {
    const char *filter;
    const char *scope_path;
    int verbose;
    scope_entry *scope;
    int n_scope;
    scope_reason reasons[MAX_REASONS];
    int n_reasons;
    scope_operator operators[MAX_OPERATORS];
    int n_operators;
    scope_group groups[MAX_GROUPS];
    int n_groups;
    int passed, failed, skipped, rejected, other_ops;
} runner;

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static scope_operator *find_operator(runner *r, const char *name) {
    for (int i = 0; i < r->n_operators; i++)
        if (strcmp(r->operators[i].name, name) == 0)
            return &r->operators[i];
    return NULL;
}

/* Parses "operator: NAME -> REASON"; a new reason starts a group. */
static void add_operator(runner *r, const char *path, char *line) {
    char *arrow = strstr(line, " -> ");
    if (!arrow || r->n_operators == MAX_OPERATORS) {
        fprintf(stderr, "conformance: %s: bad operator line: %s", path, line);
        exit(2);
    }
    *arrow = '\0';
    char *name = line + 9 + strspn(line + 9, " \t");
    name[strcspn(name, " \t")] = '\0';
    char *reason = arrow + 4 + strspn(arrow + 4, " \t");
    reason[strcspn(reason, "\n")] = '\0';
    if (!*name || !*reason || find_operator(r, name)) {
        fprintf(stderr, "conformance: %s: operator '%s' listed twice or without a reason\n", path,
                name);
        exit(2);
    }
    int group = 0;
    while (group < r->n_groups && strcmp(r->groups[group].reason, reason) != 0)
        group++;
    if (group == r->n_groups) {
        if (r->n_groups == MAX_GROUPS) {
            fprintf(stderr, "conformance: %s: more than %d operator reasons\n", path, MAX_GROUPS);
            exit(2);
        }
        snprintf(r->groups[r->n_groups++].reason, sizeof r->groups[0].reason, "%s", reason);
    }
    scope_operator *op = &r->operators[r->n_operators++];
    snprintf(op->name, sizeof op->name, "%s", name);
    op->group = group;
}

static void load_scope(runner *r, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "conformance: cannot open %s\n", path);
        exit(2);
    }
    char line[512];
    r->scope = calloc(MAX_CASES, sizeof *r->scope);
    while (fgets(line, sizeof line, f) && r->n_scope < MAX_CASES) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (strncmp(line, "reason:", 7) == 0) {
            char *arrow = strstr(line, " -> ");
            if (!arrow || r->n_reasons == MAX_REASONS) {
                fprintf(stderr, "conformance: %s: bad reason line: %s", path, line);
                exit(2);
            }
            scope_reason *sr = &r->reasons[r->n_reasons++];
            *arrow = '\0';
            char *reason = line + 7 + strspn(line + 7, " \t");
            snprintf(sr->reason, sizeof sr->reason, "%s", reason);
            arrow += 4;
            arrow[strcspn(arrow, "\n")] = '\0';
            snprintf(sr->needle, sizeof sr->needle, "%s", arrow);
            continue;
        }
        if (strncmp(line, "operator:", 9) == 0) {
            add_operator(r, path, line);
            continue;
        }
        scope_entry *e = &r->scope[r->n_scope];
        char *space = strpbrk(line, " \t");
        if (!space)
            continue;
        *space = '\0';
        snprintf(e->name, sizeof e->name, "%s", line);
        char *reason = space + 1 + strspn(space + 1, " \t");
        reason[strcspn(reason, "\n")] = '\0';
        snprintf(e->reason, sizeof e->reason, "%s", reason);
        r->n_scope++;
    }
    fclose(f);
    /* every case names a defined reason (reasons come first in the file) */
    for (int i = 0; i < r->n_scope; i++) {
        for (int j = 0; j < r->n_reasons && !r->scope[i].needle; j++)
            if (strcmp(r->scope[i].reason, r->reasons[j].reason) == 0)
                r->scope[i].needle = r->reasons[j].needle;
        if (!r->scope[i].needle) {
            fprintf(stderr, "conformance: %s: %s gives a reason with no 'reason:' line: %s\n", path,
                    r->scope[i].name, r->scope[i].reason);
            exit(2);
        }
    }
}

static scope_entry *find_scope(runner *r, const char *name) {
    for (int i = 0; i < r->n_scope; i++)
        if (strcmp(r->scope[i].name, name) == 0)
            return &r->scope[i];
    return NULL;
}

static int is_default_domain(const char *domain) {
    return !domain || !*domain || strcmp(domain, "ai.onnx") == 0;
}

/* True when evmap runs this operator (name as in an "operator:" line). */
static int is_implemented(const char *name) {
    evm_op_kind kind;
    return !strchr(name, '.') && evm_op_lookup(name, &kind) && evm_op_get(kind)->forward;
}

/* Collects the distinct operators of the model evmap does not implement, in
 * graph order, named as "operator:" lines name them; returns their number,
 * or -1 when the model cannot be read (run_case then reports why). */
static int unsupported_ops(const char *model_path, char names[][96]) {
    void *data;
    size_t size;
    if (evm_onnx_read_file(model_path, EVM_MAX_MODEL_BYTES, &data, &size, NULL) != EVMAP_OK)
        return -1;
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, size, data);
    free(data);
    if (!mp || !mp->graph) {
        if (mp)
            onnx__model_proto__free_unpacked(mp, NULL);
        return -1;
    }
    int n = 0;
    for (size_t i = 0; i < mp->graph->n_node; i++) {
        const Onnx__NodeProto *node = mp->graph->node[i];
        char name[96];
        const char *op_type = node->op_type ? node->op_type : "";
        if (is_default_domain(node->domain))
            snprintf(name, sizeof name, "%s", op_type);
        else
            snprintf(name, sizeof name, "%s.%s", node->domain, op_type);
        if (is_implemented(name))
            continue;
        int known = 0;
        for (int j = 0; j < n && !known; j++)
            known = strcmp(names[j], name) == 0;
        if (!known && n < MAX_CASE_OPS)
            snprintf(names[n++], sizeof names[0], "%s", name);
    }
    onnx__model_proto__free_unpacked(mp, NULL);
    return n;
}

static int close_enough(float got, float want) {
    if (isnan(want))
        return isnan(got);
    if (isinf(want))
        return got == want;
    return fabsf(got - want) <= 1e-5f + 1e-4f * fabsf(want);
}

/* Compares one output; writes a reason into why on mismatch. */
static int compare_tensor(const evm_tensor *got, const evm_tensor *want, char *why,
                          size_t why_size) {
    char a[EVM_SHAPE_STR_SIZE], b[EVM_SHAPE_STR_SIZE];
    if (got->dtype != want->dtype || got->count != want->count ||
        (got->rank != want->rank && got->count != 1)) {
        snprintf(why, why_size, "shape %s %s, expected %s %s", evm_shape_str(got, a, sizeof a),
                 evm_dtype_name(got->dtype), evm_shape_str(want, b, sizeof b),
                 evm_dtype_name(want->dtype));
        return 0;
    }
    if (got->rank == want->rank && !evm_same_shape(got, want)) {
        snprintf(why, why_size, "shape %s, expected %s", evm_shape_str(got, a, sizeof a),
                 evm_shape_str(want, b, sizeof b));
        return 0;
    }
    for (size_t i = 0; i < got->count; i++) {
        int ok = got->dtype == EVM_DTYPE_FLOAT  ? close_enough(evm_f32(got)[i], evm_f32(want)[i])
                 : got->dtype == EVM_DTYPE_BOOL ? evm_bool(got)[i] == evm_bool(want)[i]
                                                : evm_i64(got)[i] == evm_i64(want)[i];
        if (!ok) {
            if (got->dtype == EVM_DTYPE_FLOAT)
                snprintf(why, why_size, "element %zu is %.7g, expected %.7g", i,
                         (double)evm_f32(got)[i], (double)evm_f32(want)[i]);
            else if (got->dtype == EVM_DTYPE_BOOL)
                snprintf(why, why_size, "element %zu is %d, expected %d", i, evm_bool(got)[i],
                         evm_bool(want)[i]);
            else
                snprintf(why, why_size, "element %zu is %lld, expected %lld", i,
                         (long long)evm_i64(got)[i], (long long)evm_i64(want)[i]);
            return 0;
        }
    }
    return 1;
}

static int count_files(const char *dir, const char *prefix) {
    int n = 0;
    char path[1024];
    for (;; n++) {
        snprintf(path, sizeof path, "%s/%s_%d.pb", dir, prefix, n);
        FILE *f = fopen(path, "rb");
        if (!f)
            return n;
        fclose(f);
    }
}

/* Graph input i is a parameter evmap needs when planning: int64 inputs are
 * shapes, axes or indices; float inputs feeding Resize's or Upsample's roi,
 * scales or sizes set the output shape (models carry them as constants). */
static bool known_when_planning(const evm_graph *g, int i, const evm_tensor *t) {
    if (t->dtype == EVM_DTYPE_INT64)
        return true;
    for (int k = 0; k < g->n_nodes; k++) {
        const evm_node *node = &g->nodes[k];
        if (node->kind != EVM_OP_RESIZE && node->kind != EVM_OP_UPSAMPLE)
            continue;
        for (int j = 1; j < node->n_inputs; j++)
            if (node->inputs[j] == g->inputs[i])
                return true;
    }
    return false;
}

/* Runs one test_data_set directory; 1 pass, 0 fail (why filled), -1 rejected. */
static int run_data_set(const evm_graph *g, const char *dir, char *why, size_t why_size) {
    evm_tensor inputs[MAX_IO] = {0}, expected[MAX_IO] = {0};
    int n_in = count_files(dir, "input"), n_out = count_files(dir, "output");
    int result = 0;
    evm_plan *plan = NULL;
    evmap_error err = {0};
    char path[1024];
    if (n_in != g->n_inputs || n_out != g->n_outputs || n_in > MAX_IO || n_out > MAX_IO) {
        snprintf(why, why_size, "%d input files for %d graph inputs", n_in, g->n_inputs);
        return 0;
    }
    for (int i = 0; i < n_in; i++) {
        snprintf(path, sizeof path, "%s/input_%d.pb", dir, i);
        if (evm_onnx_read_tensor_file(path, &inputs[i], &err) != EVMAP_OK) {
            snprintf(why, why_size, "%s", err.message);
            result = -1;
            goto done;
        }
    }
    for (int i = 0; i < n_out; i++) {
        snprintf(path, sizeof path, "%s/output_%d.pb", dir, i);
        if (evm_onnx_read_tensor_file(path, &expected[i], &err) != EVMAP_OK) {
            snprintf(why, why_size, "%s", err.message);
            result = -1;
            goto done;
        }
    }
    for (int i = 0; i < n_in; i++)
        inputs[i].is_const = known_when_planning(g, i, &inputs[i]);
    if (evm_plan_create(g, inputs, &plan, &err) != EVMAP_OK) {
        snprintf(why, why_size, "%s", err.message);
        result = -1;
        goto done;
    }
    for (int i = 0; i < n_in; i++) {
        evm_tensor *t = evm_plan_input(plan, i);
        if (!t->is_const)
            memcpy(t->data, inputs[i].data, inputs[i].count * evm_dtype_size(inputs[i].dtype));
    }
    evm_plan_run(plan);
    result = 1;
    for (int i = 0; i < n_out && result == 1; i++) {
        if (!compare_tensor(evm_plan_output(plan, i), &expected[i], why, why_size)) {
            char detail[256];
            snprintf(detail, sizeof detail, "%s", why);
            snprintf(why, why_size, "output %d: %s", i, detail);
            result = 0;
        }
    }
done:
    evm_plan_free(plan);
    for (int i = 0; i < MAX_IO; i++) {
        evm_tensor_release(&inputs[i]);
        evm_tensor_release(&expected[i]);
    }
    return result;
}

/* Loads and runs every data set of one case; 1 pass, 0 fail, -1 rejected. */
static int run_case(const char *case_dir, char *why, size_t why_size) {
    char path[1024];
    snprintf(path, sizeof path, "%s/model.onnx", case_dir);
    evm_graph *g = NULL;
    evmap_error err = {0};
    if (evm_onnx_load_file(path, &g, &err) != EVMAP_OK) {
        snprintf(why, why_size, "%s", err.message);
        return -1;
    }
    int result = 1, sets = 0;
    for (int s = 0; result == 1; s++, sets++) {
        snprintf(path, sizeof path, "%s/test_data_set_%d", case_dir, s);
        DIR *d = opendir(path);
        if (!d)
            break;
        closedir(d);
        result = run_data_set(g, path, why, why_size);
    }
    evm_graph_free(g);
    if (sets == 0) {
        snprintf(why, why_size, "no test_data_set directories");
        return 0;
    }
    return result;
}

static void judge(runner *r, const char *name, int result, const char *why) {
    scope_entry *scope = find_scope(r, name);
    if (scope)
        scope->seen = 1;
    if (result == 1 && !scope) {
        r->passed++;
        if (r->verbose)
            printf("pass      %s\n", name);
    } else if (result == 1) {
        r->failed++;
        printf("FAIL      %s: passes but is listed out of scope; remove it from the list\n", name);
    } else if (result == -1 && scope && strstr(why, scope->needle)) {
        r->rejected++;
        if (r->verbose)
            printf("rejected  %s: %s [evmap said: %s]\n", name, scope->reason, why);
    } else if (result == -1 && scope) {
        r->failed++;
        printf("FAIL      %s: rejected, but not for the listed reason (%s: the message should "
               "contain '%s'): %s\n",
               name, scope->reason, scope->needle, why);
    } else {
        r->failed++;
        printf("FAIL      %s: %s%s\n", name, result == -1 ? "rejected: " : "", why);
    }
}

/* Accounts for a case that uses operators evmap does not implement: counted
 * under the first-listed reason among its operators, or a failure naming
 * each operator the list lacks. */
static void judge_unsupported(runner *r, const char *name, char ops[][96], int n_ops) {
    scope_entry *scope = find_scope(r, name);
    int group = MAX_GROUPS, unlisted = 0;
    if (scope) {
        scope->seen = 1;
        r->failed++;
        printf("FAIL      %s: listed out of scope, but uses operator '%s' evmap does not "
               "implement; list the operator instead of the case\n",
               name, ops[0]);
        return;
    }
    for (int i = 0; i < n_ops; i++) {
        scope_operator *op = find_operator(r, ops[i]);
        if (!op) {
            unlisted++;
            printf("FAIL      %s: uses operator '%s', which evmap does not implement and "
                   "%s does not list; add an 'operator:' line with its reason\n",
                   name, ops[i], r->scope_path);
            continue;
        }
        op->cases++;
        if (op->group < group)
            group = op->group;
    }
    if (unlisted) {
        r->failed++;
        return;
    }
    r->other_ops++;
    r->groups[group].cases++;
    if (r->verbose) {
        printf("other-op  %s:", name);
        for (int i = 0; i < n_ops; i++)
            printf("%s %s", i ? "," : "", ops[i]);
        printf(" (%s)\n", r->groups[group].reason);
    }
}

static void run_directory(runner *r, const char *root) {
    DIR *d = opendir(root);
    if (!d) {
        fprintf(stderr, "conformance: cannot open %s (install libonnx-testdata)\n", root);
        r->failed++;
        return;
    }
    char **names = malloc(sizeof(char *) * MAX_CASES);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < MAX_CASES)
        if (strncmp(e->d_name, "test_", 5) == 0)
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, compare_names);
    for (int i = 0; i < n; i++) {
        char case_dir[1024], model[1100], why[512] = "";
        snprintf(case_dir, sizeof case_dir, "%s/%s", root, names[i]);
        snprintf(model, sizeof model, "%s/model.onnx", case_dir);
        char ops[MAX_CASE_OPS][96];
        int n_ops = 0;
        if (!r->filter || strstr(names[i], r->filter))
            n_ops = unsupported_ops(model, ops);
        else
            n_ops = -2; /* filtered out */
        if (n_ops > 0)
            judge_unsupported(r, names[i], ops, n_ops);
        else if (n_ops != -2)
            judge(r, names[i], run_case(case_dir, why, sizeof why), why);
        free(names[i]);
    }
    free(names);
}

static void usage(void) {
    printf("usage: conformance [--filter TEXT] [--verbose] [--scope FILE] [DIR...]\n"
           "Runs the ONNX conformance cases under DIR (default: libonnx-testdata's node,\n"
           "pytorch-converted and pytorch-operator) whose operators evmap supports.\n");
}

int main(int argc, char **argv) {
    runner r = {0};
    const char *scope_path = "tests/conformance/out_of_scope.txt";
    const char *dirs[16];
    int n_dirs = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc)
            r.filter = argv[++i];
        else if (strcmp(argv[i], "--verbose") == 0)
            r.verbose = 1;
        else if (strcmp(argv[i], "--scope") == 0 && i + 1 < argc)
            scope_path = argv[++i];
        else if (strcmp(argv[i], "--help") == 0) {
            usage();
            return 0;
        } else if (argv[i][0] != '-' && n_dirs < 16)
            dirs[n_dirs++] = argv[i];
        else {
            usage();
            return 2;
        }
    }
    int all_dirs = n_dirs == 0;
    if (n_dirs == 0) {
        dirs[n_dirs++] = "/usr/share/libonnx-testdata/data/node";
        dirs[n_dirs++] = "/usr/share/libonnx-testdata/data/pytorch-converted";
        dirs[n_dirs++] = "/usr/share/libonnx-testdata/data/pytorch-operator";
    }
    r.scope_path = scope_path;
    load_scope(&r, scope_path);
    for (int i = 0; i < n_dirs; i++)
        run_directory(&r, dirs[i]);
    for (int i = 0; i < r.n_operators; i++) {
        const scope_operator *op = &r.operators[i];
        if (is_implemented(op->name)) {
            r.failed++;
            printf("FAIL      operator %s is listed in %s, but evmap implements it now; remove "
                   "its line\n",
                   op->name, scope_path);
        } else if (!op->cases && all_dirs && !r.filter) {
            r.failed++;
            printf("FAIL      operator %s is listed in %s, but no case uses it; remove its line\n",
                   op->name, scope_path);
        }
    }
    for (int i = 0; i < r.n_scope && !r.filter; i++)
        if (!r.scope[i].seen) {
            r.skipped++; /* another libonnx-testdata version */
            printf("skip      %s is listed out of scope but was not found\n", r.scope[i].name);
        }
    printf("conformance: %d cases passed, %d failed, %d rejected as out of scope for the reasons "
           "listed in %s, %d use operators evmap does not implement\n",
           r.passed, r.failed, r.rejected, scope_path, r.other_ops);
    printf("cases with operators evmap does not implement, by the reason listed for them:\n");
    for (int i = 0; i < r.n_groups; i++)
        printf("%6d  %s\n", r.groups[i].cases, r.groups[i].reason);
    printf("%6d  in all\n", r.other_ops);
    printf("%d passed, %d failed, %d skipped\n", r.passed + r.rejected, r.failed, r.skipped);
    free(r.scope);
    return r.failed ? 1 : 0;
}
