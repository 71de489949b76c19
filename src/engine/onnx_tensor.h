/* TensorProto conversion and ONNX element type names (onnx_tensor.c), for
 * the graph loader; the file readers are declared in onnx_load.h. */
#ifndef EVM_ONNX_TENSOR_H
#define EVM_ONNX_TENSOR_H

#include "base/tensor.h"
#include "onnx/onnx.pb-c.h"
#include "onnx_load.h"

/* ONNX TensorProto.DataType values evmap reads. float16, double and bfloat16
 * tensors are converted to float32. */
enum {
    ONNX_FLOAT = 1,
    ONNX_INT64 = 7,
    ONNX_BOOL = 9,
    ONNX_FLOAT16 = 10,
    ONNX_DOUBLE = 11,
    ONNX_BFLOAT16 = 16
};

/* Where the tensors of one model come from, and the memory they may take. */
typedef struct evm_onnx_source {
    const char *dir;     /* the model's folder; NULL: loaded from memory (no external data) */
    const char *file;    /* the model file, for messages (may be NULL) */
    uint64_t max_memory; /* bytes; 0: no limit */
    uint64_t used;       /* charged so far: the file itself, then converted or external data */
} evm_onnx_source;

/* Converts p into t, taking over p's raw data (see onnx_tensor.c). src may be
 * NULL (no external data, no memory limit). */
evmap_status evm_onnx_tensor_from_proto(Onnx__TensorProto *p, evm_onnx_source *src, evm_tensor *t,
                                        evmap_error *err);

/* "float32", "int64", ... for an ONNX TensorProto.DataType. */
const char *evm_onnx_type_name(int32_t t);

/* float16 and bfloat16 bit patterns to float32 (exact: every value, subnormals,
 * infinities and NaNs included). */
float evm_half_to_float(uint16_t h);
float evm_bfloat16_to_float(uint16_t h);

/* Reads tensor p's external data (data_location EXTERNAL) from a file inside
 * src->dir into a malloc'd buffer of exactly need bytes (onnx_external.c).
 * Absolute locations, '..' components and paths that resolve outside the
 * folder are refused, offset and length are checked against the file and
 * against need. */
evmap_status evm_onnx_read_external(const Onnx__TensorProto *p, const evm_onnx_source *src,
                                    size_t need, void **out, evmap_error *err);

#endif
