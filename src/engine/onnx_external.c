/*
 * ONNX external data: a tensor whose bytes live in a file beside the model
 * (TensorProto.external_data: location, offset, length, checksum). The model
 * may come from a stranger, so the file must lie inside the model's own
 * folder: absolute locations and '..' components are refused, the path is
 * resolved (realpath) and must stay under the resolved folder, and it is
 * opened with O_NOFOLLOW as a regular file. Offset and length are checked
 * against the file's size and the tensor's declared size before reading.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "onnx_tensor.h"

/* A decimal number of at most 19 digits (below 2^63). */
static bool parse_size(const char *s, uint64_t *out) {
    if (!s || !*s || strlen(s) > 19)
        return false;
    uint64_t v = 0;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9')
            return false;
        v = v * 10 + (uint64_t)(*c - '0');
    }
    *out = v;
    return true;
}

/* True when some '/'-separated component of path is "..". */
static bool has_dotdot(const char *path) {
    for (const char *c = path; *c;) {
        size_t n = strcspn(c, "/");
        if (n == 2 && c[0] == '.' && c[1] == '.')
            return true;
        c += n;
        while (*c == '/')
            c++;
    }
    return false;
}

typedef struct external_ref {
    const char *location;
    uint64_t offset, length;
    bool has_length;
} external_ref;

static evmap_status read_entries(const Onnx__TensorProto *p, const char *name, external_ref *r,
                                 evmap_error *err) {
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < p->n_external_data; i++) {
        const char *key = p->external_data[i]->key ? p->external_data[i]->key : "";
        const char *value = p->external_data[i]->value ? p->external_data[i]->value : "";
        if (!strcmp(key, "location"))
            r->location = value;
        else if (!strcmp(key, "offset") || !strcmp(key, "length")) {
            bool is_offset = key[0] == 'o';
            if (!parse_size(value, is_offset ? &r->offset : &r->length))
                return evm_fail(err, EVMAP_ERR_BAD_FILE,
                                "tensor '%s': external data %s '%.40s' is not a byte count", name,
                                key, value);
            r->has_length |= !is_offset;
        } /* checksum and other keys: not needed to read the data */
    }
    if (!r->location || !*r->location)
        return evm_fail(err, EVMAP_ERR_BAD_FILE,
                        "tensor '%s' keeps its data in an external file but names no location",
                        name);
    if (r->location[0] == '/' || r->location[0] == '\\')
        return evm_fail(err, EVMAP_ERR_BAD_FILE,
                        "tensor '%s': external data location '%.200s' is an absolute path; evmap "
                        "reads external data only from files in the model's folder",
                        name, r->location);
    if (has_dotdot(r->location) || strchr(r->location, '\\'))
        return evm_fail(err, EVMAP_ERR_BAD_FILE,
                        "tensor '%s': external data location '%.200s' leaves the model's folder; "
                        "evmap reads external data only from files in the model's folder",
                        name, r->location);
    return EVMAP_OK;
}

/* Opens the external file: resolved inside dir, a regular file, no final link. */
static evmap_status open_inside(const char *dir, const char *location, const char *name, int *fd,
                                evmap_error *err) {
    char joined[PATH_MAX], real_dir[PATH_MAX], real_file[PATH_MAX];
    if ((size_t)snprintf(joined, sizeof joined, "%s/%s", dir, location) >= sizeof joined)
        return evm_fail(err, EVMAP_ERR_BAD_FILE,
                        "tensor '%s': external data location '%.200s' is too long", name, location);
    if (!realpath(dir, real_dir))
        return evm_fail(err, EVMAP_ERR_IO, "cannot resolve the model's folder '%.200s': %s", dir,
                        strerror(errno));
    if (!realpath(joined, real_file))
        return evm_fail(err, EVMAP_ERR_BAD_FILE,
                        "tensor '%s': cannot open external data file '%.200s': %s", name, location,
                        strerror(errno));
    size_t n = strlen(real_dir);
    bool root = n == 1 && real_dir[0] == '/';
    if (!root && (strncmp(real_file, real_dir, n) != 0 || real_file[n] != '/'))
        return evm_fail(err, EVMAP_ERR_BAD_FILE,
                        "tensor '%s': external data file '%.200s' resolves outside the model's "
                        "folder (a symbolic link); evmap reads external data only from files in "
                        "the model's folder",
                        name, location);
    *fd = open(real_file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (*fd < 0)
        return evm_fail(err, EVMAP_ERR_BAD_FILE,
                        "tensor '%s': cannot open external data file '%.200s': %s", name, location,
                        strerror(errno));
    struct stat sb;
    if (fstat(*fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(*fd);
        *fd = -1;
        return evm_fail(err, EVMAP_ERR_BAD_FILE,
                        "tensor '%s': external data file '%.200s' is not a regular file", name,
                        location);
    }
    return EVMAP_OK;
}

static evmap_status read_all(int fd, uint8_t *buf, size_t need, uint64_t offset, const char *name,
                             const char *location, evmap_error *err) {
    size_t done = 0;
    while (done < need) {
        size_t chunk = need - done < ((size_t)1 << 30) ? need - done : (size_t)1 << 30;
        ssize_t got = pread(fd, buf + done, chunk, (off_t)(offset + done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return evm_fail(
                err, EVMAP_ERR_IO, "tensor '%s': cannot read external data file '%.200s'%s%s", name,
                location, got < 0 ? ": " : " (it shrank)", got < 0 ? strerror(errno) : "");
        done += (size_t)got;
    }
    return EVMAP_OK;
}

evmap_status evm_onnx_read_external(const Onnx__TensorProto *p, const evm_onnx_source *src,
                                    size_t need, void **out, evmap_error *err) {
    *out = NULL;
    const char *name = p->name ? p->name : "(unnamed)";
    external_ref r;
    evmap_status st = read_entries(p, name, &r, err);
    if (st != EVMAP_OK)
        return st;
    int fd;
    st = open_inside(src->dir, r.location, name, &fd, err);
    if (st != EVMAP_OK)
        return st;
    struct stat sb;
    uint64_t size = fstat(fd, &sb) == 0 && sb.st_size > 0 ? (uint64_t)sb.st_size : 0;
    uint64_t length = r.has_length ? r.length : (r.offset <= size ? size - r.offset : 0);
    if (r.offset > size || length > size - r.offset)
        st = evm_fail(err, EVMAP_ERR_BAD_FILE,
                      "tensor '%s': external data file '%.200s' is %llu bytes; offset %llu + "
                      "length %llu passes its end",
                      name, r.location, (unsigned long long)size, (unsigned long long)r.offset,
                      (unsigned long long)length);
    else if (length != need)
        st = evm_fail(err, EVMAP_ERR_BAD_FILE,
                      "tensor '%s': external data in '%.200s' is %llu bytes long but the tensor's "
                      "shape and type need %zu",
                      name, r.location, (unsigned long long)length, need);
    uint8_t *buf = NULL;
    if (st == EVMAP_OK) {
        buf = malloc(need ? need : 1);
        if (!buf)
            st = evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes for tensor '%s'",
                          need, name);
    }
    if (st == EVMAP_OK)
        st = read_all(fd, buf, need, r.offset, name, r.location, err);
    close(fd);
    if (st != EVMAP_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    return EVMAP_OK;
}
