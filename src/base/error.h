/*
 * Internal helpers for filling an evmap_error. Every failure path in the
 * library goes through evm_fail so that the status and the message agree.
 */
#ifndef EVM_ERROR_H
#define EVM_ERROR_H

#include "evmap.h"

#if defined(__GNUC__)
#define EVM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define EVM_PRINTF(a, b)
#endif

/* Records status and a formatted one-line message in err (which may be NULL)
 * and returns status, so callers can write `return evm_fail(err, ...)`. */
evmap_status evm_fail(evmap_error *err, evmap_status status, const char *fmt, ...) EVM_PRINTF(3, 4);

/* Prepends "context: " to the message already in err. */
void evm_error_prefix(evmap_error *err, const char *fmt, ...) EVM_PRINTF(2, 3);

#endif
