/* A small JSON writer into memory, committed atomically to a file. Commas and
 * nesting are tracked so callers only say what comes next. */
#ifndef EVM_CLI_JSON_H
#define EVM_CLI_JSON_H

#include <stdbool.h>
#include <stdio.h>

#include "evmap.h"

#define JSON_MAX_DEPTH 16

typedef struct json_writer {
    FILE *f; /* memory stream */
    char *buf;
    size_t size;
    int depth;
    bool first[JSON_MAX_DEPTH]; /* no element written yet at this depth */
    bool after_key;             /* a key was written; the value needs no comma */
    bool compact;               /* one line (JSON lines), not indented */
    bool exact;                 /* numbers with 17 digits: they read back to the same double */
} json_writer;

/* Writes s as a JSON string literal: quotes, escapes, and U+FFFD for bytes
 * that are not UTF-8 (labels and file names come from users' files). */
void json_write_string(FILE *f, const char *s);

void json_start(json_writer *j);
void json_begin_object(json_writer *j);
void json_end_object(json_writer *j);
void json_begin_array(json_writer *j);
void json_end_array(json_writer *j);
void json_key(json_writer *j, const char *key);
void json_string(json_writer *j, const char *s);
void json_number(json_writer *j, double v); /* NaN and infinities become null */
void json_int(json_writer *j, long long v);
/* n bytes as a base64 string (RFC 4648, padded). */
void json_base64(json_writer *j, const void *data, size_t n);
void json_bool(json_writer *j, bool v);
void json_null(json_writer *j);
void json_key_string(json_writer *j, const char *key, const char *s);
void json_key_number(json_writer *j, const char *key, double v);
void json_key_int(json_writer *j, const char *key, long long v);
void json_key_bool(json_writer *j, const char *key, bool v);
/* The document plus a newline, for the caller to free (NULL when out of
 * memory); frees the writer. */
char *json_take(json_writer *j, size_t *len);
/* Writes the document (plus a newline) to path atomically and frees the writer. */
evmap_status json_finish(json_writer *j, const char *path, evmap_error *err);

#endif
