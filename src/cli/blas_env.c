/*
 * OpenBLAS picks its kernels when it loads. On virtual CPUs it may not
 * recognise the model and fall back to its oldest x86-64 kernels, several
 * times slower than the CPU allows. The CLI corrects that once at start: when
 * the user has not chosen OPENBLAS_CORETYPE and OpenBLAS reports the
 * fallback, it sets the type from the CPU's instruction-set features and
 * re-executes itself so that OpenBLAS loads with it.
 */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char *coretype_for_cpu(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2"))
        return "Haswell";
    if (__builtin_cpu_supports("avx"))
        return "Sandybridge";
#endif
    return NULL;
}

void cli_tune_blas(char **argv) {
    if (getenv("OPENBLAS_CORETYPE") || getenv("EVMAP_NO_BLAS_TUNING"))
        return;
    const char *name = openblas_get_corename();
    if (!name || (strcmp(name, "Prescott") && strcmp(name, "Core2") && strcmp(name, "Nehalem")))
        return;
    const char *better = coretype_for_cpu();
    if (!better || setenv("OPENBLAS_CORETYPE", better, 1) != 0)
        return;
    execv("/proc/self/exe", argv); /* returns only on failure: carry on as we are */
}
