/*
 * The model graph: named values (graph inputs, initializers, intermediate
 * activations) and nodes in topological order. Built by the ONNX loader,
 * independent of protobuf, immutable once loaded (plans copy what they need).
 * Invariants: every node input refers to a value produced earlier or to an
 * input/initializer; each value has at most one producer.
 */
#ifndef EVM_GRAPH_H
#define EVM_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/tensor.h"

typedef enum evm_attr_type {
    EVM_ATTR_FLOAT,
    EVM_ATTR_INT,
    EVM_ATTR_STRING,
    EVM_ATTR_TENSOR,
    EVM_ATTR_FLOATS,
    EVM_ATTR_INTS,
    EVM_ATTR_OTHER, /* graphs, sparse tensors, strings lists: never supported */
} evm_attr_type;

typedef struct evm_attr {
    char *name;
    evm_attr_type type;
    float f;
    int64_t i;
    char *s;        /* STRING: NUL-terminated copy */
    evm_tensor t;   /* TENSOR: owned data */
    float *floats;  /* FLOATS */
    int64_t *ints;  /* INTS */
    size_t n;       /* number of floats or ints */
    bool consulted; /* looked up by the op's init: an attribute no op code
                       looks at is refused, never silently ignored */
} evm_attr;

/* Operator kinds; the table in ops/registry.c has one entry per kind. */
typedef enum evm_op_kind {
    EVM_OP_CONV,
    EVM_OP_GEMM,
    EVM_OP_MATMUL,
    EVM_OP_RELU,
    EVM_OP_LEAKY_RELU,
    EVM_OP_SIGMOID,
    EVM_OP_TANH,
    EVM_OP_CLIP,
    EVM_OP_MAX_POOL,
    EVM_OP_AVERAGE_POOL,
    EVM_OP_GLOBAL_AVERAGE_POOL,
    EVM_OP_GLOBAL_MAX_POOL,
    EVM_OP_BATCH_NORMALIZATION,
    EVM_OP_LRN,
    EVM_OP_ADD,
    EVM_OP_MUL,
    EVM_OP_CONCAT,
    EVM_OP_FLATTEN,
    EVM_OP_RESHAPE,
    EVM_OP_TRANSPOSE,
    EVM_OP_SOFTMAX,
    EVM_OP_DROPOUT,
    EVM_OP_IDENTITY,
    EVM_OP_PAD,
    EVM_OP_CONSTANT,
    EVM_OP_SHAPE,
    EVM_OP_GATHER,
    EVM_OP_UNSQUEEZE,
    EVM_OP_SQUEEZE,
    EVM_OP_LAYER_NORMALIZATION,
    EVM_OP_INSTANCE_NORMALIZATION,
    EVM_OP_CAST,
    EVM_OP_SLICE,
    EVM_OP_SPLIT,
    EVM_OP_EXPAND,
    EVM_OP_TILE,
    EVM_OP_CONSTANT_OF_SHAPE,
    EVM_OP_RANGE,
    EVM_OP_WHERE,
    EVM_OP_EQUAL,
    EVM_OP_LESS,
    EVM_OP_GREATER,
    EVM_OP_NOT,
    EVM_OP_HARD_SIGMOID,
    EVM_OP_HARD_SWISH,
    EVM_OP_PRELU,
    EVM_OP_ELU,
    EVM_OP_SELU,
    EVM_OP_SOFTPLUS,
    EVM_OP_SOFTSIGN,
    EVM_OP_MISH,
    EVM_OP_GELU,
    EVM_OP_REDUCE_MEAN,
    EVM_OP_REDUCE_SUM,
    EVM_OP_REDUCE_MAX,
    EVM_OP_REDUCE_L2,
    EVM_OP_SUB,
    EVM_OP_DIV,
    EVM_OP_POW,
    EVM_OP_SQRT,
    EVM_OP_EXP,
    EVM_OP_LOG,
    EVM_OP_NEG,
    EVM_OP_ABS,
    EVM_OP_RECIPROCAL,
    EVM_OP_ERF,
    EVM_OP_MIN,
    EVM_OP_MAX,
    EVM_OP_SUM,
    EVM_OP_MEAN,
    EVM_OP_CONV_TRANSPOSE,
    EVM_OP_RESIZE,
    EVM_OP_UPSAMPLE,
    EVM_OP_DEPTH_TO_SPACE,
    EVM_OP_SPACE_TO_DEPTH,
    EVM_OP_REDUCE_MIN,
    EVM_OP_REDUCE_PROD,
    EVM_OP_REDUCE_L1,
    EVM_OP_REDUCE_SUM_SQUARE,
    EVM_OP_REDUCE_LOG_SUM,
    EVM_OP_REDUCE_LOG_SUM_EXP,
    EVM_OP_LOG_SOFTMAX,
    EVM_OP_GREATER_OR_EQUAL,
    EVM_OP_LESS_OR_EQUAL,
    EVM_OP_CASTLIKE,
    EVM_OP_THRESHOLDED_RELU,
    EVM_OP_FLOOR,
    EVM_OP_CEIL,
    EVM_OP_COS,
    EVM_OP_SIN,
    EVM_OP_KIND_COUNT
} evm_op_kind;

#define EVM_NO_VALUE (-1)

typedef struct evm_node {
    char *name; /* ONNX node name, or "<op_type>#<index>" when unnamed */
    evm_op_kind kind;
    int opset;   /* opset version of the default domain */
    int *inputs; /* value indices; EVM_NO_VALUE for an omitted optional input */
    int n_inputs;
    int *outputs; /* value indices; EVM_NO_VALUE for an omitted optional output */
    int n_outputs;
    evm_attr *attrs;
    size_t n_attrs;
    void *params; /* parsed attributes, owned; layout private to the op */
    bool removed; /* folded away at load time (e.g. BatchNorm into Conv) */
} evm_node;

typedef struct evm_value {
    char *name;
    evm_tensor tensor; /* initializers: shape and data; others: declared shape if any */
    int producer;      /* node index, or -1 for graph inputs and initializers */
    bool is_initializer;
    bool is_input;  /* a graph input the caller feeds */
    bool has_shape; /* tensor holds a declared or known shape */
} evm_value;

typedef struct evm_graph {
    evm_value *values;
    int n_values;
    evm_node *nodes;
    int n_nodes;
    int *inputs; /* value indices of graph inputs (initializers excluded) */
    int n_inputs;
    int *outputs;
    int n_outputs;
    int opset;
    uint64_t max_memory; /* bytes each plan (weights included) may take; 0: no limit */
} evm_graph;

void evm_graph_free(evm_graph *graph);

/* Looks up a value by name; -1 when absent. */
int evm_graph_find_value(const evm_graph *graph, const char *name);

/* Folds each BatchNormalization that follows a Conv with constant weights into
 * that Conv, marking the BatchNormalization removed. */
evmap_status evm_graph_fold_batchnorm(evm_graph *graph, evmap_error *err);

/* Number of nodes that reference value v as an input (removed nodes excluded). */
int evm_graph_count_consumers(const evm_graph *graph, int v);

/* ---- parameters and attributes for ops; errors name the node ---- */

/* Zeroed node->params of size bytes (freed with the graph); NULL on failure. */
void *evm_node_alloc_params(evm_node *node, size_t size, evmap_error *err);
/* node->params = a copy of params. */
evmap_status evm_node_set_params(evm_node *node, const void *params, size_t size, evmap_error *err);

const evm_attr *evm_node_attr(const evm_node *node, const char *name);
/* Marks an attribute the op accepts but that cannot change an inference
 * result (BatchNorm's momentum, Dropout's seed). */
void evm_attr_ignore(const evm_node *node, const char *name);
/* After init: the first attribute no lookup consulted is EVMAP_ERR_UNSUPPORTED. */
evmap_status evm_node_check_attrs(const evm_node *node, evmap_error *err);
evmap_status evm_attr_int(const evm_node *node, const char *name, int64_t fallback, int64_t *out,
                          evmap_error *err);
evmap_status evm_attr_float(const evm_node *node, const char *name, float fallback, float *out,
                            evmap_error *err);
/* String attribute; *out = fallback when absent. */
evmap_status evm_attr_string(const evm_node *node, const char *name, const char *fallback,
                             const char **out, evmap_error *err);
/* INTS attribute; *n = 0 and *out = NULL when absent. */
evmap_status evm_attr_ints(const evm_node *node, const char *name, const int64_t **out, size_t *n,
                           evmap_error *err);
evmap_status evm_attr_floats(const evm_node *node, const char *name, const float **out, size_t *n,
                             evmap_error *err);

/* Fails with "node 'X' (Op): <message>" and the given status. */
evmap_status evm_node_fail(evmap_error *err, const evm_node *node, evmap_status status,
                           const char *fmt, ...) EVM_PRINTF(4, 5);

/* ONNX op_type of a kind, e.g. "Conv". */
const char *evm_op_name(evm_op_kind kind);

#endif
