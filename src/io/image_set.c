/*
 * evmap_image_set: an ordered list of images gathered from image files,
 * folders and IDX files. Plain images are checked by their magic bytes when
 * added and decoded only when loaded. An IDX file is read (and gunzipped)
 * once when added — gzip offers no random access — and each entry is turned
 * into floats when loaded.
 *
 * Invariants: entries are in the order added; a folder contributes its .png,
 * .jpg and .jpeg files sorted by byte value (strcmp), so the order does not
 * depend on the locale or the file system; a failed add leaves the set as it
 * was. Loading does not modify the set, so threads may load concurrently.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "base/error.h"
#include "image_internal.h"
#include "base/tensor.h"

typedef struct source {
    char *path;
    int is_idx;
    evm_idx idx; /* is_idx only */
} source;

typedef struct entry {
    char *name;    /* for outputs */
    size_t source; /* index into sources */
    size_t item;   /* IDX entry index; 0 for plain images */
} entry;

struct evmap_image_set {
    source *sources;
    size_t n_sources, cap_sources;
    entry *entries;
    size_t n_entries, cap_entries;
    uint64_t max_memory; /* for each decode and IDX file; 0: no limit */
};

void evmap_image_set_limit_memory(evmap_image_set *set, uint64_t max_memory) {
    if (set)
        set->max_memory = max_memory;
}

evmap_status evmap_image_set_create(evmap_image_set **out, evmap_error *err) {
    if (!out)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "evmap_image_set_create: out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "cannot allocate an image set");
    return EVMAP_OK;
}

/* Drops entries and sources beyond the given counts (rollback and free). */
static void truncate_set(evmap_image_set *set, size_t n_sources, size_t n_entries) {
    for (size_t i = n_entries; i < set->n_entries; i++)
        free(set->entries[i].name);
    for (size_t i = n_sources; i < set->n_sources; i++) {
        free(set->sources[i].path);
        evm_idx_release(&set->sources[i].idx);
    }
    set->n_entries = n_entries;
    set->n_sources = n_sources;
}

void evmap_image_set_free(evmap_image_set *set) {
    if (!set)
        return;
    truncate_set(set, 0, 0);
    free(set->sources);
    free(set->entries);
    free(set);
}

size_t evmap_image_set_count(const evmap_image_set *set) {
    return set ? set->n_entries : 0;
}

const char *evmap_image_set_name(const evmap_image_set *set, size_t index) {
    if (!set || index >= set->n_entries)
        return NULL;
    return set->entries[index].name;
}

const char *evmap_image_set_path(const evmap_image_set *set, size_t index) {
    if (!set || index >= set->n_entries)
        return NULL;
    return set->sources[set->entries[index].source].path;
}

/* Returns items grown to hold at least `need` items of `elem` bytes (the
 * same pointer when they fit), or NULL with items untouched. */
static void *grow(void *items, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap)
        return items;
    size_t want = *cap ? *cap : 16, bytes;
    while (want < need)
        if (!evm_mul_size(want, 2, &want))
            return NULL;
    void *grown = evm_mul_size(want, elem, &bytes) ? realloc(items, bytes) : NULL;
    if (grown)
        *cap = want;
    return grown;
}

static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static int ends_with_ci(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Copies the file name of path without ".gz" (when strip_gz) and then
 * without its last extension; a leading dot is not an extension. */
static char *stem_of(const char *path, int strip_gz) {
    char *stem = dup_string(base_name(path));
    if (!stem)
        return NULL;
    size_t n = strlen(stem);
    if (strip_gz && n > 3 && ends_with_ci(stem, ".gz"))
        stem[n - 3] = '\0';
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem)
        *dot = '\0';
    return stem;
}

static evmap_status add_source(evmap_image_set *set, const char *path, evmap_error *err) {
    source *grown = grow(set->sources, &set->cap_sources, set->n_sources + 1, sizeof(source));
    char *copy = grown ? dup_string(path) : NULL;
    if (grown)
        set->sources = grown;
    if (!copy)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "cannot store the path '%s'", path);
    set->sources[set->n_sources++] = (source){.path = copy};
    return EVMAP_OK;
}

/* Appends an entry (taking ownership of name, which may be NULL after a
 * failed allocation) for the newest source. */
static evmap_status add_entry(evmap_image_set *set, char *name, size_t item, evmap_error *err) {
    entry *grown = grow(set->entries, &set->cap_entries, set->n_entries + 1, sizeof(entry));
    if (grown)
        set->entries = grown;
    if (!grown || !name) {
        free(name);
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "cannot add an image to the set");
    }
    set->entries[set->n_entries++] = (entry){name, set->n_sources - 1, item};
    return EVMAP_OK;
}

/* Reads the first bytes of a file, enough for every magic number we test. */
static evmap_status read_magic(const char *path, uint8_t *buf, size_t cap, size_t *n,
                               evmap_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return evm_fail(err, EVMAP_ERR_IO, "cannot open '%s': %s; check the path", path,
                        strerror(errno));
    *n = fread(buf, 1, cap, f);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return evm_fail(err, EVMAP_ERR_IO, "cannot read '%s'; check that it is a readable file",
                        path);
    return EVMAP_OK;
}

static evmap_status add_image_file(evmap_image_set *set, const char *path, evmap_error *err) {
    evmap_status st = add_source(set, path, err);
    if (st == EVMAP_OK)
        st = add_entry(set, stem_of(path, 0), 0, err);
    return st;
}

static evmap_status add_idx_file(evmap_image_set *set, const char *path, evmap_error *err) {
    evmap_status st = add_source(set, path, err);
    if (st != EVMAP_OK)
        return st;
    source *src = &set->sources[set->n_sources - 1];
    src->is_idx = 1;
    st = evm_idx_read(path, set->max_memory, &src->idx, err);
    if (st != EVMAP_OK)
        return st;
    const evm_idx *idx = &src->idx;
    if (idx->ndims != 3)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "IDX file '%s' has %d dimensions, not 3 (images x rows x cols); a labels "
                        "file cannot be explained",
                        path, idx->ndims);
    if (idx->dims[0] == 0)
        return evm_fail(err, EVMAP_ERR_BAD_FILE, "IDX file '%s' holds no images", path);
    char what[400];
    snprintf(what, sizeof what, "IDX file '%s'", path);
    st = evm_image_check_size(idx->dims[2], idx->dims[1], set->max_memory, what, err);
    if (st != EVMAP_OK)
        return st;
    char *stem = stem_of(path, 1);
    if (!stem)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "cannot store an image name");
    size_t name_size = strlen(stem) + 24;
    for (size_t i = 0; i < idx->dims[0] && st == EVMAP_OK; i++) {
        char *name = malloc(name_size);
        if (name)
            snprintf(name, name_size, "%s_%zu", stem, i);
        st = add_entry(set, name, i, err);
    }
    free(stem);
    return st;
}

/* Adds one file named directly or found in a folder, by its content. */
static evmap_status add_file(evmap_image_set *set, const char *path, evmap_error *err) {
    uint8_t magic[16];
    size_t n = 0;
    evmap_status st = read_magic(path, magic, sizeof magic, &n, err);
    if (st != EVMAP_OK)
        return st;
    if (evm_is_png(magic, n) || evm_is_jpeg(magic, n))
        return add_image_file(set, path, err);
    if (evm_is_gzip(magic, n) || evm_is_idx(magic, n))
        return add_idx_file(set, path, err);
    /* Same statuses as evmap_image_load: a known foreign format is
     * unsupported, unrecognised bytes are a bad file. */
    const char *fmt = evm_other_image_format(magic, n);
    if (fmt)
        return evm_fail(err, EVMAP_ERR_UNSUPPORTED,
                        "'%s' is a %s file; evmap reads PNG, JPEG and IDX; convert it to PNG", path,
                        fmt);
    return evm_fail(err, EVMAP_ERR_BAD_FILE,
                    "'%s' is %s, not a PNG, JPEG or IDX file; give images in one of these "
                    "formats",
                    path, n == 0 ? "empty" : "in an unrecognised format");
}

/* Joins folder and name with one slash; NULL when out of memory. */
static char *join_path(const char *folder, const char *name) {
    size_t len = strlen(folder), size = len + strlen(name) + 2;
    char *path = malloc(size);
    if (path)
        snprintf(path, size, "%s%s%s", folder, len && folder[len - 1] == '/' ? "" : "/", name);
    return path;
}

/* Dot files are skipped: they are hidden, and the "._x.png" files that macOS
 * leaves on shared drives are not images. Subfolders are not searched. */
static int wanted_in_folder(const char *name, const char *path) {
    struct stat sb;
    if (name[0] == '.')
        return 0;
    if (!ends_with_ci(name, ".png") && !ends_with_ci(name, ".jpg") && !ends_with_ci(name, ".jpeg"))
        return 0;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int compare_paths(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_paths(char **paths, size_t count) {
    for (size_t i = 0; i < count; i++)
        free(paths[i]);
    free(paths);
}

/* Collects the paths of the image files in a folder, sorted by name (all
 * share the folder prefix, so sorting the paths sorts the names). */
static evmap_status list_folder(const char *folder, char ***paths, size_t *count,
                                evmap_error *err) {
    *paths = NULL;
    *count = 0;
    size_t cap = 0;
    evmap_status st = EVMAP_OK;
    DIR *dir = opendir(folder);
    if (!dir)
        return evm_fail(err, EVMAP_ERR_IO, "cannot open folder '%s': %s", folder, strerror(errno));
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        char *path = join_path(folder, de->d_name);
        char **grown = path ? grow(*paths, &cap, *count + 1, sizeof(char *)) : NULL;
        if (!grown) {
            free(path);
            st = evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "cannot list folder '%s'", folder);
            break;
        }
        *paths = grown;
        if (wanted_in_folder(de->d_name, path))
            (*paths)[(*count)++] = path;
        else
            free(path);
    }
    closedir(dir);
    if (*count > 0)
        qsort(*paths, *count, sizeof(char *), compare_paths);
    return st;
}

static evmap_status add_folder(evmap_image_set *set, const char *folder, evmap_error *err) {
    char **paths;
    size_t count;
    evmap_status st = list_folder(folder, &paths, &count, err);
    if (st == EVMAP_OK && count == 0)
        st = evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                      "folder '%s' has no .png, .jpg or .jpeg files; give a folder of images",
                      folder);
    for (size_t i = 0; i < count && st == EVMAP_OK; i++)
        st = add_file(set, paths[i], err);
    free_paths(paths, count);
    return st;
}

evmap_status evmap_image_set_add(evmap_image_set *set, const char *path, evmap_error *err) {
    if (!set || !path)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "evmap_image_set_add: set and path must not be NULL");
    struct stat sb;
    if (stat(path, &sb) != 0)
        return evm_fail(err, EVMAP_ERR_IO, "cannot open '%s': %s; check the path", path,
                        strerror(errno));
    size_t n_sources = set->n_sources, n_entries = set->n_entries;
    evmap_status st = S_ISDIR(sb.st_mode) ? add_folder(set, path, err) : add_file(set, path, err);
    if (st != EVMAP_OK)
        truncate_set(set, n_sources, n_entries);
    return st;
}

evmap_status evmap_image_set_load(const evmap_image_set *set, size_t index, evmap_image **out,
                                  evmap_error *err) {
    if (!out)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT, "evmap_image_set_load: out is NULL");
    *out = NULL;
    if (!set || index >= set->n_entries)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "image index %zu is out of range (the set holds %zu images)", index,
                        set ? set->n_entries : 0);
    const entry *e = &set->entries[index];
    const source *src = &set->sources[e->source];
    if (!src->is_idx)
        return evm_image_load_limited(src->path, set->max_memory, out, err);
    char what[400];
    snprintf(what, sizeof what, "image %zu of IDX file '%s'", e->item, src->path);
    return evm_idx_image(&src->idx, e->item, what, out, err);
}
