/*
 * Memory budgets. A model may carry a memory limit (evmap_model_load_limited,
 * --max-memory); every plan made from it, with the backward pass planned on
 * top of it, charges each buffer to a budget that starts at the model's weight
 * bytes, before the buffer is allocated. Going over is EVMAP_ERR_TOO_LARGE,
 * with a message naming the job, never an allocation the system cannot back.
 */
#ifndef EVM_BUDGET_H
#define EVM_BUDGET_H

#include <stdint.h>

#include "evmap.h"

typedef struct evm_budget {
    uint64_t limit; /* bytes; 0: no limit */
    uint64_t used;  /* charged so far (saturates) */
    char what[160]; /* the job, for messages: "the model at input [64,3,224,224]" */
} evm_budget;

/* "512 KiB", "3.2 MiB", "1.0 GiB": sizes for messages. buf holds 24 bytes. */
#define EVM_BYTES_STR_SIZE 24
const char *evm_bytes_str(uint64_t bytes, char *buf);

/* Charges bytes; fails (charging nothing) when that would pass the limit. */
evmap_status evm_budget_charge(evm_budget *budget, uint64_t bytes, evmap_error *err);
/* As evm_budget_charge for memory that is freed again at once. */
evmap_status evm_budget_check(const evm_budget *budget, uint64_t bytes, evmap_error *err);

#endif
