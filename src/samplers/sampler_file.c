/*
 * Conditional sampler files. Only the fitted Gaussians are stored; the
 * per-offset factorizations are recomputed on load, so a file cannot carry
 * factors that disagree with its covariances.
 *
 * Layout, all integers and floats little-endian:
 *   0  char[8] magic "EVMSAMPL"        28 u32 joint (0 or 1)
 *   8  u32 version (1)                 32 u64 patches fitted on
 *   12 u32 kind (0 = conditional)      40 u32 tag length t (≤ 255, printable)
 *   16 u32 window                      44 t bytes of tag
 *   20 u32 pad                         then f64 lo, hi per channel,
 *   24 u32 channels                    f64 means (groups × dim),
 *                                      f64 covariances (groups × dim × dim),
 *                                      u64 FNV-1a hash of every byte before it.
 * The loader checks the header against the sampler limits and the file size
 * against the size the header implies before allocating anything; then the
 * hash, finiteness, data range order, symmetry and the Cauchy–Schwarz bound
 * of each covariance; the factorizations finally prove it positive definite
 * (up to the same ridge that fitting allows). Saving writes a temporary file
 * in the destination folder and renames it, so readers never see half a file.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/hash.h"
#include "sampler_internal.h"

#define FILE_MAGIC "EVMSAMPL"
#define FILE_VERSION 1u
#define HEADER_BYTES 44
#define TAG_MAX 255
/* Relative asymmetry tolerated in a stored covariance (rounding by other writers). */
#define SYMMETRY_TOLERANCE 1e-9

/* ---- byte helpers ---- */

static void put_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t double_bits(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bits_double(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static bool tag_is_printable(const char *tag, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (tag[i] < 0x20 || tag[i] > 0x7e)
            return false;
    return true;
}

/* ---- saving ---- */

typedef struct writer {
    FILE *f;
    uint64_t hash; /* FNV-1a of everything written so far */
    bool ok;       /* false after the first failed write */
} writer;

static void write_bytes(writer *w, const void *p, size_t n) {
    w->hash = evm_fnv1a(w->hash, p, n);
    if (w->ok && fwrite(p, 1, n, w->f) != n)
        w->ok = false;
}

static void write_u32(writer *w, uint32_t v) {
    uint8_t b[4];
    put_le(b, v, 4);
    write_bytes(w, b, 4);
}

static void write_u64(writer *w, uint64_t v) {
    uint8_t b[8];
    put_le(b, v, 8);
    write_bytes(w, b, 8);
}

static void write_f64s(writer *w, const double *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        write_u64(w, double_bits(v[i]));
}

static void write_sampler(writer *w, const evm_sampler *s, const char *tag, size_t tag_len) {
    write_bytes(w, FILE_MAGIC, 8);
    write_u32(w, FILE_VERSION);
    write_u32(w, 0);
    write_u32(w, (uint32_t)s->window);
    write_u32(w, (uint32_t)s->pad);
    write_u32(w, (uint32_t)s->channels);
    write_u32(w, s->joint ? 1u : 0u);
    write_u64(w, s->patches);
    write_u32(w, (uint32_t)tag_len);
    write_bytes(w, tag, tag_len);
    for (int c = 0; c < s->channels; c++) {
        double range[2] = {s->lo[c], s->hi[c]};
        write_f64s(w, range, 2);
    }
    size_t groups = (size_t)s->groups;
    write_f64s(w, s->mean, groups * s->dim);
    write_f64s(w, s->cov, groups * s->dim * s->dim);
    uint64_t hash = w->hash;
    write_u64(w, hash);
}

evmap_status evm_sampler_save(const evm_sampler *sampler, const char *tag, const char *path,
                              evmap_error *err) {
    if (sampler->kind != EVM_SAMPLER_CONDITIONAL)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "saving a sampler to '%s': only conditional samplers are saved; "
                        "marginal and constant ones are rebuilt from their inputs",
                        path);
    tag = tag ? tag : "";
    size_t tag_len = strlen(tag);
    if (tag_len > TAG_MAX || !tag_is_printable(tag, tag_len))
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "saving a sampler to '%s': the tag must be at most %d printable "
                        "characters",
                        path, TAG_MAX);
    evmap_status st = EVMAP_OK;
    size_t path_len = strlen(path);
    char *temp = malloc(path_len + 16);
    if (!temp)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "saving a sampler: out of memory");
    snprintf(temp, path_len + 16, "%s.tmp-XXXXXX", path);
    writer w = {NULL, EVM_FNV1A_START, true};
    int fd = mkstemp(temp);
    if (fd < 0) {
        st = evm_fail(err, EVMAP_ERR_IO, "cannot create a temporary file next to '%s': %s", path,
                      strerror(errno));
        goto done;
    }
    /* mkstemp makes the file private; a sampler is meant to be shared. */
    (void)fchmod(fd, 0644);
    w.f = fdopen(fd, "wb");
    if (!w.f) {
        close(fd);
        w.ok = false;
    } else {
        write_sampler(&w, sampler, tag, tag_len);
        w.ok = w.ok && fflush(w.f) == 0 && fsync(fileno(w.f)) == 0;
        w.ok = fclose(w.f) == 0 && w.ok;
    }
    if (!w.ok || rename(temp, path) != 0) {
        st = evm_fail(err, EVMAP_ERR_IO, "cannot write the sampler file '%s': %s", path,
                      strerror(errno));
        unlink(temp);
    }
done:
    free(temp);
    return st;
}

/* ---- loading ---- */

/* Header fields, as read, before validation. */
typedef struct file_header {
    uint32_t version, kind, window, pad, channels, joint, tag_len;
    uint64_t patches;
} file_header;

static evmap_status bad(evmap_error *err, const char *path, const char *what) {
    return evm_fail(err, EVMAP_ERR_BAD_FILE,
                    "sampler file '%s': %s; refit it with 'evmap fit-sampler'", path, what);
}

static evmap_status check_header(const uint8_t *b, const char *path, file_header *h,
                                 evmap_error *err) {
    if (memcmp(b, FILE_MAGIC, 8) != 0)
        return bad(err, path, "not an evmap sampler (wrong magic)");
    h->version = (uint32_t)get_le(b + 8, 4);
    h->kind = (uint32_t)get_le(b + 12, 4);
    h->window = (uint32_t)get_le(b + 16, 4);
    h->pad = (uint32_t)get_le(b + 20, 4);
    h->channels = (uint32_t)get_le(b + 24, 4);
    h->joint = (uint32_t)get_le(b + 28, 4);
    h->patches = get_le(b + 32, 8);
    h->tag_len = (uint32_t)get_le(b + 40, 4);
    if (h->version != FILE_VERSION)
        return evm_fail(err, EVMAP_ERR_BAD_FILE,
                        "sampler file '%s': version %u, this evmap reads version %u; refit it",
                        path, h->version, FILE_VERSION);
    if (h->kind != 0 || h->joint > 1 || h->tag_len > TAG_MAX || h->patches < 2 ||
        h->patches > EVM_SAMPLER_MAX_PATCHES)
        return bad(err, path, "corrupt header (kind, joint flag, tag length or patch count)");
    /* Clamping keeps absurd u32 values from turning into negative ints. */
    int window = h->window > 1000 ? 1000 : (int)h->window;
    int pad = h->pad > 1000 ? 1000 : (int)h->pad;
    int channels = h->channels > 1000 ? 1000 : (int)h->channels;
    evmap_status st =
        evm_conditional_check_params(channels, window, pad, h->joint != 0, EVMAP_ERR_BAD_FILE, err);
    if (st != EVMAP_OK)
        evm_error_prefix(err, "sampler file '%s'", path);
    return st;
}

/* Bytes after the tag that the header implies: ranges, means, covariances,
 * hash. Under 2^30 after check_header: window <= 64, pad <= 16, channels <= 3
 * and dim <= EVM_SAMPLER_MAX_DIM. */
static size_t body_bytes(const file_header *h) {
    size_t l = h->window + 2 * (size_t)h->pad;
    size_t groups = h->joint ? 1 : h->channels;
    size_t dim = (h->joint ? h->channels : 1) * l * l;
    return 16 * (size_t)h->channels + 8 * groups * dim * (1 + dim) + 8;
}

/* Turns n little-endian f64 stored as raw bytes in v into doubles, in place. */
static void decode_f64s(double *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint8_t b[8];
        memcpy(b, &v[i], 8);
        v[i] = bits_double(get_le(b, 8));
    }
}

/* Reads n bytes and adds them to the hash. */
static bool read_hashed(FILE *f, void *p, size_t n, uint64_t *hash) {
    if (fread(p, 1, n, f) != n)
        return false;
    *hash = evm_fnv1a(*hash, p, n);
    return true;
}

/* Checks that the Gaussians are finite, symmetric, with non-negative
 * variances and correlations within [-1, 1]; symmetrises exactly. */
static bool gaussians_valid(evm_sampler *s) {
    size_t n = s->dim;
    for (size_t i = 0; i < (size_t)s->groups * n; i++)
        if (!isfinite(s->mean[i]))
            return false;
    for (int g = 0; g < s->groups; g++) {
        double *cov = s->cov + (size_t)g * n * n;
        for (size_t i = 0; i < n; i++) {
            double d = cov[i * n + i];
            if (!isfinite(d) || d < 0)
                return false;
            for (size_t j = 0; j < i; j++) {
                double a = cov[i * n + j], b = cov[j * n + i];
                if (!isfinite(a) || !isfinite(b) ||
                    fabs(a - b) > SYMMETRY_TOLERANCE * fmax(fabs(a), fabs(b)))
                    return false;
                double limit = sqrt(d * cov[j * n + j]);
                if (fabs(a) > limit * (1 + SYMMETRY_TOLERANCE) + 1e-300)
                    return false;
                cov[i * n + j] = cov[j * n + i] = 0.5 * (a + b);
            }
        }
    }
    return true;
}

static evmap_status read_ranges(FILE *f, evm_sampler *s, uint64_t *hash, const char *path,
                                evmap_error *err) {
    for (int c = 0; c < s->channels; c++) {
        uint8_t b[16];
        if (!read_hashed(f, b, 16, hash))
            return bad(err, path, "truncated");
        double lo = bits_double(get_le(b, 8)), hi = bits_double(get_le(b + 8, 8));
        if (!isfinite(lo) || !isfinite(hi) || lo > hi || fabs(lo) > 3e38 || fabs(hi) > 3e38)
            return bad(err, path, "invalid data range");
        s->lo[c] = (float)lo;
        s->hi[c] = (float)hi;
    }
    return EVMAP_OK;
}

/* Reads everything after the header into s (whose Gaussians are allocated). */
static evmap_status read_body(FILE *f, evm_sampler *s, uint64_t hash, const char *path,
                              evmap_error *err) {
    evmap_status st = read_ranges(f, s, &hash, path, err);
    if (st != EVMAP_OK)
        return st;
    size_t means = (size_t)s->groups * s->dim, covs = means * s->dim;
    uint8_t stored[8];
    if (!read_hashed(f, s->mean, 8 * means, &hash) || !read_hashed(f, s->cov, 8 * covs, &hash) ||
        fread(stored, 1, 8, f) != 8)
        return bad(err, path, "truncated");
    if (get_le(stored, 8) != hash)
        return bad(err, path, "checksum mismatch (the file is corrupt)");
    decode_f64s(s->mean, means);
    decode_f64s(s->cov, covs);
    if (!gaussians_valid(s))
        return bad(err, path, "a mean or covariance is not finite, symmetric or valid");
    return EVMAP_OK;
}

/* Reads the header and tag, checks the file size they imply and builds an
 * empty sampler of that shape. */
static evmap_status read_head(FILE *f, const char *path, evm_sampler **out, char *tag,
                              size_t tag_size, uint64_t *hash, evmap_error *err) {
    uint8_t b[HEADER_BYTES + TAG_MAX + 1];
    struct stat info;
    if (fstat(fileno(f), &info) != 0)
        return evm_fail(err, EVMAP_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
    if (!S_ISREG(info.st_mode))
        return evm_fail(err, EVMAP_ERR_IO, "'%s' is not a regular file; give a sampler file", path);
    if (!read_hashed(f, b, HEADER_BYTES, hash))
        return bad(err, path, "truncated header");
    file_header h = {0};
    evmap_status st = check_header(b, path, &h, err);
    if (st != EVMAP_OK)
        return st;
    size_t expected = HEADER_BYTES + h.tag_len + body_bytes(&h);
    if ((uint64_t)info.st_size != expected)
        return evm_fail(err, EVMAP_ERR_BAD_FILE,
                        "sampler file '%s': %lld bytes, its header implies %zu (%s); refit it",
                        path, (long long)info.st_size, expected,
                        (size_t)info.st_size < expected ? "truncated" : "trailing data");
    char *tag_bytes = (char *)b + HEADER_BYTES;
    if (!read_hashed(f, tag_bytes, h.tag_len, hash))
        return bad(err, path, "truncated tag");
    if (!tag_is_printable(tag_bytes, h.tag_len))
        return bad(err, path, "the tag holds unprintable characters");
    if (tag && tag_size > 0) {
        if (h.tag_len >= tag_size)
            return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                            "loading '%s': the %u-byte tag does not fit a %zu-byte buffer", path,
                            h.tag_len, tag_size);
        memcpy(tag, tag_bytes, h.tag_len);
        tag[h.tag_len] = '\0';
    }
    st = evm_sampler_alloc(EVM_SAMPLER_CONDITIONAL, (int)h.channels, (int)h.window, out, err);
    if (st != EVMAP_OK)
        return st;
    (*out)->pad = (int)h.pad;
    (*out)->joint = h.joint != 0;
    (*out)->patches = (size_t)h.patches;
    return evm_conditional_alloc_gaussians(*out, err);
}

evmap_status evm_sampler_load(const char *path, evm_sampler **out, char *tag, size_t tag_size,
                              evmap_error *err) {
    *out = NULL;
    evm_sampler *s = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return evm_fail(err, EVMAP_ERR_IO, "cannot open the sampler file '%s': %s", path,
                        strerror(errno));
    uint64_t hash = EVM_FNV1A_START;
    evmap_status st = read_head(f, path, &s, tag, tag_size, &hash, err);
    if (st == EVMAP_OK)
        st = read_body(f, s, hash, path, err);
    if (st == EVMAP_OK) {
        st = evm_conditional_prepare(s, true, err);
        if (st != EVMAP_OK)
            evm_error_prefix(err, "sampler file '%s'", path);
    }
    fclose(f);
    if (st != EVMAP_OK) {
        evm_sampler_free(s);
        return st;
    }
    *out = s;
    return EVMAP_OK;
}
