/* JSON writer (see json.h). */
#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/atomic_file.h"

void json_start(json_writer *j) {
    memset(j, 0, sizeof *j);
    j->f = open_memstream(&j->buf, &j->size);
    j->first[0] = true;
}

/* Comma and indentation before a value or key. */
static void separate(json_writer *j) {
    if (!j->f)
        return;
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (j->depth > 0 && j->compact) {
        if (!j->first[j->depth])
            fputs(", ", j->f);
    } else if (j->depth > 0) {
        fputs(j->first[j->depth] ? "\n" : ",\n", j->f);
        for (int i = 0; i < j->depth; i++)
            fputs("  ", j->f);
    }
    j->first[j->depth] = false;
}

static void open_scope(json_writer *j, char c) {
    separate(j);
    if (j->f)
        fputc(c, j->f);
    if (j->depth + 1 < JSON_MAX_DEPTH)
        j->first[++j->depth] = true;
}

static void close_scope(json_writer *j, char c) {
    bool empty = j->first[j->depth];
    if (j->depth > 0)
        j->depth--;
    if (!j->f)
        return;
    if (!empty && !j->compact) {
        fputc('\n', j->f);
        for (int i = 0; i < j->depth; i++)
            fputs("  ", j->f);
    }
    fputc(c, j->f);
}

void json_begin_object(json_writer *j) {
    open_scope(j, '{');
}
void json_end_object(json_writer *j) {
    close_scope(j, '}');
}
void json_begin_array(json_writer *j) {
    open_scope(j, '[');
}
void json_end_array(json_writer *j) {
    close_scope(j, ']');
}

/* Length of the well-formed UTF-8 sequence at s (1 to 4), or 0. */
static int utf8_length(const unsigned char *s) {
    int n = s[0] < 0xc2 ? 0 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : s[0] < 0xf5 ? 4 : 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    /* overlong three- and four-byte forms, surrogates, beyond U+10FFFF */
    if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
        (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] >= 0x90))
        return 0;
    return n;
}

/* Labels and file names come from users' files: bytes that are not UTF-8
 * become U+FFFD, so the output stays valid JSON. */
void json_write_string(FILE *f, const char *s) {
    fputc('"', f);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        if (c >= 0x80) {
            int n = utf8_length(p);
            if (n)
                fwrite(p, 1, (size_t)n, f);
            else
                fputs("\\ufffd", f);
            p += n ? n : 1;
            continue;
        }
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
        p++;
    }
    fputc('"', f);
}

static void raw_string(json_writer *j, const char *s) {
    json_write_string(j->f, s);
}

void json_key(json_writer *j, const char *key) {
    separate(j);
    if (!j->f)
        return;
    raw_string(j, key);
    fputs(": ", j->f);
    j->after_key = true;
}

void json_string(json_writer *j, const char *s) {
    separate(j);
    if (j->f)
        raw_string(j, s ? s : "");
}

void json_number(json_writer *j, double v) {
    separate(j);
    if (!j->f)
        return;
    if (isfinite(v))
        fprintf(j->f, j->exact ? "%.17g" : "%.9g", v);
    else
        fputs("null", j->f);
}

void json_base64(json_writer *j, const void *data, size_t n) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    separate(j);
    if (!j->f)
        return;
    fputc('"', j->f);
    for (size_t i = 0; i < n; i += 3) {
        unsigned long v = (unsigned long)p[i] << 16 |
                          (i + 1 < n ? (unsigned long)p[i + 1] << 8 : 0) |
                          (i + 2 < n ? p[i + 2] : 0);
        fputc(t[v >> 18 & 63], j->f);
        fputc(t[v >> 12 & 63], j->f);
        fputc(i + 1 < n ? t[v >> 6 & 63] : '=', j->f);
        fputc(i + 2 < n ? t[v & 63] : '=', j->f);
    }
    fputc('"', j->f);
}

void json_int(json_writer *j, long long v) {
    separate(j);
    if (j->f)
        fprintf(j->f, "%lld", v);
}

void json_bool(json_writer *j, bool v) {
    separate(j);
    if (j->f)
        fputs(v ? "true" : "false", j->f);
}

void json_null(json_writer *j) {
    separate(j);
    if (j->f)
        fputs("null", j->f);
}

void json_key_string(json_writer *j, const char *key, const char *s) {
    json_key(j, key);
    json_string(j, s);
}

void json_key_number(json_writer *j, const char *key, double v) {
    json_key(j, key);
    json_number(j, v);
}

void json_key_int(json_writer *j, const char *key, long long v) {
    json_key(j, key);
    json_int(j, v);
}

void json_key_bool(json_writer *j, const char *key, bool v) {
    json_key(j, key);
    json_bool(j, v);
}

char *json_take(json_writer *j, size_t *len) {
    char *text = NULL;
    *len = 0;
    if (j->f && fputc('\n', j->f) != EOF && fclose(j->f) == 0) {
        text = j->buf;
        *len = j->size;
    } else {
        if (j->f)
            fclose(j->f);
        free(j->buf);
    }
    memset(j, 0, sizeof *j);
    return text;
}

evmap_status json_finish(json_writer *j, const char *path, evmap_error *err) {
    evmap_status st = EVMAP_OK;
    if (!j->f || fputc('\n', j->f) == EOF || fclose(j->f) != 0) {
        err->status = st = EVMAP_ERR_OUT_OF_MEMORY;
        snprintf(err->message, sizeof err->message, "out of memory writing '%s'", path);
    } else {
        evm_atomic_file af;
        st = evm_atomic_open(&af, path, err);
        if (st == EVMAP_OK)
            st = evm_atomic_write(&af, j->buf, j->size, err);
        if (st == EVMAP_OK)
            st = evm_atomic_commit(&af, err);
        evm_atomic_abort(&af);
    }
    free(j->buf);
    memset(j, 0, sizeof *j);
    return st;
}
