/*
 * ONNX files and TensorProtos: reading a file whole (bounded), the names of
 * ONNX element types, and converting a TensorProto into an evm_tensor with
 * its size checked before anything is allocated. onnx_load.c builds graphs
 * on these; the conformance runner reads its .pb tensors with them.
 */
#include "onnx_tensor.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
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

float evm_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) /* infinity, or NaN with its payload kept */
        bits = sign | 0x7f800000u | (man << 13);
    else if (exp) /* normal: rebias 15 -> 127 */
        bits = sign | ((exp + 112) << 23) | (man << 13);
    else if (man) { /* subnormal: man * 2^-24, normal in float32 */
        int shift = 0;
        while (!(man & 0x400u)) {
            man <<= 1;
            shift++;
        }
        bits = sign | ((uint32_t)(113 - shift) << 23) | ((man & 0x3ffu) << 13);
    } else
        bits = sign;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float evm_bfloat16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16; /* bfloat16 is the top half of a float32 */
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* double -> float without the undefined behaviour of an out-of-range cast:
 * values past float's range round to infinity as IEEE rounding would. */
static float double_to_float(double d) {
    const double limit = (double)FLT_MAX + ldexp(1.0, 103); /* FLT_MAX + half an ulp */
    if (isnan(d))
        return NAN;
    if (d >= limit)
        return INFINITY;
    if (d <= -limit)
        return -INFINITY;
    if (d > FLT_MAX)
        return FLT_MAX;
    if (d < -FLT_MAX)
        return -FLT_MAX;
    return (float)d;
}

/* Bytes of one element as stored in the file; 0 for types evmap does not read. */
static size_t file_elem_size(int32_t type) {
    switch (type) {
    case ONNX_FLOAT: return 4;
    case ONNX_INT64: return 8;
    case ONNX_BOOL: return 1;
    case ONNX_FLOAT16:
    case ONNX_BFLOAT16: return 2;
    case ONNX_DOUBLE: return 8;
    default: return 0;
    }
}

static bool is_external(const Onnx__TensorProto *p) {
    return p->n_external_data > 0 ||
           (p->has_data_location &&
            p->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL);
}

/* Charges bytes to the load's memory limit. */
static evmap_status charge(evm_onnx_source *src, const char *name, uint64_t bytes,
                           evmap_error *err) {
    if (!src)
        return EVMAP_OK;
    uint64_t total = src->used + bytes < src->used ? UINT64_MAX : src->used + bytes;
    if (src->max_memory && total > src->max_memory) {
        char need_s[EVM_BYTES_STR_SIZE], limit_s[EVM_BYTES_STR_SIZE];
        return evm_fail(err, EVMAP_ERR_TOO_LARGE,
                        "loading the model takes more than %s with tensor '%s', above the memory "
                        "limit of %s (--max-memory); raise the limit",
                        evm_bytes_str(total, need_s), name,
                        evm_bytes_str(src->max_memory, limit_s));
    }
    src->used = total;
    return EVMAP_OK;
}

/* The place of the tensor's values in the message: raw bytes (raw_data or
 * external) or one of the typed repeated fields. */
typedef struct tensor_source {
    const uint8_t *raw; /* count * file element size bytes; NULL: typed fields */
    const void *typed;  /* float_data, int64_data, double_data or int32_data */
} tensor_source;

static void convert_values(int32_t type, const tensor_source *s, const Onnx__TensorProto *p,
                           evm_tensor *t) {
    size_t n = t->count;
    if (type == ONNX_FLOAT || type == ONNX_INT64) {
        memcpy(t->data, s->raw ? (const void *)s->raw : s->typed, n * evm_dtype_size(t->dtype));
        return;
    }
    if (type == ONNX_BOOL) {
        for (size_t i = 0; i < n; i++)
            evm_bool(t)[i] = s->raw ? s->raw[i] != 0 : p->int32_data[i] != 0;
        return;
    }
    float *y = evm_f32(t);
    for (size_t i = 0; i < n; i++) {
        if (type == ONNX_DOUBLE) {
            double d;
            if (s->raw)
                memcpy(&d, s->raw + 8 * i, 8);
            else
                d = p->double_data[i];
            y[i] = double_to_float(d);
            continue;
        }
        uint16_t h; /* typed storage: int32_data holds the 16-bit pattern */
        if (s->raw)
            memcpy(&h, s->raw + 2 * i, 2);
        else
            h = (uint16_t)p->int32_data[i];
        y[i] = type == ONNX_FLOAT16 ? evm_half_to_float(h) : evm_bfloat16_to_float(h);
    }
}

/* Converts p into t. Raw float/int64 data is taken over from the message
 * rather than copied (protobuf-c allocates it with malloc, suitably aligned),
 * so a model's weights exist once in memory, not twice. float16, double and
 * bfloat16 become float32; external data is read from the model's folder. */
evmap_status evm_onnx_tensor_from_proto(Onnx__TensorProto *p, evm_onnx_source *src, evm_tensor *t,
                                        evmap_error *err) {
    const char *name = p->name ? p->name : "(unnamed)";
    memset(t, 0, sizeof *t);
    bool external = is_external(p);
    if (external && (!src || !src->dir))
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED,
                        "tensor '%s' keeps its data in an external file; a model loaded from "
                        "memory cannot read external data: load it from its file",
                        name);
    if (p->n_dims > EVM_MAX_RANK)
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED, "tensor '%s' has rank %zu (limit %d)", name,
                        p->n_dims, EVM_MAX_RANK);
    int32_t type = p->data_type;
    size_t fe = file_elem_size(type);
    if (!fe)
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED,
                        "tensor '%s' has data type %s; evmap supports float32, int64 and bool "
                        "(float16, bfloat16 and double weights become float32)",
                        name, evm_onnx_type_name(type));
    t->dtype = type == ONNX_INT64  ? EVM_DTYPE_INT64
               : type == ONNX_BOOL ? EVM_DTYPE_BOOL
                                   : EVM_DTYPE_FLOAT;
    evmap_status st = evm_tensor_set_shape(t, (int)p->n_dims, p->dims, err);
    if (st != EVMAP_OK) {
        evm_error_prefix(err, "tensor '%s'", name);
        return st;
    }
    size_t bytes = t->count * fe; /* count <= EVM_MAX_TENSOR_ELEMENTS: no overflow */
    bool converts = fe != evm_dtype_size(t->dtype);
    if (external) {
        /* the file's bytes, then the float32 copy when converting */
        st = charge(src, name, (uint64_t)bytes + (converts ? t->count * 4 : 0), err);
        void *data = NULL;
        if (st == EVMAP_OK)
            st = evm_onnx_read_external(p, src, bytes, &data, err);
        if (st != EVMAP_OK)
            return st;
        free(p->raw_data.data); /* a raw_data beside external data is ignored */
        p->raw_data.data = data;
        p->raw_data.len = bytes;
        p->has_raw_data = 1;
    } else if (converts) {
        st = charge(src, name, (uint64_t)t->count * 4, err);
        if (st != EVMAP_OK)
            return st;
    }
    tensor_source s = {0};
    size_t have;
    if (p->has_raw_data) {
        s.raw = p->raw_data.data;
        have = p->raw_data.len % fe ? (size_t)-1 : p->raw_data.len / fe; /* -1: mismatch */
    } else if (type == ONNX_FLOAT) {
        s.typed = p->float_data;
        have = p->n_float_data;
    } else if (type == ONNX_INT64) {
        s.typed = p->int64_data;
        have = p->n_int64_data;
    } else if (type == ONNX_DOUBLE) {
        s.typed = p->double_data;
        have = p->n_double_data;
    } else {
        s.typed = p->int32_data; /* bool, float16, bfloat16: one int32 per value */
        have = p->n_int32_data;
    }
    if (have != t->count)
        return evm_fail(err, EVMAP_ERR_BAD_FILE,
                        "tensor '%s' declares %zu elements but holds data for a different "
                        "number; the file is corrupt",
                        name, t->count);
    t->is_const = true;
    if (p->has_raw_data && t->count && !converts && t->dtype != EVM_DTYPE_BOOL &&
        ((uintptr_t)p->raw_data.data % 8) == 0) {
        t->data = p->raw_data.data; /* little-endian hosts only (x86, arm64) */
        t->owns_data = true;
        t->mapped = 0;           /* malloc'd by protobuf-c */
        p->raw_data.data = NULL; /* protobuf-c frees only non-NULL data */
        p->raw_data.len = 0;
        p->has_raw_data = 0;
        return EVMAP_OK;
    }
    st = evm_tensor_alloc(t, err);
    if (st != EVMAP_OK)
        return st;
    if (t->count)
        convert_values(type, &s, p, t);
    if (p->has_raw_data && (external || converts)) { /* the float32 copy replaces it */
        free(p->raw_data.data);
        p->raw_data.data = NULL;
        p->raw_data.len = 0;
        p->has_raw_data = 0;
    }
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
    st = evm_onnx_tensor_from_proto(p, NULL, out, err);
    onnx__tensor_proto__free_unpacked(p, NULL);
    return st;
}
