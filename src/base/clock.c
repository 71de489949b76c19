/* Monotonic wall-clock seconds (clock.h). */
#include <time.h>

#include "clock.h"

double evm_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
