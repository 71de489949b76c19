/*
 * Atomic file output, shared by the NPY, PNG and JSON writers: everything is
 * written to "<path>.tmp.<pid>" in the same folder (so the final rename never
 * crosses file systems) and renamed over path only once it is complete, so a
 * reader never sees a partial file and a failure leaves no file behind.
 *
 * Usage:
 *     evm_atomic_file af;
 *     st = evm_atomic_open(&af, path, err);      // af is valid even on failure
 *     if (st == EVMAP_OK) st = evm_atomic_write(&af, data, n, err);
 *     if (st == EVMAP_OK) st = evm_atomic_commit(&af, err);
 *     evm_atomic_abort(&af);                     // no-op after a commit
 *
 * Invariant: while af.f is non-NULL the temporary file exists on disk; after
 * commit (successful or not) or abort, af.f is NULL and no temporary file is
 * left. path must stay valid until then. Not for two threads writing the same
 * path at once (they would share the temporary name).
 */
#ifndef EVM_ATOMIC_FILE_H
#define EVM_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "evmap.h"

typedef struct evm_atomic_file {
    FILE *f;          /* the temporary file; NULL when closed */
    char *tmp_path;   /* "<path>.tmp.<pid>", malloc'd; NULL when released */
    const char *path; /* the final name (caller-owned) */
} evm_atomic_file;

/* Creates the temporary file. Fails with EVMAP_ERR_IO naming path (for
 * example when its folder does not exist); af can be aborted either way. */
evmap_status evm_atomic_open(evm_atomic_file *af, const char *path, evmap_error *err);

/* fwrite that reports a short write as EVMAP_ERR_IO naming the final path. */
evmap_status evm_atomic_write(evm_atomic_file *af, const void *data, size_t size, evmap_error *err);

/* Closes the temporary file (checking for deferred write errors) and renames
 * it over path. On failure the temporary file is removed. */
evmap_status evm_atomic_commit(evm_atomic_file *af, evmap_error *err);

/* Closes and removes the temporary file if it is still open. */
void evm_atomic_abort(evm_atomic_file *af);

#endif
