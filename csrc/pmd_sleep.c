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

/* Ends the density window if it is over: its packets feed the rate average
 * and, if dense, restart the hold. */
static void window_update(struct vs_pmd_sleep *s, uint64_t now)
{
    uint64_t elapsed = now - s->window_start;
    if (elapsed < VS_PMD_SLEEP_WINDOW_NS)
        return;
    /* Per WINDOW_NS: a window that ran long (the thread slept in poll())
     * counts its packets over its whole length. */
    uint64_t per_window = (uint64_t)s->window_pkts * VS_PMD_SLEEP_WINDOW_NS / elapsed;
    if (per_window > UINT32_MAX >> VS_PMD_SLEEP_RATE_SHIFT)
        per_window = UINT32_MAX >> VS_PMD_SLEEP_RATE_SHIFT;
    /* The first window sets the average (from 0 it would take a few
     * windows to rise); the next ones move it by 1 / (1 << RATE_SHIFT). */
    if (!s->rate_scaled)
        s->rate_scaled = (uint32_t)per_window << VS_PMD_SLEEP_RATE_SHIFT;
    else
        s->rate_scaled = s->rate_scaled - (s->rate_scaled >> VS_PMD_SLEEP_RATE_SHIFT) +
                         (uint32_t)per_window;
    /* Judged on the rate, not the count: a window that spans an idle gap
     * leaves a sparse rate, and one that ran long because the thread was
     * preempted (a shared CPU) still shows its traffic as dense. */
    if (per_window >= VS_PMD_SLEEP_DENSE_PKTS)
        s->dense_until = now + VS_PMD_SLEEP_HOLD_NS;
    s->window_start = now;
    s->window_pkts = 0;
}

/* The sleep in which half a round's packets (of batch_max) arrive at the
 * averaged rate; max_ns when no rate is known. */
static uint64_t fill_ns(const struct vs_pmd_sleep *s, int batch_max, uint64_t max_ns)
{
    if (!s->rate_scaled)
        return max_ns;
    return ((uint64_t)batch_max / 2 * VS_PMD_SLEEP_WINDOW_NS << VS_PMD_SLEEP_RATE_SHIFT) /
           s->rate_scaled;
}

uint64_t vs_pmd_sleep_after_round(struct vs_pmd_sleep *s, uint32_t pkts, int batch,
                                  int batch_max, uint64_t now, uint64_t max_ns)
{
    s->window_pkts += pkts;
    window_update(s, now);
    s->dense = now < s->dense_until;
    if (!max_ns || !s->dense || batch >= batch_max) {
        s->next_ns = 0; /* sparse traffic, behind, or not sleeping at all: spin */
        return 0;
    }
    if (batch * 2 < batch_max) {
        uint64_t fill = fill_ns(s, batch_max, max_ns);
        s->next_ns += VS_PMD_SLEEP_STEP_NS;
        if (s->next_ns < fill)
            s->next_ns = fill;
    }
    if (s->next_ns > max_ns)
        s->next_ns = max_ns; /* (also when the maximum was lowered meanwhile) */
    return s->next_ns >= VS_PMD_SLEEP_MIN_NS || s->next_ns == max_ns ? s->next_ns : 0;
}

void vs_pmd_sleep_for(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / NS_PER_S), .tv_nsec = (long)(ns % NS_PER_S)};
    clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
}
