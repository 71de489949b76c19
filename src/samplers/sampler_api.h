/* The public sampler handle wraps an internal sampler. */
#ifndef EVM_SAMPLER_API_H
#define EVM_SAMPLER_API_H

#include "sampler.h"

struct evmap_sampler {
    evm_sampler *impl;
};

#endif
