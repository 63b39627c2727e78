/* pmd_sleep.c — load-based sleeping for a spinning poll thread (pmd_sleep.h). */
#define _GNU_SOURCE
#include "pmd_sleep.h"

#include <sys/prctl.h>
#include <time.h>

#define NS_PER_S 1000000000ull
#define PORT_BITS 64u

/* The policy (pmd_sleep.h draws it): (state, event) -> (action, next state). */
static const struct {
    uint8_t action, next;
} table[VS_PMD_SLEEP_N_STATES][VS_PMD_SLEEP_N_EVENTS] = {
    [VS_PMD_SLEEP_SPIN] = {
        [VS_PMD_SLEEP_QUIET] = {VS_PMD_SLEEP_RESET, VS_PMD_SLEEP_SPIN},
        [VS_PMD_SLEEP_LIGHT] = {VS_PMD_SLEEP_START, VS_PMD_SLEEP_SLEEP},
        [VS_PMD_SLEEP_MATCHED] = {VS_PMD_SLEEP_RESET, VS_PMD_SLEEP_SPIN},
        [VS_PMD_SLEEP_FULL] = {VS_PMD_SLEEP_RESET, VS_PMD_SLEEP_SPIN},
    },
    [VS_PMD_SLEEP_SLEEP] = {
        [VS_PMD_SLEEP_QUIET] = {VS_PMD_SLEEP_RESET, VS_PMD_SLEEP_SPIN},
        [VS_PMD_SLEEP_LIGHT] = {VS_PMD_SLEEP_GROW, VS_PMD_SLEEP_SLEEP},
        [VS_PMD_SLEEP_MATCHED] = {VS_PMD_SLEEP_HOLD, VS_PMD_SLEEP_SLEEP},
        [VS_PMD_SLEEP_FULL] = {VS_PMD_SLEEP_RESET, VS_PMD_SLEEP_SPIN},
    },
};

void vs_pmd_sleep_thread_init(void)
{
    prctl(PR_SET_TIMERSLACK, VS_PMD_SLEEP_SLACK_NS, 0, 0, 0);
}

uint64_t vs_pmd_sleep_port_bit(uint32_t port_no)
{
    return 1ull << (port_no % PORT_BITS);
}

void vs_pmd_sleep_note_rx(struct vs_pmd_sleep *s, uint32_t port_no, uint32_t n)
{
    if ((s->out_ports | s->out_ports_prev) & vs_pmd_sleep_port_bit(port_no))
        s->window_back += n;
}

void vs_pmd_sleep_note_tx(struct vs_pmd_sleep *s, uint64_t port_bits)
{
    s->out_ports |= port_bits;
}

/* Ends the window if it is over: its packets feed the rate average and its
 * verdict (dense, two-way) starts a hold. */
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
    if (per_window >= VS_PMD_SLEEP_DENSE_PKTS)
        s->dense_until = now + VS_PMD_SLEEP_HOLD_NS;
    if (s->window_back && (uint64_t)s->window_back * VS_PMD_SLEEP_TWO_WAY_SHARE >= s->window_pkts)
        s->two_way_until = now + VS_PMD_SLEEP_HOLD_NS;
    s->window_start = now;
    s->window_pkts = 0;
    s->window_back = 0;
    s->out_ports_prev = s->out_ports;
    s->out_ports = 0;
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

static enum vs_pmd_sleep_event round_event(const struct vs_pmd_sleep *s, int batch,
                                           int batch_max, uint64_t max_ns)
{
    if (!max_ns || !s->dense || s->two_way)
        return VS_PMD_SLEEP_QUIET;
    if (batch >= batch_max)
        return VS_PMD_SLEEP_FULL;
    return batch * 2 < batch_max ? VS_PMD_SLEEP_LIGHT : VS_PMD_SLEEP_MATCHED;
}

uint64_t vs_pmd_sleep_after_round(struct vs_pmd_sleep *s, uint32_t pkts, int batch,
                                  int batch_max, uint64_t now, uint64_t max_ns)
{
    s->window_pkts += pkts;
    window_update(s, now);
    s->dense = now < s->dense_until;
    s->two_way = now < s->two_way_until;
    enum vs_pmd_sleep_event ev = round_event(s, batch, batch_max, max_ns);
    uint32_t state = s->state < VS_PMD_SLEEP_N_STATES ? s->state : VS_PMD_SLEEP_SPIN;
    switch (table[state][ev].action) {
    case VS_PMD_SLEEP_RESET:
        s->next_ns = 0;
        break;
    case VS_PMD_SLEEP_START:
        s->next_ns = fill_ns(s, batch_max, max_ns);
        if (s->next_ns < VS_PMD_SLEEP_MIN_NS)
            s->next_ns = VS_PMD_SLEEP_MIN_NS;
        break;
    case VS_PMD_SLEEP_GROW:
        s->next_ns += VS_PMD_SLEEP_STEP_NS;
        break;
    default: /* VS_PMD_SLEEP_HOLD */
        break;
    }
    s->state = table[state][ev].next;
    if (s->next_ns > max_ns)
        s->next_ns = max_ns; /* (also when the maximum was lowered meanwhile) */
    return s->next_ns;
}

void vs_pmd_sleep_for(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / NS_PER_S), .tv_nsec = (long)(ns % NS_PER_S)};
    clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
}
