/* datapath.h — the fast path: ports, poll threads, the flow cache, actions,
 * the upcall ring and the sample ring.  This is the whole C API the Python
 * slow path sees.
 *
 * Design note.
 *  - Batch-shaped: one call per batch or per control operation.  Python never
 *    handles a packet that hits the cache.
 *  - Ports are instances of port types (netdev.h, netdev_provider.h): the
 *    datapath opens a port through its type's table of operations, found by
 *    name, and only ever calls through that table (one indirect call per
 *    batch received or sent, none per packet); it never tests a type.
 *  - Poll threads ("PMDs", plain pthreads that never touch Python), one by
 *    default, or one pinned per CPU (vs_dp_set_pmds).  Each owns some ports,
 *    its EMC, receive buffers and output staging.  It polls the receive
 *    descriptors its ports' types list (any number per port; one shared by
 *    several ports is polled once, and its type then says which port each
 *    packet arrived on), receives up to VS_BATCH frames per descriptor per
 *    round, parses each once, looks up EMC → megaflow classifier, executes
 *    actions, and sends output batched per port at the end of the batch.
 *    Adaptive polling: after a packet it keeps polling with a zero timeout
 *    (spinning) for a window that adapts between 50 µs and 4 ms (widened
 *    to twice the gap the packet came after, at least doubled, when it
 *    arrives soon after the thread went to sleep; halved when the sleep
 *    was long), then sleeps in poll(); so traffic sees no wake-up
 *    latency and an idle switch costs no CPU.  While spinning under a dense
 *    one-way stream, a round that read less than half of what it could take is
 *    followed by a short sleep that grows round by round up to a small maximum
 *    (load-based sleeping, pmd_sleep.h, as OVS's pmd-maxsleep); a spinning
 *    round that found nothing yields the CPU (sched_yield) to any thread
 *    waiting for it, so the spin never starves applications sharing the
 *    CPUs.  busy_poll (vs_dp_set_pmds) never sleeps in poll() and never
 *    yields, only those short sleeps (none with a maximum of 0).  It skips
 *    poll() while its ports keep filling batches.  An error poll() reports on a
 *    descriptor is handed to the port's type; one that cannot be cleared
 *    marks the port dead, and it is not polled again until replaced.
 *  - Counters per thread say where the cycles go: receive, parse + lookup +
 *    actions, transmit, idle (vs_dp_pmd_stats).
 *  - A miss becomes an upcall: key + frame copied into a bounded ring, an
 *    eventfd is written once per batch, and Python (asyncio) drains it with
 *    vs_dp_recv_upcalls().  A full ring drops the packet and counts it, so a
 *    flood of new flows cannot stall established ones.
 *  - Packet sampling (sFlow, IPFIX) is an action, VS_ACTION_SAMPLE; the slow
 *    path puts it first in a megaflow's list, so that it sees the packet as
 *    received.  Sampled headers (at most VS_SAMPLE_MAX_HEADER bytes) go into
 *    their own bounded ring of VS_SAMPLE_RING slots, allocated once, never
 *    into the upcall ring: a high sampling rate can then never crowd out
 *    flow-miss upcalls.  A full sample ring drops the sample and counts it.
 *    The same eventfd is written (once per batch), and Python drains both
 *    rings when it wakes (vs_dp_recv_upcalls, then vs_dp_recv_samples).
 *    Every packet that reaches a SAMPLE action counts in its input port's
 *    sample pool (sFlow's sample_pool: how many packets the samples were
 *    drawn from).
 *  - Locking.  Poll threads take no lock that a control call holds for
 *    longer than one send; N poll threads receive, look up, execute and
 *    send in parallel.
 *    · The control mutex (vs_dp.mutex) serialises control calls (everything
 *      Python calls, and set_pmds).  It guards the writers' side of the
 *      classifier and of the ports table, the list of poll threads, the
 *      retired counters, execute()'s staging and counters.  Poll threads
 *      never take it.  It is held for bounded work (one flow operation, a
 *      dump's copy), never across Python code.
 *    · Publication (RCU with quiescent states, single writer): the
 *      classifier (classifier.h says how each part is replaced) and the
 *      ports table (dp->ports[], an atomic pointer per slot, plus
 *      ports_gen) are changed only under the control mutex and read by
 *      poll threads without a lock.  A poll thread works in rounds: it
 *      announces itself online (rcu_seq odd, then a full fence), handles
 *      what one poll() reported (at most a few batches per port), and
 *      announces a quiescent point (rcu_seq even) before it polls again;
 *      while sleeping in poll() it is quiescent.  A writer unpublishes,
 *      then waits (dp_synchronize) until every thread that was online has
 *      passed a quiescent point, then frees.  So a control call waits at
 *      most one round of each thread, and forwarding never waits for it.
 *    · Barrier: vs_dp_flow_del, vs_dp_flow_del_stats and vs_dp_flow_flush
 *      return only after that grace period: when they return, no thread
 *      can hit the deleted megaflows any more (their EMC entries are
 *      invalidated by the classifier generation, read before each lookup),
 *      and del_stats' counters are final.  vs_dp_port_del returns after
 *      it too, and closes the port only then.  A put is visible to every
 *      round that starts after it returns.
 *    · Dumps and flushes: vs_dp_flow_dump copies the flows under the
 *      control mutex only, which no poll thread needs, so a dump of any
 *      size never stalls forwarding (it delays other control calls for the
 *      copy: 0.15-0.3 s for 100k megaflows, measured under load, as each
 *      record carries VS_DUMP_MAX_ACTIONS words).  vs_dp_flow_flush publishes
 *      an empty classifier, waits one grace period and frees the old one,
 *      also without anything a poll thread waits for.  So neither needs
 *      chunking to keep poll threads running.  vs_dp_flow_dump_next dumps
 *      in chunks (a cursor): the control mutex is held for one chunk's
 *      copy, so other control calls (the slow path's flow puts) get in
 *      between, and Python converts and handles one chunk at a time.  The
 *      daemon's dumps all use it: the revalidator, `vsctl dpctl-dump-flows`
 *      and `ovs-appctl dpctl/dump-flows`, whose replies are written one
 *      chunk per turn of the event loop (vswitch/chunked_reply.py).
 *      The revalidator's rounds after its first use vs_dp_flow_dump_active:
 *      the same cursor walk, one bounded stretch (VS_DUMP_ACTIVE_VISIT_MAX
 *      megaflows) per call under the control mutex, harvesting each
 *      megaflow's kernel-tier entries as a full dump does, but copying only
 *      those with new traffic or idle, so 100k quiet megaflows cost a C
 *      walk, not 100k records converted in Python.  created_ns (struct
 *      vs_flow) is written by vs_cls_put (vs_dp_flow_put) and read by this walk, both
 *      under the control mutex; poll threads never touch it.
 *    · CPU, not locks, is what a dump takes from a poll thread: on a host
 *      whose CPUs the poll thread shares with the Python thread, a dump's
 *      burst of Python competes with its wake-ups.  vs_dp_set_pmd_nice
 *      (vswitchd --pmd-nice) gives poll threads a larger scheduling weight
 *      (a nice value per thread, never a realtime class); off by default.
 *      Measured with bench/dump_ping.py: see README, "Megaflow dumps".
 *    · What a poll thread may assume: pointers it loads (flows, actions,
 *      subtables, ports) stay valid until the end of its round; it keeps
 *      none across rounds (its poll list holds port numbers and is rebuilt
 *      whenever ports_gen changes); its EMC, subtable ranking
 *      (vs_cls_reader), receive buffers, transmit staging and counters are
 *      its own.
 *    · Per-port transmit mutex (vs_port.tx_mutex): serialises send() on a
 *      port (any thread may output to any port; staging is per thread and
 *      the lock is taken once per port per batch), and the type's control
 *      calls on that port (status, statistics, vs_dp_port_call).  recv()
 *      of a descriptor runs only in the one thread that polls it, with no
 *      datapath lock.
 *    · Counters: a poll thread's (struct vs_pmd_stats) are written only by
 *      it (plain load, relaxed atomic store) and read with relaxed atomic
 *      loads; a port's counters and sample pools, and a megaflow's
 *      counters, are relaxed atomic adds (a megaflow's once per run of
 *      packets of a batch, a port's receive counters once per batch).
 *    · The upcall ring and the sample ring each have their own mutex, a
 *      leaf lock taken by poll threads and execute() for one slot at a
 *      time, and by the recv calls.
 *    · Lock order: control mutex, then one port's tx_mutex, then the port
 *      type's own leaf locks (netdev.h); the ring mutexes are leaves taken
 *      with nothing else held but the control mutex.
 *    · ThreadSanitizer: csrc/build_datapath.py honours VS_SANITIZE=thread
 *      (and the stress test tests/datapath/test_dp_concurrency.py runs
 *      control calls against two forwarding poll threads).
 *  - Actions are a flat array of 32-bit words: each action is a header word
 *    (opcode | number of argument words << 16) followed by its arguments;
 *    see VS_ACTION_*.  An empty list drops.
 */
#ifndef VS_DATAPATH_H
#define VS_DATAPATH_H 1

#include <stdint.h>

#include "classifier.h"
#include "flow_key.h"
#include "netdev.h"
#include "meter.h"
#include "packet_edit.h"

enum {
    VS_ACTION_OUTPUT = 1,    /* arg: port number */
    VS_ACTION_PUSH_VLAN = 2, /* arg: TCI in the low 16 bits, TPID in the high
                              * 16 (0 = 0x8100); pushed in front of any tag */
    VS_ACTION_POP_VLAN = 3,  /* arg: unused */
    VS_ACTION_USERSPACE = 4, /* arg: cookie handed to Python with the packet */
    VS_ACTION_SET_FIELD = 5, /* args: a VS_EDIT_* field, then its new value as
                              * big-endian words, right-aligned (packet_edit.h) */
    VS_ACTION_PUSH_MPLS = 6, /* arg: Ethertype; pushes a zero label stack entry
                              * after the VLAN tag (set it with VS_EDIT_MPLS_LSE) */
    VS_ACTION_POP_MPLS = 7,  /* arg: Ethertype of what follows the popped entry */
    VS_ACTION_SAMPLE = 8,    /* args (VS_SAMPLE_NARGS): probability, cookie,
                              * out_port, header; see struct vs_sample */
    VS_ACTION_TRUNC = 9,     /* arg: max length; the next OUTPUT only sends a
                              * copy cut to that many bytes (a mirror's snaplen),
                              * without offload metadata: a cut frame is sent as
                              * it is.  The packet itself is left whole. */
    VS_ACTION_SET_TUNNEL = 10, /* args (VS_SET_TUNNEL_NARGS): tun_id high and
                              * low 32 bits, outer IPv4 destination and source
                              * (host order, 0 = the port's own / the host's
                              * choice): the tunnel metadata a later output to a
                              * tunnel port with key=flow or remote_ip=flow
                              * encapsulates with (pkt->tnl, VS_TNL_F_SET).
                              * Ports with a fixed remote and key ignore it. */
    VS_ACTION_PUSH_PBB = 11, /* arg: Ethertype (0x88e7); see vs_packet_push_pbb */
    VS_ACTION_POP_PBB = 12,  /* arg: unused; see vs_packet_pop_pbb */
    VS_ACTION_METER = 13,    /* arg: meter id (meter.h); a packet the meter
                              * drops stops here, one it remarks goes on */
};

#define VS_SET_TUNNEL_NARGS 4
#define VS_TPID_8021Q 0x8100

#define VS_ACTION_WORD(op, nargs) ((uint32_t)(op) | (uint32_t)(nargs) << 16)

#define VS_MAX_PORTS 1024
#define VS_MAX_PMDS 64
#define VS_DUMP_MAX_ACTIONS 128
#define VS_PMD_NICE_MIN (-20)
#define VS_PMD_NICE_MAX 19
#define VS_PMD_NICE_DEFAULT 0

/* VS_ACTION_SAMPLE: the packet is sampled when a 32-bit pseudo-random number
 * is below `probability` (1-in-N: floor(2^32 / N)), or always when it is
 * VS_SAMPLE_ALWAYS (1-in-1 does not fit below 2^32).  `cookie` and
 * `out_port` are handed back to Python untouched; `header` is how many bytes
 * of the frame to copy (at most VS_SAMPLE_MAX_HEADER).  Packets reaching the
 * action, sampled or not, count in the input port's pool number
 * cookie % VS_SAMPLE_POOLS, so that samplers with different cookies (sFlow
 * and IPFIX, or several collectors) keep separate pools.  Like USERSPACE it
 * does not change the packet. */
#define VS_SAMPLE_NARGS 4
#define VS_SAMPLE_ALWAYS 0xFFFFFFFFu
#define VS_SAMPLE_MAX_HEADER 256
#define VS_SAMPLE_POOLS 8
#define VS_SAMPLE_RING 4096 /* slots, each with VS_SAMPLE_MAX_HEADER bytes inline */

struct vs_port_stats {
    uint64_t rx_packets, rx_bytes, rx_dropped, rx_malformed;
    uint64_t tx_packets, tx_bytes, tx_dropped;
    /* poll() reported an error on the port's descriptor (a packet socket's
     * netdev went down or away: ENETDOWN is read and counted); `dead` is set
     * when the error cannot be cleared (a tap whose device was deleted): the
     * port is no longer polled, so a vanished netdev never spins a CPU, until
     * the slow path closes and reopens it. */
    uint64_t poll_errors, dead;
};

/* Datapath-wide totals (all poll threads, past and present). */
struct vs_dp_stats {
    uint64_t packets, batches;
    uint64_t emc_hits, megaflow_hits, misses;
    uint64_t upcalls, upcall_drops, malformed;
    uint64_t samples, sample_drops; /* queued / dropped for a full sample ring */
    uint64_t n_flows, n_subtables, n_pmds;
    uint64_t busy_ns, idle_ns, busy_cycles, idle_cycles;
};

/* One poll thread's counters.  Cycles are TSC ticks (ns on non-x86). */
struct vs_pmd_stats {
    int64_t cpu; /* pinned CPU, -1 if not pinned */
    int64_t busy_poll;
    uint64_t packets, batches;
    uint64_t emc_hits, megaflow_hits, misses;
    uint64_t upcalls, upcall_drops, malformed;
    uint64_t samples, sample_drops;
    uint64_t busy_ns, idle_ns, busy_cycles, idle_cycles;
    /* Where the busy cycles go: receive syscalls/ring reads, parse + lookup +
     * actions, and transmit (sendmmsg/writes, offload work). */
    uint64_t rx_cycles, process_cycles, tx_cycles;
    uint64_t sleeps; /* load-based sleeps taken (pmd_sleep.h; in idle_ns) */
    uint64_t wakeups; /* rounds that found packets after sleeping in poll():
                       * each one's first packet waited for a wake-up */
};

struct vs_upcall {
    uint32_t in_port;
    uint32_t cookie; /* 0 for a miss, else the USERSPACE action's arg */
    uint32_t len;    /* frame length */
    uint32_t offset; /* where the frame starts in the caller's buffer */
    struct vs_key key;
    struct vs_vnet_hdr vnet;
};

struct vs_sample {
    uint32_t in_port;
    uint32_t cookie;
    uint32_t out_port;  /* the action's argument */
    uint32_t frame_len; /* the whole frame's length */
    uint32_t len;       /* header bytes copied */
    uint32_t offset;    /* where they start in the caller's buffer */
    /* The input port's pool cookie % VS_SAMPLE_POOLS after counting this
     * packet (uint32, wraps); 0 if in_port is not a port (execute()). */
    uint32_t pool;
    /* Samples dropped for a full ring so far, datapath-wide (wraps): read
     * when the sample is drained, so it includes drops while it waited. */
    uint32_t drops;
    struct vs_key key; /* the packet's key as parsed on receipt (in_port set) */
};

struct vs_flow_dump {
    struct vs_key key;
    struct vs_key mask;
    uint64_t packets, bytes, used_ns;
    uint16_t tcp_flags;
    uint32_t n_actions;
    uint32_t actions[VS_DUMP_MAX_ACTIONS];
};

struct vs_dp;

/* Creates a datapath with one unpinned poll thread. */
struct vs_dp *vs_dp_create(uint32_t upcall_ring_size);
/* Replaces the poll threads by n threads pinned to cpus[i] (cpus NULL or
 * cpus[i] < 0: not pinned); ports are spread over them.  With busy_poll the
 * threads spin instead of sleeping when idle (otherwise: adaptive polling,
 * see the design note).  Returns n. */
int vs_dp_set_pmds(struct vs_dp *, const int *cpus, int n, int busy_poll);
int vs_dp_pmd_stats(struct vs_dp *, struct vs_pmd_stats *out, int max);
void vs_dp_destroy(struct vs_dp *);
int vs_dp_upcall_fd(struct vs_dp *);
/* Load-based sleeping's maximum for the datapath's poll threads, in ns
 * (pmd_sleep.h; OVS's other_config:pmd-maxsleep): 0 turns it off.  Default
 * VS_PMD_MAXSLEEP_DEFAULT_NS.  Returns 0, or -EINVAL above
 * VS_PMD_MAXSLEEP_LIMIT_NS (nothing changed). */
int vs_dp_set_pmd_maxsleep(struct vs_dp *, uint64_t ns);
/* The poll threads' nice value (setpriority per thread; the rest of the
 * process keeps its own), for the threads running now and those started
 * later; VS_PMD_NICE_DEFAULT (0) leaves them as any thread.  A lower value
 * gives a poll thread a larger share of a CPU it shares with the slow path
 * (the CFS/EEVDF weight: about 1.25x per step), so that a burst of Python
 * work (a dump, a flow-mod storm) delays its wake-ups less; it is not
 * realtime scheduling and cannot starve the rest of the system.  Returns 0,
 * -EINVAL outside [VS_PMD_NICE_MIN, VS_PMD_NICE_MAX], or -EACCES/-EPERM
 * when the process may not lower it (no CAP_SYS_NICE): nothing changed. */
int vs_dp_set_pmd_nice(struct vs_dp *, int nice);

/* Opens `name` as port port_no with the port type registered as `type`
 * (netdev.h: "afpacket", "tap", "afxdp", "dummy", ...) and its options.
 * Returns 0, or -errno with the failing step in err (errlen bytes): the
 * slow path decides about fallbacks (vswitch/datapath/port_types.py). */
int vs_dp_port_add(struct vs_dp *, uint32_t port_no, const char *type, const char *name,
                   const struct vs_port_option *opts, int n_opts, char *err, int errlen);
int vs_dp_port_del(struct vs_dp *, uint32_t port_no);
int vs_dp_port_stats(struct vs_dp *, uint32_t port_no, struct vs_port_stats *);

/* The kernel tiers (xdp_tier.h, tc_tier.h; xdp_offload.h): exact flows they
 * forward now, offloaded so far, refused (the map full).  Process-wide; one
 * map serves both tiers. */
struct vs_xdp_offload_counts {
    uint64_t live, added, refused;
};
void vs_dp_xdp_offload_counts(struct vs_xdp_offload_counts *);
/* 1 when the extension was built with the tier (clang and libbpf). */
int vs_xdp_tier_available(void);
/* 1 when it was built with the tc tier (tc_tier.h). */
int vs_tc_tier_available(void);
/* The port's type name; 0 or -ENOENT. */
int vs_dp_port_type(struct vs_dp *, uint32_t port_no, char *out, int outlen);
/* What the port's type reports of it beyond the counters above: status
 * keys (afxdp: xdp_mode, xdp_bind, n_rxq) and counters (afxdp: software
 * offloads, kernel ring drops), up to max (VS_KV_MAX).  Return the count,
 * or -ENOENT. */
int vs_dp_port_type_status(struct vs_dp *, uint32_t port_no, struct vs_port_kv *out, int max);
int vs_dp_port_type_stats(struct vs_dp *, uint32_t port_no, struct vs_port_counter *out,
                          int max);

/* Returns 0 if added, 1 if an identical match existed (actions replaced),
 * -1 on error. */
int vs_dp_flow_put(struct vs_dp *, const struct vs_key *key, const struct vs_key *mask,
                   const uint32_t *actions, uint32_t n_actions);
int vs_dp_flow_del(struct vs_dp *, const struct vs_key *key, const struct vs_key *mask);
/* Deletes a flow as vs_dp_flow_del and copies its final counters (and
 * actions) to *final, so that no packet it forwarded goes unreported.
 * Returns 0, or -1 if there was no such flow. */
int vs_dp_flow_del_stats(struct vs_dp *, const struct vs_key *key, const struct vs_key *mask,
                         struct vs_flow_dump *final);
void vs_dp_flow_flush(struct vs_dp *);
/* Copies up to max flows; returns how many were written.  *total = all flows. */
int vs_dp_flow_dump(struct vs_dp *, struct vs_flow_dump *out, int max, uint64_t *total);
/* One chunk of a dump: up to max megaflows from position *cursor (0 to
 * start), holding the control mutex for that chunk only; *cursor is set for
 * the next call and *done to 1 after the last flow.  Flows added or deleted
 * between two chunks may be missed or appear twice (classifier.h). */
int vs_dp_flow_dump_next(struct vs_dp *, uint64_t *cursor, struct vs_flow_dump *out, int max,
                         int *done);
/* A filtered chunk of a dump, for the revalidator: as vs_dp_flow_dump_next
 * (same cursor, same control mutex per call), but only the megaflows the
 * slow path must look at are copied: those hit since since_ns (used_ns >=
 * since_ns), those whose kernel-tier entries brought new traffic in this
 * very walk (every visited megaflow is harvested first, as in a full dump,
 * so nothing the XDP/tc tier forwarded is lost), and the idle ones: last
 * hit, or install if never hit, before idle_before_ns.  The rest is only
 * counted in *skipped.  One call visits at most VS_DUMP_ACTIVE_VISIT_MAX
 * megaflows, so the mutex is held for a bounded walk even when nothing
 * matches: it may return 0 with *done still 0 (call again). */
#define VS_DUMP_ACTIVE_VISIT_MAX 8192
int vs_dp_flow_dump_active(struct vs_dp *, uint64_t *cursor, uint64_t since_ns,
                           uint64_t idle_before_ns, struct vs_flow_dump *out, int max,
                           int *done, uint64_t *skipped);

/* Drains up to max upcalls; frames are packed into buf.  Returns the count. */
int vs_dp_recv_upcalls(struct vs_dp *, struct vs_upcall *ups, int max, uint8_t *buf,
                       uint32_t buflen);
/* Drains up to max samples; header bytes are packed into buf.  Returns the
 * count.  It does not read the eventfd: vs_dp_recv_upcalls re-arms it, so
 * call that first on a wake-up, then this (a sample queued in between writes
 * the eventfd again afterwards). */
int vs_dp_recv_samples(struct vs_dp *, struct vs_sample *out, int max, uint8_t *buf,
                       uint32_t buflen);
/* Runs actions on one frame (a packet-out, or the packet of an upcall). */
int vs_dp_execute(struct vs_dp *, uint32_t in_port, const uint8_t *frame, uint32_t len,
                  const struct vs_vnet_hdr *vnet, const uint32_t *actions,
                  uint32_t n_actions);
void vs_dp_get_stats(struct vs_dp *, struct vs_dp_stats *);

/* For tests: the parser and classifier without threads or ports. */
int vs_parse_frame(const uint8_t *frame, uint32_t len, struct vs_key *key,
                   uint16_t *tcp_flags);
struct vs_classifier *vs_cls_new(void);
void vs_cls_free(struct vs_classifier *);
/* Batch lookup: out[i] = index the flow was inserted with (put order), or -1. */
void vs_cls_lookup_batch(struct vs_classifier *, const struct vs_key *keys, int n,
                         int64_t *out);
int vs_cls_insert(struct vs_classifier *, const struct vs_key *key,
                  const struct vs_key *mask, uint32_t id);

uint64_t vs_now_ns(void);

#endif
