/*
 * Image loading entry points: reads a file, picks the decoder from the first
 * bytes (never from the name), and owns the size limits and allocation that
 * every decoder shares. Images are planar floats in [0, 1]; channels 1 or 3.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/budget.h"
#include "base/error.h"
#include "image_internal.h"
#include "base/tensor.h"

/* Reads in growing chunks rather than trusting st_size, so pipes and files
 * that change while being read are handled the same way. */
static evmap_status read_stream(FILE *f, const char *path, size_t hint, uint8_t **data,
                                size_t *size, evmap_error *err) {
    size_t cap = hint + 1, len = 0; /* +1: the final read that sees EOF */
    uint8_t *buf = malloc(cap);
    evmap_status st = EVMAP_OK;
    if (!buf) {
        st = evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes to read '%s'", cap,
                      path);
        goto done;
    }
    for (;;) {
        if (len == cap) {
            size_t ncap;
            uint8_t *nbuf = NULL;
            if (evm_mul_size(cap, 2, &ncap))
                nbuf = realloc(buf, ncap);
            if (!nbuf) {
                st = evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY,
                              "cannot allocate memory to read '%s' (over %zu bytes)", path, cap);
                goto done;
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        st = evm_fail(err, EVMAP_ERR_IO, "cannot read '%s': %s; check that it is a readable file",
                      path, strerror(errno));
        goto done;
    }
    *data = buf;
    *size = len;
    buf = NULL;
done:
    free(buf);
    return st;
}

evmap_status evm_read_file(const char *path, uint64_t max_bytes, uint8_t **data, size_t *size,
                           evmap_error *err) {
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return evm_fail(err, EVMAP_ERR_IO, "cannot open '%s': %s; check the path", path,
                        strerror(errno));
    struct stat sb;
    evmap_status st;
    if (fstat(fileno(f), &sb) != 0) {
        st = evm_fail(err, EVMAP_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
    } else if (S_ISDIR(sb.st_mode)) {
        st = evm_fail(err, EVMAP_ERR_IO, "'%s' is a folder, not an image file; give a file path",
                      path);
    } else if (max_bytes && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > max_bytes) {
        char size_s[EVM_BYTES_STR_SIZE], limit_s[EVM_BYTES_STR_SIZE];
        st = evm_fail(err, EVMAP_ERR_TOO_LARGE,
                      "'%s' is %s, above the memory limit of %s (--max-memory); raise the limit",
                      path, evm_bytes_str((uint64_t)sb.st_size, size_s),
                      evm_bytes_str(max_bytes, limit_s));
    } else {
        size_t hint =
            S_ISREG(sb.st_mode) && (uint64_t)sb.st_size < SIZE_MAX / 2 ? (size_t)sb.st_size : 4096;
        st = read_stream(f, path, hint, data, size, err);
    }
    fclose(f);
    return st;
}

int evm_is_png(const uint8_t *d, size_t n) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    return n >= 8 && memcmp(d, sig, 8) == 0;
}

int evm_is_jpeg(const uint8_t *d, size_t n) {
    return n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff;
}

int evm_is_gzip(const uint8_t *d, size_t n) {
    return n >= 2 && d[0] == 0x1f && d[1] == 0x8b;
}

int evm_is_idx(const uint8_t *d, size_t n) {
    return n >= 4 && d[0] == 0 && d[1] == 0 && d[3] >= 1 && d[3] <= 3;
}

const char *evm_other_image_format(const uint8_t *d, size_t n) {
    if (n >= 4 && memcmp(d, "GIF8", 4) == 0)
        return "GIF";
    if (n >= 14 && memcmp(d, "BM", 2) == 0)
        return "BMP";
    if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
        return "WebP";
    if (n >= 4 && (memcmp(d, "II*\0", 4) == 0 || memcmp(d, "MM\0*", 4) == 0))
        return "TIFF";
    return NULL;
}

static evmap_status decode(const uint8_t *d, size_t n, uint64_t max_memory, const char *what,
                           evmap_image **out, evmap_error *err) {
    if (evm_is_png(d, n))
        return evm_png_decode(d, n, max_memory, what, out, err);
    if (evm_is_jpeg(d, n))
        return evm_jpeg_decode(d, n, max_memory, what, out, err);
    const char *fmt =
        evm_is_gzip(d, n) || evm_is_idx(d, n) ? "IDX or gzip" : evm_other_image_format(d, n);
    if (fmt)
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED,
                        "%s is a %s file, not PNG or JPEG; convert it to PNG (IDX files are read "
                        "through an image set)",
                        what, fmt);
    if (n == 0)
        return evm_fail(err, EVMAP_ERR_BAD_FILE, "%s is empty; give a PNG or JPEG image", what);
    return evm_fail(err, EVMAP_ERR_BAD_FILE,
                    "%s is not a PNG or JPEG image (unrecognised first bytes); give a PNG or "
                    "JPEG file",
                    what);
}

evmap_status evm_image_load_limited(const char *path, uint64_t max_memory, evmap_image **out,
                                    evmap_error *err) {
    if (!out)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "evmap_image_load: out is NULL");
    *out = NULL;
    if (!path)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "evmap_image_load: path is NULL");
    uint8_t *data;
    size_t size;
    evmap_status st = evm_read_file(path, max_memory, &data, &size, err);
    if (st != EVMAP_OK)
        return st;
    char what[400];
    snprintf(what, sizeof what, "'%s'", path);
    /* The file's bytes stay in memory while it is decoded. */
    uint64_t left = max_memory > size ? max_memory - size : 1;
    st = decode(data, size, max_memory ? left : 0, what, out, err);
    free(data);
    return st;
}

evmap_status evmap_image_load(const char *path, evmap_image **out, evmap_error *err) {
    return evm_image_load_limited(path, 0, out, err);
}

evmap_status evmap_image_load_memory(const void *data, size_t size, evmap_image **out,
                                     evmap_error *err) {
    if (!out)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "evmap_image_load_memory: out is NULL");
    *out = NULL;
    if (!data && size > 0)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "evmap_image_load_memory: data is NULL but size is %zu", size);
    return decode(data ? data : "", size, 0, "the image in memory", out, err);
}
