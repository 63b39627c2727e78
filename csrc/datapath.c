/* datapath.c — poll thread, action execution, upcall and sample rings,
 * control calls. */
#define _GNU_SOURCE
#include "datapath.h"

#include "netdev_provider.h"

#include <errno.h>
#include <stdio.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#define TXQ_LEN 64
#define ARENA_SIZE (4u << 20)
#define COPY_PKTS 256

struct vs_port {
    uint32_t port_no;
    int pmd; /* the poll thread that receives on it */
    struct vs_netdev *netdev; /* the port type's handle (netdev_provider.h) */
    const struct vs_netdev_class *class; /* netdev->class */
    struct vs_port_stats stats;
    /* Packets that reached a SAMPLE action received on this port, per
     * cookie % VS_SAMPLE_POOLS (wrap like sFlow's 32-bit sample_pool). */
    uint32_t sample_pool[VS_SAMPLE_POOLS];
    struct vs_packet *txq[TXQ_LEN];
    int n_txq;
};

/* Output staging for one thread of execution (poll thread, or execute()).
 * Copies made for non-final outputs live in the arena until the flush. */
struct tx_ctx {
    uint8_t *arena;
    uint32_t arena_used;
    struct vs_packet copies[COPY_PKTS];
    int n_copies;
    struct vs_port *dirty[VS_MAX_PORTS];
    int n_dirty;
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
    volatile int stop;
    struct vs_emc_entry *emc;
    struct vs_packet rx[VS_BATCH];
    struct tx_ctx tx;
    struct vs_pmd_stats stats;
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

struct vs_dp {
    pthread_mutex_t mutex;
    int control_waiters;
    struct vs_classifier cls;
    struct vs_port *ports[VS_MAX_PORTS];
    uint32_t ports_gen;

    struct vs_pmd *pmds[VS_MAX_PMDS];
    int n_pmds;
    struct vs_pmd_stats retired; /* counters of poll threads since replaced */
    struct vs_pmd_stats exec_stats; /* upcalls made by execute() */

    struct tx_ctx exec_tx;
    struct vs_packet exec_pkt;
    uint64_t exec_prng; /* execute()'s own, under the datapath mutex */

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

/* The lock as taken by control calls (Python, set_pmds): announced in
 * control_waiters so that poll threads let them in first. */
static void control_lock(struct vs_dp *dp)
{
    __atomic_add_fetch(&dp->control_waiters, 1, __ATOMIC_ACQ_REL);
    pthread_mutex_lock(&dp->mutex);
    __atomic_sub_fetch(&dp->control_waiters, 1, __ATOMIC_ACQ_REL);
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
        struct vs_port *p = tx->dirty[i];
        int sent = p->class->send(p->netdev, p->txq, p->n_txq);
        for (int j = 0; j < sent; j++) {
            p->stats.tx_packets++;
            p->stats.tx_bytes += p->txq[j]->len;
        }
        p->stats.tx_dropped += (uint64_t)(p->n_txq - sent);
        p->n_txq = 0;
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
    if (p->n_txq == TXQ_LEN)
        tx_flush(tx);
    if (!p->n_txq)
        tx->dirty[tx->n_dirty++] = p;
    p->txq[p->n_txq++] = pkt;
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
        st->upcalls++;
    else
        st->upcall_drops++;
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
        st->samples++;
    else
        st->sample_drops++;
    return ok;
}

/* VS_ACTION_SAMPLE (datapath.h).  The pool counts every packet that reaches
 * the action, so that a collector can scale samples back to totals.  Called
 * under the datapath mutex, which guards the pools.  Returns 1 if a sample
 * was queued. */
static int sample_action(struct vs_dp *dp, struct vs_pmd_stats *st, uint64_t *prng,
                         uint32_t in_port, const struct vs_key *key,
                         const struct vs_packet *pkt, const uint32_t *args)
{
    uint32_t probability = args[0], cookie = args[1];
    struct vs_port *port = in_port < VS_MAX_PORTS ? dp->ports[in_port] : NULL;
    uint32_t pool = port ? ++port->sample_pool[cookie % VS_SAMPLE_POOLS] : 0;
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
            struct vs_port *p = args[0] < VS_MAX_PORTS ? dp->ports[args[0]] : NULL;
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

/* `port` is the port polled; a type that demultiplexes a shared descriptor
 * (a tunnel socket) may have set another port's number in pkt->in_port. */
static int process_batch(struct vs_pmd *pmd, struct vs_port *port, struct vs_packet *pkts,
                         int n, uint64_t now)
{
    struct vs_dp *dp = pmd->dp;
    struct vs_pmd_stats *st = &pmd->stats;
    int upcalled = 0;
    for (int i = 0; i < n; i++) {
        struct vs_packet *pkt = &pkts[i];
        struct vs_port *in = port;
        if (pkt->in_port != port->port_no) {
            in = pkt->in_port < VS_MAX_PORTS ? dp->ports[pkt->in_port] : NULL;
            if (!in) { /* a port that went away meanwhile */
                port->stats.rx_dropped++;
                continue;
            }
        }
        struct vs_key key;
        uint16_t tcp_flags;
        key.in_port = in->port_no;
        in->stats.rx_packets++;
        in->stats.rx_bytes += pkt->len;
        if (vs_parse(pkt->data, pkt->len, &key, &tcp_flags)) {
            in->stats.rx_malformed++;
            in->stats.rx_dropped++;
            st->malformed++;
            continue;
        }
        /* Tunnel metadata a tunnel port attached (netdev.h): looked up
         * with the inner frame's fields. */
        if (pkt->tnl.flags & VS_TNL_F_PRESENT) {
            key.tun_id = pkt->tnl.tun_id;
            key.tun_src = pkt->tnl.ip_src;
            key.tun_dst = pkt->tnl.ip_dst;
        }
        int tier;
        struct vs_flow *f = vs_emc_lookup(&dp->cls, pmd->emc, &key, &tier);
        if (!f) {
            st->misses++;
            upcalled |= upcall_enqueue(dp, st, in->port_no, 0, &key, pkt);
            continue;
        }
        if (tier == 1)
            st->emc_hits++;
        else
            st->megaflow_hits++;
        f->packets++;
        f->bytes += pkt->len;
        f->used_ns = now;
        f->tcp_flags |= tcp_flags;
        upcalled |= exec_actions(dp, &pmd->tx, st, &pmd->prng, pkt, in->port_no, &key,
                                 f->actions, f->n_actions);
    }
    uint64_t c = cycles_now();
    tx_flush(&pmd->tx);
    st->tx_cycles += cycles_now() - c;
    st->packets += (uint64_t)n;
    st->batches++;
    return upcalled;
}

/* Receives from one receive queue of a port.  Returns 1 if it still had a
 * full batch waiting at the end. */
static int poll_port(struct vs_pmd *pmd, struct vs_port *port, int rxq, int *upcalled)
{
    /* A few batches per port per round keeps one busy port from starving
     * the others while still amortising the poll() call. */
    for (int round = 0; round < 4; round++) {
        uint64_t truncated = 0;
        uint64_t c0 = cycles_now();
        for (int i = 0; i < VS_BATCH; i++) {
            pmd->rx[i].in_port = port->port_no;
            pmd->rx[i].tnl.flags = 0;
        }
        int n = port->class->recv(port->netdev, rxq, pmd->rx, VS_BATCH, &truncated);
        uint64_t c1 = cycles_now();
        pmd->stats.rx_cycles += c1 - c0;
        port->stats.rx_dropped += truncated;
        port->stats.rx_malformed += truncated;
        if (n <= 0)
            return 0;
        uint64_t tx_before = pmd->stats.tx_cycles;
        *upcalled |= process_batch(pmd, port, pmd->rx, n, vs_now_ns());
        /* process = the batch minus its transmit, measured inside it */
        pmd->stats.process_cycles += cycles_now() - c1 - (pmd->stats.tx_cycles - tx_before);
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
 * polled any more.  Called under the datapath mutex. */
static int port_poll_error(struct vs_port *port, int rxq, int fd, short revents)
{
    port->stats.poll_errors++;
    int dead = port->class->poll_error ? port->class->poll_error(port->netdev, rxq, fd, revents)
                                       : vs_netdev_poll_error(fd, revents);
    if (dead)
        port->stats.dead = 1;
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

/* Rebuilds the thread's poll list under the datapath mutex: its control
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
        struct vs_port *p = dp->ports[i];
        if (!p || p->stats.dead)
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

static void *pmd_main(void *arg)
{
    struct vs_pmd *pmd = arg;
    struct vs_dp *dp = pmd->dp;
    uint32_t gen = UINT32_MAX;
    int busy_rounds = 0; /* rounds in a row that skipped poll() */
    /* Threads started in the same nanosecond still differ by thread id. */
    pmd->prng = prng_seed(vs_now_ns() ^ (uint64_t)gettid() << 32 ^ (uint64_t)pmd->id);
    while (!pmd->stop) {
        /* Only a port change needs the lock; a spinning thread must not take
         * it on every round or control calls would queue behind it. */
        if (gen != __atomic_load_n(&dp->ports_gen, __ATOMIC_ACQUIRE)) {
            pthread_mutex_lock(&dp->mutex);
            gen = dp->ports_gen;
            pmd_poll_list(pmd);
            pthread_mutex_unlock(&dp->mutex);
            busy_rounds = 0;
        }
        struct pollfd *pfds = pmd->pfds;
        int npfd = pmd->n_pfds;

        uint64_t t0 = vs_now_ns(), c0 = cycles_now();
        /* A busy-polling thread owns its CPU: it asks the kernel with a zero
         * timeout and never sleeps, saving the wake-up (tens of µs per
         * packet at low rates) at the price of a CPU spinning at 100 %. */
        int r;
        if (busy_rounds && busy_rounds < 8) {
            /* Under load the ports that filled their last batches are read
             * again directly: poll() costs more than it tells (about a
             * tenth of the cycles at 64-byte rates).  Every 8th round polls
             * so that the other ports are seen too. */
            r = 1;
        } else if (!npfd) { /* no memory for a poll list: try again soon */
            r = poll(NULL, 0, 100);
            gen = UINT32_MAX;
            busy_rounds = 0;
        } else {
            r = poll(pfds, (nfds_t)npfd, pmd->busy_poll ? 0 : 100);
            busy_rounds = 0;
        }
        uint64_t t1 = vs_now_ns(), c1 = cycles_now();
        pmd->stats.idle_ns += t1 - t0;
        pmd->stats.idle_cycles += c1 - c0;
        if (r <= 0)
            continue;
        if (!busy_rounds && (pfds[0].revents & POLLIN)) {
            uint64_t v;
            ssize_t rr = read(pmd->ctl_efd, &v, sizeof v);
            (void)rr;
        }
        int upcalled = 0;
        /* Control calls go first: a poll thread that relocks right after
         * unlocking could otherwise keep them waiting indefinitely. */
        while (__atomic_load_n(&dp->control_waiters, __ATOMIC_ACQUIRE))
            sched_yield();
        pthread_mutex_lock(&dp->mutex);
        int still_busy = 0;
        if (gen == dp->ports_gen) {
            for (int i = 1; i < npfd; i++) {
                struct vs_port *port = dp->ports[pmd->entries[i].port_no];
                if (!(pfds[i].revents & POLLIN)) {
                    if (pfds[i].revents && port && !port->stats.dead
                        && port_poll_error(port, pmd->entries[i].rxq, pfds[i].fd, pfds[i].revents)) {
                        for (int j = 1; j < npfd; j++) /* all of its descriptors */
                            if (pmd->entries[j].port_no == pmd->entries[i].port_no)
                                pfds[j].fd = -1; /* skipped by poll() */
                    }
                    pfds[i].revents = 0;
                    continue;
                }
                if (port && poll_port(pmd, port, pmd->entries[i].rxq, &upcalled))
                    still_busy = 1;
                else
                    pfds[i].revents = 0; /* drained: wait for poll() to say more */
            }
        }
        /* Counted before unlocking, so a reader (under the lock) always sees
         * the busy time cover the stage counters inside it. */
        pmd->stats.busy_ns += vs_now_ns() - t1;
        pmd->stats.busy_cycles += cycles_now() - c1;
        pthread_mutex_unlock(&dp->mutex);
        busy_rounds = still_busy ? busy_rounds + 1 : 0;
        if (upcalled)
            upcall_notify(dp);
    }
    return NULL;
}

/* ---- lifecycle and control ---- */

static void port_close(struct vs_port *p)
{
    p->class->close(p->netdev);
    free(p);
}

static int tx_ctx_init(struct tx_ctx *tx)
{
    memset(tx, 0, sizeof *tx);
    tx->arena = malloc(ARENA_SIZE);
    return tx->arena ? 0 : -1;
}

static uint8_t *new_packet_buf(void)
{
    return malloc(VS_HEADROOM + VS_MAX_FRAME);
}

static void pmd_free(struct vs_pmd *pmd)
{
    if (!pmd)
        return;
    if (pmd->started) {
        pmd->stop = 1;
        uint64_t one = 1;
        ssize_t r = write(pmd->ctl_efd, &one, sizeof one);
        (void)r;
        pthread_join(pmd->thread, NULL);
    }
    tx_flush(&pmd->tx); /* nothing may stay queued on ports */
    free(pmd->emc);
    free(pmd->tx.arena);
    for (int i = 0; i < VS_BATCH; i++)
        free(pmd->rx[i].buf);
    free(pmd->pfds);
    free(pmd->entries);
    free(pmd->seen);
    if (pmd->ctl_efd >= 0)
        close(pmd->ctl_efd);
    free(pmd);
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
    pmd->emc = calloc(VS_EMC_SIZE, sizeof *pmd->emc);
    int ok = pmd->ctl_efd >= 0 && pmd->emc && !tx_ctx_init(&pmd->tx);
    for (int i = 0; ok && i < VS_BATCH; i++)
        ok = (pmd->rx[i].buf = new_packet_buf()) != NULL;
    if (ok && !pthread_create(&pmd->thread, NULL, pmd_main, pmd)) {
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

static void stats_add(struct vs_pmd_stats *acc, const struct vs_pmd_stats *s)
{
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
    /* Stop the old threads first: the mutex is not held while joining, so
     * a thread finishing its batch can still take it. */
    for (int i = 0; i < dp->n_pmds; i++) {
        struct vs_pmd *old = dp->pmds[i];
        control_lock(dp);
        stats_add(&dp->retired, &old->stats);
        pthread_mutex_unlock(&dp->mutex);
        dp->pmds[i] = NULL;
        pmd_free(old);
    }
    control_lock(dp);
    dp->n_pmds = 0;
    int k = 0;
    for (int i = 0; i < VS_MAX_PORTS; i++)
        if (dp->ports[i])
            dp->ports[i]->pmd = k++ % n;
    dp->ports_gen++;
    pthread_mutex_unlock(&dp->mutex);
    for (int i = 0; i < n; i++) {
        struct vs_pmd *pmd = pmd_create(dp, i, cpus ? cpus[i] : -1, busy_poll);
        if (!pmd)
            return i ? i : -ENOMEM; /* keep what started; ports of missing ones wait */
        control_lock(dp);
        dp->pmds[i] = pmd;
        dp->n_pmds = i + 1;
        pthread_mutex_unlock(&dp->mutex);
    }
    return n;
}

int vs_dp_pmd_stats(struct vs_dp *dp, struct vs_pmd_stats *out, int max)
{
    control_lock(dp);
    int n = dp->n_pmds < max ? dp->n_pmds : max;
    for (int i = 0; i < n; i++)
        out[i] = dp->pmds[i]->stats;
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
    vs_cls_init(&dp->cls);
    dp->ring_size = ring_size ? ring_size : 1024;
    dp->ring = calloc(dp->ring_size, sizeof *dp->ring);
    dp->sample_ring = calloc(VS_SAMPLE_RING, sizeof *dp->sample_ring);
    dp->exec_prng = prng_seed(vs_now_ns() ^ (uint64_t)getpid() << 32);
    dp->up_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int ok = dp->ring && dp->sample_ring && dp->up_efd >= 0 && !tx_ctx_init(&dp->exec_tx);
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
    for (int i = 0; i < VS_MAX_PORTS; i++) {
        if (dp->ports[i])
            port_close(dp->ports[i]);
    }
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
        dp->ports[p->port_no] = p;
        dp->ports_gen++;
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
    r = port_register(dp, p);
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
    if (p && (!cls || p->class == cls))
        r = fn(p->netdev, arg);
    pthread_mutex_unlock(&dp->mutex);
    return r;
}

int vs_dp_port_type_status(struct vs_dp *dp, uint32_t port_no, struct vs_port_kv *out, int max)
{
    if (port_no >= VS_MAX_PORTS)
        return -EINVAL;
    int n = -ENOENT;
    control_lock(dp);
    struct vs_port *p = dp->ports[port_no];
    if (p)
        n = p->class->get_status ? p->class->get_status(p->netdev, out, max) : 0;
    pthread_mutex_unlock(&dp->mutex);
    return n;
}

int vs_dp_port_type_stats(struct vs_dp *dp, uint32_t port_no, struct vs_port_counter *out,
                          int max)
{
    if (port_no >= VS_MAX_PORTS)
        return -EINVAL;
    int n = -ENOENT;
    control_lock(dp);
    struct vs_port *p = dp->ports[port_no];
    if (p)
        n = p->class->get_stats ? p->class->get_stats(p->netdev, out, max) : 0;
    pthread_mutex_unlock(&dp->mutex);
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
    dp->ports[port_no] = NULL;
    if (p)
        dp->ports_gen++;
    pthread_mutex_unlock(&dp->mutex);
    if (!p)
        return -ENOENT;
    wake_poll_thread(dp);
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
        *out = dp->ports[port_no]->stats;
    else
        err = -ENOENT;
    pthread_mutex_unlock(&dp->mutex);
    return err;
}

int vs_dp_flow_put(struct vs_dp *dp, const struct vs_key *key, const struct vs_key *mask,
                   const uint32_t *actions, uint32_t n_actions)
{
    int existed = 0;
    control_lock(dp);
    int r = vs_cls_put(&dp->cls, key, mask, actions, n_actions, &existed);
    pthread_mutex_unlock(&dp->mutex);
    return r < 0 ? -1 : existed;
}

int vs_dp_flow_del(struct vs_dp *dp, const struct vs_key *key, const struct vs_key *mask)
{
    control_lock(dp);
    int r = vs_cls_del(&dp->cls, key, mask);
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
    struct vs_flow_dump *out;
    int max, n;
};

static void dump_one(struct vs_flow *f, void *aux_)
{
    struct dump_aux *aux = aux_;
    if (aux->n >= aux->max)
        return;
    struct vs_flow_dump *d = &aux->out[aux->n++];
    d->key = f->key;
    d->mask = f->mask;
    d->packets = f->packets;
    d->bytes = f->bytes;
    d->used_ns = f->used_ns;
    d->tcp_flags = f->tcp_flags;
    d->n_actions = f->n_actions < VS_DUMP_MAX_ACTIONS ? f->n_actions : VS_DUMP_MAX_ACTIONS;
    memcpy(d->actions, f->actions, d->n_actions * sizeof(uint32_t));
}

int vs_dp_flow_del_stats(struct vs_dp *dp, const struct vs_key *key, const struct vs_key *mask,
                         struct vs_flow_dump *final)
{
    struct dump_aux aux = {final, 1, 0};
    control_lock(dp);
    struct vs_flow *f = vs_cls_find(&dp->cls, key, mask);
    if (f) {
        dump_one(f, &aux);
        vs_cls_del(&dp->cls, key, mask);
    }
    pthread_mutex_unlock(&dp->mutex);
    return f ? 0 : -1;
}

int vs_dp_flow_dump(struct vs_dp *dp, struct vs_flow_dump *out, int max, uint64_t *total)
{
    struct dump_aux aux = {out, max, 0};
    control_lock(dp);
    *total = dp->cls.n_flows;
    vs_cls_foreach(&dp->cls, dump_one, &aux);
    pthread_mutex_unlock(&dp->mutex);
    return aux.n;
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
    out->n_subtables = dp->cls.n_subtables;
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
    if (c)
        vs_cls_init(c);
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
        out[i] = f ? (int64_t)f->actions[0] : -1;
    }
}
