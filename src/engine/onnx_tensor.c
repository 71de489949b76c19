/*
 * ONNX files and TensorProtos: reading a file whole (bounded), the names of
 * ONNX element types, and converting a TensorProto into an evm_tensor with
 * its size checked before anything is allocated. onnx_load.c builds graphs
 * on these; the conformance runner reads its .pb tensors with them.
 */
#include "onnx_tensor.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/budget.h"
#include "base/error.h"

const char *evm_onnx_type_name(int32_t t) {
    static const char *const names[] = {"undefined",  "float32", "uint8",  "int8",   "uint16",
                                        "int16",      "int32",   "int64",  "string", "bool",
                                        "float16",    "double",  "uint32", "uint64", "complex64",
                                        "complex128", "bfloat16"};
    if (t >= 0 && (size_t)t < sizeof names / sizeof names[0])
        return names[t];
    return "unknown";
}

evmap_status evm_onnx_read_file(const char *path, size_t max_bytes, void **data, size_t *size,
                                evmap_error *err) {
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return evm_fail(err, EVMAP_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    evmap_status st = EVMAP_OK;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = evm_fail(err, EVMAP_ERR_IO, "'%s' is not a regular file", path);
        goto done;
    }
    if ((unsigned long long)sb.st_size > max_bytes) {
        st = evm_fail(err, EVMAP_ERR_TOO_LARGE, "'%s' is %lld bytes, above the limit of %zu", path,
                      (long long)sb.st_size, max_bytes);
        goto done;
    }
    size_t n = (size_t)sb.st_size;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) {
        st = evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes to read '%s'", n,
                      path);
        goto done;
    }
    if (fread(buf, 1, n, f) != n) {
        free(buf);
        st = evm_fail(err, EVMAP_ERR_IO, "cannot read '%s'", path);
        goto done;
    }
    *data = buf;
    *size = n;
done:
    fclose(f);
    return st;
}

/* ------------------------------------------------------------- tensors */

/* Converts p into t. Raw float/int64 data is taken over from the message
 * rather than copied (protobuf-c allocates it with malloc, suitably aligned),
 * so a model's weights exist once in memory, not twice. */
evmap_status evm_onnx_tensor_from_proto(Onnx__TensorProto *p, evm_tensor *t, evmap_error *err) {
    const char *name = p->name ? p->name : "(unnamed)";
    memset(t, 0, sizeof *t);
    if (p->n_external_data > 0 ||
        (p->has_data_location && p->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL))
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED,
                        "tensor '%s' keeps its data in an external file; re-export the model "
                        "with all weights inside the .onnx file",
                        name);
    if (p->n_dims > EVM_MAX_RANK)
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED, "tensor '%s' has rank %zu (limit %d)", name,
                        p->n_dims, EVM_MAX_RANK);
    if (p->data_type == ONNX_FLOAT)
        t->dtype = EVM_DTYPE_FLOAT;
    else if (p->data_type == ONNX_INT64)
        t->dtype = EVM_DTYPE_INT64;
    else if (p->data_type == ONNX_BOOL)
        t->dtype = EVM_DTYPE_BOOL;
    else
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED,
                        "tensor '%s' has data type %s; evmap supports float32, int64 and bool",
                        name, evm_onnx_type_name(p->data_type));
    evmap_status st = evm_tensor_set_shape(t, (int)p->n_dims, p->dims, err);
    if (st != EVMAP_OK) {
        evm_error_prefix(err, "tensor '%s'", name);
        return st;
    }
    size_t elem = evm_dtype_size(t->dtype);
    const void *src;
    size_t have;
    if (p->has_raw_data) {
        src = p->raw_data.data;
        have = p->raw_data.len / elem;
        if (p->raw_data.len % elem)
            have = (size_t)-1; /* forces the mismatch message */
    } else if (t->dtype == EVM_DTYPE_FLOAT) {
        src = p->float_data;
        have = p->n_float_data;
    } else if (t->dtype == EVM_DTYPE_INT64) {
        src = p->int64_data;
        have = p->n_int64_data;
    } else {
        src = NULL; /* bools outside raw_data are int32_data, one per value */
        have = p->n_int32_data;
    }
    if (have != t->count)
        return evm_fail(err, EVMAP_ERR_BAD_FILE,
                        "tensor '%s' declares %zu elements but holds data for a different "
                        "number; the file is corrupt",
                        name, t->count);
    t->is_const = true;
    if (p->has_raw_data && t->count && ((uintptr_t)p->raw_data.data % 8) == 0) {
        t->data = p->raw_data.data; /* little-endian hosts only (x86, arm64) */
        t->owns_data = true;
        p->raw_data.data = NULL; /* protobuf-c frees only non-NULL data */
        p->raw_data.len = 0;
        p->has_raw_data = 0;
    } else {
        st = evm_tensor_alloc(t, err);
        if (st != EVMAP_OK)
            return st;
        if (t->count && src)
            memcpy(t->data, src, t->count * elem);
        else if (t->count)
            for (size_t i = 0; i < t->count; i++)
                evm_bool(t)[i] = p->int32_data[i] != 0;
    }
    if (t->dtype == EVM_DTYPE_BOOL) /* any non-zero byte is true; ops rely on 0/1 */
        for (size_t i = 0; i < t->count; i++)
            evm_bool(t)[i] = evm_bool(t)[i] != 0;
    return EVMAP_OK;
}

evmap_status evm_onnx_read_tensor_file(const char *path, evm_tensor *out, evmap_error *err) {
    void *data;
    size_t size;
    evmap_status st = evm_onnx_read_file(path, EVM_MAX_MODEL_BYTES, &data, &size, err);
    if (st != EVMAP_OK)
        return st;
    Onnx__TensorProto *p = onnx__tensor_proto__unpack(NULL, size, data);
    free(data);
    if (!p)
        return evm_fail(err, EVMAP_ERR_BAD_FILE, "'%s' is not a valid serialized ONNX tensor",
                        path);
    st = evm_onnx_tensor_from_proto(p, out, err);
    onnx__tensor_proto__free_unpacked(p, NULL);
    return st;
}
