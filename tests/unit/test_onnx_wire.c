/*
 * The wire-format scanner behind the ONNX loader (src/engine/onnx_wire.c): varints,
 * keys and skipping; on real models, the stripped message plus its payloads
 * must equal a plain protobuf-c unpack (checked by packing both back); hand
 * encoded edge cases (length varints that shrink, overlong encodings,
 * repeated raw_data, a repeated graph field, empty payloads); the release
 * callback's parts; and hostile input (truncation at every length, lengths
 * past the end, overlong varints, groups, random corruption) ending in clean
 * errors through both the scanner and evm_onnx_load_memory / _file.
 * Prints "N passed, N failed"; exits non-zero on failure.
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onnx/onnx.pb-c.h"
#include "engine/onnx_load.h"
#include "engine/onnx_wire.h"

static int passed, failed;

static void check(int ok, const char *what, const char *detail) {
    if (ok) {
        passed++;
        return;
    }
    failed++;
    if (failed <= 30)
        printf("FAIL %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
}

static uint64_t rng_state = 0x2545f4914f6cdd1du;
static uint32_t rnd(uint32_t n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32) % n;
}

static uint8_t *read_all(const char *path, size_t *size) {
    void *data;
    evmap_error err = {0};
    if (evm_onnx_read_file(path, EVM_MAX_MODEL_BYTES, &data, size, &err) != EVMAP_OK)
        return NULL;
    return data;
}

/* ------------------------------------------------------- byte builder */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *data, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    if (n)
        memcpy(b->p + b->n, data, n);
    b->n += n;
}
static void put_varint(buf *b, uint64_t v) {
    do {
        uint8_t c = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            c |= 0x80;
        put(b, &c, 1);
    } while (v);
}
static void put_key(buf *b, uint32_t field, int type) {
    put_varint(b, (uint64_t)field << 3 | (unsigned)type);
}
static void put_len(buf *b, uint32_t field, const void *data, size_t n) {
    put_key(b, field, EVM_WIRE_LEN);
    put_varint(b, n);
    put(b, data, n);
}
/* A length-delimited field whose length varint is padded to at least `width` bytes. */
static void put_len_padded(buf *b, uint32_t field, const void *data, size_t n, int width) {
    if (width < (int)evm_wire_varint_size(n))
        width = (int)evm_wire_varint_size(n);
    put_key(b, field, EVM_WIRE_LEN);
    uint64_t v = n;
    for (int i = 0; i < width; i++) {
        uint8_t c = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (i + 1 < width)
            c |= 0x80;
        put(b, &c, 1);
    }
    put(b, data, n);
}

/* ------------------------------------------------ equivalence checking */

/* Packs a message into a malloc'd buffer. */
static uint8_t *pack(const Onnx__ModelProto *mp, size_t *n) {
    *n = onnx__model_proto__get_packed_size(mp);
    uint8_t *out = malloc(*n ? *n : 1);
    if (!out)
        abort();
    onnx__model_proto__pack(mp, out);
    return out;
}

/* Strips data, unpacks the copy, attaches the payloads and compares with a
 * plain unpack: same initializers' raw_data byte for byte, and the same
 * message when both are packed again. Returns 1 when all agree. */
static int strip_matches_plain(const uint8_t *data, size_t size, const char *name) {
    Onnx__ModelProto *plain = onnx__model_proto__unpack(NULL, size, data);
    evm_wire_stripped s;
    evm_wire_status st = evm_wire_strip_model(data, size, NULL, NULL, &s);
    if (st != EVM_WIRE_OK || !plain) {
        check(0, "strip and plain unpack both succeed", name);
        if (plain)
            onnx__model_proto__free_unpacked(plain, NULL);
        evm_wire_stripped_free(&s);
        return 0;
    }
    int ok = 1;
    check(s.size <= size, "stripped copy is no larger", name);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, s.size, s.message);
    check(mp != NULL, "stripped copy unpacks", name);
    if (!mp) {
        onnx__model_proto__free_unpacked(plain, NULL);
        evm_wire_stripped_free(&s);
        return 0;
    }
    size_t n_init = mp->graph ? mp->graph->n_initializer : 0;
    size_t n_plain = plain->graph ? plain->graph->n_initializer : 0;
    ok &= n_init == s.n_payloads && n_plain == n_init;
    for (size_t i = 0; ok && i < n_init; i++) {
        Onnx__TensorProto *t = mp->graph->initializer[i], *p = plain->graph->initializer[i];
        evm_wire_payload *pl = &s.payloads[i];
        ok &= !t->has_raw_data && t->raw_data.len == 0; /* nothing left in the copy */
        ok &= !!pl->present == !!p->has_raw_data;
        if (pl->present) {
            ok &= pl->len == p->raw_data.len &&
                  (pl->len == 0 || memcmp(pl->data, p->raw_data.data, pl->len) == 0);
            ok &= pl->len == 0 || ((uintptr_t)pl->data % 8) == 0;
            t->raw_data.data = pl->data;
            t->raw_data.len = pl->len;
            t->has_raw_data = 1;
            pl->data = NULL;
        }
    }
    size_t na, nb;
    uint8_t *a = pack(plain, &na), *b = pack(mp, &nb);
    ok &= na == nb && memcmp(a, b, na) == 0;
    free(a);
    free(b);
    onnx__model_proto__free_unpacked(mp, NULL);
    onnx__model_proto__free_unpacked(plain, NULL);
    evm_wire_stripped_free(&s);
    check(ok, "stripped + reattached equals plain unpack", name);
    return ok;
}

/* ------------------------------------------------------------ varints */

static void test_varints(void) {
    static const uint64_t values[] = {0,
                                      1,
                                      127,
                                      128,
                                      300,
                                      16383,
                                      16384,
                                      (1u << 21) - 1,
                                      1u << 21,
                                      0xffffffffu,
                                      (uint64_t)1 << 35,
                                      (uint64_t)1 << 63,
                                      UINT64_MAX};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        buf b = {0};
        put_varint(&b, values[i]);
        size_t pos = 0;
        uint64_t v = 0;
        check(evm_wire_read_varint(b.p, b.n, &pos, &v) == EVM_WIRE_OK && v == values[i] &&
                  pos == b.n && evm_wire_varint_size(values[i]) == b.n,
              "varint round trip", NULL);
        for (size_t cut = 0; cut < b.n; cut++) { /* truncated */
            pos = 0;
            check(evm_wire_read_varint(b.p, cut, &pos, &v) == EVM_WIRE_MALFORMED && pos == 0,
                  "truncated varint", NULL);
        }
        free(b.p);
    }
    /* Non-canonical but within 10 bytes: accepted, as protobuf does. */
    const uint8_t padded[] = {0x85, 0x80, 0x80, 0x00};
    size_t pos = 0;
    uint64_t v;
    check(evm_wire_read_varint(padded, sizeof padded, &pos, &v) == EVM_WIRE_OK && v == 5 &&
              pos == 4,
          "padded varint", NULL);
    /* 11 bytes, and a 10th byte carrying bits past 64. */
    uint8_t eleven[11];
    memset(eleven, 0x80, sizeof eleven);
    eleven[10] = 0x01;
    pos = 0;
    check(evm_wire_read_varint(eleven, sizeof eleven, &pos, &v) == EVM_WIRE_MALFORMED,
          "11-byte varint", NULL);
    uint8_t ten[10];
    memset(ten, 0xff, sizeof ten);
    ten[9] = 0x02;
    pos = 0;
    check(evm_wire_read_varint(ten, sizeof ten, &pos, &v) == EVM_WIRE_MALFORMED,
          "varint above 2^64", NULL);
    ten[9] = 0x01;
    pos = 0;
    check(evm_wire_read_varint(ten, sizeof ten, &pos, &v) == EVM_WIRE_OK && v == UINT64_MAX,
          "varint 2^64 - 1", NULL);
}

static void test_keys_and_skip(void) {
    uint32_t field;
    int type;
    size_t pos;
    for (int t = 0; t < 8; t++) {
        buf b = {0};
        put_key(&b, 9, t);
        pos = 0;
        evm_wire_status st = evm_wire_read_key(b.p, b.n, &pos, &field, &type);
        int valid = t == 0 || t == 1 || t == 2 || t == 5;
        check(valid ? st == EVM_WIRE_OK && field == 9 && type == t : st == EVM_WIRE_MALFORMED,
              "wire types 0/1/2/5 only (groups rejected)", NULL);
        free(b.p);
    }
    const uint8_t zero[] = {0x02}; /* field 0 */
    pos = 0;
    check(evm_wire_read_key(zero, 1, &pos, &field, &type) == EVM_WIRE_MALFORMED, "field 0", NULL);
    buf big = {0};
    put_varint(&big, ((uint64_t)1 << 29) << 3 | 2); /* field 2^29 */
    pos = 0;
    check(evm_wire_read_key(big.p, big.n, &pos, &field, &type) == EVM_WIRE_MALFORMED,
          "field number above 2^29 - 1", NULL);
    free(big.p);

    const uint8_t fixed[] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (size_t n = 0; n <= 8; n++) {
        pos = 0;
        check((evm_wire_skip_value(fixed, n, &pos, EVM_WIRE_FIXED64, NULL, NULL) == EVM_WIRE_OK) ==
                  (n == 8),
              "fixed64 bounds", NULL);
        pos = 0;
        check((evm_wire_skip_value(fixed, n, &pos, EVM_WIRE_FIXED32, NULL, NULL) == EVM_WIRE_OK) ==
                  (n >= 4),
              "fixed32 bounds", NULL);
    }
    /* Lengths up to, at and past the end, and a huge one. */
    const uint8_t len5[] = {5, 'a', 'b', 'c', 'd', 'e'};
    size_t start = 0, len = 0;
    pos = 0;
    check(evm_wire_skip_value(len5, 6, &pos, EVM_WIRE_LEN, &start, &len) == EVM_WIRE_OK &&
              pos == 6 && start == 1 && len == 5,
          "length-delimited skip", NULL);
    pos = 0;
    check(evm_wire_skip_value(len5, 5, &pos, EVM_WIRE_LEN, &start, &len) == EVM_WIRE_MALFORMED &&
              pos == 0,
          "length past the end", NULL);
    buf huge = {0};
    put_varint(&huge, UINT64_MAX);
    put(&huge, "xx", 2);
    pos = 0;
    check(evm_wire_skip_value(huge.p, huge.n, &pos, EVM_WIRE_LEN, NULL, NULL) == EVM_WIRE_MALFORMED,
          "length 2^64 - 1", NULL);
    free(huge.p);
    pos = 0;
    check(evm_wire_skip_value(len5, 6, &pos, 3, NULL, NULL) == EVM_WIRE_MALFORMED,
          "skip of a group", NULL);
}

/* ----------------------------------------------------- hand-made models */

/* A TensorProto: name, float32, dims {n}, optional raw_data / float_data,
 * optional extra raw_data field first (protobuf keeps the last one). */
static void tensor(buf *t, const char *name, size_t n, const float *raw, int raw_len_width,
                   int decoy_raw, int as_float_data) {
    put_key(t, 1, EVM_WIRE_VARINT); /* dims */
    put_varint(t, n);
    put_key(t, 2, EVM_WIRE_VARINT); /* data_type = FLOAT */
    put_varint(t, 1);
    if (decoy_raw)
        put_len(t, 9, "decoy!!!", 8);
    if (as_float_data) {
        buf packed = {0};
        put(&packed, raw, n * sizeof(float));
        put_len(t, 4, packed.p, packed.n);
        free(packed.p);
    } else if (raw) {
        put_len_padded(t, 9, raw, n * sizeof(float), raw_len_width);
    }
    put_len(t, 8, name, strlen(name)); /* name after raw_data, as exporters write it */
}

/* A loadable model: y = x + w for one float initializer w of n elements. */
static void model(buf *m, const buf *init_fields, int graph_twice) {
    buf g = {0};
    put(&g, init_fields->p, init_fields->n);
    /* node: Add(x, w0) -> y */
    buf node = {0};
    put_len(&node, 1, "x", 1);
    put_len(&node, 1, "w0", 2);
    put_len(&node, 2, "y", 1);
    put_len(&node, 4, "Add", 3);
    put_len(&g, 1, node.p, node.n);
    put_len(&g, 2, "g", 1);
    /* input x: float tensor, shape {n} is left out (unknown) */
    buf tt = {0}, tp = {0}, vi = {0};
    put_key(&tt, 1, EVM_WIRE_VARINT);
    put_varint(&tt, 1);
    put_len(&tp, 1, tt.p, tt.n);
    put_len(&vi, 1, "x", 1);
    put_len(&vi, 2, tp.p, tp.n);
    put_len(&g, 11, vi.p, vi.n);
    buf vo = {0};
    put_len(&vo, 1, "y", 1);
    put_len(&vo, 2, tp.p, tp.n);
    put_len(&g, 12, vo.p, vo.n);

    put_key(m, 1, EVM_WIRE_VARINT); /* ir_version */
    put_varint(m, 8);
    if (graph_twice) {
        put_len(m, 7, "", 0);
    }
    put_len_padded(m, 7, g.p, g.n, 3); /* graph, with a padded length */
    buf op = {0};
    put_key(&op, 2, EVM_WIRE_VARINT);
    put_varint(&op, 13);
    put_len(m, 8, op.p, op.n);
    free(g.p);
    free(node.p);
    free(tt.p);
    free(tp.p);
    free(vi.p);
    free(vo.p);
    free(op.p);
}

static void test_hand_made(void) {
    enum { N = 40 }; /* 160 bytes of raw_data: a tensor's length varint shrinks from 2 to 1 */
    float w[N];
    for (int i = 0; i < N; i++)
        w[i] = (float)i * 0.5f - 3.0f;

    struct {
        const char *name;
        int width, decoy, float_data, n_extra, graph_twice;
        size_t count;
    } cases[] = {
        {"plain raw_data", 2, 0, 0, 0, 0, N},      {"padded raw_data length", 5, 0, 0, 0, 0, N},
        {"two raw_data fields", 2, 1, 0, 0, 0, N}, {"float_data, no raw_data", 2, 0, 1, 0, 0, N},
        {"many initializers", 2, 0, 0, 300, 0, N}, {"empty raw_data", 1, 0, 0, 0, 0, 0},
        {"graph field twice", 2, 0, 0, 0, 1, N},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        buf inits = {0}, t = {0};
        tensor(&t, "w0", cases[c].count, w, cases[c].width, cases[c].decoy, cases[c].float_data);
        put_len_padded(&inits, 5, t.p, t.n, cases[c].width);
        for (int k = 0; k < cases[c].n_extra; k++) {
            buf e = {0};
            char name[16];
            snprintf(name, sizeof name, "e%d", k);
            tensor(&e, name, (size_t)(k % N), w, 1 + k % 3, k % 7 == 0 && k % 5 != 0, k % 5 == 0);
            put_len(&inits, 5, e.p, e.n);
            free(e.p);
        }
        buf m = {0};
        model(&m, &inits, cases[c].graph_twice);
        evm_wire_stripped s;
        evm_wire_status st = evm_wire_strip_model(m.p, m.n, NULL, NULL, &s);
        if (cases[c].graph_twice) {
            check(st == EVM_WIRE_UNSUPPORTED && s.message == NULL && s.payloads == NULL,
                  "repeated graph field is left to protobuf-c", cases[c].name);
        } else {
            check(st == EVM_WIRE_OK, "hand-made model strips", cases[c].name);
            if (st == EVM_WIRE_OK)
                check(s.n_payloads == (size_t)1 + (size_t)cases[c].n_extra &&
                          s.payloads[0].present == !cases[c].float_data &&
                          (cases[c].float_data || cases[c].count == 0 ||
                           memcmp(s.payloads[0].data, w, sizeof w) == 0),
                      "payload of the first initializer (the last raw_data field)", cases[c].name);
            strip_matches_plain(m.p, m.n, cases[c].name);
        }
        evm_wire_stripped_free(&s);

        /* The loader gives the same graph either way. */
        evm_graph *g = NULL;
        evmap_error err = {0};
        evmap_status ls = evm_onnx_load_memory(m.p, m.n, &g, &err);
        check(ls == EVMAP_OK, "hand-made model loads",
              err.message[0] ? err.message : cases[c].name);
        if (ls == EVMAP_OK) {
            int v = evm_graph_find_value(g, "w0");
            check(v >= 0 && g->values[v].tensor.count == cases[c].count &&
                      (cases[c].count == 0 || memcmp(g->values[v].tensor.data, w, sizeof w) == 0),
                  "loaded initializer holds the weights", cases[c].name);
        }
        evm_graph_free(g);
        free(m.p);
        free(inits.p);
        free(t.p);
    }

    /* raw_data whose size does not match the dims keeps today's error. */
    buf inits = {0}, t = {0}, m = {0};
    put_key(&t, 1, EVM_WIRE_VARINT);
    put_varint(&t, N + 1); /* declares 41 elements, holds 40 */
    put_key(&t, 2, EVM_WIRE_VARINT);
    put_varint(&t, 1);
    put_len(&t, 9, w, sizeof w);
    put_len(&t, 8, "w0", 2);
    put_len(&inits, 5, t.p, t.n);
    model(&m, &inits, 0);
    evm_graph *g = NULL;
    evmap_error err = {0};
    evmap_status ls = evm_onnx_load_memory(m.p, m.n, &g, &err);
    check(ls == EVMAP_ERR_BAD_FILE &&
              strstr(err.message, "tensor 'w0' declares 41 elements but holds data for a "
                                  "different number; the file is corrupt") != NULL,
          "size mismatch keeps its message", err.message);
    evm_graph_free(g);
    /* and the same bytes from a file (the mmap path) */
    char path[] = "/tmp/test_onnx_wire_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0 && write(fd, m.p, m.n) == (ssize_t)m.n) {
        g = NULL;
        memset(&err, 0, sizeof err);
        ls = evm_onnx_load_file(path, &g, &err);
        check(ls == EVMAP_ERR_BAD_FILE && strstr(err.message, "declares 41 elements") &&
                  strstr(err.message, path),
              "size mismatch from a file", err.message);
        evm_graph_free(g);
    } else {
        check(0, "temporary file", path);
    }
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    free(inits.p);
    free(t.p);
    free(m.p);
}

/* -------------------------------------------------------- release parts */

typedef struct parts {
    size_t first, next, count;
    int ok;
} parts;

static void record_part(void *ctx, size_t offset, size_t len) {
    parts *p = ctx;
    if (p->count == 0)
        p->first = offset;
    else if (offset != p->next || offset % EVM_WIRE_RELEASE_CHUNK != 0)
        p->ok = 0; /* parts must be consecutive, inner boundaries aligned */
    if (len == 0)
        p->ok = 0;
    p->next = offset + len;
    p->count++;
}

static void test_release_parts(void) {
    size_t n = 3 * EVM_WIRE_RELEASE_CHUNK / 4 + 12345; /* floats: about 3 MiB */
    float *w = malloc(n * sizeof *w);
    if (!w)
        abort();
    for (size_t i = 0; i < n; i++)
        w[i] = (float)(i % 1000);
    buf t = {0}, inits = {0}, m = {0};
    put_key(&t, 1, EVM_WIRE_VARINT);
    put_varint(&t, n);
    put_key(&t, 2, EVM_WIRE_VARINT);
    put_varint(&t, 1);
    put_len(&t, 9, w, n * sizeof *w);
    put_len(&t, 8, "w0", 2);
    put_len(&inits, 5, t.p, t.n);
    model(&m, &inits, 0);
    parts p = {.ok = 1};
    evm_wire_stripped s;
    evm_wire_status st = evm_wire_strip_model(m.p, m.n, record_part, &p, &s);
    check(st == EVM_WIRE_OK && s.n_payloads == 1 && s.payloads[0].len == n * sizeof *w &&
              memcmp(s.payloads[0].data, w, n * sizeof *w) == 0,
          "large payload copied", NULL);
    const uint8_t *at = memmem(m.p, m.n, w, 64);
    check(p.ok && p.count >= 3 && at && p.first == (size_t)(at - m.p) &&
              p.next == p.first + n * sizeof *w,
          "release parts cover the payload exactly", NULL);
    check(s.size < 1024, "stripped copy is small", NULL);
    evm_wire_stripped_free(&s);
    strip_matches_plain(m.p, m.n, "large payload");

    /* Through a file: the mmap path loads the same weights. */
    char path[] = "/tmp/test_onnx_wire_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0 && write(fd, m.p, m.n) == (ssize_t)m.n) {
        evm_graph *g = NULL;
        evmap_error err = {0};
        evmap_status ls = evm_onnx_load_file(path, &g, &err);
        int v = ls == EVMAP_OK ? evm_graph_find_value(g, "w0") : -1;
        check(v >= 0 && g->values[v].tensor.count == n &&
                  memcmp(g->values[v].tensor.data, w, n * sizeof *w) == 0,
              "mmap path loads the weights", err.message);
        evm_graph_free(g);
    } else {
        check(0, "temporary file", path);
    }
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    free(w);
    free(t.p);
    free(inits.p);
    free(m.p);
}

/* ----------------------------------------------------------- hostile */

/* Must end cleanly through both the scanner and the loader. */
static void no_crash(const uint8_t *data, size_t size) {
    evm_wire_stripped s;
    evm_wire_status st = evm_wire_strip_model(data, size, NULL, NULL, &s);
    if (st == EVM_WIRE_OK && (s.size > size || (s.n_payloads && !s.payloads)))
        check(0, "stripped copy is sane", NULL);
    evm_wire_stripped_free(&s);
    evm_graph *g = NULL;
    evmap_error err = {0};
    evmap_status ls = evm_onnx_load_memory(data, size, &g, &err);
    if ((ls == EVMAP_OK) != (g != NULL) || (ls != EVMAP_OK && !err.message[0]))
        check(0, "loader ends cleanly", err.message);
    evm_graph_free(g);
}

static void test_hostile(const uint8_t *model_bytes, size_t model_size) {
    int before = failed;
    /* Every truncation of a small real model, and a sample of the given one. */
    size_t small_n;
    uint8_t *small = read_all(
        "/usr/share/libonnx-testdata/data/pytorch-converted/test_Conv2d/model.onnx", &small_n);
    if (small) {
        for (size_t cut = 0; cut < small_n; cut++) {
            uint8_t *copy = malloc(cut ? cut : 1); /* exact size, so ASan sees overreads */
            memcpy(copy, small, cut);
            no_crash(copy, cut);
            evm_wire_stripped s;
            evm_wire_status st = evm_wire_strip_model(copy, cut, NULL, NULL, &s);
            Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, cut, copy);
            /* Anything the scanner accepts, protobuf-c must agree with. */
            if (st == EVM_WIRE_OK && mp)
                strip_matches_plain(copy, cut, "truncated model");
            if (mp)
                onnx__model_proto__free_unpacked(mp, NULL);
            evm_wire_stripped_free(&s);
            free(copy);
        }
    }
    if (model_bytes) {
        for (size_t cut = 0; cut < model_size; cut += 997 + rnd(4000)) {
            uint8_t *copy = malloc(cut ? cut : 1);
            memcpy(copy, model_bytes, cut);
            evm_wire_stripped s;
            evm_wire_status st = evm_wire_strip_model(copy, cut, NULL, NULL, &s);
            evm_wire_stripped_free(&s);
            Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, cut, copy);
            if (st == EVM_WIRE_OK && mp)
                strip_matches_plain(copy, cut, "truncated real model");
            if (mp)
                onnx__model_proto__free_unpacked(mp, NULL);
            free(copy);
        }
    }
    /* Hand-made hostile messages, at each of the three parsed levels. */
    buf cases[16] = {{0}};
    int nc = 0;
    /* top level: graph length past the end */
    put_key(&cases[nc], 7, EVM_WIRE_LEN);
    put_varint(&cases[nc], 1000);
    put(&cases[nc++], "abc", 3);
    /* top level: a group */
    put_key(&cases[nc], 3, 3);
    put_key(&cases[nc++], 3, 4);
    /* top level: an overlong varint value */
    put_key(&cases[nc], 1, EVM_WIRE_VARINT);
    for (int i = 0; i < 11; i++)
        put(&cases[nc], "\xff", 1);
    put(&cases[nc++], "\x01", 1);
    /* graph: initializer length past the graph's end (but within the file) */
    {
        buf g = {0};
        put_key(&g, 5, EVM_WIRE_LEN);
        put_varint(&g, 10);
        put(&g, "\x08\x01", 2);
        put_len(&cases[nc], 7, g.p, g.n);
        put(&cases[nc++], "0123456789", 10);
        free(g.p);
    }
    /* tensor: raw_data length past the tensor's end */
    {
        buf t = {0}, g = {0};
        put_key(&t, 9, EVM_WIRE_LEN);
        put_varint(&t, 50);
        put(&t, "xy", 2);
        put_len(&g, 5, t.p, t.n);
        put(&g, "\x12\x00", 2);
        put_len(&cases[nc++], 7, g.p, g.n);
        free(t.p);
        free(g.p);
    }
    /* tensor: a group; graph: wire type 7 */
    {
        buf t = {0}, g = {0};
        put_key(&t, 2, 3);
        put_len(&g, 5, t.p, t.n);
        put_len(&cases[nc++], 7, g.p, g.n);
        buf g2 = {0};
        put_key(&g2, 4, 7);
        put_len(&cases[nc++], 7, g2.p, g2.n);
        free(t.p);
        free(g.p);
        free(g2.p);
    }
    /* tensor: truncated fixed64 and fixed32 */
    {
        buf t = {0}, g = {0};
        put_key(&t, 10, EVM_WIRE_FIXED64);
        put(&t, "1234", 4);
        put_len(&g, 5, t.p, t.n);
        put_len(&cases[nc++], 7, g.p, g.n);
        free(t.p);
        free(g.p);
        buf t2 = {0}, g2 = {0};
        put_key(&t2, 4, EVM_WIRE_FIXED32);
        put(&t2, "12", 2);
        put_len(&g2, 5, t2.p, t2.n);
        put_len(&cases[nc++], 7, g2.p, g2.n);
        free(t2.p);
        free(g2.p);
    }
    /* a key cut in the middle */
    put(&cases[nc++], "\x80", 1);
    for (int i = 0; i < nc; i++) {
        uint8_t *copy = malloc(cases[i].n);
        memcpy(copy, cases[i].p, cases[i].n);
        evm_wire_stripped s;
        evm_wire_status st = evm_wire_strip_model(copy, cases[i].n, NULL, NULL, &s);
        char what[32];
        snprintf(what, sizeof what, "case %d", i);
        check(st == EVM_WIRE_MALFORMED && s.message == NULL && s.n_payloads == 0,
              "hostile message is malformed", what);
        evm_graph *g = NULL;
        evmap_error err = {0};
        check(evm_onnx_load_memory(copy, cases[i].n, &g, &err) != EVMAP_OK && g == NULL &&
                  err.message[0],
              "loader rejects a hostile message", what);
        free(copy);
        free(cases[i].p);
    }
    /* Random corruption of a real model's bytes. */
    if (small) {
        for (int iter = 0; iter < 3000; iter++) {
            uint8_t *copy = malloc(small_n);
            memcpy(copy, small, small_n);
            int edits = 1 + (int)rnd(4);
            for (int e = 0; e < edits; e++)
                copy[rnd((uint32_t)small_n)] = (uint8_t)rnd(256);
            no_crash(copy, small_n);
            evm_wire_stripped s;
            Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, small_n, copy);
            if (evm_wire_strip_model(copy, small_n, NULL, NULL, &s) == EVM_WIRE_OK && mp)
                strip_matches_plain(copy, small_n, "corrupted model");
            if (mp)
                onnx__model_proto__free_unpacked(mp, NULL);
            evm_wire_stripped_free(&s);
            free(copy);
        }
    }
    free(small);
    check(failed == before, "hostile inputs end cleanly", NULL);
}

/* Files the mmap path hands to the reading fallback keep their errors. */
static void test_file_fallbacks(void) {
    evm_graph *g = NULL;
    evmap_error err = {0};
    check(evm_onnx_load_file("/dev/null", &g, &err) == EVMAP_ERR_IO &&
              strstr(err.message, "not a regular file"),
          "character device is refused as before", err.message);
    memset(&err, 0, sizeof err);
    check(evm_onnx_load_file("/tmp", &g, &err) != EVMAP_OK && g == NULL, "directory is refused",
          err.message);
    memset(&err, 0, sizeof err);
    check(evm_onnx_load_file("/nonexistent/model.onnx", &g, &err) == EVMAP_ERR_IO, "missing file",
          err.message);
    char path[] = "/tmp/test_onnx_wire_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) {
        memset(&err, 0, sizeof err);
        check(evm_onnx_load_file(path, &g, &err) == EVMAP_ERR_BAD_FILE && g == NULL, "empty file",
              err.message);
        close(fd);
        unlink(path);
    }
}

/* --------------------------------------------------------------- main */

int main(void) {
    test_varints();
    test_keys_and_skip();
    test_hand_made();
    test_release_parts();
    test_file_fallbacks();

    static const char *const models[] = {
        "models/fashion_cnn.onnx",
        "models/fashion_resnet.onnx",
        "/usr/share/libonnx-testdata/data/node/test_conv_with_strides_padding/model.onnx",
        "/usr/share/libonnx-testdata/data/node/test_gemm_default_no_bias/model.onnx",
        "/usr/share/libonnx-testdata/data/node/test_constant/model.onnx",
        "/usr/share/libonnx-testdata/data/node/test_reshape_reduced_dims/model.onnx",
        "/usr/share/libonnx-testdata/data/pytorch-converted/test_Conv2d/model.onnx",
        "/usr/share/libonnx-testdata/data/pytorch-converted/test_BatchNorm2d_eval/model.onnx",
        "/usr/share/libonnx-testdata/data/pytorch-converted/test_Linear/model.onnx",
        "/usr/share/libonnx-testdata/data/pytorch-converted/test_Embedding/model.onnx",
        "/usr/share/libonnx-testdata/data/pytorch-operator/test_operator_conv/model.onnx",
    };
    uint8_t *resnet = NULL;
    size_t resnet_n = 0;
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        size_t n;
        uint8_t *data = read_all(models[i], &n);
        if (!data) {
            check(0, "read model", models[i]);
            continue;
        }
        strip_matches_plain(data, n, models[i]);
        /* load_file (mmap) and load_memory agree with each other */
        evm_graph *a = NULL, *b = NULL;
        evmap_error ea = {0}, eb = {0};
        evmap_status sa = evm_onnx_load_file(models[i], &a, &ea);
        evmap_status sb = evm_onnx_load_memory(data, n, &b, &eb);
        int same = sa == sb;
        if (same && sa == EVMAP_OK) {
            same = a->n_values == b->n_values;
            for (int v = 0; same && v < a->n_values; v++) {
                const evm_tensor *x = &a->values[v].tensor, *y = &b->values[v].tensor;
                same = a->values[v].is_initializer == b->values[v].is_initializer &&
                       x->count == y->count &&
                       (!a->values[v].is_initializer || x->count == 0 ||
                        memcmp(x->data, y->data, x->count * evm_dtype_size(x->dtype)) == 0);
            }
        } else if (same) {
            same = strstr(ea.message, eb.message) != NULL;
        }
        check(same, "load_file and load_memory agree", models[i]);
        evm_graph_free(a);
        evm_graph_free(b);
        if (strstr(models[i], "fashion_resnet")) {
            resnet = data;
            resnet_n = n;
        } else {
            free(data);
        }
    }
    test_hostile(resnet, resnet_n);
    free(resnet);

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
