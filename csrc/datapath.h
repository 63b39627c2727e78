/* datapath.h — the fast path: ports, poll threads, the flow cache, actions,
 * and the upcall ring.  This is the whole C API the Python slow path sees.
 *
 * Design note.
 *  - Batch-shaped: one call per batch or per control operation.  Python never
 *    handles a packet that hits the cache.
 *  - Poll threads ("PMDs", plain pthreads that never touch Python), one by
 *    default, or one pinned per CPU (vs_dp_set_pmds).  Each owns some ports,
 *    its EMC, receive buffers and output staging: it receives up to VS_BATCH
 *    frames per port per round, parses each once, looks up EMC → megaflow
 *    classifier, executes actions, and sends output batched per port at the
 *    end of the batch.  It sleeps in poll() when idle (or spins, if asked),
 *    and skips poll() while its ports keep filling batches.
 *  - Counters per thread say where the cycles go: receive, parse + lookup +
 *    actions, transmit, idle (vs_dp_pmd_stats).
 *  - A miss becomes an upcall: key + frame copied into a bounded ring, an
 *    eventfd is written once per batch, and Python (asyncio) drains it with
 *    vs_dp_recv_upcalls().  A full ring drops the packet and counts it, so a
 *    flood of new flows cannot stall established ones.
 *  - Locking: one datapath mutex serialises the poll threads' batches and every
 *    control call.  Both sides hold it only inside C for bounded work (one
 *    batch, one flow operation), never across Python code, so a poll thread
 *    never waits on the interpreter; control calls announce themselves and
 *    poll threads let them in first.  The upcall ring has its own lock.
 *    (Simpler than RCU publication, at the cost that poll threads do not
 *    look up in parallel.)
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
#include "packet_edit.h"
#include "afxdp.h"

enum {
    VS_ACTION_OUTPUT = 1,    /* arg: port number */
    VS_ACTION_PUSH_VLAN = 2, /* arg: TCI (TPID 0x8100) */
    VS_ACTION_POP_VLAN = 3,  /* arg: unused */
    VS_ACTION_USERSPACE = 4, /* arg: cookie handed to Python with the packet */
    VS_ACTION_SET_FIELD = 5, /* args: a VS_EDIT_* field, then its new value as
                              * big-endian words, right-aligned (packet_edit.h) */
    VS_ACTION_PUSH_MPLS = 6, /* arg: Ethertype; pushes a zero label stack entry
                              * after the VLAN tag (set it with VS_EDIT_MPLS_LSE) */
    VS_ACTION_POP_MPLS = 7,  /* arg: Ethertype of what follows the popped entry */
};

#define VS_ACTION_WORD(op, nargs) ((uint32_t)(op) | (uint32_t)(nargs) << 16)

#define VS_MAX_PORTS 1024
#define VS_MAX_PMDS 64
#define VS_DUMP_MAX_ACTIONS 128

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
    uint64_t busy_ns, idle_ns, busy_cycles, idle_cycles;
    /* Where the busy cycles go: receive syscalls/ring reads, parse + lookup +
     * actions, and transmit (sendmmsg/writes, offload work). */
    uint64_t rx_cycles, process_cycles, tx_cycles;
};

struct vs_upcall {
    uint32_t in_port;
    uint32_t cookie; /* 0 for a miss, else the USERSPACE action's arg */
    uint32_t len;    /* frame length */
    uint32_t offset; /* where the frame starts in the caller's buffer */
    struct vs_key key;
    struct vs_vnet_hdr vnet;
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
 * threads spin instead of sleeping when idle.  Returns n. */
int vs_dp_set_pmds(struct vs_dp *, const int *cpus, int n, int busy_poll);
int vs_dp_pmd_stats(struct vs_dp *, struct vs_pmd_stats *out, int max);
void vs_dp_destroy(struct vs_dp *);
int vs_dp_upcall_fd(struct vs_dp *);

int vs_dp_port_add(struct vs_dp *, uint32_t port_no, int type, const char *ifname);
/* An afxdp port (afxdp.h): xdp_mode is a VS_XDP_* mode.  info tells the mode
 * obtained, or the step that failed (the caller falls back to afpacket). */
int vs_dp_port_add_afxdp(struct vs_dp *, uint32_t port_no, const char *ifname, int xdp_mode,
                         struct vs_afxdp_info *info);
int vs_dp_port_afxdp_stats(struct vs_dp *, uint32_t port_no, struct vs_afxdp_stats *);
int vs_dp_port_del(struct vs_dp *, uint32_t port_no);
int vs_dp_port_stats(struct vs_dp *, uint32_t port_no, struct vs_port_stats *);

/* Returns 0 if added, 1 if an identical match existed (actions replaced),
 * -1 on error. */
int vs_dp_flow_put(struct vs_dp *, const struct vs_key *key, const struct vs_key *mask,
                   const uint32_t *actions, uint32_t n_actions);
int vs_dp_flow_del(struct vs_dp *, const struct vs_key *key, const struct vs_key *mask);
void vs_dp_flow_flush(struct vs_dp *);
/* Copies up to max flows; returns how many were written.  *total = all flows. */
int vs_dp_flow_dump(struct vs_dp *, struct vs_flow_dump *out, int max, uint64_t *total);

/* Drains up to max upcalls; frames are packed into buf.  Returns the count. */
int vs_dp_recv_upcalls(struct vs_dp *, struct vs_upcall *ups, int max, uint8_t *buf,
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
