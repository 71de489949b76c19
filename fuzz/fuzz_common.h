/*
 * Helpers shared by the libFuzzer harnesses (fuzz/fuzz_*.c). Each harness is
 * built with clang -fsanitize=fuzzer,address,undefined against the library
 * objects in build-fuzz/ (see the fuzz block at the end of the Makefile).
 */
#ifndef EVM_FUZZ_COMMON_H
#define EVM_FUZZ_COMMON_H

#define _GNU_SOURCE /* memfd_create */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "evmap.h"

/* Loaders that only take a path read the input through an anonymous memory
 * file: no disk traffic, nothing left behind when the process dies. The
 * descriptor is created once and rewritten for every input. */
static int evm_fuzz_fd = -1;

static inline const char *evm_fuzz_file(const uint8_t *data, size_t size, char *path,
                                        size_t path_size) {
    if (evm_fuzz_fd < 0) {
        evm_fuzz_fd = memfd_create("evmap-fuzz", 0);
        if (evm_fuzz_fd < 0) {
            perror("memfd_create");
            abort();
        }
    }
    if (ftruncate(evm_fuzz_fd, 0) != 0 || lseek(evm_fuzz_fd, 0, SEEK_SET) != 0)
        abort();
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(evm_fuzz_fd, data + done, size - done);
        if (n <= 0)
            abort();
        done += (size_t)n;
    }
    snprintf(path, path_size, "/proc/self/fd/%d", evm_fuzz_fd);
    return path;
}

/* Every failure must carry a status of the public set and a one-line,
 * non-empty message: a harness aborts otherwise, so the fuzzer reports it. */
static inline void evm_fuzz_check_error(evmap_status st, const evmap_error *err) {
    if (st == EVMAP_OK)
        return;
    if (st <= EVMAP_OK || st >= EVMAP_STATUS_COUNT || err->status != st ||
        err->message[0] == '\0' || memchr(err->message, '\n', sizeof err->message) ||
        !memchr(err->message, '\0', sizeof err->message)) {
        fprintf(stderr, "bad error report: status %d, message '%.*s'\n", (int)st,
                (int)sizeof err->message, err->message);
        abort();
    }
    /* EVMAP_ERR_INTERNAL is a bug in evmap by definition. */
    if (st == EVMAP_ERR_INTERNAL) {
        fprintf(stderr, "internal error on fuzz input: %s\n", err->message);
        abort();
    }
}

#endif
