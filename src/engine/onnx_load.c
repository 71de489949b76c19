/*
 * ONNX ModelProto → evm_graph. Only the default domain is supported. Values are
 * numbered in order of appearance: graph inputs, initializers, node outputs.
 * Anything a hostile file can get wrong is a returned error naming the node,
 * value or tensor; sizes are checked before allocation.
 */
#include "onnx_load.h"
#include "base/budget.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx/onnx.pb-c.h"
#include "onnx_tensor.h"
#include "onnx_wire.h"
#include "ops/op.h"

/* --------------------------------------------------------------- values */

typedef struct builder {
    evm_graph *g;
    int capacity;         /* allocated length of g->values */
    evm_onnx_source *src; /* the model's folder (external data) and memory limit */
} builder;

static evmap_status add_value(builder *b, const char *name, int *index, evmap_error *err) {
    if (!name || !*name)
        return evm_fail(err, EVMAP_ERR_BAD_FILE, "a graph value has an empty name");
    if (evm_graph_find_value(b->g, name) >= 0)
        return evm_fail(err, EVMAP_ERR_BAD_FILE, "value '%s' is defined twice", name);
    if (b->g->n_values == b->capacity) {
        int cap = b->capacity ? b->capacity * 2 : 64;
        evm_value *v = realloc(b->g->values, sizeof *v * (size_t)cap);
        if (!v)
            return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory loading the graph");
        b->g->values = v;
        b->capacity = cap;
    }
    evm_value *v = &b->g->values[b->g->n_values];
    memset(v, 0, sizeof *v);
    v->producer = -1;
    v->name = strdup(name);
    if (!v->name)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory loading the graph");
    *index = b->g->n_values++;
    return EVMAP_OK;
}

/* Records the declared element type and shape of a graph input; unknown
 * (symbolic) dimensions are stored as -1. */
static evmap_status read_value_info(const Onnx__ValueInfoProto *vi, evm_value *v,
                                    evmap_error *err) {
    const Onnx__TypeProto *type = vi->type;
    if (!type || type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !type->tensor_type)
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED, "graph input '%s' is not a tensor", v->name);
    const Onnx__TypeProto__Tensor *tt = type->tensor_type;
    if (tt->elem_type == ONNX_FLOAT)
        v->tensor.dtype = EVM_DTYPE_FLOAT;
    else if (tt->elem_type == ONNX_INT64)
        v->tensor.dtype = EVM_DTYPE_INT64;
    else if (tt->elem_type == ONNX_BOOL)
        v->tensor.dtype = EVM_DTYPE_BOOL;
    else
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED,
                        "graph input '%s' has data type %s; evmap supports float32, int64 and bool",
                        v->name, evm_onnx_type_name(tt->elem_type));
    if (!tt->shape)
        return EVMAP_OK;
    if (tt->shape->n_dim > EVM_MAX_RANK)
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED, "graph input '%s' has rank %zu (limit %d)",
                        v->name, tt->shape->n_dim, EVM_MAX_RANK);
    v->tensor.rank = (int)tt->shape->n_dim;
    for (size_t i = 0; i < tt->shape->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        bool known = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
                     d->dim_value >= 0;
        v->tensor.dims[i] = known ? d->dim_value : -1;
    }
    v->has_shape = true;
    return EVMAP_OK;
}

static evmap_status add_inputs_and_initializers(builder *b, const Onnx__GraphProto *gp,
                                                evmap_error *err) {
    evmap_status st;
    for (size_t i = 0; i < gp->n_initializer; i++) {
        int v;
        st = add_value(b, gp->initializer[i]->name, &v, err);
        if (st != EVMAP_OK)
            return st;
        st = evm_onnx_tensor_from_proto(gp->initializer[i], b->src, &b->g->values[v].tensor, err);
        if (st != EVMAP_OK)
            return st;
        b->g->values[v].is_initializer = true;
        b->g->values[v].has_shape = true;
    }
    b->g->inputs = calloc(gp->n_input ? gp->n_input : 1, sizeof(int));
    if (!b->g->inputs)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory loading the graph");
    for (size_t i = 0; i < gp->n_input; i++) {
        const char *name = gp->input[i]->name;
        if (name && evm_graph_find_value(b->g, name) >= 0)
            continue; /* an initializer listed as input (older IR): a constant */
        int v;
        st = add_value(b, name, &v, err);
        if (st != EVMAP_OK)
            return st;
        st = read_value_info(gp->input[i], &b->g->values[v], err);
        if (st != EVMAP_OK)
            return st;
        b->g->values[v].is_input = true;
        b->g->inputs[b->g->n_inputs++] = v;
    }
    return EVMAP_OK;
}

/* ----------------------------------------------------------- attributes */

static evmap_status convert_attr(const evm_node *node, Onnx__AttributeProto *ap,
                                 evm_onnx_source *src, evm_attr *a, evmap_error *err) {
    a->name = strdup(ap->name ? ap->name : "");
    if (!a->name)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory loading attributes");
    switch (ap->type) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
        a->type = EVM_ATTR_FLOAT;
        a->f = ap->f;
        return EVMAP_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
        a->type = EVM_ATTR_INT;
        a->i = ap->i;
        return EVMAP_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
        a->type = EVM_ATTR_STRING;
        a->s = malloc(ap->s.len + 1);
        if (!a->s)
            return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory loading attributes");
        if (ap->s.len)
            memcpy(a->s, ap->s.data, ap->s.len);
        a->s[ap->s.len] = '\0';
        return EVMAP_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR:
        a->type = EVM_ATTR_TENSOR;
        if (!ap->t)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "attribute '%s' has no tensor",
                                 a->name);
        return evm_onnx_tensor_from_proto(ap->t, src, &a->t, err);
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
        a->type = EVM_ATTR_FLOATS;
        a->n = ap->n_floats;
        a->floats = malloc(sizeof(float) * (a->n ? a->n : 1));
        if (!a->floats)
            return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory loading attributes");
        if (a->n)
            memcpy(a->floats, ap->floats, sizeof(float) * a->n);
        return EVMAP_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
        a->type = EVM_ATTR_INTS;
        a->n = ap->n_ints;
        a->ints = malloc(sizeof(int64_t) * (a->n ? a->n : 1));
        if (!a->ints)
            return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory loading attributes");
        if (a->n)
            memcpy(a->ints, ap->ints, sizeof(int64_t) * a->n);
        return EVMAP_OK;
    default:
        a->type = EVM_ATTR_OTHER; /* ops reject it when they read it */
        return EVMAP_OK;
    }
}

/* ---------------------------------------------------------------- nodes */

static bool is_default_domain(const char *domain) {
    return !domain || !*domain || strcmp(domain, "ai.onnx") == 0;
}

static evmap_status resolve_kind(const Onnx__NodeProto *np, const char *name, evm_op_kind *kind,
                                 evmap_error *err) {
    const char *op_type = np->op_type ? np->op_type : "";
    if (!is_default_domain(np->domain) || !evm_op_lookup(op_type, kind) ||
        !evm_op_get(*kind)->forward)
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED,
                        "node '%s' uses operator '%s%s%s', which evmap does not support "
                        "(supported: %s)",
                        name, is_default_domain(np->domain) ? "" : np->domain,
                        is_default_domain(np->domain) ? "" : ".", op_type, evm_op_supported_list());
    return EVMAP_OK;
}

static evmap_status build_node(builder *b, const Onnx__NodeProto *np, int index, evmap_error *err) {
    evm_graph *g = b->g;
    evm_node *node = &g->nodes[index];
    char fallback[160];
    snprintf(fallback, sizeof fallback, "%s#%d", np->op_type ? np->op_type : "?", index);
    node->name = strdup(np->name && *np->name ? np->name : fallback);
    if (!node->name)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory loading nodes");
    node->opset = g->opset;
    evmap_status st = resolve_kind(np, node->name, &node->kind, err);
    if (st != EVMAP_OK)
        return st;
    const evm_op_def *def = evm_op_get(node->kind);
    if ((int)np->n_input < def->min_inputs || (int)np->n_input > def->max_inputs)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "has %zu inputs; expected %d to %d",
                             np->n_input, def->min_inputs, def->max_inputs);
    if (np->n_output < 1 || np->n_output > 8)
        return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE, "has %zu outputs", np->n_output);

    node->inputs = malloc(sizeof(int) * (np->n_input ? np->n_input : 1));
    node->outputs = malloc(sizeof(int) * np->n_output);
    node->attrs = calloc(np->n_attribute ? np->n_attribute : 1, sizeof(evm_attr));
    if (!node->inputs || !node->outputs || !node->attrs)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory loading nodes");
    for (size_t i = 0; i < np->n_input; i++) {
        const char *in = np->input[i];
        node->inputs[node->n_inputs++] = EVM_NO_VALUE;
        if ((!in || !*in) && (int)i < def->min_inputs)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "input %zu is required but has no name", i + 1);
        if (!in || !*in)
            continue; /* omitted optional input */
        int v = evm_graph_find_value(g, in);
        if (v < 0)
            return evm_node_fail(err, node, EVMAP_ERR_BAD_FILE,
                                 "input '%s' is not a graph input, an initializer or the output "
                                 "of an earlier node (missing initializer, or nodes out of order)",
                                 in);
        node->inputs[i] = v;
    }
    for (size_t i = 0; i < np->n_attribute; i++) {
        node->n_attrs++;
        st = convert_attr(node, np->attribute[i], b->src, &node->attrs[i], err);
        if (st != EVMAP_OK)
            return st;
    }
    for (size_t i = 0; i < np->n_output; i++) {
        const char *out = np->output[i];
        node->outputs[node->n_outputs++] = EVM_NO_VALUE;
        if (!out || !*out)
            continue;
        int v;
        st = add_value(b, out, &v, err);
        if (st != EVMAP_OK) {
            evm_error_prefix(err, "node '%s'", node->name);
            return st;
        }
        g->values[v].producer = index;
        node->outputs[i] = v;
    }
    if (def->init) {
        st = def->init(node, err);
        if (st != EVMAP_OK)
            return st;
    }
    return evm_node_check_attrs(node, err);
}

static evmap_status read_opset(const Onnx__ModelProto *mp, evm_graph *g, evmap_error *err) {
    int64_t version = 0; /* any int64 in the file: checked before it becomes an int */
    bool found = false;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if (is_default_domain(o->domain) && o->has_version) {
            version = o->version;
            found = true;
        }
    }
    if (!found)
        return evm_fail(err, EVMAP_ERR_BAD_FILE,
                        "the model declares no opset for the default ONNX domain");
    if (version < 1 || version > 21)
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED, "opset %lld is not supported (1 to 21)",
                        (long long)version);
    g->opset = (int)version;
    return EVMAP_OK;
}

static evmap_status read_outputs(const Onnx__GraphProto *gp, evm_graph *g, evmap_error *err) {
    if (gp->n_output == 0)
        return evm_fail(err, EVMAP_ERR_BAD_FILE, "the graph has no outputs");
    g->outputs = malloc(sizeof(int) * gp->n_output);
    if (!g->outputs)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory loading the graph");
    for (size_t i = 0; i < gp->n_output; i++) {
        const char *name = gp->output[i]->name ? gp->output[i]->name : "";
        int v = evm_graph_find_value(g, name);
        if (v < 0)
            return evm_fail(err, EVMAP_ERR_BAD_FILE, "graph output '%s' is never produced", name);
        g->outputs[g->n_outputs++] = v;
    }
    return EVMAP_OK;
}

static evmap_status build_graph(const Onnx__ModelProto *mp, evm_onnx_source *src, evm_graph *g,
                                evmap_error *err) {
    const Onnx__GraphProto *gp = mp->graph;
    if (!gp)
        return evm_fail(err, EVMAP_ERR_BAD_FILE, "the model contains no graph");
    evmap_status st = read_opset(mp, g, err);
    if (st != EVMAP_OK)
        return st;
    if (gp->n_node > EVM_MAX_NODES)
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED, "the graph has %zu nodes (limit %d)",
                        gp->n_node, EVM_MAX_NODES);
    if (gp->n_sparse_initializer)
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED, "sparse initializers are not supported");
    builder b = {.g = g, .src = src};
    st = add_inputs_and_initializers(&b, gp, err);
    if (st != EVMAP_OK)
        return st;
    g->nodes = calloc(gp->n_node ? gp->n_node : 1, sizeof(evm_node));
    if (!g->nodes)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory loading nodes");
    for (size_t i = 0; i < gp->n_node; i++) {
        g->n_nodes++;
        st = build_node(&b, gp->node[i], (int)i, err);
        if (st != EVMAP_OK)
            return st;
    }
    st = read_outputs(gp, g, err);
    if (st != EVMAP_OK)
        return st;
    return evm_graph_fold_batchnorm(g, err);
}

/* Builds the graph from an unpacked model and frees the message. */
static evmap_status build_from_message(Onnx__ModelProto *mp, evm_onnx_source *src, evm_graph **out,
                                       evmap_error *err) {
    evm_graph *g = calloc(1, sizeof *g);
    evmap_status st =
        g ? build_graph(mp, src, g, err) : evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
    onnx__model_proto__free_unpacked(mp, NULL);
    if (st != EVMAP_OK) {
        evm_graph_free(g);
        return st;
    }
    *out = g;
    return EVMAP_OK;
}

/* A model file mapped read-only (MAP_PRIVATE). */
typedef struct file_map {
    uint8_t *base;
    size_t size;
    size_t page;
} file_map;

static void unmap_file(file_map *m) {
    if (m && m->base) {
        munmap(m->base, m->size);
        m->base = NULL;
    }
}

/* evm_wire_release_fn: drops the whole pages of a copied-out payload part
 * from memory. For a private, read-only file mapping MADV_DONTNEED only
 * unmaps them (they would be read back from the file if touched again). */
static void drop_pages(void *ctx, size_t offset, size_t len) {
    const file_map *m = ctx;
    uintptr_t a = (uintptr_t)m->base + offset, b = a + len;
    a = (a + m->page - 1) & ~(uintptr_t)(m->page - 1);
    b &= ~(uintptr_t)(m->page - 1);
    if (b > a)
        (void)madvise((void *)a, b - a, MADV_DONTNEED); /* advice only: failure is harmless */
}

static evmap_status bad_model(evmap_error *err) {
    return evm_fail(err, EVMAP_ERR_BAD_FILE,
                    "not a valid ONNX model (the protobuf data is truncated or corrupt)");
}

/* Unpacks the model in data so that its weights are held once: the
 * initializers' raw_data is copied out of data (onnx_wire.c), protobuf-c
 * unpacks the rest, and the copies are attached to the initializers, for
 * tensor_from_proto to take over. When map is given (data is its mapping),
 * the payloads' pages are dropped as they are copied and the file is
 * unmapped before unpacking. A model the wire scan rejects or does not handle
 * is unpacked as it is, so protobuf-c gives the verdict. */
static evmap_status unpack_model(const uint8_t *data, size_t size, file_map *map,
                                 Onnx__ModelProto **out, evmap_error *err) {
    *out = NULL;
    evm_wire_stripped s;
    evm_wire_status ws = evm_wire_strip_model(data, size, map ? drop_pages : NULL, map, &s);
    if (ws == EVM_WIRE_NO_MEMORY)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory reading the model");
    if (ws != EVM_WIRE_OK) {
        *out = onnx__model_proto__unpack(NULL, size, data);
        unmap_file(map);
        return *out ? EVMAP_OK : bad_model(err);
    }
    unmap_file(map); /* everything needed is in s now */
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, s.size, s.message);
    free(s.message);
    s.message = NULL;
    Onnx__GraphProto *gp = mp ? mp->graph : NULL;
    if (!mp || (gp ? gp->n_initializer : 0) != s.n_payloads) {
        if (mp)
            onnx__model_proto__free_unpacked(mp, NULL);
        evm_wire_stripped_free(&s);
        return bad_model(err);
    }
    for (size_t i = 0; i < s.n_payloads; i++) {
        evm_wire_payload *pl = &s.payloads[i];
        if (!pl->present)
            continue;
        Onnx__TensorProto *t = gp->initializer[i];
        t->raw_data.data = pl->data; /* the message frees it from now on */
        t->raw_data.len = pl->len;
        t->has_raw_data = 1;
        pl->data = NULL;
    }
    evm_wire_stripped_free(&s);
    *out = mp;
    return EVMAP_OK;
}

evmap_status evm_onnx_load_memory(const void *data, size_t size, evm_graph **out,
                                  evmap_error *err) {
    *out = NULL;
    Onnx__ModelProto *mp;
    evmap_status st = unpack_model(data, size, NULL, &mp, err);
    evm_onnx_source src = {0}; /* no folder: external data is refused */
    return st == EVMAP_OK ? build_from_message(mp, &src, out, err) : st;
}

/* Maps a regular, non-empty file of at most EVM_MAX_MODEL_BYTES. Returns
 * false (m->base NULL) for anything else or when mapping fails: the caller
 * then reads the file, which also reports errors as before. */
static bool map_file(const char *path, file_map *m) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat sb;
    long page = sysconf(_SC_PAGESIZE);
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 &&
        (unsigned long long)sb.st_size <= EVM_MAX_MODEL_BYTES && page > 0 &&
        (page & (page - 1)) == 0) {
        void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            m->base = p;
            m->size = (size_t)sb.st_size;
            m->page = (size_t)page;
        }
    }
    close(fd);
    return m->base != NULL;
}

/* Loading holds the file (mapped or read) and the message's copy of the
 * weights at once: about twice the file. */
static evmap_status check_file_memory(const char *path, uint64_t max_memory, evmap_error *err) {
    struct stat sb;
    if (!max_memory || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return EVMAP_OK; /* the loader reports unreadable files */
    uint64_t need = 2 * (uint64_t)sb.st_size;
    if (need <= max_memory)
        return EVMAP_OK;
    char size_s[EVM_BYTES_STR_SIZE], need_s[EVM_BYTES_STR_SIZE], limit_s[EVM_BYTES_STR_SIZE];
    return evm_fail(err, EVMAP_ERR_TOO_LARGE,
                    "'%s' is %s; loading it takes about %s, above the memory limit of %s "
                    "(--max-memory); raise the limit",
                    path, evm_bytes_str((uint64_t)sb.st_size, size_s), evm_bytes_str(need, need_s),
                    evm_bytes_str(max_memory, limit_s));
}

/* The folder of path (malloc'd): its external data files must lie there. */
static char *model_folder(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *dir = malloc(n + 1);
    if (dir) {
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    return dir;
}

evmap_status evm_onnx_load_file(const char *path, evm_graph **out, evmap_error *err) {
    return evm_onnx_load_file_limited(path, 0, out, err);
}

evmap_status evm_onnx_load_file_limited(const char *path, uint64_t max_memory, evm_graph **out,
                                        evmap_error *err) {
    *out = NULL;
    evmap_status check = check_file_memory(path, max_memory, err);
    if (check != EVMAP_OK)
        return check;
    Onnx__ModelProto *mp;
    evmap_status st;
    file_map map;
    if (map_file(path, &map)) {
        st = unpack_model(map.base, map.size, &map, &mp, err);
        unmap_file(&map);
    } else {
        void *data;
        size_t size;
        st = evm_onnx_read_file(path, EVM_MAX_MODEL_BYTES, &data, &size, err);
        if (st != EVMAP_OK)
            return st;
        st = unpack_model(data, size, NULL, &mp, err);
        free(data); /* the message holds its own copy: do not keep both */
    }
    if (st == EVMAP_OK) {
        char *dir = model_folder(path);
        struct stat sb;
        evm_onnx_source src = {.dir = dir, .file = path, .max_memory = max_memory};
        if (stat(path, &sb) == 0 && sb.st_size > 0)
            src.used = 2 * (uint64_t)sb.st_size; /* as check_file_memory charges it */
        if (dir)
            st = build_from_message(mp, &src, out, err);
        else {
            onnx__model_proto__free_unpacked(mp, NULL);
            st = evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory");
        }
        free(dir);
    }
    if (st != EVMAP_OK)
        evm_error_prefix(err, "%s", path);
    return st;
}
