/*
 * libFuzzer harness for the PNG decoder through the public entry point
 * evmap_image_load_memory (the decoder is chosen by content; fuzz_jpeg.c
 * shares the body in fuzz_image.h and differs by its corpus). Every input is
 * decoded twice: as given, and with the CRC of each whole chunk recomputed,
 * so that mutations reach libpng's chunk handling and evmap's conversion
 * instead of all failing the CRC check.
 */
#include "fuzz_common.h"

#include <zlib.h>

#include "fuzz_image.h"

static uint32_t get_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    evm_fuzz_image(data, size);
    if (size < 8 + 12)
        return 0;
    uint8_t *copy = malloc(size);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    for (size_t p = 8; size - p >= 12;) {
        size_t length = get_be32(copy + p);
        if (length > size - p - 12)
            break;
        size_t end = p + 8 + length;
        uint32_t crc = (uint32_t)crc32(0, copy + p + 4, (uInt)(length + 4));
        for (int i = 0; i < 4; i++)
            copy[end + i] = (uint8_t)(crc >> (24 - 8 * i));
        p = end + 4;
    }
    if (memcmp(copy, data, size) != 0)
        evm_fuzz_image(copy, size);
    free(copy);
    return 0;
}
