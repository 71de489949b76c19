/* Memory budgets: checks before allocation against a caller's limit. */
#include "budget.h"

#include <stdio.h>
#include <unistd.h>

#include "error.h"

static uint64_t saturating_add(uint64_t a, uint64_t b) {
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

const char *evm_bytes_str(uint64_t bytes, char *buf) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1024) {
        snprintf(buf, EVM_BYTES_STR_SIZE, "%llu bytes", (unsigned long long)bytes);
        return buf;
    }
    double v = (double)bytes / 1024;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    snprintf(buf, EVM_BYTES_STR_SIZE, v < 100 ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

evmap_status evm_budget_check(const evm_budget *budget, uint64_t bytes, evmap_error *err) {
    uint64_t total = saturating_add(budget->used, bytes);
    if (!budget->limit || total <= budget->limit)
        return EVMAP_OK;
    char need[EVM_BYTES_STR_SIZE], limit[EVM_BYTES_STR_SIZE];
    return evm_fail(err, EVMAP_ERR_TOO_LARGE,
                    "running %s needs more than %s (weights, activations and scratch), above the "
                    "memory "
                    "limit of %s (--max-memory); use fewer images per batch (--batch) or raise "
                    "the limit",
                    budget->what, evm_bytes_str(total, need), evm_bytes_str(budget->limit, limit));
}

evmap_status evm_budget_charge(evm_budget *budget, uint64_t bytes, evmap_error *err) {
    evmap_status st = evm_budget_check(budget, bytes, err);
    if (st == EVMAP_OK)
        budget->used = saturating_add(budget->used, bytes);
    return st;
}

/* cgroup v2's memory.max of this process's group, or 0 for "max" or unknown. */
static uint64_t cgroup_limit(void) {
    FILE *f = fopen("/sys/fs/cgroup/memory.max", "r");
    if (!f)
        return 0;
    unsigned long long v = 0;
    int n = fscanf(f, "%llu", &v);
    fclose(f);
    return n == 1 ? (uint64_t)v : 0;
}

uint64_t evmap_default_memory_limit(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0)
        return 0;
    uint64_t total = (uint64_t)pages * (uint64_t)page, group = cgroup_limit();
    if (group && group < total)
        total = group;
    const uint64_t reserve = (uint64_t)1 << 30; /* for the system and evmap's own code */
    return total > 2 * reserve ? total - reserve : total / 2;
}
