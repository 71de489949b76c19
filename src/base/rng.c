/*
 * xoshiro256** (Blackman & Vigna) seeded through splitmix64, with uniform,
 * bounded-integer and normal (Box-Muller) draws. The sequence depends only on
 * the seed, never on the platform or the C library, so a --seed reproduces a
 * run everywhere. Invariant: the state is never all zero (splitmix64 cannot
 * produce four zero words in a row).
 */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

void evm_rng_seed(evm_rng *rng, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
    rng->spare_normal = 0.0;
    rng->has_spare = 0;
}

uint64_t evm_rng_next(evm_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* The top 53 bits fill a double's mantissa exactly. */
double evm_rng_uniform(evm_rng *rng) {
    return (double)(evm_rng_next(rng) >> 11) * 0x1.0p-53;
}

/* Rejects the lowest (2^64 mod n) values so that every residue is equally
 * likely; at most half the range is rejected, so the loop ends quickly. */
uint64_t evm_rng_below(evm_rng *rng, uint64_t n) {
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t r = evm_rng_next(rng);
        if (r >= threshold)
            return r % n;
    }
}

/* Box-Muller: each pair of uniforms gives two normals; the second is kept for
 * the next call. 1 - u lies in (0, 1], so the logarithm is finite. */
double evm_rng_normal(evm_rng *rng) {
    if (rng->has_spare) {
        rng->has_spare = 0;
        return rng->spare_normal;
    }
    double u1 = 1.0 - evm_rng_uniform(rng);
    double u2 = evm_rng_uniform(rng);
    double radius = sqrt(-2.0 * log(u1));
    double angle = 6.283185307179586476925 * u2;
    rng->spare_normal = radius * sin(angle);
    rng->has_spare = 1;
    return radius * cos(angle);
}
