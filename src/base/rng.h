/*
 * A small deterministic random number generator (xoshiro256**, seeded with
 * splitmix64) so that results are reproducible for a given --seed on every
 * platform, independent of the C library's rand().
 */
#ifndef EVM_RNG_H
#define EVM_RNG_H

#include <stdint.h>

typedef struct evm_rng {
    uint64_t s[4];
    double spare_normal; /* second Box-Muller value, valid when has_spare */
    int has_spare;
} evm_rng;

void evm_rng_seed(evm_rng *rng, uint64_t seed);
uint64_t evm_rng_next(evm_rng *rng);
/* Uniform in [0, 1). */
double evm_rng_uniform(evm_rng *rng);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t evm_rng_below(evm_rng *rng, uint64_t n);
/* Standard normal. */
double evm_rng_normal(evm_rng *rng);

#endif
