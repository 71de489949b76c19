/*
 * float16 and bfloat16 to float32 (engine/onnx_tensor.c), checked on every
 * one of the 65536 bit patterns against a reference built from ldexp:
 * normals, subnormals, signed zeros, infinities and NaNs (payload kept).
 * Prints "N passed, N failed"; exits non-zero on failure.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "engine/onnx_tensor.h"

static int passed, failed;

static void check(int ok, const char *what, unsigned pattern) {
    if (ok) {
        passed++;
        return;
    }
    failed++;
    if (failed <= 10)
        fprintf(stderr, "FAIL %s 0x%04x\n", what, pattern);
}

static uint32_t bits_of(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

static int same(float got, double want) {
    if (isnan(want))
        return isnan(got);
    return got == (float)want && !signbit(got) == !signbit(want);
}

int main(void) {
    int half_ok = 1, bf_ok = 1;
    for (unsigned h = 0; h < 65536; h++) {
        int sign = (h >> 15) & 1, exp = (h >> 10) & 31, man = h & 1023;
        double want;
        if (exp == 31)
            want = man ? NAN : INFINITY;
        else if (exp == 0)
            want = ldexp(man, -24);
        else
            want = ldexp(1024 + man, exp - 25);
        if (sign)
            want = -want;
        float got = evm_half_to_float((uint16_t)h);
        int ok = same(got, want);
        if (exp == 31 && man) /* NaN payload and quiet bit kept in the top bits */
            ok = ok && (bits_of(got) & 0x007fe000u) == (uint32_t)man << 13 &&
                 (bits_of(got) >> 31) == (unsigned)sign;
        if (!ok) {
            half_ok = 0;
            check(0, "float16", h);
        }
        /* bfloat16: 1 sign, 8 exponent, 7 mantissa bits */
        int be = (h >> 7) & 255, bm = h & 127;
        double bw = be == 255 ? (bm ? NAN : INFINITY)
                    : be == 0 ? ldexp(bm, -133)
                              : ldexp(128 + bm, be - 134);
        if (sign)
            bw = -bw;
        float bgot = evm_bfloat16_to_float((uint16_t)h);
        if (!same(bgot, bw) || bits_of(bgot) != (uint32_t)h << 16) {
            bf_ok = 0;
            check(0, "bfloat16", h);
        }
    }
    check(half_ok, "float16: all 65536 patterns", 0);
    check(bf_ok, "bfloat16: all 65536 patterns", 0);
    check(evm_half_to_float(0x0001) == ldexpf(1, -24), "smallest float16 subnormal", 1);
    check(evm_half_to_float(0x03ff) == ldexpf(1023, -24), "largest float16 subnormal", 0x3ff);
    check(evm_half_to_float(0x7bff) == 65504.0f, "largest float16", 0x7bff);
    check(isinf(evm_half_to_float(0xfc00)) && evm_half_to_float(0xfc00) < 0, "-inf", 0xfc00);
    check(evm_bfloat16_to_float(0x3f80) == 1.0f, "bfloat16 1.0", 0x3f80);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
