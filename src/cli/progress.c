/*
 * Progress on stderr for long work: a bar with count, rate and ETA redrawn in
 * place on a terminal, one line per 10 % otherwise, nothing when quiet.
 * Ctrl-C sets a flag that the progress callback turns into a cancellation,
 * so the library stops within one batch and no output is half-written.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

void cli_install_interrupt_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool cli_interrupted(void) {
    return interrupted != 0;
}

double cli_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_start(cli_progress *p, const char *what, const char *unit, bool quiet) {
    memset(p, 0, sizeof p[0]);
    p->what = what;
    p->unit = unit;
    p->quiet = quiet;
    p->tty = isatty(STDERR_FILENO) != 0;
    p->start = cli_seconds();
}

static void format_duration(double s, char *buf, size_t size) {
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

int cli_progress_update(void *user, size_t done, size_t total) {
    cli_progress *p = user;
    if (interrupted)
        return 1;
    if (p->quiet || total == 0)
        return 0;
    double elapsed = cli_seconds() - p->start;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    char eta[32];
    format_duration(rate > 0 ? (double)(total - done) / rate : 0, eta, sizeof eta);
    int percent = (int)(100.0 * (double)done / (double)total);
    if (p->tty) {
        if (elapsed - p->last_draw < 0.1 && done < total)
            return 0;
        p->last_draw = elapsed;
        char bar[31];
        int filled = (int)(30.0 * (double)done / (double)total);
        for (int i = 0; i < 30; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r%s [%s] %zu/%zu %s, %.1f/s, ETA %s ", p->what, bar, done, total, p->unit,
                rate, eta);
        if (done == total)
            fputc('\n', stderr);
    } else if (percent / 10 > p->last_decile || done == total) {
        p->last_decile = percent / 10;
        fprintf(stderr, "%s: %d%% (%zu/%zu %s, %.1f/s, ETA %s)\n", p->what, percent, done, total,
                p->unit, rate, eta);
    }
    return 0;
}

void cli_progress_abandon(cli_progress *p) {
    if (p->tty && !p->quiet)
        fputc('\n', stderr);
}
