/*
 * Write-to-temporary-then-rename file output (see atomic_file.h). Every
 * failure path removes the temporary file before returning, so callers only
 * ever have to call evm_atomic_abort once at their cleanup label.
 */
#include "atomic_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"

/* errno may be 0 when stdio only remembers that an earlier write failed. */
static const char *errno_text(int e) {
    return e ? strerror(e) : "write error";
}

static void release(evm_atomic_file *af) {
    if (af->f)
        fclose(af->f);
    af->f = NULL;
    if (af->tmp_path)
        remove(af->tmp_path);
    free(af->tmp_path);
    af->tmp_path = NULL;
}

evmap_status evm_atomic_open(evm_atomic_file *af, const char *path, evmap_error *err) {
    af->f = NULL;
    af->tmp_path = NULL;
    af->path = path;
    if (!path || !*path)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "output path is empty; pass the name of the file to write");
    size_t size = strlen(path) + 32; /* ".tmp." + the digits of a pid + NUL */
    af->tmp_path = malloc(size);
    if (!af->tmp_path)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes for '%s'", size,
                        path);
    snprintf(af->tmp_path, size, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp_path, "wb");
    if (!af->f) {
        int e = errno;
        free(af->tmp_path); /* nothing was created: remove() must not run */
        af->tmp_path = NULL;
        return evm_fail(err, EVMAP_ERR_IO,
                        "cannot create '%s' (%s); check that its folder exists and is writable",
                        path, strerror(e));
    }
    return EVMAP_OK;
}

evmap_status evm_atomic_write(evm_atomic_file *af, const void *data, size_t size,
                              evmap_error *err) {
    if (size == 0)
        return EVMAP_OK;
    errno = 0;
    if (!af->f || fwrite(data, 1, size, af->f) != size)
        return evm_fail(err, EVMAP_ERR_IO, "cannot write '%s' (%s); check free disk space",
                        af->path, errno_text(errno));
    return EVMAP_OK;
}

evmap_status evm_atomic_commit(evm_atomic_file *af, evmap_error *err) {
    if (!af->f) {
        release(af);
        return evm_fail(err, EVMAP_ERR_INTERNAL, "'%s' was committed without being open",
                        af->path ? af->path : "(null)");
    }
    errno = 0;
    int failed = ferror(af->f);
    /* fclose flushes the stdio buffer: a full disk often shows only here. */
    int close_failed = fclose(af->f) != 0;
    int e = errno;
    af->f = NULL;
    if (failed || close_failed) {
        release(af);
        return evm_fail(err, EVMAP_ERR_IO, "cannot write '%s' (%s); check free disk space",
                        af->path, errno_text(e));
    }
    if (rename(af->tmp_path, af->path) != 0) {
        e = errno;
        release(af);
        return evm_fail(err, EVMAP_ERR_IO,
                        "cannot replace '%s' (%s); check that it is not a folder and that its "
                        "folder is writable",
                        af->path, strerror(e));
    }
    free(af->tmp_path); /* renamed: the name no longer exists to remove */
    af->tmp_path = NULL;
    return EVMAP_OK;
}

void evm_atomic_abort(evm_atomic_file *af) {
    if (af)
        release(af);
}
