/* A small strict JSON reader for the files evmap itself writes (the
 * per-image summaries and the index parts that --resume and `evmap index`
 * read back). Anything malformed gives NULL: the caller treats such a file
 * as absent. */
#ifndef EVM_CLI_JSON_READ_H
#define EVM_CLI_JSON_READ_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { JV_NULL, JV_BOOL, JV_NUMBER, JV_STRING, JV_ARRAY, JV_OBJECT } jv_type;

typedef struct jv {
    jv_type type;
    bool boolean;
    double number;
    char *string;     /* JV_STRING */
    int n;            /* JV_ARRAY, JV_OBJECT: entries */
    struct jv *items; /* their values */
    char **keys;      /* JV_OBJECT: their keys */
} jv;

/* Parses text[0..len) as one JSON value (surrounding white space allowed). */
jv *jv_parse(const char *text, size_t len);
/* Reads and parses a whole file; NULL when it is missing or not JSON. */
jv *jv_read_file(const char *path);
void jv_free(jv *v);

/* The member `key` of an object (NULL when v is no object or lacks it). */
const jv *jv_get(const jv *v, const char *key);
/* The string, or NULL when v is no string. */
const char *jv_string(const jv *v);
/* The number in *out; false when v is no number. */
bool jv_number(const jv *v, double *out);

#endif
