/* Worker threads for the kernels (pool.h). */
#define _GNU_SOURCE /* sched_getaffinity */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "error.h"

typedef struct worker {
    evm_pool *pool;
    int index; /* the part it runs: 1 .. threads - 1 */
    pthread_t thread;
} worker;

/* A job is announced by one atomic word: its generation above the low byte,
 * the number of workers taking part in the low byte, so that a worker reads
 * both at once. Workers spin on it briefly (a job follows within
 * microseconds during a forward pass) and then sleep on the condition
 * variable; the caller waits for the last part the same way. Spinning is
 * bounded, so a pool sharing its cores with other processes gives them the
 * CPU quickly. */
#define SPIN_ROUNDS 4000
#define ACTIVE_BITS 8

struct evm_pool {
    int started; /* workers running (< 2^ACTIVE_BITS) */
    worker *workers;
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    atomic_ulong job;   /* generation << ACTIVE_BITS | workers taking part */
    atomic_int pending; /* worker parts of the job not finished */
    atomic_bool quit;
    /* the job; written before `job` is bumped, read by its workers only */
    evm_part_fn fn;
    void *ctx;
    int parts;
    bool running; /* the caller is inside evm_pool_run (a nested call runs inline) */
};

static _Thread_local evm_pool *current;

void evm_pool_use(evm_pool *pool) {
    current = pool;
}

evm_pool *evm_pool_current(void) {
    return current;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* The next job word after `seen` (or `seen` when quitting). */
static unsigned long next_job(evm_pool *p, unsigned long seen) {
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        unsigned long j = atomic_load_explicit(&p->job, memory_order_acquire);
        if (j != seen || atomic_load(&p->quit))
            return j;
        cpu_relax();
    }
    pthread_mutex_lock(&p->lock);
    unsigned long j;
    while ((j = atomic_load_explicit(&p->job, memory_order_acquire)) == seen &&
           !atomic_load(&p->quit))
        pthread_cond_wait(&p->wake, &p->lock);
    pthread_mutex_unlock(&p->lock);
    return j;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    evm_pool *p = w->pool;
    unsigned long seen = 0; /* the word before any job, even if one came before this thread ran */
    for (;;) {
        seen = next_job(p, seen);
        if (atomic_load(&p->quit))
            break;
        int active = (int)(seen & ((1ul << ACTIVE_BITS) - 1));
        if (w->index > active)
            continue;
        p->fn(p->ctx, w->index, p->parts);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->lock);
        }
    }
    return NULL;
}

evmap_status evm_pool_create(int threads, evm_pool **out, evmap_error *err) {
    *out = NULL;
    if (threads < 1)
        threads = 1;
    if (threads > (1 << ACTIVE_BITS) - 1)
        threads = (1 << ACTIVE_BITS) - 1;
    evm_pool *p = calloc(1, sizeof *p);
    if (!p)
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory for a thread pool");
    p->workers = calloc((size_t)threads, sizeof *p->workers);
    if (!p->workers) {
        free(p);
        return evm_fail(err, EVMAP_ERR_OUT_OF_MEMORY, "out of memory for a thread pool");
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->job, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->quit, false);
    /* A worker that cannot start leaves its part to the caller. */
    for (int i = 1; i < threads; i++) {
        worker *w = &p->workers[p->started];
        *w = (worker){.pool = p, .index = p->started + 1};
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            break;
        p->started++;
    }
    *out = p;
    return EVMAP_OK;
}

void evm_pool_free(evm_pool *p) {
    if (!p)
        return;
    if (current == p)
        current = NULL;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->quit, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->workers[i].thread, NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->lock);
    free(p->workers);
    free(p);
}

int evm_pool_threads(const evm_pool *p) {
    return p ? p->started + 1 : 1;
}

void evm_pool_run(evm_pool *p, evm_part_fn fn, void *ctx, int parts) {
    int helped =
        p && parts > 1 && !p->running ? (parts - 1 < p->started ? parts - 1 : p->started) : 0;
    if (helped > 0) {
        p->running = true;
        p->fn = fn;
        p->ctx = ctx;
        p->parts = parts;
        atomic_store_explicit(&p->pending, helped, memory_order_relaxed);
        unsigned long gen = (atomic_load(&p->job) >> ACTIVE_BITS) + 1;
        pthread_mutex_lock(&p->lock); /* for the workers asleep */
        atomic_store_explicit(&p->job, gen << ACTIVE_BITS | (unsigned long)helped,
                              memory_order_release);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
    }
    fn(ctx, 0, parts);
    for (int i = helped + 1; i < parts; i++) /* parts beyond the workers */
        fn(ctx, i, parts);
    if (helped > 0) {
        for (int i = 0;
             i < SPIN_ROUNDS && atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++)
            cpu_relax();
        pthread_mutex_lock(&p->lock);
        while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
            pthread_cond_wait(&p->done, &p->lock);
        pthread_mutex_unlock(&p->lock);
        p->running = false;
    }
}

int evm_pool_default_threads(void) {
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    long n = env ? strtol(env, NULL, 10) : 0;
    if (n >= 1 && n <= 1024)
        return (int)n;
    cpu_set_t set; /* the CPUs this process may use (a Slurm job's, say) */
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 && n <= 1024 ? (int)n : 1;
}

typedef struct range_job {
    evm_range_fn fn;
    void *ctx;
    size_t n;
} range_job;

static void range_part(void *ctx, int part, int parts) {
    const range_job *j = ctx;
    /* cut at multiples of 16 floats so that parts do not share cache lines */
    size_t lo = j->n * (size_t)part / (size_t)parts & ~(size_t)15;
    size_t hi = part + 1 == parts ? j->n : j->n * (size_t)(part + 1) / (size_t)parts & ~(size_t)15;
    if (hi > lo)
        j->fn(j->ctx, lo, hi);
}

void evm_parallel_range(size_t n, size_t min, evm_range_fn fn, void *ctx) {
    evm_pool *pool = current;
    int parts = n >= min ? evm_pool_threads(pool) : 1;
    if (parts == 1) {
        fn(ctx, 0, n);
        return;
    }
    range_job j = {fn, ctx, n};
    evm_pool_run(pool, range_part, &j, parts);
}
