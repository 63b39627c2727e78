/* pmd_sleep.h — load-based sleeping for a spinning poll thread.
 *
 * Design note.  A poll thread that spins (busy_poll, or adaptive polling's
 * spin window: datapath.h) burns its whole core however little traffic
 * there is, and at a few packets per batch it pays every per-batch cost
 * (the poll() call, the transmit kick, the completion ring) for those few
 * packets.  So, as Open vSwitch 3.1's other_config:pmd-maxsleep does, after
 * a light round the thread sleeps a little.  The caller says what "light" is
 * measured against (batch of batch_max): the datapath passes the round's
 * packets against what one round can read from a queue
 * (PORT_BATCHES_PER_ROUND batches), since a wake-up costs per round, not per
 * batch.  Under half of it the sleep grows, from half on it holds (the load
 * is matched), and a full round ends sleeping at once (the thread is behind).
 *
 * Fewer, longer sleeps.  A sleep is not free: the switch to the idle task
 * and back costs the thread CPU time whatever the sleep's length (about
 * 15 µs of thread CPU per sleep on the 2-CPU bench VM, measured with
 * CLOCK_THREAD_CPUTIME_ID around clock_nanosleep), so what a sleep saves is
 * its length minus that, and the figure of merit is wake-ups per packet.
 * Hence, unlike OVS's 1 µs creep from zero, a light round jumps straight to
 * the sleep that lets half a round accumulate at the arrival rate measured
 * (FILL: rate from an average over density windows), then grows by STEP
 * while rounds stay light; the maximum bounds it (the latency cost), and
 * sleeps shorter than MIN_NS are not taken: their wake-up costs more than
 * they save.  The thread's timer slack is cut to SLACK_NS (Linux's default
 * 50 µs would stretch every sleep by that much).
 *
 * Unlike OVS, only under dense traffic: a window whose rate reached
 * DENSE_PKTS per WINDOW_NS in the last HOLD_NS (the rate, not the count: a
 * window that spans an idle gap is sparse, one that ran long because the
 * thread was preempted on a shared CPU is still dense).  Sparse traffic
 * (a ping, a request and its reply) would otherwise wait out a sleep at
 * every hop — on a VM a sleep costs a wake-up of tens of µs whatever its
 * length — while sleeping there saves little; such traffic and an idle
 * port see the thread spin as before (busy_poll) or fall back to poll()
 * after the spin window (adaptive).  The hold matters because dense traffic comes in bursts (a
 * sender's sendmmsg() of 64 frames, a TCP window): judged window by window,
 * every gap between two bursts ended the dense state and the thread spun
 * (a poll() call per empty round) until the next burst.
 *
 * A maximum of 0 turns it off (pure spinning); the maximum is per datapath
 * (vs_dp_set_pmd_maxsleep), read by the poll threads every round.  The
 * state is the thread's own: no lock.
 */
#ifndef VS_PMD_SLEEP_H
#define VS_PMD_SLEEP_H 1

#include <stdint.h>

#define VS_PMD_SLEEP_STEP_NS 1000ull           /* growth per light round past the fill */
#define VS_PMD_SLEEP_MIN_NS 10000ull           /* shorter sleeps are not taken */
#define VS_PMD_SLEEP_WINDOW_NS 100000ull       /* traffic density is judged over this */
#define VS_PMD_SLEEP_DENSE_PKTS 16u            /* packets in a window: dense (160 kpps) */
#define VS_PMD_SLEEP_HOLD_NS 10000000ull       /* dense until this long after a dense window */
#define VS_PMD_SLEEP_RATE_SHIFT 2u             /* the rate average's weight: 1/4 per window */
#define VS_PMD_SLEEP_SLACK_NS 1000ul           /* the poll thread's timer slack */
#define VS_PMD_MAXSLEEP_DEFAULT_NS 25000ull    /* vs_dp_create's maximum */
#define VS_PMD_MAXSLEEP_LIMIT_NS 10000000ull   /* 10 ms, as OVS caps pmd-maxsleep */

struct vs_pmd_sleep {
    uint64_t next_ns;      /* what the next light round sleeps */
    uint64_t window_start; /* the current density window (ns) */
    uint64_t dense_until;  /* dense while now is before this (ns) */
    uint32_t window_pkts;  /* packets received in it */
    uint32_t dense;        /* a dense window ended less than HOLD_NS ago */
    /* Arrival rate: packets per WINDOW_NS, an average over windows, scaled
     * by 1 << RATE_SHIFT (kept with its fraction). */
    uint32_t rate_scaled;
};

/* Called once by the poll thread itself: cuts its timer slack. */
void vs_pmd_sleep_thread_init(void);
/* After a round that received `pkts` packets, the largest batch `batch` (of
 * batch_max), at time now (ns): how long to sleep now, 0 for not at all. */
uint64_t vs_pmd_sleep_after_round(struct vs_pmd_sleep *, uint32_t pkts, int batch,
                                  int batch_max, uint64_t now, uint64_t max_ns);
/* Sleeps ns (a relative clock_nanosleep; an interruption ends it early). */
void vs_pmd_sleep_for(uint64_t ns);

#endif
