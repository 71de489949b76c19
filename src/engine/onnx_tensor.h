/* TensorProto conversion and ONNX element type names (onnx_tensor.c), for
 * the graph loader; the file readers are declared in onnx_load.h. */
#ifndef EVM_ONNX_TENSOR_H
#define EVM_ONNX_TENSOR_H

#include "base/tensor.h"
#include "onnx/onnx.pb-c.h"
#include "onnx_load.h"

/* ONNX TensorProto.DataType values evmap reads. */
enum { ONNX_FLOAT = 1, ONNX_INT64 = 7, ONNX_BOOL = 9 };

/* Converts p into t, taking over p's raw data (see onnx_tensor.c). */
evmap_status evm_onnx_tensor_from_proto(Onnx__TensorProto *p, evm_tensor *t, evmap_error *err);

/* "float32", "int64", ... for an ONNX TensorProto.DataType. */
const char *evm_onnx_type_name(int32_t t);

#endif
