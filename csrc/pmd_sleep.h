/* pmd_sleep.h — load-based sleeping for a spinning poll thread.
 *
 * Design note.  A poll thread that spins (adaptive polling's spin window,
 * datapath.h) burns its whole core however little traffic there is, and at
 * a few packets per batch it pays every per-batch cost (the poll() call, the
 * transmit kick, the completion ring) for those few packets.  So, as Open
 * vSwitch 3.1's other_config:pmd-maxsleep does, after a round whose largest
 * receive batch was less than half of VS_BATCH the thread sleeps a little,
 * a little longer each such round (VS_PMD_SLEEP_STEP_NS more, up to the
 * maximum); a half-full batch holds the sleep where it is (the load is
 * matched), a full batch ends sleeping at once (the thread is behind).
 * Under a steady load the sleep settles where batches are half full or
 * more: fewer rounds, bigger batches, cheaper transmits, and the core is
 * free while the rings fill.  The price is latency: a packet waits at most
 * the maximum (a few tens of µs), which is why the maximum is small and
 * the thread's timer slack is cut to VS_PMD_SLEEP_SLACK_NS (Linux's default
 * 50 µs would double it).
 *
 * It applies to busy-polling threads (vs_dp_set_pmds busy_poll: they never
 * sleep in poll()) as to adaptive ones in their spin window, as OVS's
 * pmd-maxsleep applies to its always-spinning PMDs; a maximum of 0 turns it
 * off (pure spinning).  The maximum is per datapath
 * (vs_dp_set_pmd_maxsleep), read by the poll threads every round.
 * The state is the thread's own: no lock.
 */
#ifndef VS_PMD_SLEEP_H
#define VS_PMD_SLEEP_H 1

#include <stdint.h>

#define VS_PMD_SLEEP_STEP_NS 1000ull     /* growth per light round */
#define VS_PMD_SLEEP_SLACK_NS 1000ul     /* the poll thread's timer slack */
#define VS_PMD_MAXSLEEP_DEFAULT_NS 25000ull /* vs_dp_create's maximum */
#define VS_PMD_MAXSLEEP_LIMIT_NS 10000000ull /* 10 ms, as OVS caps pmd-maxsleep */

struct vs_pmd_sleep {
    uint64_t next_ns; /* what the next light round sleeps */
};

/* Called once by the poll thread itself: cuts its timer slack. */
void vs_pmd_sleep_thread_init(void);
/* After a round whose largest batch was `batch` packets (of batch_max):
 * how long to sleep now, 0 for not at all. */
uint64_t vs_pmd_sleep_after_round(struct vs_pmd_sleep *, int batch, int batch_max,
                                  uint64_t max_ns);
/* Sleeps ns (a relative clock_nanosleep; an interruption ends it early). */
void vs_pmd_sleep_for(uint64_t ns);

#endif
