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
 * batch.
 *
 * The policy is a state table (pmd_sleep.c, `table`), read once per round:
 *
 *   state \ event   QUIET          LIGHT          MATCHED        FULL
 *   SPIN            reset, SPIN    start, SLEEP   reset, SPIN    reset, SPIN
 *   SLEEP           reset, SPIN    grow, SLEEP    hold, SLEEP    reset, SPIN
 *
 * QUIET: the traffic is not a dense one-way stream (see below), or the
 * maximum is 0; LIGHT: a round under half of batch_max; MATCHED: from half
 * on (the load is matched); FULL: a whole round (the thread is behind).
 * start: the sleep in which half a round arrives at the measured rate (the
 * fill), at least MIN_NS; grow: STEP_NS more; hold: the same; reset: none.
 * Every sleep is capped by the maximum.
 *
 * Fewer, longer sleeps.  A sleep is not free: the switch to the idle task
 * and back costs the thread CPU time whatever the sleep's length (about
 * 15 µs of thread CPU per sleep on the 2-CPU bench VM), so the figure of
 * merit is wake-ups per packet: hence the jump to the fill rather than
 * OVS's 1 µs creep from zero, and no sleep shorter than MIN_NS.  The
 * thread's timer slack is cut to SLACK_NS (Linux's default 50 µs would
 * stretch every sleep by that much).
 *
 * Which traffic sleeps: only a dense one-way stream.  Judged per WINDOW_NS
 * window and held for HOLD_NS (bursts with gaps between them stay dense):
 *  - dense: DENSE_PKTS or more per window, judged on the rate (a window
 *    that spans an idle gap is sparse; one that ran long because the thread
 *    was preempted is still dense).  Sparse traffic (a ping, a request and
 *    its reply) would wait out a sleep at every hop while sleeping saves
 *    little there.
 *  - two-way: at least 1 / TWO_WAY_SHARE of the window's packets came in on
 *    ports the thread also sent to (the datapath reports both:
 *    vs_pmd_sleep_note_rx / _note_tx).  That is what a window-clocked
 *    transport looks like (TCP's data one way, its ACKs the other), and
 *    changing how the thread paces itself costs it throughput without
 *    dropping anything.  Measured on the bench (bench/pmd_sleep_ab.py --tcp
 *    --diag, offloads off, interleaved): sleeps up to 50 µs, 5.0 -> 4.3
 *    Gbit/s; no sleeps but rounds that skip poll() (as dense one-way
 *    traffic does, datapath.c), 5.2 -> 4.0; either way no ring drops
 *    (XDP_STATISTICS), no retransmits, cwnd and rtt alike, but the
 *    endpoints' CPU goes idle (busy 88 -> 52 %) while the softirq share
 *    of the switch's CPU rises (41 -> 64 %): the kernel's half of the
 *    transfer (the veth's NAPI running our XDP program, the ACK
 *    processing that releases the sender's next window) ends up on the
 *    switch's CPU, the bottleneck, in the syscalls of the thread's
 *    transmits, and the sender waits.  So a two-way window keeps the
 *    thread spinning, with poll() every round, for HOLD_NS (datapath.c).
 *    Ports are tracked as bit (port_no % 64): two ports that share a bit
 *    only make the policy spin more.
 * Such traffic and an idle port see the thread spin as before (busy_poll) or
 * fall back to poll() after the spin window (adaptive).
 *
 * A maximum of 0 turns it off (pure spinning); the maximum is per datapath
 * (vs_dp_set_pmd_maxsleep), read by the poll threads every round.  The
 * state is the thread's own: no lock.  Time is a parameter (the tests drive
 * the table with a made-up clock).
 */
#ifndef VS_PMD_SLEEP_H
#define VS_PMD_SLEEP_H 1

#include <stdint.h>

#define VS_PMD_SLEEP_STEP_NS 1000ull           /* growth per light round past the fill */
#define VS_PMD_SLEEP_MIN_NS 10000ull           /* no shorter sleep (unless the maximum is) */
#define VS_PMD_SLEEP_WINDOW_NS 100000ull       /* traffic is judged over this */
#define VS_PMD_SLEEP_DENSE_PKTS 16u            /* packets per window: dense (160 kpps) */
#define VS_PMD_SLEEP_HOLD_NS 10000000ull       /* a window's verdict holds this long */
#define VS_PMD_SLEEP_TWO_WAY_SHARE 64u         /* 1/64 of a window's packets back: two-way */
#define VS_PMD_SLEEP_RATE_SHIFT 2u             /* the rate average's weight: 1/4 per window */
#define VS_PMD_SLEEP_SLACK_NS 1000ul           /* the poll thread's timer slack */
#define VS_PMD_MAXSLEEP_DEFAULT_NS 50000ull    /* vs_dp_create's maximum */
#define VS_PMD_MAXSLEEP_LIMIT_NS 10000000ull   /* 10 ms, as OVS caps pmd-maxsleep */

enum vs_pmd_sleep_state { VS_PMD_SLEEP_SPIN, VS_PMD_SLEEP_SLEEP, VS_PMD_SLEEP_N_STATES };
enum vs_pmd_sleep_event {
    VS_PMD_SLEEP_QUIET,   /* not a dense one-way stream (or maximum 0) */
    VS_PMD_SLEEP_LIGHT,   /* the round read under half of what it could */
    VS_PMD_SLEEP_MATCHED, /* half or more */
    VS_PMD_SLEEP_FULL,    /* all it could: behind */
    VS_PMD_SLEEP_N_EVENTS
};
enum vs_pmd_sleep_action {
    VS_PMD_SLEEP_RESET, /* no sleep */
    VS_PMD_SLEEP_START, /* the fill (at least MIN_NS) */
    VS_PMD_SLEEP_GROW,  /* STEP_NS more */
    VS_PMD_SLEEP_HOLD   /* as before */
};

struct vs_pmd_sleep {
    uint64_t next_ns;       /* what the next light round sleeps */
    uint64_t window_start;  /* the current window (ns) */
    uint64_t dense_until;   /* dense while now is before this (ns) */
    uint64_t two_way_until; /* two-way while now is before this (ns) */
    uint64_t out_ports;     /* bits (port_no % 64) of ports sent to, this window */
    uint64_t out_ports_prev; /* ... and the window before */
    uint32_t window_pkts;   /* packets received in the window */
    uint32_t window_back;   /* of which on ports that were sent to */
    uint32_t state;         /* enum vs_pmd_sleep_state */
    uint32_t dense;         /* dense traffic (either way) held: the rings will have more */
    uint32_t two_way;       /* two-way traffic held */
    /* Arrival rate: packets per WINDOW_NS, an average over windows, scaled
     * by 1 << RATE_SHIFT (kept with its fraction). */
    uint32_t rate_scaled;
};

/* Called once by the poll thread itself: cuts its timer slack. */
void vs_pmd_sleep_thread_init(void);
/* The thread received n packets on port_no (of the `pkts` after_round is
 * told of): counted if it sent to that port in this window or the last. */
void vs_pmd_sleep_note_rx(struct vs_pmd_sleep *, uint32_t port_no, uint32_t n);
/* The thread sent to the ports whose bits (port_no % 64) are set. */
void vs_pmd_sleep_note_tx(struct vs_pmd_sleep *, uint64_t port_bits);
/* Bit of port_no in note_tx's set. */
uint64_t vs_pmd_sleep_port_bit(uint32_t port_no);
/* After a round that received `pkts` packets, the largest batch `batch` (of batch_max), at time now (ns): how
 * long to sleep now, 0 for not at all. */
uint64_t vs_pmd_sleep_after_round(struct vs_pmd_sleep *, uint32_t pkts, int batch,
                                  int batch_max, uint64_t now, uint64_t max_ns);
/* Sleeps ns (a relative clock_nanosleep; an interruption ends it early). */
void vs_pmd_sleep_for(uint64_t ns);

#endif
