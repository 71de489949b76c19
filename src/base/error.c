/* Error recording and status names. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const status_names[EVMAP_STATUS_COUNT] = {
    [EVMAP_OK] = "ok",
    [EVMAP_ERR_INVALID_ARGUMENT] = "invalid argument",
    [EVMAP_ERR_IO] = "I/O error",
    [EVMAP_ERR_BAD_FILE] = "bad file",
    [EVMAP_ERR_UNSUPPORTED] = "unsupported",
    [EVMAP_ERR_TOO_LARGE] = "too large",
    [EVMAP_ERR_OUT_OF_MEMORY] = "out of memory",
    [EVMAP_ERR_CANCELLED] = "cancelled",
    [EVMAP_ERR_INTERNAL] = "internal error",
};

const char *evmap_status_name(evmap_status status) {
    if ((unsigned)status >= EVMAP_STATUS_COUNT || !status_names[status])
        return "unknown status";
    return status_names[status];
}

int evmap_status_is_bad_input(evmap_status status) {
    return status == EVMAP_ERR_INVALID_ARGUMENT || status == EVMAP_ERR_IO ||
           status == EVMAP_ERR_BAD_FILE || status == EVMAP_ERR_UNSUPPORTED ||
           status == EVMAP_ERR_TOO_LARGE;
}

/* Newlines would break the one-line contract of messages. */
static void flatten_newlines(char *s) {
    for (; *s; s++)
        if (*s == '\n' || *s == '\r')
            *s = ' ';
}

evmap_status evm_fail(evmap_error *err, evmap_status status, const char *fmt, ...) {
    if (!err)
        return status;
    err->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    flatten_newlines(err->message);
    return status;
}

void evm_error_prefix(evmap_error *err, const char *fmt, ...) {
    if (!err)
        return;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[sizeof err->message];
    memcpy(old, err->message, sizeof old);
    snprintf(err->message, sizeof err->message, "%s: %s", prefix, old);
    flatten_newlines(err->message);
}
