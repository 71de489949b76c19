#!/usr/bin/python3
"""evmap's random number generator written again from its published
definition, for tests that must reproduce evmap's noise independently.

src/base/rng.c documents it as xoshiro256** (Blackman & Vigna) seeded through
splitmix64, with uniform draws (next >> 11) * 2^-53 in [0, 1). This module
follows the reference C code of both generators (prng.di.unimi.it), in
Python integers masked to 64 bits; it shares no code with evmap.
"""
import math

import numpy as np

MASK = (1 << 64) - 1


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK


class Xoshiro256ss:
    def __init__(self, seed):
        x = seed & MASK
        self.s, self.spare = [], None
        for _ in range(4):  # splitmix64
            x = (x + 0x9E3779B97F4A7C15) & MASK
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
            self.s.append(z ^ (z >> 31))

    def next(self):
        s = self.s
        result = (_rotl((s[1] * 5) & MASK, 7) * 9) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    def uniform(self, n):
        """n uniforms in [0, 1) as float64."""
        return np.array([(self.next() >> 11) * 2.0 ** -53 for _ in range(n)])

    def normal(self):
        """One standard normal by Box-Muller, as src/base/rng.c documents: a pair
        of uniforms u1, u2 gives r cos(2 pi u2) now and r sin(2 pi u2) on the
        next call, r = sqrt(-2 ln(1 - u1))."""
        if self.spare is not None:
            v, self.spare = self.spare, None
            return v
        u1 = 1.0 - (self.next() >> 11) * 2.0 ** -53
        u2 = (self.next() >> 11) * 2.0 ** -53
        r = math.sqrt(-2.0 * math.log(u1))
        self.spare = r * math.sin(2 * math.pi * u2)
        return r * math.cos(2 * math.pi * u2)


def self_check():
    """splitmix64's published first outputs for seed 0 (e220a8397b1dcdaf,
    6e789e6aa1b965f4): the seeding is right before anything depends on it."""
    g = Xoshiro256ss(0)
    return g.s[0] == 0xE220A8397B1DCDAF and g.s[1] == 0x6E789E6AA1B965F4
