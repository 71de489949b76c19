/*
 * NumPy .npy output (format version 1.0): the magic "\x93NUMPY", version
 * bytes 1 0, a little-endian uint16 header length, then a Python dict literal
 * padded with spaces and ended by '\n' so that the data starts at a multiple
 * of 64 bytes, then height × width float32 values, little-endian, C order.
 * Invariant: the bytes of every float are copied unchanged (NaN payloads,
 * -0.0 and infinities survive), whatever the host's byte order.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "atomic_file.h"
#include "base/error.h"
#include "base/tensor.h"

#define NPY_PREAMBLE 10 /* magic (6) + version (2) + header length (2) */
#define NPY_ALIGN 64
#define NPY_HEADER_CAP 192 /* the dict for two ints needs < 128 bytes with padding */
#define NPY_CHUNK 1024     /* floats converted per write */

/* Fills buf with the preamble and the padded dict; returns the byte count. */
static size_t npy_header(uint8_t *buf, int height, int width) {
    char dict[NPY_HEADER_CAP];
    int n =
        snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }",
                 height, width);
    size_t len = (size_t)n;
    size_t total = NPY_PREAMBLE + len + 1; /* + the closing newline */
    size_t padded = (total + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    size_t header_len = padded - NPY_PREAMBLE;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)(header_len & 0xff);
    buf[9] = (uint8_t)(header_len >> 8);
    memcpy(buf + NPY_PREAMBLE, dict, len);
    memset(buf + NPY_PREAMBLE + len, ' ', header_len - len - 1);
    buf[padded - 1] = '\n';
    return padded;
}

/* Writes the floats as little-endian bytes in fixed-size chunks. */
static evmap_status npy_data(evm_atomic_file *af, const float *values, size_t count,
                             evmap_error *err) {
    uint8_t chunk[NPY_CHUNK * 4];
    for (size_t done = 0; done < count;) {
        size_t n = count - done < NPY_CHUNK ? count - done : NPY_CHUNK;
        for (size_t i = 0; i < n; i++) {
            uint32_t bits;
            memcpy(&bits, &values[done + i], sizeof bits);
            for (int b = 0; b < 4; b++)
                chunk[i * 4 + (size_t)b] = (uint8_t)(bits >> (8 * b));
        }
        evmap_status st = evm_atomic_write(af, chunk, n * 4, err);
        if (st != EVMAP_OK)
            return st;
        done += n;
    }
    return EVMAP_OK;
}

static evmap_status npy_check_args(const char *path, const float *values, int height, int width,
                                   size_t *count, evmap_error *err) {
    if (!path || !*path)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "evmap_write_npy: no output path given; pass the .npy file to write");
    if (!values)
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "evmap_write_npy: values is NULL for '%s'; pass the map to write", path);
    size_t bytes;
    if (height <= 0 || width <= 0 || !evm_mul_size((size_t)height, (size_t)width, count) ||
        !evm_mul_size(*count, sizeof(float), &bytes))
        return evm_fail(err, EVMAP_ERR_INVALID_ARGUMENT,
                        "evmap_write_npy: map size %d x %d for '%s' is not a positive size; "
                        "pass the map's height and width",
                        height, width, path);
    return EVMAP_OK;
}

evmap_status evmap_write_npy(const char *path, const float *values, int height, int width,
                             evmap_error *err) {
    size_t count = 0;
    evmap_status st = npy_check_args(path, values, height, width, &count, err);
    if (st != EVMAP_OK)
        return st;
    uint8_t header[NPY_HEADER_CAP];
    size_t header_size = npy_header(header, height, width);
    evm_atomic_file af;
    st = evm_atomic_open(&af, path, err);
    if (st == EVMAP_OK)
        st = evm_atomic_write(&af, header, header_size, err);
    if (st == EVMAP_OK)
        st = npy_data(&af, values, count, err);
    if (st == EVMAP_OK)
        st = evm_atomic_commit(&af, err);
    evm_atomic_abort(&af);
    return st;
}
