/* pmd_sleep.c — load-based sleeping for a spinning poll thread (pmd_sleep.h). */
#define _GNU_SOURCE
#include "pmd_sleep.h"

#include <sys/prctl.h>
#include <time.h>

#define NS_PER_S 1000000000ull

void vs_pmd_sleep_thread_init(void)
{
    prctl(PR_SET_TIMERSLACK, VS_PMD_SLEEP_SLACK_NS, 0, 0, 0);
}

uint64_t vs_pmd_sleep_after_round(struct vs_pmd_sleep *s, uint32_t pkts, int batch,
                                  int batch_max, uint64_t now, uint64_t max_ns)
{
    s->window_pkts += pkts;
    if (now - s->window_start >= VS_PMD_SLEEP_WINDOW_NS) {
        /* A gap longer than a window leaves a sparse count: not dense. */
        s->dense = s->window_pkts >= VS_PMD_SLEEP_DENSE_PKTS &&
                   now - s->window_start < 2 * VS_PMD_SLEEP_WINDOW_NS;
        s->window_start = now;
        s->window_pkts = 0;
    }
    if (!max_ns || !s->dense || batch >= batch_max) {
        s->next_ns = 0; /* sparse traffic, behind, or not sleeping at all: spin */
        return 0;
    }
    if (batch * 2 < batch_max)
        s->next_ns += VS_PMD_SLEEP_STEP_NS;
    if (s->next_ns > max_ns)
        s->next_ns = max_ns; /* (also when the maximum was lowered meanwhile) */
    return s->next_ns >= VS_PMD_SLEEP_MIN_NS || s->next_ns == max_ns ? s->next_ns : 0;
}

void vs_pmd_sleep_for(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / NS_PER_S), .tv_nsec = (long)(ns % NS_PER_S)};
    clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
}
