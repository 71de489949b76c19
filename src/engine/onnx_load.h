/*
 * ONNX loading: parses a ModelProto with protobuf-c (code generated at build
 * time from Debian's onnx.proto) and builds an evm_graph. Every node is
 * checked against the operator table and its attributes parsed by the op, so
 * that a model which loads can only fail later on shapes the caller chooses.
 */
#ifndef EVM_ONNX_LOAD_H
#define EVM_ONNX_LOAD_H

#include <stddef.h>

#include "graph.h"

/* Files larger than this are refused before reading (2 GiB: protobuf's own limit). */
#define EVM_MAX_MODEL_BYTES ((size_t)2 << 30)
#define EVM_MAX_NODES 100000

evmap_status evm_onnx_load_file(const char *path, evm_graph **out, evmap_error *err);
/* As evm_onnx_load_file, refusing a file that needs more than max_memory
 * bytes to load (0: no limit). */
evmap_status evm_onnx_load_file_limited(const char *path, uint64_t max_memory, evm_graph **out,
                                        evmap_error *err);
evmap_status evm_onnx_load_memory(const void *data, size_t size, evm_graph **out, evmap_error *err);

/* Converts a serialized TensorProto (as in the conformance data's .pb files). */
evmap_status evm_onnx_read_tensor_file(const char *path, evm_tensor *out, evmap_error *err);

/* Reads a whole file into a malloc'd buffer, refusing files above max_bytes. */
evmap_status evm_onnx_read_file(const char *path, size_t max_bytes, void **data, size_t *size,
                                evmap_error *err);

#endif
