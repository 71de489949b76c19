/* Strict recursive-descent JSON reader (json_read.h). */
#include "json_read.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define JV_MAX_DEPTH 32

typedef struct reader {
    const char *p, *end;
    int depth;
} reader;

static void jv_clear(jv *v) {
    free(v->string);
    for (int i = 0; i < v->n; i++) {
        jv_clear(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    memset(v, 0, sizeof *v);
}

void jv_free(jv *v) {
    if (!v)
        return;
    jv_clear(v);
    free(v);
}

static void skip_space(reader *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static bool literal(reader *r, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n))
        return false;
    r->p += n;
    return true;
}

static int hex4(const char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A \u escape at r->p (after the backslash and 'u'), surrogate pairs joined. */
static bool unicode_escape(reader *r, uint32_t *cp) {
    if (r->end - r->p < 4 || hex4(r->p) < 0)
        return false;
    *cp = (uint32_t)hex4(r->p);
    r->p += 4;
    if (*cp >= 0xd800 && *cp < 0xdc00) {
        if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' || hex4(r->p + 2) < 0xdc00 ||
            hex4(r->p + 2) > 0xdfff)
            return false;
        *cp = 0x10000 + ((*cp - 0xd800) << 10) + ((uint32_t)hex4(r->p + 2) - 0xdc00);
        r->p += 6;
    } else if (*cp >= 0xdc00 && *cp < 0xe000) {
        return false;
    }
    return true;
}

/* A string literal at r->p (the opening quote); its bytes in *out. */
static bool parse_string(reader *r, char **out) {
    r->p++;
    /* escapes never lengthen the text: the raw span bounds the result */
    const char *q = r->p;
    while (q < r->end && *q != '"')
        q += *q == '\\' && q + 1 < r->end ? 2 : 1;
    if (q >= r->end)
        return false;
    char *s = malloc((size_t)(q - r->p) + 1), *w = s;
    if (!s)
        return false;
    while (r->p < q) {
        char c = *r->p++;
        if ((unsigned char)c < 0x20)
            goto bad;
        if (c != '\\') {
            *w++ = c;
            continue;
        }
        char e = *r->p++;
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        const char *at = strchr(from, e);
        uint32_t cp;
        if (e && at)
            *w++ = to[at - from];
        else if (e == 'u' && unicode_escape(r, &cp) && cp != 0)
            w += put_utf8(w, cp);
        else
            goto bad;
    }
    r->p = q + 1;
    *w = '\0';
    *out = s;
    return true;
bad:
    free(s);
    return false;
}

static bool parse_number(reader *r, double *out) {
    const char *start = r->p;
    if (r->p < r->end && *r->p == '-')
        r->p++;
    while (r->p < r->end && strchr("0123456789.eE+-", *r->p))
        r->p++;
    size_t n = (size_t)(r->p - start);
    char buf[64];
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, start, n);
    buf[n] = '\0';
    char *endp;
    *out = strtod(buf, &endp);
    return *endp == '\0';
}

static bool parse_value(reader *r, jv *v);

/* Appends one entry to an array or object. */
static jv *grow(jv *v, bool keyed) {
    if ((v->n & (v->n - 1)) == 0) { /* capacity doubles at powers of two */
        size_t cap = v->n ? (size_t)v->n * 2 : 1;
        jv *items = realloc(v->items, cap * sizeof *items);
        if (!items)
            return NULL;
        v->items = items;
        if (keyed) {
            char **keys = realloc(v->keys, cap * sizeof *keys);
            if (!keys)
                return NULL;
            v->keys = keys;
        }
    }
    jv *e = &v->items[v->n];
    memset(e, 0, sizeof *e);
    if (keyed)
        v->keys[v->n] = NULL;
    v->n++;
    return e;
}

static bool parse_container(reader *r, jv *v, bool object) {
    v->type = object ? JV_OBJECT : JV_ARRAY;
    char close = object ? '}' : ']';
    r->p++;
    skip_space(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
        return true;
    }
    for (;;) {
        skip_space(r);
        char *key = NULL;
        if (object) {
            if (r->p >= r->end || *r->p != '"' || !parse_string(r, &key))
                return false;
            skip_space(r);
            if (r->p >= r->end || *r->p++ != ':') {
                free(key);
                return false;
            }
        }
        jv *e = grow(v, object);
        if (!e) {
            free(key);
            return false;
        }
        if (object)
            v->keys[v->n - 1] = key;
        if (!parse_value(r, e))
            return false;
        skip_space(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == close) {
            r->p++;
            return true;
        }
        return false;
    }
}

static bool parse_value(reader *r, jv *v) {
    skip_space(r);
    if (r->p >= r->end || ++r->depth > JV_MAX_DEPTH)
        return false;
    bool ok;
    char c = *r->p;
    if (c == '{' || c == '[') {
        ok = parse_container(r, v, c == '{');
    } else if (c == '"') {
        v->type = JV_STRING;
        ok = parse_string(r, &v->string);
    } else if (c == 't' || c == 'f') {
        v->type = JV_BOOL;
        v->boolean = c == 't';
        ok = literal(r, c == 't' ? "true" : "false");
    } else if (c == 'n') {
        v->type = JV_NULL;
        ok = literal(r, "null");
    } else {
        v->type = JV_NUMBER;
        ok = parse_number(r, &v->number);
    }
    r->depth--;
    return ok;
}

jv *jv_parse(const char *text, size_t len) {
    reader r = {text, text + len, 0};
    jv *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    bool ok = parse_value(&r, v);
    skip_space(&r);
    if (!ok || r.p != r.end) {
        jv_free(v);
        return NULL;
    }
    return v;
}

jv *jv_read_file(const char *path) {
    size_t size;
    char *buf = (char *)cli_read_file(path, (size_t)1 << 30, &size);
    jv *v = buf ? jv_parse(buf, size) : NULL;
    free(buf);
    return v;
}

const jv *jv_get(const jv *v, const char *key) {
    if (!v || v->type != JV_OBJECT)
        return NULL;
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->keys[i], key))
            return &v->items[i];
    return NULL;
}

const char *jv_string(const jv *v) {
    return v && v->type == JV_STRING ? v->string : NULL;
}

bool jv_number(const jv *v, double *out) {
    if (!v || v->type != JV_NUMBER)
        return false;
    *out = v->number;
    return true;
}
