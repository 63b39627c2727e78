/* pmd_sleep.h — load-based sleeping for a spinning poll thread.
 *
 * Design note.  A poll thread that spins (busy_poll, or adaptive polling's
 * spin window: datapath.h) burns its whole core however little traffic
 * there is, and at a few packets per batch it pays every per-batch cost
 * (the poll() call, the transmit kick, the completion ring) for those few
 * packets.  So, as Open vSwitch 3.1's other_config:pmd-maxsleep does, after
 * a light round the thread sleeps a little, a little longer each such round
 * (STEP more, up to the maximum).  The caller says what "light" is measured
 * against (batch of batch_max): the datapath passes the round's packets
 * against what one round can read from a queue (PORT_BATCHES_PER_ROUND
 * batches), since a wake-up costs per round, not per batch.  Under half of
 * it the sleep grows, from half on it holds (the load is matched), and a
 * full round ends sleeping at once (the thread is behind).  Under a steady
 * load the sleep settles where rounds are half full or more (or at the
 * maximum): fewer rounds, full batches, cheaper transmits, and the core is
 * free while the rings fill.
 *
 * Unlike OVS, only under dense traffic: at least DENSE_PKTS packets in the
 * last WINDOW_NS.  Sparse traffic (a ping, a request and its reply) would
 * otherwise wait out a sleep at every hop — on a VM a sleep costs a wake-up
 * of tens of µs whatever its length — while sleeping there saves little;
 * such traffic and an idle port see the thread spin as before (busy_poll)
 * or fall back to poll() after the spin window (adaptive).  Sleeps shorter
 * than MIN_NS are not taken: their wake-up costs more than they save.  The
 * thread's timer slack is cut to SLACK_NS (Linux's default 50 µs would
 * stretch every sleep by that much).
 *
 * A maximum of 0 turns it off (pure spinning); the maximum is per datapath
 * (vs_dp_set_pmd_maxsleep), read by the poll threads every round.  The
 * state is the thread's own: no lock.
 */
#ifndef VS_PMD_SLEEP_H
#define VS_PMD_SLEEP_H 1

#include <stdint.h>

#define VS_PMD_SLEEP_STEP_NS 1000ull           /* growth per light round */
#define VS_PMD_SLEEP_MIN_NS 3000ull            /* shorter sleeps are not taken */
#define VS_PMD_SLEEP_WINDOW_NS 100000ull       /* traffic density is judged over this */
#define VS_PMD_SLEEP_DENSE_PKTS 16u            /* packets in a window: dense (160 kpps) */
#define VS_PMD_SLEEP_SLACK_NS 1000ul           /* the poll thread's timer slack */
#define VS_PMD_MAXSLEEP_DEFAULT_NS 25000ull    /* vs_dp_create's maximum */
#define VS_PMD_MAXSLEEP_LIMIT_NS 10000000ull   /* 10 ms, as OVS caps pmd-maxsleep */

struct vs_pmd_sleep {
    uint64_t next_ns;      /* what the next light round sleeps */
    uint64_t window_start; /* the current density window (ns) */
    uint32_t window_pkts;  /* packets received in it */
    uint32_t dense;        /* the last whole window was dense */
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
