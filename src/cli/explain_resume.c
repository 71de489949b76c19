/*
 * evmap explain --resume and the index parts of a sharded run.
 *
 * Every image's JSON, written last (after its NPY and PNG files, each
 * atomically), records a run key (FNV-1a of the settings that shape the
 * outputs and of the model, sampler and label files' bytes), an input key
 * (the image as the model sees it) and each output file's size and CRC-32.
 * --resume skips an image only when all of these match; anything else
 * (missing, partial, stale, corrupted) is redone. Maps do not depend on the
 * shard, batch or thread count, so a resumed run ends with the bits of an
 * uninterrupted one.
 *
 * A shard appends to <out>/index-<method>.part-<I>-of-<N>.jsonl: a header
 * line (the stems of all the run's images) each time it starts, then one line per image;
 * `evmap index` (index.c) merges the parts.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "base/hash.h"
#include "explain.h"
#include "json.h"
#include "json_read.h"

#define RESUME_FORMAT "evmap explain outputs, resume format 1"

/* Size and CRC-32 of a file's bytes; false when it cannot be read. */
static bool file_digest(const char *path, uint64_t *bytes, uint32_t *crc) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    static unsigned char buf[1 << 16];
    uLong c = crc32(0L, Z_NULL, 0);
    uint64_t total = 0;
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        c = crc32(c, buf, (uInt)got);
        total += got;
    }
    bool ok = !ferror(f);
    fclose(f);
    *bytes = total;
    *crc = (uint32_t)c;
    return ok;
}

/* Mixes a named file's size and CRC into h (an absent name mixes nothing). */
static evmap_status mix_file(uint64_t *h, const char *what, const char *path, evmap_error *err) {
    if (!path)
        return EVMAP_OK;
    uint64_t bytes;
    uint32_t crc;
    if (!file_digest(path, &bytes, &crc))
        return cli_fail(err, EVMAP_ERR_IO, "cannot read %s '%s' to key the run: %s", what, path,
                        strerror(errno));
    *h = evm_fnv1a(*h, what, strlen(what) + 1);
    *h = evm_fnv1a(*h, &bytes, sizeof bytes);
    *h = evm_fnv1a(*h, &crc, sizeof crc);
    return EVMAP_OK;
}

evmap_status explain_resume_open(const explain_options *o, explain_state *s, evmap_error *err) {
    uint64_t h = evm_fnv1a(EVM_FNV1A_START, RESUME_FORMAT, sizeof RESUME_FORMAT);
    h = evm_fnv1a(h, o->settings, o->settings_len);
    evmap_status st = mix_file(&h, "model", o->model_path, err);
    if (st == EVMAP_OK)
        st = mix_file(&h, "sampler file", o->mo.sampler_file, err);
    if (st == EVMAP_OK)
        st = mix_file(&h, "coarse sampler file", o->mo.coarse_sampler_file, err);
    if (st == EVMAP_OK)
        st = mix_file(&h, "labels", o->labels_path, err);
    /* settings too long to record: a key no earlier run can have */
    s->run_key = o->settings_overflow ? 0 : h;
    return st;
}

void explain_resume_input(explain_state *s) {
    size_t floats = (size_t)s->info.channels * s->info.height * s->info.width;
    uint64_t h = evm_fnv1a(EVM_FNV1A_START, &s->info.height, sizeof s->info.height);
    h = evm_fnv1a(h, &s->info.width, sizeof s->info.width);
    s->input_key = evm_fnv1a(h, s->input, floats * sizeof(float));
}

static void key_hex(uint64_t key, char *buf, size_t size) {
    snprintf(buf, size, "%016" PRIx64, key);
}

evmap_status explain_resume_write(json_writer *j, const explain_options *o, const explain_state *s,
                                  const char *const *files, int n_files, evmap_error *err) {
    char hex[32];
    json_key(j, "resume");
    json_begin_object(j);
    key_hex(s->run_key, hex, sizeof hex);
    json_key_string(j, "run", hex);
    key_hex(s->input_key, hex, sizeof hex);
    json_key_string(j, "input", hex);
    json_key(j, "files");
    json_begin_array(j);
    for (int i = 0; i < n_files; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", o->out_dir, files[i]);
        uint64_t bytes;
        uint32_t crc;
        if (!file_digest(path, &bytes, &crc))
            return cli_fail(err, EVMAP_ERR_IO, "cannot read back '%s': %s", path, strerror(errno));
        json_begin_object(j);
        json_key_string(j, "name", files[i]);
        json_key_int(j, "bytes", (long long)bytes);
        json_key_int(j, "crc32", (long long)crc);
        json_end_object(j);
    }
    json_end_array(j);
    json_end_object(j);
    return EVMAP_OK;
}

/* Whether a listed output file is there with its recorded size and CRC. */
static bool file_intact(const char *out_dir, const jv *f) {
    const char *name = jv_string(jv_get(f, "name"));
    double bytes, crc;
    if (!name || strchr(name, '/') || !jv_number(jv_get(f, "bytes"), &bytes) ||
        !jv_number(jv_get(f, "crc32"), &crc))
        return false;
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    uint64_t b;
    uint32_t c;
    return file_digest(path, &b, &c) && (double)b == bytes && (double)c == crc;
}

bool explain_resume_complete(const explain_options *o, const explain_state *s, const char *stem) {
    char path[1200], run[32], input[32];
    snprintf(path, sizeof path, "%s/%s.%s.json", o->out_dir, stem, o->method);
    jv *doc = jv_read_file(path);
    const jv *resume = jv_get(doc, "resume");
    const jv *files = jv_get(resume, "files");
    key_hex(s->run_key, run, sizeof run);
    key_hex(s->input_key, input, sizeof input);
    const char *doc_run = jv_string(jv_get(resume, "run"));
    const char *doc_input = jv_string(jv_get(resume, "input"));
    bool ok = s->run_key != 0 && doc_run && doc_input && !strcmp(doc_run, run) &&
              !strcmp(doc_input, input) && files && files->type == JV_ARRAY && files->n > 0;
    for (int i = 0; ok && i < files->n; i++)
        ok = file_intact(o->out_dir, &files->items[i]);
    jv_free(doc);
    return ok;
}

/* Whether name is "<stem>.<method>.<anything>.tmp.<digits>" for a stem of
 * this shard: a temporary file that a killed run of this shard left. */
static bool stale_temporary(const explain_options *o, const explain_state *s, size_t n_images,
                            const char *name) {
    const char *tmp = strstr(name, ".tmp.");
    if (!tmp || !tmp[5] || strspn(tmp + 5, "0123456789") != strlen(tmp + 5))
        return false;
    for (size_t i = (size_t)o->shard; i < n_images; i += (size_t)o->shards) {
        const char *stem = evmap_image_set_name(s->set, i);
        size_t n = strlen(stem), m = strlen(o->method);
        if (!strncmp(name, stem, n) && name[n] == '.' && !strncmp(name + n + 1, o->method, m) &&
            name[n + 1 + m] == '.')
            return true;
    }
    return false;
}

void explain_resume_clean(const explain_options *o, const explain_state *s, size_t n_images) {
    DIR *d = opendir(o->out_dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!stale_temporary(o, s, n_images, e->d_name))
            continue;
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", o->out_dir, e->d_name);
        remove(path);
    }
    closedir(d);
}

/* ---------------------------------------------------------------- index */

/* Appends one line in a single write: a line is whole or absent. */
static void append_line(int fd, json_writer *j) {
    size_t len;
    char *text = json_take(j, &len);
    if (text && fd >= 0) {
        ssize_t w = write(fd, text, len);
        (void)w; /* the index is a convenience; the per-image JSON is the record */
    }
    free(text);
}

evmap_status explain_index_open(const explain_options *o, explain_state *s, size_t n_images,
                                evmap_error *err) {
    char path[1200];
    snprintf(path, sizeof path, "%s/index-%s.part-%d-of-%d.jsonl", o->out_dir, o->method, o->shard,
             o->shards);
    s->index_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (s->index_fd < 0)
        return cli_fail(err, EVMAP_ERR_IO, "cannot open the index part '%s': %s", path,
                        strerror(errno));
    json_writer j;
    json_start(&j);
    j.compact = true;
    json_begin_object(&j);
    json_key_string(&j, "method", o->method);
    json_key_int(&j, "shard", o->shard);
    json_key_int(&j, "shards", o->shards);
    json_key_int(&j, "images", (long long)n_images);
    char hex[32];
    key_hex(s->run_key, hex, sizeof hex);
    json_key_string(&j, "run", hex);
    json_key(&j, "stems"); /* every image of the run, so that missing ones have names */
    json_begin_array(&j);
    for (size_t i = 0; i < n_images; i++)
        json_string(&j, evmap_image_set_name(s->set, i));
    json_end_array(&j);
    json_end_object(&j);
    append_line(s->index_fd, &j);
    return EVMAP_OK;
}

void explain_index_record(const explain_options *o, const explain_state *s, size_t index,
                          const char *status, const char *error) {
    if (s->index_fd < 0)
        return;
    const char *stem = evmap_image_set_name(s->set, index);
    char json_name[1200];
    snprintf(json_name, sizeof json_name, "%s.%s.json", stem, o->method);
    json_writer j;
    json_start(&j);
    j.compact = true;
    json_begin_object(&j);
    json_key_int(&j, "index", (long long)index);
    json_key_string(&j, "stem", stem);
    json_key_string(&j, "image", evmap_image_set_path(s->set, index));
    json_key_string(&j, "status", status);
    if (error)
        json_key_string(&j, "error", error);
    else
        json_key_string(&j, "json", json_name);
    json_end_object(&j);
    append_line(s->index_fd, &j);
}

void explain_index_close(explain_state *s) {
    if (s->index_fd >= 0)
        close(s->index_fd);
    s->index_fd = -1;
}
