/*
 * IDX files (the MNIST format): a big-endian header — two zero bytes, a type
 * byte, a dimension count, then one uint32 per dimension — followed by the
 * data. evmap reads unsigned bytes (type 0x08) with 1 dimension (labels) or
 * 3 (N images of rows × cols). gzip files are inflated transparently; zlib's
 * gz* functions read plain files unchanged, so one path serves both.
 *
 * Invariant: an evm_idx holds exactly the bytes its header declares. The
 * buffer grows with the data actually read, never to the declared size up
 * front, so a lying header cannot make evmap allocate more than the file has.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "base/budget.h"
#include "base/error.h"
#include "image_internal.h"
#include "base/tensor.h"

#define IDX_TYPE_UBYTE 0x08

void evm_idx_release(evm_idx *idx) {
    if (!idx)
        return;
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}

/* zlib's messages start with "path: "; the caller's message names it already. */
static const char *without_path(const char *msg, const char *path) {
    size_t n = strlen(path);
    return strncmp(msg, path, n) == 0 && strncmp(msg + n, ": ", 2) == 0 ? msg + n + 2 : msg;
}

/* Reads up to n bytes into buf and sets *got (short only at the end of the
 * data). A read error, corrupt gzip data or a truncated gzip stream fails:
 * zlib reports the last as Z_BUF_ERROR with a zero-length read. */
static evmap_status gz_read_some(gzFile gz, void *buf, size_t n, size_t *got, const char *path,
                                 evmap_error *err) {
    *got = 0;
    while (*got < n) {
        size_t chunk = n - *got > (1u << 30) ? (1u << 30) : n - *got;
        int r = gzread(gz, (uint8_t *)buf + *got, (unsigned)chunk);
        int zerr = Z_OK;
        const char *msg = gzerror(gz, &zerr);
        if (r < 0 || zerr != Z_OK)
            return evm_fail(err, zerr == Z_ERRNO ? EVMAP_ERR_IO : EVMAP_ERR_BAD_FILE,
                            "cannot read IDX file '%s' (%s); the file is corrupt or truncated",
                            path, zerr == Z_ERRNO ? strerror(errno) : without_path(msg, path));
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return EVMAP_OK;
}

static const char *type_name(int type) {
    switch (type) {
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return "unknown";
    }
}

/* Parses and checks the header; on success idx->ndims/dims are set and
 * *declared is the data size in bytes. */
static evmap_status read_header(gzFile gz, const char *path, evm_idx *idx, size_t *declared,
                                evmap_error *err) {
    uint8_t head[4 + 4 * 3];
    size_t got;
    evmap_status st = gz_read_some(gz, head, 4, &got, path, err);
    if (st != EVMAP_OK)
        return st;
    if (got < 4 || !evm_is_idx(head, 4))
        return evm_fail(err, EVMAP_ERR_BAD_FILE,
                        "'%s' is not an IDX file (bad magic number); give an MNIST-style "
                        "idx file",
                        path);
    if (head[2] != IDX_TYPE_UBYTE)
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED,
                        "IDX file '%s' holds %s values (type 0x%02X); evmap reads unsigned "
                        "bytes (0x08) only",
                        path, type_name(head[2]), head[2]);
    idx->ndims = head[3];
    size_t dim_bytes = 4 * (size_t)idx->ndims;
    st = gz_read_some(gz, head + 4, dim_bytes, &got, path, err);
    if (st != EVMAP_OK)
        return st;
    if (got < dim_bytes)
        return evm_fail(err, EVMAP_ERR_BAD_FILE,
                        "IDX file '%s' ends inside its header; the file is truncated", path);
    size_t total = 1;
    for (int i = 0; i < idx->ndims; i++) {
        const uint8_t *p = head + 4 + 4 * i;
        idx->dims[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (!evm_mul_size(total, idx->dims[i], &total))
            return evm_fail(err, EVMAP_ERR_BAD_FILE,
                            "IDX file '%s' declares a size that overflows; the header is "
                            "corrupt",
                            path);
    }
    *declared = total;
    return EVMAP_OK;
}

/* Reads exactly `declared` bytes, growing the buffer with the data, and
 * checks that nothing follows them. */
static evmap_status read_data(gzFile gz, const char *path, size_t declared, evm_idx *idx,
                              evmap_error *err) {
    size_t cap = declared < (1u << 20) ? declared : (1u << 20), len = 0;
    uint8_t *buf = malloc(cap ? cap : 1);
    evmap_status st = EVMAP_OK;
    if (!buf) {
        st = evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "cannot allocate memory to read '%s'", path);
        goto done;
    }
    while (len < declared) {
        if (len == cap) {
            size_t ncap = cap > declared / 2 ? declared : cap * 2;
            uint8_t *nbuf = realloc(buf, ncap);
            if (!nbuf) {
                st = evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY,
                              "cannot allocate %zu bytes to read IDX file '%s'", ncap, path);
                goto done;
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t got;
        st = gz_read_some(gz, buf + len, cap - len, &got, path, err);
        if (st != EVMAP_OK)
            goto done;
        if (got == 0) {
            st = evm_fail(err, EVMAP_ERR_BAD_FILE,
                          "IDX file '%s' declares %zu data bytes but holds only %zu; the file "
                          "is truncated or its header is wrong",
                          path, declared, len);
            goto done;
        }
        len += got;
    }
    uint8_t extra;
    size_t more;
    st = gz_read_some(gz, &extra, 1, &more, path, err);
    if (st == EVMAP_OK && more != 0)
        st = evm_fail(err, EVMAP_ERR_BAD_FILE,
                      "IDX file '%s' has data after the %zu bytes its header declares; the "
                      "header is wrong",
                      path, declared);
    if (st != EVMAP_OK)
        goto done;
    idx->data = buf;
    idx->size = declared;
    buf = NULL;
done:
    free(buf);
    return st;
}

evmap_status evm_idx_read(const char *path, uint64_t max_memory, evm_idx *idx, evmap_error *err) {
    memset(idx, 0, sizeof *idx);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return evm_fail(err, EVMAP_ERR_IO, "cannot open '%s': %s; check the path", path,
                        strerror(errno));
    if (S_ISDIR(sb.st_mode))
        return evm_fail(err, EVMAP_ERR_IO, "'%s' is a folder, not an IDX file", path);
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return evm_fail(err, EVMAP_ERR_IO, "cannot open '%s': %s; check the path", path,
                        errno ? strerror(errno) : "out of memory");
    size_t declared = 0;
    evmap_status st = read_header(gz, path, idx, &declared, err);
    /* Each image of a set costs a name and a slot: a small gzip file of 1x1
     * images could otherwise demand hundreds of GiB of them. */
    if (st == EVMAP_OK && idx->dims[0] > EVM_IDX_MAX_IMAGES)
        st = evm_fail(err, EVMAP_ERR_TOO_LARGE,
                      "IDX file '%s' holds %u entries, above evmap's limit of %u per file; "
                      "split it",
                      path, idx->dims[0], EVM_IDX_MAX_IMAGES);
    char need_s[EVM_BYTES_STR_SIZE], limit_s[EVM_BYTES_STR_SIZE];
    if (st == EVMAP_OK && max_memory && declared > max_memory)
        st = evm_fail(err, EVMAP_ERR_TOO_LARGE,
                      "IDX file '%s' declares %s of data, above the memory limit of %s "
                      "(--max-memory); raise the limit or split the file",
                      path, evm_bytes_str(declared, need_s), evm_bytes_str(max_memory, limit_s));
    if (st == EVMAP_OK)
        st = read_data(gz, path, declared, idx, err);
    gzclose(gz);
    if (st != EVMAP_OK)
        evm_idx_release(idx);
    return st;
}

evmap_status evm_idx_image(const evm_idx *idx, size_t index, const char *what, evmap_image **out,
                           evmap_error *err) {
    *out = NULL;
    if (idx->ndims != 3 || index >= idx->dims[0])
        return evm_fail(err, EVMAP_ERR_INTERNAL, "image %zu of %s is out of range", index, what);
    evmap_image *img;
    evmap_status st = evm_image_alloc((int)idx->dims[2], (int)idx->dims[1], 1, 0, what, &img, err);
    if (st != EVMAP_OK)
        return st;
    size_t n = (size_t)idx->dims[1] * idx->dims[2];
    const uint8_t *src = idx->data + index * n;
    for (size_t i = 0; i < n; i++)
        img->pixels[i] = (float)src[i] / 255.0f;
    *out = img;
    return EVMAP_OK;
}

evmap_status evmap_idx_load_labels(const char *path, uint8_t **labels, size_t *count,
                                   evmap_error *err) {
    if (!labels || !count || !path)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "evmap_idx_load_labels: path, labels and count must not be NULL");
    *labels = NULL;
    *count = 0;
    evm_idx idx;
    evmap_status st = evm_idx_read(path, 0, &idx, err);
    if (st != EVMAP_OK)
        return st;
    if (idx.ndims != 1) {
        evm_idx_release(&idx);
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "IDX file '%s' has %d dimensions, not 1; give a labels file "
                        "(like t10k-labels-idx1-ubyte.gz)",
                        path, idx.ndims);
    }
    *labels = idx.data;
    *count = idx.size;
    return EVMAP_OK;
}

void evmap_idx_free_labels(uint8_t *labels) {
    free(labels);
}
