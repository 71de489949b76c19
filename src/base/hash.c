/* FNV-1a (hash.h). */
#include "hash.h"

uint64_t evm_fnv1a(uint64_t hash, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        hash ^= b[i];
        hash *= 0x100000001b3u;
    }
    return hash;
}
