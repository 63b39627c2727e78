/* datapath.c — poll thread, action execution, upcall and sample rings,
 * control calls. */
#define _GNU_SOURCE
#include "datapath.h"
#include "xdp_offload.h"

#include "netdev_provider.h"

#include <errno.h>
#include <stdio.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "pmd_sleep.h"

#define TXQ_LEN 64
#define TX_MAX_QUEUES 64 /* distinct output ports staged before a flush */
#define ARENA_SIZE (4u << 20)
#define COPY_PKTS 256
#define POLL_IDLE_MS 100 /* an idle poll thread's poll() timeout */
/* Adaptive polling (pmd_main): after a packet a poll thread keeps spinning
 * for spin_ns, between these bounds, before it sleeps in poll() again. */
#define SPIN_MIN_NS 50000ull
#define SPIN_INITIAL_NS 200000ull
/* 4 ms: twice a 2 ms ping's period.  At 2 ms, gaps of a 2 ms sender fell
 * either side of the window (its timer slack), and the echoes behind the
 * longer ones paid a wake-up: 6-7 echoes of 40-90 µs per 500, p99 55 vs
 * OVS's 40 µs; at 4 ms, 2-3, p99 21 vs 25 µs (bench/run.py --vswitch-pmd
 * default, stop 16).  The price: traffic with gaps under 4 ms (250+
 * packets/s) keeps the thread spinning, as OVS's PMDs always spin; an idle
 * switch still spins at most this long after its last packet. */
#define SPIN_MAX_NS 4000000ull
/* A packet that woke the thread widens the window to this many times the
 * gap it came after (the sender's timer jitters around its period). */
#define SPIN_GAP_FACTOR 2u
#define TIER_ETH_TYPE 0x0800 /* IPv4: all the kernel tiers' programs parse */
#define SKIP_POLL_ROUNDS 8 /* under load, rounds between two poll() calls */
/* Batches poll_port reads from a queue per round.  TCP offloads off
 * (bench/pmd_sleep_ab.py --tcp --tcp-off, interleaved medians): 1 cost
 * 5.70 -> 5.26 Gbit/s; 8 and 16 measured as 4.  Neither the order of the
 * ports in a round (the ACKs' port first) nor a light port skipped every
 * other round changed it (6.05 / 6.09 / 5.95 Gbit/s). */
#define PORT_BATCHES_PER_ROUND 4
#define EMC_ALIGN ((size_t)2 << 20) /* a huge page (x86-64's 2 MiB) */
#define MS_PER_S 1000
#define NS_PER_MS 1000000L

/* Counters (datapath.h, "Locking").  One only its owner thread writes: a
 * plain read and a relaxed store, no locked instruction, and a reader's
 * relaxed load always sees a whole value.  One several threads add to: a
 * relaxed atomic add.  Readers load them word by word (stats_load). */
#define OWN_ADD(field, v) __atomic_store_n(&(field), (field) + (v), __ATOMIC_RELAXED)
#define SHARED_ADD(field, v) __atomic_fetch_add(&(field), (v), __ATOMIC_RELAXED)
#define LOAD_PTR(p) __atomic_load_n(&(p), __ATOMIC_ACQUIRE)
#define STORE_PTR(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)

struct vs_port {
    uint32_t port_no;
    int pmd; /* the poll thread that receives on it (set before publication) */
    struct vs_netdev *netdev; /* the port type's handle (netdev_provider.h) */
    const struct vs_netdev_class *class; /* netdev->class */
    /* Serialises send() (and the type's control calls) on this port:
     * several poll threads and execute() may output to it. */
    pthread_mutex_t tx_mutex;
    struct vs_port_stats stats; /* SHARED_ADD counters */
    /* The netdev's ifindex when it runs a kernel tier (xdp_tier.h,
     * tc_tier.h), else 0, and which (enum vs_tier_kind); set before
     * publication. */
    int tier_ifindex;
    int tier_kind;
    /* Packets that reached a SAMPLE action received on this port, per
     * cookie % VS_SAMPLE_POOLS (wrap like sFlow's 32-bit sample_pool);
     * atomic adds. */
    uint32_t sample_pool[VS_SAMPLE_POOLS];
};

/* One output port's packets staged in a tx_ctx. */
struct tx_queue {
    struct vs_port *port;
    int n;
    struct vs_packet *pkts[TXQ_LEN];
};

/* Output staging for one thread of execution (poll thread, or execute()):
 * private, so staging takes no lock; only the flush takes each port's
 * tx_mutex, once per port per batch.  Copies made for non-final outputs
 * live in the arena until the flush.  Port pointers staged here are used
 * only within the round that loaded them (datapath.h, "Locking"). */
struct tx_ctx {
    uint8_t *arena;
    uint32_t arena_used;
    struct vs_packet copies[COPY_PKTS];
    int n_copies;
    struct tx_queue q[TX_MAX_QUEUES];
    int n_dirty;
    uint8_t slot_of[VS_MAX_PORTS]; /* port_no -> index in q + 1, 0 = none */
    /* Ports sent to (vs_pmd_sleep_port_bit) since the poll thread took
     * them for its sleeping policy (process_batch). */
    uint64_t out_ports;
};

struct upcall_slot {
    struct vs_upcall up;
    uint8_t *data;
    uint32_t cap;
};

/* Headers are at most VS_SAMPLE_MAX_HEADER bytes, so they live in the slot:
 * the ring is allocated once and sampling never calls malloc. */
struct sample_slot {
    struct vs_sample s;
    uint8_t data[VS_SAMPLE_MAX_HEADER];
};

/* What one entry of a poll thread's pollfd array stands for: a receive
 * queue (index into the port's rx_fds) of a port. */
struct poll_entry {
    uint32_t port_no;
    int rxq;
};

/* One poll thread ("PMD" in OVS's words): its own EMC, receive buffers,
 * output staging and counters; it polls the ports assigned to it. */
struct vs_pmd {
    struct vs_dp *dp;
    int id;
    pthread_t thread;
    int started;
    int ctl_efd;
    int busy_poll; /* spin on its ports instead of sleeping in poll() */
    int stop;      /* atomic */
    int tid;       /* the thread's id once it runs (pmd_start), else 0; atomic */
    /* Quiescent-state announcements (datapath.h, "Locking"): odd while the
     * thread is in a round and may hold pointers to published memory, even
     * while it is between rounds (in poll(), or stopped).  Only the thread
     * writes it; dp_synchronize reads it. */
    uint64_t rcu_seq;
    /* Adaptive polling: how long to keep spinning after the last packet,
     * and when that was (pmd_main). */
    uint64_t spin_ns, last_rx_ns;
    /* Load-based sleeping (pmd_sleep.h) and the packets received in the
     * current round (poll_port), which drive it. */
    struct vs_pmd_sleep sleep;
    uint32_t round_pkts;
    struct vs_emc_entry *emc;
    struct vs_cls_reader cls_reader; /* its own subtable ranking */
    struct vs_packet rx[VS_BATCH];
    /* rx[i]'s own buffer: a port type may point rx[i].buf at its memory for
     * one batch (netdev_provider.h, recv), so each recv starts from these. */
    uint8_t *rx_bufs[VS_BATCH];
    struct tx_ctx tx;
    struct vs_pmd_stats stats; /* OWN_ADD counters */
    uint64_t prng; /* SAMPLE's random numbers: per thread, no lock, no sharing */
    /* The poll list (pmd_poll_list): entry 0 is ctl_efd. */
    struct pollfd *pfds;
    struct poll_entry *entries;
    int n_pfds, cap_pfds;
    /* Descriptors already listed while building it (open addressing, -1 =
     * free), so that a shared one is polled once. */
    int *seen;
    uint32_t seen_cap;
};

/* Which lock guards what: datapath.h, "Locking". */
struct vs_dp {
    /* The control mutex: serialises control calls (Python, set_pmds), the
     * writers of everything below that poll threads read.  Poll threads
     * never take it. */
    pthread_mutex_t mutex;
    struct vs_classifier cls; /* written under mutex, read by poll threads (RCU) */
    struct vs_port *ports[VS_MAX_PORTS]; /* published: LOAD_PTR/STORE_PTR */
    uint32_t ports_gen; /* bumped (atomically) whenever ports[] changes */
    int n_tier_ports; /* ports running a kernel tier; under mutex */
    /* Load-based sleeping's maximum (pmd_sleep.h), ns: written under mutex
     * with a relaxed atomic store, read by poll threads every round. */
    uint64_t pmd_maxsleep_ns;
    /* The poll threads' nice value (vs_dp_set_pmd_nice): written under
     * mutex, read by each thread as it starts (pmd_start); both sides use
     * seq_cst so that a thread starting during a change gets the new one
     * either way. */
    int pmd_nice;

    struct vs_pmd *pmds[VS_MAX_PMDS]; /* under mutex */
    int n_pmds;
    struct vs_pmd_stats retired; /* counters of poll threads since replaced */
    struct vs_pmd_stats exec_stats; /* upcalls made by execute() */

    struct tx_ctx exec_tx;
    struct vs_packet exec_pkt;
    uint64_t exec_prng; /* execute()'s own, under the control mutex */

    pthread_mutex_t up_mutex;
    struct upcall_slot *ring;
    uint32_t ring_size, ring_head, ring_count;
    int up_efd; /* written for upcalls and samples alike */

    /* The sample ring (VS_SAMPLE_RING slots) and the datapath-wide count of
     * samples it dropped (32 bits, wrapping, as sFlow reports it), under
     * sample_mutex. */
    pthread_mutex_t sample_mutex;
    struct sample_slot *sample_ring;
    uint32_t sample_head, sample_count, sample_ring_drops;
};

static inline uint64_t cycles_now(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#else
    return vs_now_ns();
#endif
}

/* The lock control calls (Python, set_pmds) take; poll threads never do. */
static void control_lock(struct vs_dp *dp)
{
    pthread_mutex_lock(&dp->mutex);
}

static inline struct vs_port *port_get(struct vs_dp *dp, uint32_t port_no)
{
    return port_no < VS_MAX_PORTS ? LOAD_PTR(dp->ports[port_no]) : NULL;
}

/* Copies a struct of 64-bit counters that other threads update (OWN_ADD or
 * SHARED_ADD), each word with a relaxed atomic load. */
static void stats_load(void *dst, const void *src, size_t size)
{
    uint64_t *d = dst;
    const uint64_t *s = src;
    for (size_t i = 0; i < size / sizeof *d; i++)
        d[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

/* ---- grace periods (datapath.h, "Locking") ---- */

/* A poll thread enters a round: from now on it may load published
 * pointers.  The full fence orders the announcement before those loads (a
 * writer's publication and its reading of rcu_seq are ordered the same way
 * in dp_synchronize), so either the writer waits for this round or the
 * round sees the writer's new state.  The store is a release too (free on
 * x86): a writer that reads it has then synchronised with everything the
 * thread did before, without relying on release sequences. */
static void rcu_online(struct vs_pmd *pmd)
{
    __atomic_store_n(&pmd->rcu_seq, pmd->rcu_seq + 1, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* The round is over: nothing loaded in it is used any more. */
static void rcu_quiescent(struct vs_pmd *pmd)
{
    __atomic_store_n(&pmd->rcu_seq, pmd->rcu_seq + 1, __ATOMIC_RELEASE);
}

/* Waits until every poll thread has been quiescent at least once since the
 * call: memory unpublished before it is then unreachable.  Called with the
 * control mutex held (dp->pmds is stable); a thread in poll() or between
 * rounds is not waited for.  Takes at most one round of each thread (one
 * batch per port). */
static void dp_synchronize(void *aux)
{
    struct vs_dp *dp = aux;
    uint64_t snap[VS_MAX_PMDS];
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    for (int i = 0; i < dp->n_pmds; i++)
        snap[i] = __atomic_load_n(&dp->pmds[i]->rcu_seq, __ATOMIC_ACQUIRE);
    for (int i = 0; i < dp->n_pmds; i++)
        while ((snap[i] & 1) && __atomic_load_n(&dp->pmds[i]->rcu_seq, __ATOMIC_ACQUIRE) == snap[i])
            sched_yield();
}

uint64_t vs_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- output staging ---- */

static void tx_flush(struct tx_ctx *tx)
{
    for (int i = 0; i < tx->n_dirty; i++) {
        struct tx_queue *q = &tx->q[i];
        struct vs_port *p = q->port;
        pthread_mutex_lock(&p->tx_mutex);
        int sent = p->class->send(p->netdev, q->pkts, q->n);
        pthread_mutex_unlock(&p->tx_mutex);
        uint64_t bytes = 0;
        for (int j = 0; j < sent; j++)
            bytes += q->pkts[j]->len;
        SHARED_ADD(p->stats.tx_packets, (uint64_t)sent);
        SHARED_ADD(p->stats.tx_bytes, bytes);
        if (q->n > sent)
            SHARED_ADD(p->stats.tx_dropped, (uint64_t)(q->n - sent));
        tx->slot_of[p->port_no] = 0;
        tx->out_ports |= vs_pmd_sleep_port_bit(p->port_no);
        q->n = 0;
    }
    tx->n_dirty = 0;
    tx->arena_used = 0;
    tx->n_copies = 0;
}

static struct vs_packet *tx_copy(struct tx_ctx *tx, const struct vs_packet *pkt)
{
    uint32_t need = (pkt->len + VS_HEADROOM + 63) & ~63u;
    if (tx->n_copies == COPY_PKTS || tx->arena_used + need > ARENA_SIZE)
        tx_flush(tx);
    struct vs_packet *c = &tx->copies[tx->n_copies++];
    c->buf = tx->arena + tx->arena_used;
    c->data = c->buf + VS_HEADROOM;
    c->len = pkt->len;
    c->in_port = pkt->in_port;
    c->vnet = pkt->vnet;
    c->tnl = pkt->tnl;
    memcpy(c->data, pkt->data, pkt->len);
    tx->arena_used += need;
    return c;
}

static void tx_enqueue(struct tx_ctx *tx, struct vs_port *p, struct vs_packet *pkt)
{
    int slot = tx->slot_of[p->port_no];
    if (slot && tx->q[slot - 1].n == TXQ_LEN) {
        tx_flush(tx);
        slot = 0;
    }
    if (!slot) {
        if (tx->n_dirty == TX_MAX_QUEUES)
            tx_flush(tx);
        struct tx_queue *q = &tx->q[tx->n_dirty++];
        q->port = p;
        q->n = 0;
        slot = tx->n_dirty;
        tx->slot_of[p->port_no] = (uint8_t)slot;
    }
    struct tx_queue *q = &tx->q[slot - 1];
    q->pkts[q->n++] = pkt;
}

/* ---- upcalls ---- */

static int upcall_enqueue(struct vs_dp *dp, struct vs_pmd_stats *st, uint32_t in_port,
                          uint32_t cookie, const struct vs_key *key,
                          const struct vs_packet *pkt)
{
    int ok = 0;
    pthread_mutex_lock(&dp->up_mutex);
    if (dp->ring_count < dp->ring_size) {
        struct upcall_slot *s = &dp->ring[(dp->ring_head + dp->ring_count) % dp->ring_size];
        if (s->cap < pkt->len) {
            uint8_t *d = realloc(s->data, pkt->len);
            if (d) {
                s->data = d;
                s->cap = pkt->len;
            }
        }
        if (s->cap >= pkt->len) {
            memcpy(s->data, pkt->data, pkt->len);
            s->up.in_port = in_port;
            s->up.cookie = cookie;
            s->up.len = pkt->len;
            s->up.key = *key;
            s->up.vnet = pkt->vnet;
            dp->ring_count++;
            ok = 1;
        }
    }
    pthread_mutex_unlock(&dp->up_mutex);
    if (ok)
        OWN_ADD(st->upcalls, 1);
    else
        OWN_ADD(st->upcall_drops, 1);
    return ok;
}

static void upcall_notify(struct vs_dp *dp)
{
    uint64_t one = 1;
    ssize_t r = write(dp->up_efd, &one, sizeof one);
    (void)r;
}

/* ---- samples ---- */

/* xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift
 * generators"): a few cycles per number and good enough upper 32 bits for
 * a sampling decision.  Not for anything that must be unpredictable. */
#define XORSHIFT64STAR_MUL 0x2545F4914F6CDD1Dull
/* splitmix64's constants: turns a weak seed (a time, a thread id) into a
 * well-mixed, non-zero xorshift state (zero would stay zero forever). */
#define SPLITMIX64_GAMMA 0x9E3779B97F4A7C15ull
#define SPLITMIX64_MUL1 0xBF58476D1CE4E5B9ull
#define SPLITMIX64_MUL2 0x94D049BB133111EBull

static uint64_t prng_seed(uint64_t seed)
{
    uint64_t z = seed + SPLITMIX64_GAMMA;
    z = (z ^ (z >> 30)) * SPLITMIX64_MUL1;
    z = (z ^ (z >> 27)) * SPLITMIX64_MUL2;
    z ^= z >> 31;
    return z ? z : SPLITMIX64_GAMMA;
}

static inline uint32_t prng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (uint32_t)((x * XORSHIFT64STAR_MUL) >> 32);
}

/* Copies the first bytes of pkt into the sample ring.  Returns 1 if queued,
 * 0 if the ring was full (counted, per thread and datapath-wide). */
static int sample_enqueue(struct vs_dp *dp, struct vs_pmd_stats *st, uint32_t in_port,
                          const uint32_t *args, uint32_t pool, const struct vs_key *key,
                          const struct vs_packet *pkt)
{
    uint32_t len = args[3] < pkt->len ? args[3] : pkt->len;
    if (len > VS_SAMPLE_MAX_HEADER)
        len = VS_SAMPLE_MAX_HEADER;
    int ok = 0;
    pthread_mutex_lock(&dp->sample_mutex);
    if (dp->sample_count < VS_SAMPLE_RING) {
        struct sample_slot *s =
            &dp->sample_ring[(dp->sample_head + dp->sample_count) % VS_SAMPLE_RING];
        s->s.in_port = in_port;
        s->s.cookie = args[1];
        s->s.out_port = args[2];
        s->s.frame_len = pkt->len;
        s->s.len = len;
        s->s.pool = pool;
        s->s.key = *key;
        memcpy(s->data, pkt->data, len);
        dp->sample_count++;
        ok = 1;
    } else {
        dp->sample_ring_drops++;
    }
    pthread_mutex_unlock(&dp->sample_mutex);
    if (ok)
        OWN_ADD(st->samples, 1);
    else
        OWN_ADD(st->sample_drops, 1);
    return ok;
}

/* VS_ACTION_SAMPLE (datapath.h).  The pool counts every packet that reaches
 * the action, so that a collector can scale samples back to totals (an
 * atomic add: any poll thread may count on any port).  Returns 1 if a
 * sample was queued. */
static int sample_action(struct vs_dp *dp, struct vs_pmd_stats *st, uint64_t *prng,
                         uint32_t in_port, const struct vs_key *key,
                         const struct vs_packet *pkt, const uint32_t *args)
{
    uint32_t probability = args[0], cookie = args[1];
    struct vs_port *port = port_get(dp, in_port);
    uint32_t pool = port ? __atomic_add_fetch(&port->sample_pool[cookie % VS_SAMPLE_POOLS], 1,
                                              __ATOMIC_RELAXED)
                         : 0;
    if (probability != VS_SAMPLE_ALWAYS && prng_next(prng) >= probability)
        return 0;
    return sample_enqueue(dp, st, in_port, args, pool, key, pkt);
}

/* ---- actions ---- */

static void vnet_shift(struct vs_packet *pkt, int delta)
{
    if (pkt->vnet.flags & VS_VNET_F_NEEDS_CSUM)
        pkt->vnet.csum_start = (uint16_t)(pkt->vnet.csum_start + delta);
    if (pkt->vnet.gso_type && pkt->vnet.hdr_len)
        pkt->vnet.hdr_len = (uint16_t)(pkt->vnet.hdr_len + delta);
}

static void pop_vlan(struct vs_packet *pkt)
{
    if (pkt->len < 18)
        return;
    uint16_t tpid = (uint16_t)(pkt->data[12] << 8 | pkt->data[13]);
    if (tpid != 0x8100 && tpid != 0x88a8)
        return;
    memmove(pkt->data + 4, pkt->data, 12);
    pkt->data += 4;
    pkt->len -= 4;
    vnet_shift(pkt, -4);
}

static void push_mpls(struct vs_packet *pkt, uint16_t ethertype)
{
    if (pkt->data - pkt->buf < 4 || pkt->len < 14)
        return;
    uint32_t off = vs_ethertype_offset(pkt);
    pkt->data -= 4;
    memmove(pkt->data, pkt->data + 4, off);
    pkt->data[off] = (uint8_t)(ethertype >> 8);
    pkt->data[off + 1] = (uint8_t)ethertype;
    memset(pkt->data + off + 2, 0, 4);
    pkt->len += 4;
    vnet_shift(pkt, 4);
}

static void pop_mpls(struct vs_packet *pkt, uint16_t ethertype)
{
    uint32_t off = vs_ethertype_offset(pkt);
    if (pkt->len < off + 6)
        return;
    uint16_t type = (uint16_t)(pkt->data[off] << 8 | pkt->data[off + 1]);
    if (type != 0x8847 && type != 0x8848)
        return;
    memmove(pkt->data + 4, pkt->data, off);
    pkt->data += 4;
    pkt->len -= 4;
    pkt->data[off] = (uint8_t)(ethertype >> 8);
    pkt->data[off + 1] = (uint8_t)ethertype;
    vnet_shift(pkt, -4);
}

static const uint8_t edit_width[] = {
    [VS_EDIT_ETH_SRC] = 6,  [VS_EDIT_ETH_DST] = 6,  [VS_EDIT_IPV4_SRC] = 4,
    [VS_EDIT_IPV4_DST] = 4, [VS_EDIT_IPV4_TOS] = 1, [VS_EDIT_IPV4_TTL] = 1,
    [VS_EDIT_IPV6_SRC] = 16, [VS_EDIT_IPV6_DST] = 16, [VS_EDIT_TP_SRC] = 2,
    [VS_EDIT_TP_DST] = 2, [VS_EDIT_IPV6_TC] = 1, [VS_EDIT_IPV6_HLIMIT] = 1,
    [VS_EDIT_IPV6_FLABEL] = 4, [VS_EDIT_ICMP_TYPE] = 1, [VS_EDIT_ICMP_CODE] = 1,
    [VS_EDIT_ARP_OP] = 2, [VS_EDIT_ARP_SHA] = 6, [VS_EDIT_ARP_SPA] = 4,
    [VS_EDIT_ARP_THA] = 6, [VS_EDIT_ARP_TPA] = 4, [VS_EDIT_MPLS_LSE] = 4,
    [VS_EDIT_ND_TARGET] = 16, [VS_EDIT_ND_SLL] = 6, [VS_EDIT_ND_TLL] = 6,
    [VS_EDIT_VLAN_TCI] = 2, [VS_EDIT_PBB_ISID] = 4, [VS_EDIT_INNER_TTL] = 1,
};

static void set_field(struct vs_packet *pkt, const uint32_t *args, uint32_t nargs)
{
    uint32_t field = args[0], nwords = nargs - 1;
    if (field >= sizeof edit_width || !edit_width[field] || nwords > 4 ||
        nwords * 4 < edit_width[field])
        return;
    uint8_t buf[16];
    for (uint32_t k = 0; k < nwords; k++) {
        buf[4 * k] = (uint8_t)(args[1 + k] >> 24);
        buf[4 * k + 1] = (uint8_t)(args[1 + k] >> 16);
        buf[4 * k + 2] = (uint8_t)(args[1 + k] >> 8);
        buf[4 * k + 3] = (uint8_t)args[1 + k];
    }
    vs_packet_edit(pkt, (int)field, buf + 4 * nwords - edit_width[field]);
}

#define ACT_OP(w) ((w) & 0xffffu)
#define ACT_NARGS(w) ((w) >> 16)

/* Executes `acts` on pkt.  The final output hands over the packet itself,
 * unless an edit follows it (the staged frame is sent only at the flush, so
 * the edit would change it); every other output sends a copy, since later
 * actions may still change the packet.  USERSPACE and SAMPLE copy the packet
 * and leave it as it was, so they are not edits; nor is TRUNC, which cuts
 * only the copy the next output sends.  A truncated action list
 * stops at the last whole action.  Returns 1 if anything was queued for the
 * slow path (an upcall or a sample): the caller then writes the eventfd. */
static int exec_actions(struct vs_dp *dp, struct tx_ctx *tx, struct vs_pmd_stats *st,
                        uint64_t *prng, struct vs_packet *pkt, uint32_t in_port,
                        const struct vs_key *key, const uint32_t *acts, uint32_t n)
{
    int queued = 0;
    uint32_t trunc = 0; /* a TRUNC's length, for the next output */
    uint32_t last_output = UINT32_MAX;
    int edited_after = 0;
    for (uint32_t i = 0; i < n && i + ACT_NARGS(acts[i]) < n; i += 1 + ACT_NARGS(acts[i])) {
        uint32_t op = ACT_OP(acts[i]);
        if (op == VS_ACTION_OUTPUT) {
            last_output = i;
            edited_after = 0;
        } else if (op != VS_ACTION_USERSPACE && op != VS_ACTION_SAMPLE && op != VS_ACTION_TRUNC) {
            edited_after = 1;
        }
    }
    if (edited_after)
        last_output = UINT32_MAX;
    for (uint32_t i = 0; i < n; i += 1 + ACT_NARGS(acts[i])) {
        uint32_t nargs = ACT_NARGS(acts[i]);
        if (!nargs || i + nargs >= n)
            break;
        const uint32_t *args = &acts[i + 1];
        switch (ACT_OP(acts[i])) {
        case VS_ACTION_OUTPUT: {
            struct vs_port *p = port_get(dp, args[0]);
            uint32_t cut = trunc;
            trunc = 0;
            if (!p)
                break;
            if (cut && pkt->len > cut) {
                struct vs_packet *c = tx_copy(tx, pkt);
                c->len = cut;
                memset(&c->vnet, 0, sizeof c->vnet);
                tx_enqueue(tx, p, c);
                break;
            }
            tx_enqueue(tx, p, i == last_output ? pkt : tx_copy(tx, pkt));
            break;
        }
        case VS_ACTION_TRUNC:
            trunc = args[0];
            break;
        case VS_ACTION_PUSH_VLAN: {
            uint16_t tpid = (uint16_t)(args[0] >> 16);
            vnet_shift(pkt, vs_packet_push_vlan(pkt, tpid ? tpid : VS_TPID_8021Q, (uint16_t)args[0]));
            break;
        }
        case VS_ACTION_PUSH_PBB:
            vnet_shift(pkt, vs_packet_push_pbb(pkt, (uint16_t)args[0]));
            break;
        case VS_ACTION_POP_PBB:
            vnet_shift(pkt, vs_packet_pop_pbb(pkt));
            break;
        case VS_ACTION_METER:
            if (!vs_meter_apply(args[0], pkt, vs_now_ns()))
                return queued; /* dropped by a band: no later action runs */
            break;
        case VS_ACTION_POP_VLAN:
            pop_vlan(pkt);
            break;
        case VS_ACTION_PUSH_MPLS:
            push_mpls(pkt, (uint16_t)args[0]);
            break;
        case VS_ACTION_POP_MPLS:
            pop_mpls(pkt, (uint16_t)args[0]);
            break;
        case VS_ACTION_USERSPACE:
            queued |= upcall_enqueue(dp, st, in_port, args[0], key, pkt);
            break;
        case VS_ACTION_SAMPLE:
            if (nargs >= VS_SAMPLE_NARGS)
                queued |= sample_action(dp, st, prng, in_port, key, pkt, args);
            break;
        case VS_ACTION_SET_FIELD:
            set_field(pkt, args, nargs);
            break;
        case VS_ACTION_SET_TUNNEL:
            if (nargs >= VS_SET_TUNNEL_NARGS) {
                pkt->tnl.tun_id = (uint64_t)args[0] << 32 | args[1];
                pkt->tnl.ip_dst = htonl(args[2]);
                pkt->tnl.ip_src = htonl(args[3]);
                pkt->tnl.flags |= VS_TNL_F_PRESENT | VS_TNL_F_SET;
            }
            break;
        default:
            break;
        }
    }
    return queued;
}

/* ---- the poll thread ---- */

/* A run of packets of one batch that hit the same flow: its counters are
 * added once per run, not once per packet (fewer atomic adds on a line
 * other threads may hit too). */
struct flow_run {
    struct vs_flow *flow;
    uint64_t packets, bytes;
    uint16_t tcp_flags;
};

static void flow_run_flush(struct flow_run *run, uint64_t now)
{
    struct vs_flow *f = run->flow;
    if (!f)
        return;
    SHARED_ADD(f->packets, run->packets);
    SHARED_ADD(f->bytes, run->bytes);
    __atomic_store_n(&f->used_ns, now, __ATOMIC_RELAXED);
    if (run->tcp_flags)
        __atomic_fetch_or(&f->tcp_flags, run->tcp_flags, __ATOMIC_RELAXED);
    run->flow = NULL;
}

static void flow_run_add(struct flow_run *run, struct vs_flow *f, uint32_t len,
                         uint16_t tcp_flags, uint64_t now)
{
    if (run->flow != f) {
        flow_run_flush(run, now);
        *run = (struct flow_run){f, 0, 0, 0};
    }
    run->packets++;
    run->bytes += len;
    run->tcp_flags |= tcp_flags;
}

/* A kernel tier (xdp_offload.h) takes over an exact flow whose megaflow
 * does nothing but output to one port, when both ports run the same tier
 * (XDP's redirect needs the devmap, tc's its tc_ports map: tc_tier.h) and
 * the packet is of the kind the programs parse (untagged IPv4, not a
 * fragment).  Called on megaflow hits only: an EMC hit is a flow already
 * seen. */
static void tier_offload_consider(struct vs_dp *dp, struct vs_port *in, struct vs_flow *f,
                                 const struct vs_actions *acts, const struct vs_key *key)
{
    if (acts->n != 2 || ACT_OP(acts->words[0]) != VS_ACTION_OUTPUT
        || ACT_NARGS(acts->words[0]) != 1 || key->dl_type != TIER_ETH_TYPE || key->vlan_tci
        || key->nw_frag)
        return;
    struct vs_port *out = port_get(dp, acts->words[1]);
    if (out && out->tier_ifindex && out->tier_kind == in->tier_kind)
        vs_xdp_offload_add(f, key, in->tier_ifindex, out->port_no, out->tier_ifindex);
}

/* `port` is the port polled; a type that demultiplexes a shared descriptor
 * (a tunnel socket) may have set another port's number in pkt->in_port.
 * Runs inside a round (rcu_online).  Three passes: the first resolves each
 * packet's input port and parses it, the second hashes each key and
 * prefetches its EMC slot, the third looks them up and runs the actions, so
 * the slots' cache misses overlap instead of stalling one packet at a time
 * (10k flows miss the cache on most slots). */
static int process_batch(struct vs_pmd *pmd, struct vs_port *port, struct vs_packet *pkts,
                         int n, uint64_t now)
{
    struct vs_dp *dp = pmd->dp;
    struct vs_pmd_stats *st = &pmd->stats;
    int upcalled = 0;
    uint64_t own_packets = 0, own_bytes = 0; /* the polled port's, added once */
    struct flow_run run = {0};
    struct vs_key keys[VS_BATCH];
    struct vs_port *ins[VS_BATCH]; /* NULL: dropped in the first pass */
    uint32_t hashes[VS_BATCH];
    uint16_t tcp_flags[VS_BATCH];
    if (n > VS_BATCH)
        n = VS_BATCH;
    for (int i = 0; i < n; i++) {
        struct vs_packet *pkt = &pkts[i];
        struct vs_port *in = port;
        ins[i] = NULL;
        if (pkt->in_port != port->port_no) {
            in = port_get(dp, pkt->in_port);
            if (!in) { /* a port that went away meanwhile */
                SHARED_ADD(port->stats.rx_dropped, 1);
                continue;
            }
            SHARED_ADD(in->stats.rx_packets, 1);
            SHARED_ADD(in->stats.rx_bytes, pkt->len);
        } else {
            own_packets++;
            own_bytes += pkt->len;
        }
        struct vs_key *key = &keys[i];
        key->in_port = in->port_no;
        if (vs_parse(pkt->data, pkt->len, key, &tcp_flags[i])) {
            SHARED_ADD(in->stats.rx_malformed, 1);
            SHARED_ADD(in->stats.rx_dropped, 1);
            OWN_ADD(st->malformed, 1);
            continue;
        }
        /* Tunnel metadata a tunnel port attached (netdev.h): looked up
         * with the inner frame's fields. */
        if (pkt->tnl.flags & VS_TNL_F_PRESENT) {
            key->tun_id = pkt->tnl.tun_id;
            key->tun_src = pkt->tnl.ip_src;
            key->tun_dst = pkt->tnl.ip_dst;
        }
        ins[i] = in;
    }
    /* Hashing in a pass of its own: the key's 64-bit words read right after
     * vs_parse's byte and half-word stores to them cannot be forwarded
     * from the store buffer and stall until those reach the cache (6 % of
     * the switch CPU in vs_key_hash, 64-byte blast, perf); a batch later
     * they are there. */
    for (int i = 0; i < n; i++) {
        if (!ins[i])
            continue;
        hashes[i] = vs_key_hash(&keys[i]);
        vs_emc_prefetch(pmd->emc, hashes[i]);
    }
    for (int i = 0; i < n; i++) {
        struct vs_port *in = ins[i];
        if (!in)
            continue;
        struct vs_packet *pkt = &pkts[i];
        const struct vs_key *key = &keys[i];
        int tier;
        struct vs_flow *f = vs_emc_lookup_hashed(&dp->cls, &pmd->cls_reader, pmd->emc, key,
                                                 hashes[i], &tier);
        if (!f) {
            OWN_ADD(st->misses, 1);
            upcalled |= upcall_enqueue(dp, st, in->port_no, 0, key, pkt);
            continue;
        }
        const struct vs_actions *acts = LOAD_PTR(f->actions);
        if (tier == 1) {
            OWN_ADD(st->emc_hits, 1);
        } else {
            OWN_ADD(st->megaflow_hits, 1);
            if (in->tier_ifindex)
                tier_offload_consider(dp, in, f, acts, key);
        }
        flow_run_add(&run, f, pkt->len, tcp_flags[i], now);
        upcalled |= exec_actions(dp, &pmd->tx, st, &pmd->prng, pkt, in->port_no, key,
                                 acts->words, acts->n);
    }
    flow_run_flush(&run, now);
    SHARED_ADD(port->stats.rx_packets, own_packets);
    SHARED_ADD(port->stats.rx_bytes, own_bytes);
    uint64_t c = cycles_now();
    tx_flush(&pmd->tx);
    OWN_ADD(st->tx_cycles, cycles_now() - c);
    vs_pmd_sleep_note_tx(&pmd->sleep, pmd->tx.out_ports); /* two-way traffic (pmd_sleep.h) */
    pmd->tx.out_ports = 0;
    OWN_ADD(st->packets, (uint64_t)n);
    OWN_ADD(st->batches, 1);
    return upcalled;
}

/* Receives from one receive queue of a port.  Returns 1 if it still had a
 * full batch waiting at the end. */
static int poll_port(struct vs_pmd *pmd, struct vs_port *port, int rxq, int *upcalled,
                     uint64_t now)
{
    /* A few batches per port per round keeps one busy port from starving
     * the others while still amortising the poll() call. */
    for (int round = 0; round < PORT_BATCHES_PER_ROUND; round++) {
        uint64_t truncated = 0;
        uint64_t c0 = cycles_now();
        for (int i = 0; i < VS_BATCH; i++) {
            pmd->rx[i].in_port = port->port_no;
            pmd->rx[i].tnl.flags = 0;
            pmd->rx[i].buf = pmd->rx_bufs[i];
        }
        int n = port->class->recv(port->netdev, rxq, pmd->rx, VS_BATCH, &truncated);
        uint64_t c1 = cycles_now();
        OWN_ADD(pmd->stats.rx_cycles, c1 - c0);
        if (truncated) {
            SHARED_ADD(port->stats.rx_dropped, truncated);
            SHARED_ADD(port->stats.rx_malformed, truncated);
        }
        if (n <= 0)
            return 0;
        pmd->round_pkts += (uint32_t)n;
        vs_pmd_sleep_note_rx(&pmd->sleep, port->port_no, (uint32_t)n);
        uint64_t tx_before = pmd->stats.tx_cycles;
        pmd->last_rx_ns = now;
        *upcalled |= process_batch(pmd, port, pmd->rx, n, now);
        /* process = the batch minus its transmit, measured inside it */
        OWN_ADD(pmd->stats.process_cycles, cycles_now() - c1 - (pmd->stats.tx_cycles - tx_before));
        if (n < VS_BATCH)
            return 0;
    }
    return 1;
}

/* poll() said POLLERR/POLLHUP/POLLNVAL without POLLIN on one of the port's
 * descriptors.  The type says whether that can be cleared (a packet
 * socket's pending error is read: one whose netdev went down or away then
 * sleeps in poll() again); if not, the port is marked dead and left out of
 * poll() until the slow path replaces it.  Returns 1 if the port must not be
 * polled any more.  Called by the thread that polls the descriptor. */
static int port_poll_error(struct vs_port *port, int rxq, int fd, short revents)
{
    SHARED_ADD(port->stats.poll_errors, 1);
    int dead = port->class->poll_error ? port->class->poll_error(port->netdev, rxq, fd, revents)
                                       : vs_netdev_poll_error(fd, revents);
    if (dead)
        __atomic_store_n(&port->stats.dead, 1, __ATOMIC_RELAXED);
    return dead;
}

/* Adds fd to the set of descriptors seen; returns 0 if it was there. */
static int seen_add(struct vs_pmd *pmd, int fd, uint32_t *n_seen)
{
    if ((*n_seen + 1) * 2 > pmd->seen_cap) {
        uint32_t cap = pmd->seen_cap ? pmd->seen_cap * 2 : 256;
        int *slots = malloc(cap * sizeof *slots);
        if (!slots)
            return 1; /* cannot deduplicate: poll it (a shared one twice) */
        memset(slots, 0xff, cap * sizeof *slots);
        for (uint32_t i = 0; i < pmd->seen_cap; i++) {
            if (pmd->seen[i] < 0)
                continue;
            uint32_t h = (uint32_t)pmd->seen[i] * 2654435761u & (cap - 1);
            while (slots[h] >= 0)
                h = (h + 1) & (cap - 1);
            slots[h] = pmd->seen[i];
        }
        free(pmd->seen);
        pmd->seen = slots;
        pmd->seen_cap = cap;
    }
    uint32_t h = (uint32_t)fd * 2654435761u & (pmd->seen_cap - 1);
    while (pmd->seen[h] >= 0) {
        if (pmd->seen[h] == fd)
            return 0;
        h = (h + 1) & (pmd->seen_cap - 1);
    }
    pmd->seen[h] = fd;
    (*n_seen)++;
    return 1;
}

static int poll_list_grow(struct vs_pmd *pmd)
{
    int cap = pmd->cap_pfds ? pmd->cap_pfds * 2 : 64;
    struct pollfd *pfds = realloc(pmd->pfds, (size_t)cap * sizeof *pfds);
    if (!pfds)
        return -1;
    pmd->pfds = pfds;
    struct poll_entry *entries = realloc(pmd->entries, (size_t)cap * sizeof *entries);
    if (!entries)
        return -1;
    pmd->entries = entries;
    pmd->cap_pfds = cap;
    return 0;
}

/* Rebuilds the thread's poll list, inside a round: its control
 * eventfd, then every receive descriptor (rx_fds) of the live ports assigned
 * to it.  A descriptor several ports list (a tunnel's shared socket) is
 * polled once, through the lowest-numbered live port listing it, by that
 * port's thread; its type's recv hands each packet to the port it belongs
 * to.  Dead ports are left out. */
static void pmd_poll_list(struct vs_pmd *pmd)
{
    struct vs_dp *dp = pmd->dp;
    uint32_t n_seen = 0;
    if (pmd->seen)
        memset(pmd->seen, 0xff, pmd->seen_cap * sizeof *pmd->seen);
    pmd->n_pfds = 0;
    if (!pmd->cap_pfds && poll_list_grow(pmd))
        return;
    pmd->pfds[0] = (struct pollfd){.fd = pmd->ctl_efd, .events = POLLIN};
    pmd->entries[0] = (struct poll_entry){0, -1};
    int n = 1;
    for (uint32_t i = 0; i < VS_MAX_PORTS; i++) {
        struct vs_port *p = port_get(dp, i);
        if (!p || __atomic_load_n(&p->stats.dead, __ATOMIC_RELAXED))
            continue;
        int fds[VS_MAX_RXQ];
        int nfds = p->class->rx_fds(p->netdev, fds, VS_MAX_RXQ);
        for (int q = 0; q < nfds && q < VS_MAX_RXQ; q++) {
            if (fds[q] < 0 || !seen_add(pmd, fds[q], &n_seen) || p->pmd != pmd->id)
                continue;
            if (n == pmd->cap_pfds && poll_list_grow(pmd))
                break;
            pmd->pfds[n] = (struct pollfd){.fd = fds[q], .events = POLLIN};
            pmd->entries[n] = (struct poll_entry){i, q};
            n++;
        }
    }
    pmd->n_pfds = n;
}

/* poll() without the C library's cancellation-point wrapper (poll threads
 * are never cancelled: pmd_stop asks them to stop): the wrapper's
 * bookkeeping around every call was ~1.5 % of the switch CPU under TCP
 * (perf: __pthread_disable_asynccancel).  ppoll: the call every
 * architecture has; timeout_ms >= 0. */
static int poll_nocancel(struct pollfd *fds, nfds_t n, int timeout_ms)
{
    struct timespec ts = {timeout_ms / MS_PER_S, (long)(timeout_ms % MS_PER_S) * NS_PER_MS};
    return (int)syscall(SYS_ppoll, fds, n, &ts, NULL, (size_t)0);
}

/* Adaptive polling: the poll() timeout for this round.  A busy-polling
 * thread never sleeps.  Otherwise the thread keeps spinning (timeout 0)
 * for spin_ns after the last packet, so a reply or the next packet of a
 * conversation is picked up without a wake-up (tens of µs on a VM), and
 * then sleeps (POLL_IDLE_MS, woken by its descriptors) so an idle switch
 * costs next to no CPU.  spin_ns adapts, as OVS's pmd-sleep and DPDK's
 * interrupt mode back off: pmd_adapt widens it when a packet woke the
 * thread less than SPIN_MAX_NS after it went to sleep (spinning longer
 * would have caught it: packets keep arriving), and halves it when the
 * sleep was longer (a gap in the traffic).  So under traffic with gaps
 * below SPIN_MAX_NS the thread ends up spinning all the time, and after
 * the traffic stops it spins at most SPIN_MAX_NS before sleeping. */
static int pmd_timeout(const struct vs_pmd *pmd, uint64_t now)
{
    if (pmd->busy_poll || now - pmd->last_rx_ns < pmd->spin_ns)
        return 0;
    return POLL_IDLE_MS;
}

/* slept_ns: the sleep the round's packets ended; gap_ns: the time since
 * the packet before them.  Widening goes straight to SPIN_GAP_FACTOR times
 * the gap (at least double the window): doubling alone took four wake-ups
 * from SPIN_INITIAL_NS to a 2 ms ping's period, and those first echoes, a
 * wake-up each (~25 µs more), were all of a 500-echo run's p99 (bench/run.py
 * --vswitch-pmd default, stop 16: 42 µs vs OVS's 21). */
static void pmd_adapt(struct vs_pmd *pmd, uint64_t slept_ns, uint64_t gap_ns)
{
    if (slept_ns < SPIN_MAX_NS) {
        uint64_t wide = pmd->spin_ns * 2;
        if (gap_ns < SPIN_MAX_NS && wide < gap_ns * SPIN_GAP_FACTOR)
            wide = gap_ns * SPIN_GAP_FACTOR;
        pmd->spin_ns = wide < SPIN_MAX_NS ? wide : SPIN_MAX_NS;
    } else {
        pmd->spin_ns /= 2;
        if (pmd->spin_ns < SPIN_MIN_NS)
            pmd->spin_ns = SPIN_MIN_NS;
    }
}

/* One round's work on what poll() reported.  Returns 1 if a port still had
 * a full batch waiting (the next round may skip poll()).  `now`: the clock
 * read when the round started, the time of all its batches (a flow's
 * used_ns, the last receive for adaptive polling): a round lasts
 * microseconds, and a clock read per batch cost ~1 % of the switch CPU
 * under TCP (perf, __vdso_clock_gettime on the bench VM). */
static int pmd_round(struct vs_pmd *pmd, int *upcalled, uint64_t now)
{
    struct vs_dp *dp = pmd->dp;
    struct pollfd *pfds = pmd->pfds;
    int npfd = pmd->n_pfds, still_busy = 0;
    for (int i = 1; i < npfd; i++) {
        struct vs_port *port = port_get(dp, pmd->entries[i].port_no);
        if (!(pfds[i].revents & POLLIN)) {
            if (pfds[i].revents && port && !__atomic_load_n(&port->stats.dead, __ATOMIC_RELAXED)
                && port_poll_error(port, pmd->entries[i].rxq, pfds[i].fd, pfds[i].revents)) {
                for (int j = 1; j < npfd; j++) /* all of its descriptors */
                    if (pmd->entries[j].port_no == pmd->entries[i].port_no)
                        pfds[j].fd = -1; /* skipped by poll() */
            }
            pfds[i].revents = 0;
            continue;
        }
        if (port && poll_port(pmd, port, pmd->entries[i].rxq, upcalled, now))
            still_busy = 1;
        else
            pfds[i].revents = 0; /* drained: wait for poll() to say more */
    }
    return still_busy;
}

/* After a round that spun (did not sleep in poll()) and found little while
 * traffic is dense: sleep a little (pmd_sleep.h), so batches grow and the
 * core is not burnt while the rings fill.  Busy-polling threads too, as
 * OVS's PMDs with pmd-maxsleep: busy_poll means never sleeping in poll(),
 * and a maximum of 0 makes them spin without a break.  Outside any round
 * (quiescent), so a sleeping thread holds up no writer.  The sleep counts
 * as idle time. */
/* `now`: the caller's clock read at the end of the round.  Returns 1 if
 * the next round may skip poll() (pmd_all_ready). */
static int pmd_load_sleep(struct vs_pmd *pmd, int slept, uint64_t now)
{
    uint32_t pkts = pmd->round_pkts;
    pmd->round_pkts = 0;
    if (slept)
        return 0;
    uint64_t max_ns = __atomic_load_n(&pmd->dp->pmd_maxsleep_ns, __ATOMIC_RELAXED);
    /* The round's packets against what it can read from a queue: a round
     * is the unit a wake-up pays for, so the sleep grows until rounds are
     * half full (64 packets), and stops when a queue had more than a round
     * could take. */
    uint64_t ns = vs_pmd_sleep_after_round(&pmd->sleep, pkts, (int)pkts,
                                           PORT_BATCHES_PER_ROUND * VS_BATCH, now, max_ns);
    /* Dense one-way traffic: the rings will have more, the next round reads
     * them without poll().  Two-way traffic polls every round: TCP offloads
     * off, skipping poll() there cost 5.2 -> 4.0 Gbit/s (pmd_sleep.h). */
    if (!ns)
        return max_ns && pmd->sleep.dense && !pmd->sleep.two_way;
    uint64_t t0 = vs_now_ns(), c0 = cycles_now();
    vs_pmd_sleep_for(ns);
    OWN_ADD(pmd->stats.idle_ns, vs_now_ns() - t0);
    OWN_ADD(pmd->stats.idle_cycles, cycles_now() - c0);
    OWN_ADD(pmd->stats.sleeps, 1);
    return 1;
}

/* After a load-based sleep, or any round under dense traffic (pmd_sleep.h),
 * the next round reads every port's queues directly instead of asking
 * poll() first: the rings filled or not meanwhile, and reading an empty
 * AF_XDP ring costs less than the poll() call (which on an AF_XDP socket
 * also runs the copy-mode transmit path).  Such rounds count as skipped polls (SKIP_POLL_ROUNDS), so
 * poll() still runs every few rounds for the control eventfd and errors. */
static void pmd_all_ready(struct vs_pmd *pmd)
{
    pmd->pfds[0].revents = 0;
    for (int i = 1; i < pmd->n_pfds; i++)
        pmd->pfds[i].revents = pmd->pfds[i].fd >= 0 ? POLLIN : 0;
}

/* The poll thread.  Every iteration is one round between two quiescent
 * points: published memory (classifier, ports) is used only while online,
 * and nothing loaded in a round is kept past its end, except port numbers
 * (the poll list), which are looked up again in each round. */
static void *pmd_main(void *arg)
{
    struct vs_pmd *pmd = arg;
    struct vs_dp *dp = pmd->dp;
    uint32_t gen = UINT32_MAX;
    /* The next round reads its ports without poll() first (a port still
     * had a full batch, or the thread just took a load-based sleep), unless
     * SKIP_POLL_ROUNDS rounds in a row already did. */
    int skip_poll = 0, rounds_since_poll = 0;
    /* The end of the last busy round when nothing (a sleep, an upcall
     * notification) came after it: the next round's start, one clock read
     * fewer per round. */
    uint64_t t_end = 0;
    /* Threads started in the same nanosecond still differ by thread id. */
    pmd->prng = prng_seed(vs_now_ns() ^ (uint64_t)gettid() << 32 ^ (uint64_t)pmd->id);
    pmd->spin_ns = SPIN_INITIAL_NS;
    vs_pmd_sleep_thread_init();
    while (!__atomic_load_n(&pmd->stop, __ATOMIC_ACQUIRE)) {
        rcu_online(pmd);
        uint32_t now_gen = __atomic_load_n(&dp->ports_gen, __ATOMIC_ACQUIRE);
        if (gen != now_gen) { /* ports changed: poll what is there now */
            gen = now_gen;
            pmd_poll_list(pmd);
            skip_poll = 0;
        }
        rcu_quiescent(pmd);
        struct pollfd *pfds = pmd->pfds;
        int npfd = pmd->n_pfds;

        uint64_t t0 = t_end ? t_end : vs_now_ns(), c0 = cycles_now();
        int r, slept = 0, polled = 0;
        t_end = 0;
        if (skip_poll && rounds_since_poll < SKIP_POLL_ROUNDS) {
            /* Under load the ports that filled their last batches are read
             * again directly: poll() costs more than it tells (about a
             * tenth of the cycles at 64-byte rates).  Every
             * SKIP_POLL_ROUNDS-th round polls so that the other ports are
             * seen too. */
            r = 1;
            rounds_since_poll++;
        } else if (!npfd) { /* no memory for a poll list: try again soon */
            r = poll_nocancel(NULL, 0, POLL_IDLE_MS);
            gen = UINT32_MAX;
            rounds_since_poll = 0;
        } else {
            int timeout = pmd_timeout(pmd, t0);
            r = poll_nocancel(pfds, (nfds_t)npfd, timeout);
            slept = timeout != 0;
            polled = 1;
            rounds_since_poll = 0;
        }
        skip_poll = 0;
        uint64_t t1 = vs_now_ns(), c1 = cycles_now();
        OWN_ADD(pmd->stats.idle_ns, t1 - t0);
        OWN_ADD(pmd->stats.idle_cycles, c1 - c0);
        if (r <= 0) {
            if (pmd_load_sleep(pmd, slept, t1) && npfd) {
                pmd_all_ready(pmd);
                skip_poll = 1;
            } else if (r == 0 && !slept && !pmd->busy_poll) {
                /* A spinning round that found nothing gives the CPU to
                 * whoever waits for it (sched_yield returns at once if
                 * nobody does): on a host whose CPUs the switch shares
                 * with the applications it serves, the spin otherwise
                 * takes their time.  TCP through VXLAN on 2 shared CPUs:
                 * 1.8 -> 4.2 Gbit/s (bench/VXLAN_RESULTS.md).  Pinned
                 * (busy_poll) threads own their CPU and never yield
                 * (yielding there too: TCP offloads off 5.82 vs 5.83
                 * Gbit/s, nothing else runs on it). */
                sched_yield();
            }
            continue;
        }
        if (polled && (pfds[0].revents & POLLIN)) {
            uint64_t v;
            ssize_t rr = read(pmd->ctl_efd, &v, sizeof v);
            (void)rr;
        }
        int upcalled = 0, still_busy = 0;
        uint64_t last_rx = pmd->last_rx_ns;
        rcu_online(pmd);
        if (gen == __atomic_load_n(&dp->ports_gen, __ATOMIC_ACQUIRE))
            still_busy = pmd_round(pmd, &upcalled, t1);
        rcu_quiescent(pmd);
        if (slept && pmd->last_rx_ns != last_rx) {
            OWN_ADD(pmd->stats.wakeups, 1);
            pmd_adapt(pmd, t1 - t0, t1 - last_rx);
        }
        uint64_t t2 = vs_now_ns();
        OWN_ADD(pmd->stats.busy_ns, t2 - t1);
        OWN_ADD(pmd->stats.busy_cycles, cycles_now() - c1);
        skip_poll = still_busy;
        if (upcalled)
            upcall_notify(dp);
        uint64_t sleeps = pmd->stats.sleeps;
        if (pmd_load_sleep(pmd, slept, t2)) {
            pmd_all_ready(pmd);
            skip_poll = 1;
        }
        if (!upcalled && sleeps == pmd->stats.sleeps)
            t_end = t2;
    }
    return NULL;
}

/* ---- lifecycle and control ---- */

static void port_close(struct vs_port *p)
{
    p->class->close(p->netdev);
    pthread_mutex_destroy(&p->tx_mutex);
    free(p);
}

static int tx_ctx_init(struct tx_ctx *tx)
{
    memset(tx, 0, sizeof *tx);
    tx->arena = malloc(ARENA_SIZE);
    return tx->arena ? 0 : -1;
}

/* The EMC in transparent huge pages where the kernel gives them (THP
 * "madvise" mode): its 8192 slots of 104 bytes span 832 KiB, 208 small pages, so
 * at 10k flows nearly every slot looked up or prefetched also missed the
 * TLB (vs_emc_prefetch at 3 % of the switch CPU, perf).  Plain pages
 * otherwise: the hint may be refused. */
static struct vs_emc_entry *emc_alloc(void)
{
    size_t len = (VS_EMC_SIZE * sizeof(struct vs_emc_entry) + EMC_ALIGN - 1) & ~(EMC_ALIGN - 1);
    void *p = aligned_alloc(EMC_ALIGN, len);
    if (!p)
        return NULL;
    (void)madvise(p, len, MADV_HUGEPAGE);
    memset(p, 0, len);
    return p;
}

static uint8_t *new_packet_buf(void)
{
    return malloc(VS_HEADROOM + VS_MAX_FRAME);
}

/* Stops the thread and waits for it: afterwards its counters are final
 * and it holds nothing. */
static void pmd_stop(struct vs_pmd *pmd)
{
    if (pmd->started) {
        __atomic_store_n(&pmd->stop, 1, __ATOMIC_RELEASE);
        uint64_t one = 1;
        ssize_t r = write(pmd->ctl_efd, &one, sizeof one);
        (void)r;
        pthread_join(pmd->thread, NULL);
        pmd->started = 0;
    }
}

static void pmd_free(struct vs_pmd *pmd)
{
    if (!pmd)
        return;
    pmd_stop(pmd);
    tx_flush(&pmd->tx); /* nothing may stay queued on ports */
    free(pmd->emc);
    vs_cls_reader_destroy(&pmd->cls_reader);
    free(pmd->tx.arena);
    for (int i = 0; i < VS_BATCH; i++)
        free(pmd->rx_bufs[i]);
    free(pmd->pfds);
    free(pmd->entries);
    free(pmd->seen);
    if (pmd->ctl_efd >= 0)
        close(pmd->ctl_efd);
    free(pmd);
}

/* A poll thread's start: its id where vs_dp_set_pmd_nice finds it, its
 * nice value (setpriority on a thread id sets that thread's only), then the
 * poll loop.  A nice value the process may not take (no CAP_SYS_NICE) was
 * refused by vs_dp_set_pmd_nice already: the thread runs at the default. */
static void *pmd_start(void *arg)
{
    struct vs_pmd *pmd = arg;
    int tid = (int)gettid();
    __atomic_store_n(&pmd->tid, tid, __ATOMIC_SEQ_CST);
    int nice = __atomic_load_n(&pmd->dp->pmd_nice, __ATOMIC_SEQ_CST);
    if (nice != VS_PMD_NICE_DEFAULT)
        (void)setpriority(PRIO_PROCESS, (id_t)tid, nice);
    return pmd_main(pmd);
}

/* A poll thread pinned to `cpu` (-1: not pinned), started. */
static struct vs_pmd *pmd_create(struct vs_dp *dp, int id, int cpu, int busy_poll)
{
    struct vs_pmd *pmd = calloc(1, sizeof *pmd);
    if (!pmd)
        return NULL;
    pmd->dp = dp;
    pmd->id = id;
    pmd->stats.cpu = cpu;
    pmd->busy_poll = busy_poll;
    pmd->stats.busy_poll = busy_poll;
    pmd->ctl_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pmd->emc = emc_alloc();
    int ok = pmd->ctl_efd >= 0 && pmd->emc && !tx_ctx_init(&pmd->tx);
    for (int i = 0; ok && i < VS_BATCH; i++)
        ok = (pmd->rx_bufs[i] = new_packet_buf()) != NULL;
    if (ok && !pthread_create(&pmd->thread, NULL, pmd_start, pmd)) {
        pmd->started = 1;
        if (cpu >= 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(cpu, &set);
            pthread_setaffinity_np(pmd->thread, sizeof set, &set);
        }
        char name[16];
        snprintf(name, sizeof name, "pmd%d", id);
        pthread_setname_np(pmd->thread, name);
        return pmd;
    }
    pmd_free(pmd);
    return NULL;
}

/* acc += a poll thread's counters (read atomically: it may be running). */
static void stats_add(struct vs_pmd_stats *acc, const struct vs_pmd_stats *live)
{
    struct vs_pmd_stats copy;
    stats_load(&copy, live, sizeof copy);
    const struct vs_pmd_stats *s = &copy;
    acc->packets += s->packets;
    acc->batches += s->batches;
    acc->emc_hits += s->emc_hits;
    acc->megaflow_hits += s->megaflow_hits;
    acc->misses += s->misses;
    acc->upcalls += s->upcalls;
    acc->upcall_drops += s->upcall_drops;
    acc->malformed += s->malformed;
    acc->samples += s->samples;
    acc->sample_drops += s->sample_drops;
    acc->busy_ns += s->busy_ns;
    acc->idle_ns += s->idle_ns;
    acc->busy_cycles += s->busy_cycles;
    acc->idle_cycles += s->idle_cycles;
    acc->rx_cycles += s->rx_cycles;
    acc->process_cycles += s->process_cycles;
    acc->tx_cycles += s->tx_cycles;
}

/* Ports go to the poll thread with the fewest of them. */
static int least_loaded_pmd(struct vs_dp *dp)
{
    int count[VS_MAX_PMDS] = {0};
    for (int i = 0; i < VS_MAX_PORTS; i++)
        if (dp->ports[i] && dp->ports[i]->pmd < dp->n_pmds)
            count[dp->ports[i]->pmd]++;
    int best = 0;
    for (int i = 1; i < dp->n_pmds; i++)
        if (count[i] < count[best])
            best = i;
    return best;
}

int vs_dp_set_pmds(struct vs_dp *dp, const int *cpus, int n, int busy_poll)
{
    if (n < 1 || n > VS_MAX_PMDS)
        return -EINVAL;
    /* All under the control mutex, which poll threads never take: no
     * writer runs while the set of threads dp_synchronize waits for is
     * changing. */
    control_lock(dp);
    for (int i = 0; i < dp->n_pmds; i++) {
        struct vs_pmd *old = dp->pmds[i];
        pmd_stop(old); /* joined: its counters are final */
        stats_add(&dp->retired, &old->stats);
        dp->pmds[i] = NULL;
        pmd_free(old);
    }
    dp->n_pmds = 0;
    int k = 0;
    for (int i = 0; i < VS_MAX_PORTS; i++)
        if (dp->ports[i])
            dp->ports[i]->pmd = k++ % n;
    __atomic_add_fetch(&dp->ports_gen, 1, __ATOMIC_RELEASE);
    int r = n;
    for (int i = 0; i < n; i++) {
        struct vs_pmd *pmd = pmd_create(dp, i, cpus ? cpus[i] : -1, busy_poll);
        if (!pmd) {
            r = i ? i : -ENOMEM; /* keep what started; ports of missing ones wait */
            break;
        }
        dp->pmds[i] = pmd;
        dp->n_pmds = i + 1;
    }
    pthread_mutex_unlock(&dp->mutex);
    return r;
}

int vs_dp_pmd_stats(struct vs_dp *dp, struct vs_pmd_stats *out, int max)
{
    control_lock(dp);
    int n = dp->n_pmds < max ? dp->n_pmds : max;
    for (int i = 0; i < n; i++)
        stats_load(&out[i], &dp->pmds[i]->stats, sizeof out[i]);
    pthread_mutex_unlock(&dp->mutex);
    return n;
}

struct vs_dp *vs_dp_create(uint32_t ring_size)
{
    struct vs_dp *dp = calloc(1, sizeof *dp);
    if (!dp)
        return NULL;
    pthread_mutex_init(&dp->mutex, NULL);
    pthread_mutex_init(&dp->up_mutex, NULL);
    pthread_mutex_init(&dp->sample_mutex, NULL);
    int cls_ok = !vs_cls_init(&dp->cls);
    dp->cls.synchronize = dp_synchronize;
    dp->cls.sync_aux = dp;
    dp->ring_size = ring_size ? ring_size : 1024;
    dp->ring = calloc(dp->ring_size, sizeof *dp->ring);
    dp->sample_ring = calloc(VS_SAMPLE_RING, sizeof *dp->sample_ring);
    dp->exec_prng = prng_seed(vs_now_ns() ^ (uint64_t)getpid() << 32);
    dp->up_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    dp->pmd_maxsleep_ns = VS_PMD_MAXSLEEP_DEFAULT_NS;
    int ok = cls_ok && dp->ring && dp->sample_ring && dp->up_efd >= 0 &&
             !tx_ctx_init(&dp->exec_tx);
    ok = ok && (dp->exec_pkt.buf = new_packet_buf()) != NULL;
    if (!ok || vs_dp_set_pmds(dp, NULL, 1, 0) != 1) {
        vs_dp_destroy(dp);
        return NULL;
    }
    return dp;
}

void vs_dp_destroy(struct vs_dp *dp)
{
    if (!dp)
        return;
    for (int i = 0; i < dp->n_pmds; i++)
        pmd_free(dp->pmds[i]);
    dp->n_pmds = 0; /* no readers left: nothing to wait for */
    for (int i = 0; i < VS_MAX_PORTS; i++) {
        if (dp->ports[i])
            port_close(dp->ports[i]);
    }
    if (dp->cls.vec)
        vs_cls_destroy(&dp->cls);
    for (uint32_t i = 0; dp->ring && i < dp->ring_size; i++)
        free(dp->ring[i].data);
    free(dp->ring);
    free(dp->sample_ring);
    free(dp->exec_tx.arena);
    free(dp->exec_pkt.buf);
    if (dp->up_efd > 0)
        close(dp->up_efd);
    free(dp);
}

int vs_dp_upcall_fd(struct vs_dp *dp) { return dp->up_efd; }

int vs_dp_set_pmd_maxsleep(struct vs_dp *dp, uint64_t ns)
{
    if (ns > VS_PMD_MAXSLEEP_LIMIT_NS)
        return -EINVAL;
    pthread_mutex_lock(&dp->mutex);
    __atomic_store_n(&dp->pmd_maxsleep_ns, ns, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&dp->mutex);
    return 0;
}

int vs_dp_set_pmd_nice(struct vs_dp *dp, int nice)
{
    if (nice < VS_PMD_NICE_MIN || nice > VS_PMD_NICE_MAX)
        return -EINVAL;
    pthread_mutex_lock(&dp->mutex);
    int r = 0, old = dp->pmd_nice;
    __atomic_store_n(&dp->pmd_nice, nice, __ATOMIC_SEQ_CST);
    for (int i = 0; i < dp->n_pmds && !r; i++) {
        int tid = __atomic_load_n(&dp->pmds[i]->tid, __ATOMIC_SEQ_CST);
        if (tid && setpriority(PRIO_PROCESS, (id_t)tid, nice) < 0)
            r = -errno; /* EACCES: a lower value needs CAP_SYS_NICE */
    }
    if (r) { /* all threads back at the old value, which they could take */
        __atomic_store_n(&dp->pmd_nice, old, __ATOMIC_SEQ_CST);
        for (int i = 0; i < dp->n_pmds; i++) {
            int tid = __atomic_load_n(&dp->pmds[i]->tid, __ATOMIC_SEQ_CST);
            if (tid)
                (void)setpriority(PRIO_PROCESS, (id_t)tid, old);
        }
    }
    pthread_mutex_unlock(&dp->mutex);
    return r;
}

static void wake_poll_thread(struct vs_dp *dp)
{
    uint64_t one = 1;
    for (int i = 0; i < dp->n_pmds; i++) {
        ssize_t r = write(dp->pmds[i]->ctl_efd, &one, sizeof one);
        (void)r;
    }
}

/* Publishes an opened port to the poll threads; -EEXIST if the number is taken. */
static int port_register(struct vs_dp *dp, struct vs_port *p)
{
    int err = 0;
    control_lock(dp);
    if (dp->ports[p->port_no]) {
        err = -EEXIST;
    } else {
        p->pmd = least_loaded_pmd(dp);
        STORE_PTR(dp->ports[p->port_no], p);
        __atomic_add_fetch(&dp->ports_gen, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&dp->mutex);
    if (!err)
        wake_poll_thread(dp);
    return err;
}

int vs_dp_port_add(struct vs_dp *dp, uint32_t port_no, const char *type, const char *name,
                   const struct vs_port_option *opts, int n_opts, char *err, int errlen)
{
    size_t elen = errlen > 0 ? (size_t)errlen : 0;
    if (elen)
        err[0] = 0;
    if (port_no >= VS_MAX_PORTS)
        return vs_netdev_fail(err, elen, "port number", -EINVAL);
    const struct vs_netdev_class *cls = vs_netdev_lookup(type);
    if (!cls)
        return vs_netdev_fail(err, elen, "port type", -EPROTONOSUPPORT);
    struct vs_port *p = calloc(1, sizeof *p);
    if (!p)
        return vs_netdev_fail(err, elen, "allocate", -ENOMEM);
    struct vs_netdev *netdev = NULL;
    int r = cls->open(name, port_no, opts, n_opts, &netdev, err, elen);
    if (r) {
        free(p);
        return r < 0 ? r : -EIO;
    }
    netdev->class = cls;
    netdev->port_no = port_no;
    p->port_no = port_no;
    p->netdev = netdev;
    p->class = cls;
    p->tier_ifindex = cls->tier_ifindex ? cls->tier_ifindex(netdev) : 0;
    p->tier_kind = cls->tier_kind;
    pthread_mutex_init(&p->tx_mutex, NULL);
    r = port_register(dp, p);
    if (!r && p->tier_ifindex)
        dp->n_tier_ports++;
    if (r) {
        port_close(p);
        return vs_netdev_fail(err, elen, "port number in use", r);
    }
    return 0;
}

int vs_dp_port_call(struct vs_dp *dp, uint32_t port_no, const struct vs_netdev_class *cls,
                    int (*fn)(struct vs_netdev *, void *), void *arg)
{
    if (port_no >= VS_MAX_PORTS)
        return -ENOENT;
    int r = -ENOENT;
    control_lock(dp);
    struct vs_port *p = dp->ports[port_no];
    if (p && (!cls || p->class == cls)) {
        pthread_mutex_lock(&p->tx_mutex);
        r = fn(p->netdev, arg);
        pthread_mutex_unlock(&p->tx_mutex);
    }
    pthread_mutex_unlock(&dp->mutex);
    return r;
}

/* A port for a query of its type's state, with the control mutex and its
 * tx_mutex held (a type's status and stats read state its send writes), or
 * NULL with *err set (-EINVAL, -ENOENT) and nothing held.  port_query_end
 * releases both. */
static struct vs_port *port_query_begin(struct vs_dp *dp, uint32_t port_no, int *err)
{
    if (port_no >= VS_MAX_PORTS) {
        *err = -EINVAL;
        return NULL;
    }
    control_lock(dp);
    struct vs_port *p = dp->ports[port_no];
    if (!p) {
        pthread_mutex_unlock(&dp->mutex);
        *err = -ENOENT;
        return NULL;
    }
    pthread_mutex_lock(&p->tx_mutex);
    return p;
}

static void port_query_end(struct vs_dp *dp, struct vs_port *p)
{
    pthread_mutex_unlock(&p->tx_mutex);
    pthread_mutex_unlock(&dp->mutex);
}

int vs_dp_port_type_status(struct vs_dp *dp, uint32_t port_no, struct vs_port_kv *out, int max)
{
    int n;
    struct vs_port *p = port_query_begin(dp, port_no, &n);
    if (p) {
        n = p->class->get_status ? p->class->get_status(p->netdev, out, max) : 0;
        port_query_end(dp, p);
    }
    return n;
}

int vs_dp_port_type_stats(struct vs_dp *dp, uint32_t port_no, struct vs_port_counter *out,
                          int max)
{
    int n;
    struct vs_port *p = port_query_begin(dp, port_no, &n);
    if (p) {
        n = p->class->get_stats ? p->class->get_stats(p->netdev, out, max) : 0;
        port_query_end(dp, p);
    }
    return n;
}

int vs_dp_port_type(struct vs_dp *dp, uint32_t port_no, char *out, int outlen)
{
    if (port_no >= VS_MAX_PORTS || outlen < 1)
        return -EINVAL;
    int r = -ENOENT;
    control_lock(dp);
    struct vs_port *p = dp->ports[port_no];
    if (p) {
        snprintf(out, (size_t)outlen, "%s", p->class->type);
        r = 0;
    }
    pthread_mutex_unlock(&dp->mutex);
    return r;
}

int vs_dp_port_del(struct vs_dp *dp, uint32_t port_no)
{
    if (port_no >= VS_MAX_PORTS)
        return -EINVAL;
    control_lock(dp);
    struct vs_port *p = dp->ports[port_no];
    if (p) {
        if (p->tier_ifindex)
            dp->n_tier_ports--;
        STORE_PTR(dp->ports[port_no], NULL);
        __atomic_add_fetch(&dp->ports_gen, 1, __ATOMIC_RELEASE);
        dp_synchronize(dp); /* no round still holds p */
        wake_poll_thread(dp); /* to drop its descriptors from poll() */
    }
    pthread_mutex_unlock(&dp->mutex);
    if (!p)
        return -ENOENT;
    port_close(p);
    return 0;
}

int vs_dp_port_stats(struct vs_dp *dp, uint32_t port_no, struct vs_port_stats *out)
{
    if (port_no >= VS_MAX_PORTS)
        return -EINVAL;
    int err = 0;
    control_lock(dp);
    if (dp->ports[port_no])
        stats_load(out, &dp->ports[port_no]->stats, sizeof *out);
    else
        err = -ENOENT;
    pthread_mutex_unlock(&dp->mutex);
    return err;
}

/* Traffic the kernel XDP tier forwarded, into the ports' counters
 * (vs_xdp_count_fn).  Under the control mutex. */
static void xdp_count(void *aux, uint32_t in_port, uint32_t out_port, uint64_t packets,
                      uint64_t bytes)
{
    struct vs_dp *dp = aux;
    struct vs_port *in = port_get(dp, in_port), *out = port_get(dp, out_port);
    if (in) {
        SHARED_ADD(in->stats.rx_packets, packets);
        SHARED_ADD(in->stats.rx_bytes, bytes);
    }
    if (out) {
        SHARED_ADD(out->stats.tx_packets, packets);
        SHARED_ADD(out->stats.tx_bytes, bytes);
    }
}

void vs_dp_xdp_offload_counts(struct vs_xdp_offload_counts *out)
{
    vs_xdp_offload_counts(out);
}

int vs_dp_flow_put(struct vs_dp *dp, const struct vs_key *key, const struct vs_key *mask,
                   const uint32_t *actions, uint32_t n_actions)
{
    int existed = 0;
    control_lock(dp);
    int r = vs_cls_put(&dp->cls, key, mask, actions, n_actions, &existed);
    if (r >= 0 && existed && dp->n_tier_ports) {
        /* New actions: the kernel must not go on with the old ones.  Once
         * no round can still be using them (nor pushing an entry made from
         * them), the megaflow's exact flows leave the XDP tier. */
        dp_synchronize(dp);
        struct vs_flow *f = vs_cls_find(&dp->cls, key, mask);
        if (f)
            vs_xdp_offload_remove(f, xdp_count, dp);
    }
    pthread_mutex_unlock(&dp->mutex);
    return r < 0 ? -1 : existed;
}

int vs_dp_flow_del(struct vs_dp *dp, const struct vs_key *key, const struct vs_key *mask)
{
    struct vs_flow *f = NULL;
    control_lock(dp);
    int r = vs_cls_del(&dp->cls, key, mask, dp->n_tier_ports ? &f : NULL);
    if (f) { /* after the grace period; the ports get its last traffic */
        vs_xdp_offload_remove(f, xdp_count, dp);
        vs_cls_flow_free(f);
    }
    pthread_mutex_unlock(&dp->mutex);
    return r;
}

void vs_dp_flow_flush(struct vs_dp *dp)
{
    control_lock(dp);
    vs_cls_flush(&dp->cls);
    pthread_mutex_unlock(&dp->mutex);
}

struct dump_aux {
    struct vs_dp *dp;
    struct vs_flow_dump *out;
    int max, n;
};

/* Copies f into the next record; the caller harvested it. */
static void dump_copy(struct vs_flow *f, struct dump_aux *aux)
{
    struct vs_flow_dump *d = &aux->out[aux->n++];
    d->key = f->key;
    d->mask = f->mask;
    /* Poll threads add to these while the dump runs. */
    d->packets = __atomic_load_n(&f->packets, __ATOMIC_RELAXED);
    d->bytes = __atomic_load_n(&f->bytes, __ATOMIC_RELAXED);
    d->used_ns = __atomic_load_n(&f->used_ns, __ATOMIC_RELAXED);
    d->tcp_flags = __atomic_load_n(&f->tcp_flags, __ATOMIC_RELAXED);
    const struct vs_actions *a = f->actions; /* only the writer (us) changes it */
    d->n_actions = a->n < VS_DUMP_MAX_ACTIONS ? a->n : VS_DUMP_MAX_ACTIONS;
    memcpy(d->actions, a->words, d->n_actions * sizeof(uint32_t));
}

static void dump_one(struct vs_flow *f, void *aux_)
{
    struct dump_aux *aux = aux_;
    if (aux->n >= aux->max)
        return;
    /* What the kernel XDP tier forwarded for it, up to now. */
    vs_xdp_offload_harvest(f, xdp_count, aux->dp);
    dump_copy(f, aux);
}

int vs_dp_flow_del_stats(struct vs_dp *dp, const struct vs_key *key, const struct vs_key *mask,
                         struct vs_flow_dump *final)
{
    struct dump_aux aux = {dp, final, 1, 0};
    struct vs_flow *f = NULL;
    control_lock(dp);
    /* Read after the grace period vs_cls_del waits for: no poll thread
     * can add to the counters any more, so they are final (the kernel's
     * entries go first, counted). */
    if (!vs_cls_del(&dp->cls, key, mask, &f)) {
        vs_xdp_offload_remove(f, xdp_count, dp);
        dump_one(f, &aux);
        vs_cls_flow_free(f);
    }
    pthread_mutex_unlock(&dp->mutex);
    return f ? 0 : -1;
}

int vs_dp_flow_dump(struct vs_dp *dp, struct vs_flow_dump *out, int max, uint64_t *total)
{
    struct dump_aux aux = {dp, out, max, 0};
    control_lock(dp);
    *total = dp->cls.n_flows;
    vs_cls_foreach(&dp->cls, dump_one, &aux);
    pthread_mutex_unlock(&dp->mutex);
    return aux.n;
}

static int dump_take(struct vs_flow *f, void *aux_)
{
    struct dump_aux *aux = aux_;
    if (aux->n >= aux->max)
        return 1; /* full: the next chunk starts with this flow */
    dump_one(f, aux);
    return 0;
}

int vs_dp_flow_dump_next(struct vs_dp *dp, uint64_t *cursor, struct vs_flow_dump *out, int max,
                         int *done)
{
    struct dump_aux aux = {dp, out, max, 0};
    control_lock(dp);
    *cursor = vs_cls_foreach_from(&dp->cls, *cursor, dump_take, &aux);
    pthread_mutex_unlock(&dp->mutex);
    *done = *cursor == VS_CLS_CURSOR_END;
    return aux.n;
}

struct dump_active_aux {
    struct dump_aux dump;
    uint64_t since_ns, idle_before_ns, skipped;
    int visited;
};

static int dump_take_active(struct vs_flow *f, void *aux_)
{
    struct dump_active_aux *aux = aux_;
    if (aux->dump.n >= aux->dump.max || aux->visited >= VS_DUMP_ACTIVE_VISIT_MAX)
        return 1; /* the next call starts with this flow */
    aux->visited++;
    /* Harvest before deciding: the kernel tier's packets reach the counters
     * only here, and its last-use stamp is a coarse clock that may lag
     * since_ns, so new tier traffic alone selects the megaflow. */
    uint64_t before = __atomic_load_n(&f->packets, __ATOMIC_RELAXED);
    vs_xdp_offload_harvest(f, xdp_count, aux->dump.dp);
    uint64_t used = __atomic_load_n(&f->used_ns, __ATOMIC_RELAXED);
    uint64_t last = used ? used : f->created_ns;
    if (used >= aux->since_ns || last < aux->idle_before_ns ||
        __atomic_load_n(&f->packets, __ATOMIC_RELAXED) != before) {
        dump_copy(f, &aux->dump);
    } else {
        aux->skipped++;
    }
    return 0;
}

int vs_dp_flow_dump_active(struct vs_dp *dp, uint64_t *cursor, uint64_t since_ns,
                           uint64_t idle_before_ns, struct vs_flow_dump *out, int max,
                           int *done, uint64_t *skipped)
{
    struct dump_active_aux aux = {{dp, out, max, 0}, since_ns, idle_before_ns, 0, 0};
    control_lock(dp);
    *cursor = vs_cls_foreach_from(&dp->cls, *cursor, dump_take_active, &aux);
    pthread_mutex_unlock(&dp->mutex);
    *done = *cursor == VS_CLS_CURSOR_END;
    *skipped = aux.skipped;
    return aux.dump.n;
}

int vs_dp_recv_upcalls(struct vs_dp *dp, struct vs_upcall *ups, int max, uint8_t *buf,
                       uint32_t buflen)
{
    uint64_t v;
    ssize_t r = read(dp->up_efd, &v, sizeof v); /* re-arm the eventfd */
    (void)r;
    int n = 0;
    uint32_t used = 0;
    pthread_mutex_lock(&dp->up_mutex);
    while (n < max && dp->ring_count) {
        struct upcall_slot *s = &dp->ring[dp->ring_head];
        if (used + s->up.len > buflen)
            break;
        ups[n] = s->up;
        ups[n].offset = used;
        memcpy(buf + used, s->data, s->up.len);
        used += s->up.len;
        n++;
        dp->ring_head = (dp->ring_head + 1) % dp->ring_size;
        dp->ring_count--;
    }
    int more = dp->ring_count > 0;
    pthread_mutex_unlock(&dp->up_mutex);
    if (more)
        upcall_notify(dp); /* keep the reader coming back */
    return n;
}

int vs_dp_recv_samples(struct vs_dp *dp, struct vs_sample *out, int max, uint8_t *buf,
                       uint32_t buflen)
{
    int n = 0;
    uint32_t used = 0;
    pthread_mutex_lock(&dp->sample_mutex);
    while (n < max && dp->sample_count) {
        struct sample_slot *s = &dp->sample_ring[dp->sample_head];
        if (used + s->s.len > buflen)
            break;
        out[n] = s->s;
        out[n].offset = used;
        out[n].drops = dp->sample_ring_drops;
        memcpy(buf + used, s->data, s->s.len);
        used += s->s.len;
        n++;
        dp->sample_head = (dp->sample_head + 1) % VS_SAMPLE_RING;
        dp->sample_count--;
    }
    int more = dp->sample_count > 0;
    pthread_mutex_unlock(&dp->sample_mutex);
    if (more)
        upcall_notify(dp); /* keep the reader coming back */
    return n;
}

int vs_dp_execute(struct vs_dp *dp, uint32_t in_port, const uint8_t *frame, uint32_t len,
                  const struct vs_vnet_hdr *vnet, const uint32_t *actions, uint32_t n_actions)
{
    if (len > VS_MAX_FRAME)
        return -EMSGSIZE;
    struct vs_key key;
    uint16_t tcp_flags;
    key.in_port = in_port;
    control_lock(dp);
    struct vs_packet *pkt = &dp->exec_pkt;
    pkt->data = pkt->buf + VS_HEADROOM;
    memcpy(pkt->data, frame, len);
    pkt->len = len;
    pkt->in_port = in_port;
    pkt->tnl.flags = 0;
    if (vnet)
        pkt->vnet = *vnet;
    else
        memset(&pkt->vnet, 0, sizeof pkt->vnet);
    vs_parse(pkt->data, len, &key, &tcp_flags);
    int upcalled = exec_actions(dp, &dp->exec_tx, &dp->exec_stats, &dp->exec_prng, pkt, in_port,
                                &key, actions, n_actions);
    tx_flush(&dp->exec_tx);
    pthread_mutex_unlock(&dp->mutex);
    if (upcalled)
        upcall_notify(dp);
    return 0;
}

void vs_dp_get_stats(struct vs_dp *dp, struct vs_dp_stats *out)
{
    struct vs_pmd_stats sum = {0};
    control_lock(dp);
    stats_add(&sum, &dp->retired);
    stats_add(&sum, &dp->exec_stats);
    for (int i = 0; i < dp->n_pmds; i++)
        stats_add(&sum, &dp->pmds[i]->stats);
    out->n_flows = dp->cls.n_flows;
    out->n_subtables = vs_cls_n_subtables(&dp->cls);
    out->n_pmds = (uint64_t)dp->n_pmds;
    pthread_mutex_unlock(&dp->mutex);
    out->packets = sum.packets;
    out->batches = sum.batches;
    out->emc_hits = sum.emc_hits;
    out->megaflow_hits = sum.megaflow_hits;
    out->misses = sum.misses;
    out->upcalls = sum.upcalls;
    out->upcall_drops = sum.upcall_drops;
    out->malformed = sum.malformed;
    out->samples = sum.samples;
    out->sample_drops = sum.sample_drops;
    out->busy_ns = sum.busy_ns;
    out->idle_ns = sum.idle_ns;
    out->busy_cycles = sum.busy_cycles;
    out->idle_cycles = sum.idle_cycles;
}

/* ---- test entry points ---- */

int vs_parse_frame(const uint8_t *frame, uint32_t len, struct vs_key *key, uint16_t *tcp_flags)
{
    return vs_parse(frame, len, key, tcp_flags);
}

struct vs_classifier *vs_cls_new(void)
{
    struct vs_classifier *c = malloc(sizeof *c);
    if (c && vs_cls_init(c)) {
        free(c);
        c = NULL;
    }
    return c;
}

void vs_cls_free(struct vs_classifier *c)
{
    if (c) {
        vs_cls_destroy(c);
        free(c);
    }
}

int vs_cls_insert(struct vs_classifier *c, const struct vs_key *key, const struct vs_key *mask,
                  uint32_t id)
{
    int existed;
    return vs_cls_put(c, key, mask, &id, 1, &existed);
}

void vs_cls_lookup_batch(struct vs_classifier *c, const struct vs_key *keys, int n,
                         int64_t *out)
{
    for (int i = 0; i < n; i++) {
        struct vs_flow *f = vs_cls_lookup(c, &keys[i]);
        out[i] = f ? (int64_t)f->actions->words[0] : -1;
    }
}
