/* FNV-1a, 64 bits: a fast non-cryptographic hash of bytes, for change
 * detection (sampler files, --resume keys) and per-image seeds. */
#ifndef EVM_HASH_H
#define EVM_HASH_H

#include <stddef.h>
#include <stdint.h>

#define EVM_FNV1A_START 0xcbf29ce484222325u

/* hash continued over n bytes at p (start from EVM_FNV1A_START). */
uint64_t evm_fnv1a(uint64_t hash, const void *p, size_t n);

#endif
