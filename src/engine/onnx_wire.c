/*
 * Protobuf wire-format scanning for the ONNX loader: finds the initializers'
 * raw_data, copies it out and re-encodes the model without it (see
 * onnx_wire.h). Every read is bounds-checked; this code reads hostile files.
 */
#include "onnx_wire.h"

#include <stdlib.h>
#include <string.h>

enum {
    MODEL_GRAPH = 7,       /* ModelProto.graph */
    GRAPH_INITIALIZER = 5, /* GraphProto.initializer */
    TENSOR_RAW_DATA = 9,   /* TensorProto.raw_data */
};

evm_wire_status evm_wire_read_varint(const uint8_t *buf, size_t size, size_t *pos,
                                     uint64_t *value) {
    uint64_t v = 0;
    size_t p = *pos;
    for (int i = 0; i < 10; i++) {
        if (p >= size)
            return EVM_WIRE_MALFORMED; /* truncated */
        uint8_t b = buf[p++];
        if (i == 9 && b > 1)
            return EVM_WIRE_MALFORMED; /* more than 64 bits */
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *pos = p;
            *value = v;
            return EVM_WIRE_OK;
        }
    }
    return EVM_WIRE_MALFORMED; /* longer than 10 bytes */
}

evm_wire_status evm_wire_read_key(const uint8_t *buf, size_t size, size_t *pos, uint32_t *field,
                                  int *wire_type) {
    uint64_t key;
    size_t p = *pos;
    if (evm_wire_read_varint(buf, size, &p, &key) != EVM_WIRE_OK)
        return EVM_WIRE_MALFORMED;
    uint64_t number = key >> 3;
    int type = (int)(key & 7);
    if (number == 0 || number > ((uint64_t)1 << 29) - 1)
        return EVM_WIRE_MALFORMED;
    if (type != EVM_WIRE_VARINT && type != EVM_WIRE_FIXED64 && type != EVM_WIRE_LEN &&
        type != EVM_WIRE_FIXED32)
        return EVM_WIRE_MALFORMED; /* groups (3, 4) and the unused types 6, 7 */
    *pos = p;
    *field = (uint32_t)number;
    *wire_type = type;
    return EVM_WIRE_OK;
}

evm_wire_status evm_wire_skip_value(const uint8_t *buf, size_t size, size_t *pos, int wire_type,
                                    size_t *value_start, size_t *value_len) {
    size_t p = *pos;
    uint64_t v;
    if (p > size)
        return EVM_WIRE_MALFORMED;
    switch (wire_type) {
    case EVM_WIRE_VARINT:
        if (evm_wire_read_varint(buf, size, &p, &v) != EVM_WIRE_OK)
            return EVM_WIRE_MALFORMED;
        break;
    case EVM_WIRE_FIXED64:
        if (size - p < 8)
            return EVM_WIRE_MALFORMED;
        p += 8;
        break;
    case EVM_WIRE_FIXED32:
        if (size - p < 4)
            return EVM_WIRE_MALFORMED;
        p += 4;
        break;
    case EVM_WIRE_LEN:
        if (evm_wire_read_varint(buf, size, &p, &v) != EVM_WIRE_OK || v > size - p)
            return EVM_WIRE_MALFORMED; /* the length runs past the end */
        if (value_start)
            *value_start = p;
        if (value_len)
            *value_len = (size_t)v;
        p += (size_t)v;
        break;
    default: return EVM_WIRE_MALFORMED;
    }
    *pos = p;
    return EVM_WIRE_OK;
}

size_t evm_wire_varint_size(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static size_t put_varint(uint8_t *out, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

/* A length-delimited field: key at key, payload at [start, start + len). */
typedef struct span {
    size_t key, start, len;
} span;

/* One initializer TensorProto as found in the input. */
typedef struct init_info {
    span field;          /* the GraphProto.initializer field */
    size_t stripped_len; /* its payload's length without raw_data fields */
    span raw;            /* the last raw_data field */
    int has_raw;
} init_info;

typedef struct plan {
    span graph;
    int has_graph;
    size_t graph_stripped_len;
    init_info *inits;
    size_t n_inits, cap_inits;
} plan;

/* Reads the next field of buf[*pos .. end). For wire type 2 *value receives
 * the payload's place. */
static evm_wire_status next_field(const uint8_t *buf, size_t end, size_t *pos, uint32_t *field,
                                  int *type, span *value) {
    value->key = *pos;
    if (evm_wire_read_key(buf, end, pos, field, type) != EVM_WIRE_OK)
        return EVM_WIRE_MALFORMED;
    value->start = value->len = 0;
    return evm_wire_skip_value(buf, end, pos, *type, &value->start, &value->len);
}

/* Bytes of a length-delimited field whose key is key_len bytes long. */
static size_t field_size(size_t key_len, size_t payload_len) {
    return key_len + evm_wire_varint_size(payload_len) + payload_len;
}

/* Length of the key of the field whose key starts at buf[key]. */
static size_t key_size(const uint8_t *buf, size_t size, size_t key) {
    size_t p = key;
    uint32_t f;
    int ty;
    evm_wire_read_key(buf, size, &p, &f, &ty); /* validated by the scan */
    return p - key;
}

static evm_wire_status scan_tensor(const uint8_t *buf, init_info *t) {
    size_t pos = t->field.start, end = t->field.start + t->field.len;
    size_t removed = 0;
    while (pos < end) {
        uint32_t field;
        int type;
        span v;
        size_t key = pos;
        if (next_field(buf, end, &pos, &field, &type, &v) != EVM_WIRE_OK)
            return EVM_WIRE_MALFORMED;
        if (field == TENSOR_RAW_DATA && type == EVM_WIRE_LEN) {
            t->raw = v;
            t->has_raw = 1;
            removed += pos - key;
        }
    }
    t->stripped_len = t->field.len - removed;
    return EVM_WIRE_OK;
}

static evm_wire_status scan_graph(const uint8_t *buf, plan *pl) {
    size_t pos = pl->graph.start, end = pl->graph.start + pl->graph.len;
    size_t shrink = 0;
    while (pos < end) {
        uint32_t field;
        int type;
        span v;
        if (next_field(buf, end, &pos, &field, &type, &v) != EVM_WIRE_OK)
            return EVM_WIRE_MALFORMED;
        if (field != GRAPH_INITIALIZER || type != EVM_WIRE_LEN)
            continue;
        if (pl->n_inits == pl->cap_inits) {
            /* each initializer takes at least 2 input bytes, so cap < size */
            size_t cap = pl->cap_inits ? pl->cap_inits * 2 : 64;
            if (cap > SIZE_MAX / sizeof(init_info))
                return EVM_WIRE_NO_MEMORY;
            init_info *p = realloc(pl->inits, cap * sizeof *p);
            if (!p)
                return EVM_WIRE_NO_MEMORY;
            pl->inits = p;
            pl->cap_inits = cap;
        }
        init_info *t = &pl->inits[pl->n_inits++];
        memset(t, 0, sizeof *t);
        t->field = v;
        if (scan_tensor(buf, t) != EVM_WIRE_OK)
            return EVM_WIRE_MALFORMED;
        size_t old_size = pos - v.key; /* its length varint may be overlong */
        /* >= 0: stripped_len <= len; the sum <= graph.len (disjoint fields) */
        shrink += old_size - field_size(key_size(buf, end, v.key), t->stripped_len);
    }
    pl->graph_stripped_len = pl->graph.len - shrink;
    return EVM_WIRE_OK;
}

static evm_wire_status scan_model(const uint8_t *buf, size_t size, plan *pl) {
    size_t pos = 0;
    while (pos < size) {
        uint32_t field;
        int type;
        span v;
        if (next_field(buf, size, &pos, &field, &type, &v) != EVM_WIRE_OK)
            return EVM_WIRE_MALFORMED;
        if (field != MODEL_GRAPH || type != EVM_WIRE_LEN)
            continue;
        if (pl->has_graph)
            return EVM_WIRE_UNSUPPORTED; /* protobuf merges repeated messages: leave it to it */
        pl->graph = v;
        pl->has_graph = 1;
    }
    return pl->has_graph ? scan_graph(buf, pl) : EVM_WIRE_OK;
}

/* Copies payload [start, start + len) of buf into a new buffer, part by part,
 * reporting each part to release. */
static evm_wire_status copy_payload(const uint8_t *buf, span raw, evm_wire_release_fn release,
                                    void *ctx, evm_wire_payload *out) {
    out->present = 1;
    out->len = raw.len;
    out->data = NULL;
    if (raw.len == 0)
        return EVM_WIRE_OK;
    out->data = malloc(raw.len);
    if (!out->data)
        return EVM_WIRE_NO_MEMORY;
    size_t pos = raw.start, end = raw.start + raw.len;
    while (pos < end) {
        /* <= pos + 2^20, within the address space of buf (end <= its size) */
        size_t next = (pos / EVM_WIRE_RELEASE_CHUNK + 1) * EVM_WIRE_RELEASE_CHUNK;
        if (next > end)
            next = end;
        memcpy(out->data + (pos - raw.start), buf + pos, next - pos);
        if (release)
            release(ctx, pos, next - pos);
        pos = next;
    }
    return EVM_WIRE_OK;
}

/* Writes the tensor's fields less its raw_data fields. */
static size_t write_tensor(const uint8_t *buf, const init_info *t, uint8_t *out) {
    size_t pos = t->field.start, end = t->field.start + t->field.len, n = 0;
    while (pos < end) {
        uint32_t field;
        int type;
        span v;
        size_t key = pos;
        if (next_field(buf, end, &pos, &field, &type, &v) != EVM_WIRE_OK)
            break; /* cannot happen: scanned before */
        if (field == TENSOR_RAW_DATA && type == EVM_WIRE_LEN)
            continue;
        memcpy(out + n, buf + key, pos - key);
        n += pos - key;
    }
    return n;
}

static evm_wire_status build(const uint8_t *buf, size_t size, const plan *pl,
                             evm_wire_release_fn release, void *ctx, evm_wire_stripped *out) {
    size_t out_size = size;
    if (pl->has_graph) {
        size_t old_graph = pl->graph.start + pl->graph.len - pl->graph.key;
        size_t new_graph = field_size(key_size(buf, size, pl->graph.key), pl->graph_stripped_len);
        out_size = size - old_graph + new_graph; /* new_graph <= old_graph <= size */
    }
    out->message = malloc(out_size ? out_size : 1);
    if (!out->message)
        return EVM_WIRE_NO_MEMORY;
    out->size = out_size;
    if (pl->n_inits) {
        out->payloads = calloc(pl->n_inits, sizeof *out->payloads);
        if (!out->payloads)
            return EVM_WIRE_NO_MEMORY;
        out->n_payloads = pl->n_inits;
    }
    uint8_t *w = out->message;
    if (!pl->has_graph) {
        if (size)
            memcpy(w, buf, size);
        return EVM_WIRE_OK;
    }
    /* Model fields before the graph, the graph's key and new length. */
    size_t gkey = key_size(buf, size, pl->graph.key);
    memcpy(w, buf, pl->graph.key + gkey);
    w += pl->graph.key + gkey;
    w += put_varint(w, pl->graph_stripped_len);
    size_t cursor = pl->graph.start; /* next input byte of the graph to copy */
    for (size_t i = 0; i < pl->n_inits; i++) {
        const init_info *t = &pl->inits[i];
        size_t ikey = key_size(buf, size, t->field.key);
        memcpy(w, buf + cursor, t->field.key + ikey - cursor);
        w += t->field.key + ikey - cursor;
        w += put_varint(w, t->stripped_len);
        w += write_tensor(buf, t, w);
        cursor = t->field.start + t->field.len;
        if (t->has_raw) {
            evm_wire_status st = copy_payload(buf, t->raw, release, ctx, &out->payloads[i]);
            if (st != EVM_WIRE_OK)
                return st;
        }
    }
    /* The rest of the graph and of the model. */
    memcpy(w, buf + cursor, size - cursor);
    w += size - cursor;
    if ((size_t)(w - out->message) != out_size)
        return EVM_WIRE_MALFORMED; /* cannot happen: sizes were computed from the same scan */
    return EVM_WIRE_OK;
}

void evm_wire_stripped_free(evm_wire_stripped *s) {
    if (!s)
        return;
    for (size_t i = 0; i < s->n_payloads; i++)
        free(s->payloads[i].data);
    free(s->payloads);
    free(s->message);
    memset(s, 0, sizeof *s);
}

evm_wire_status evm_wire_strip_model(const uint8_t *buf, size_t size, evm_wire_release_fn release,
                                     void *ctx, evm_wire_stripped *out) {
    memset(out, 0, sizeof *out);
    plan pl = {0};
    evm_wire_status st = scan_model(buf, size, &pl);
    if (st == EVM_WIRE_OK)
        st = build(buf, size, &pl, release, ctx, out);
    free(pl.inits);
    if (st != EVM_WIRE_OK)
        evm_wire_stripped_free(out);
    return st;
}
