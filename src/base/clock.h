/* Wall-clock seconds for the methods' timings (a monotonic clock). */
#ifndef EVM_CLOCK_H
#define EVM_CLOCK_H

/* Seconds since an arbitrary fixed point; only differences mean anything. */
double evm_seconds(void);

#endif
