/* afxdp.c — the afxdp port type: AF_XDP sockets, UMEM and rings (afxdp.h),
 * and its operations table (netdev_provider.h) at the end. */
#define _GNU_SOURCE
#include "afxdp.h"
#include "netdev_provider.h"

#include <errno.h>
#include <linux/ethtool.h>
#include <linux/if_packet.h>
#include <linux/if_xdp.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "offload.h"
#include "tcp_coalesce.h"
#include "xdp_prog.h"
#include "xdp_tier.h"

#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif

#define FRAME_SIZE 4096u
#define N_FRAMES 6144u
#define N_RX_FRAMES 4096u /* the rest are for transmit; a TCP window of frames */
#define RING_SIZE 4096u
#define MAX_QUEUES 64
#define MAX_SEGS 64 /* a 64 KiB GSO frame at MSS 1024+ */
/* Receive: frames ahead of the one being copied whose first line is
 * prefetched (the kernel wrote them on another CPU: cold in this cache). */
#define RX_PREFETCH_AHEAD 4

struct ring {
    uint32_t *producer, *consumer, *flags;
    void *descs;
    uint32_t mask;
    uint32_t cached_prod, cached_cons;
    void *map;
    size_t map_len;
};

struct xsk_queue {
    int fd;
    uint8_t *umem;
    struct ring fill, comp, rx, tx;
    uint64_t tx_free[N_FRAMES - N_RX_FRAMES]; /* chunk addresses */
    uint32_t n_tx_free;
    uint32_t tx_outstanding; /* submitted, not yet completed */
    /* Receive chunks the last batch was handed out in place (afxdp.h): the
     * datapath is done with them when it asks this queue for the next
     * batch, and only then do they go back to the fill ring. */
    uint64_t held[VS_BATCH];
    uint32_t n_held;
};

struct vs_afxdp {
    struct vs_xdp_prog prog;
    int tier_ifindex; /* the netdev, when it runs the XDP tier (xdp_tier.h); else 0 */
    int promisc_fd; /* AF_PACKET socket holding the promiscuity reference */
    int gso_fd;     /* AF_PACKET socket with vnet headers: coalesced frames; -1: none */
    uint32_t n_queues;
    struct xsk_queue *q[MAX_QUEUES];
    struct vs_afxdp_stats stats;
};

/* ---- ring access: one producer and one consumer; the kernel is the other
 * side, so index loads acquire and index stores release. ---- */

static inline uint32_t load_acq(uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void store_rel(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

/* Free slots in a ring we produce into. */
static uint32_t prod_free(struct ring *r, uint32_t want)
{
    uint32_t size = r->mask + 1;
    uint32_t free = size - (r->cached_prod - r->cached_cons);
    if (free < want) {
        r->cached_cons = load_acq(r->consumer);
        free = size - (r->cached_prod - r->cached_cons);
    }
    return free;
}

/* Entries ready in a ring we consume from. */
static uint32_t cons_avail(struct ring *r, uint32_t want)
{
    uint32_t avail = r->cached_prod - r->cached_cons;
    if (avail < want) {
        r->cached_prod = load_acq(r->producer);
        avail = r->cached_prod - r->cached_cons;
    }
    return avail < want ? avail : want;
}

static int map_ring(int fd, struct ring *r, const struct xdp_ring_offset *off, uint64_t pgoff,
                    size_t desc_size)
{
    r->map_len = off->desc + RING_SIZE * desc_size;
    r->map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                  (off_t)pgoff);
    if (r->map == MAP_FAILED) {
        r->map = NULL;
        return -errno;
    }
    uint8_t *base = r->map;
    r->producer = (uint32_t *)(base + off->producer);
    r->consumer = (uint32_t *)(base + off->consumer);
    r->flags = (uint32_t *)(base + off->flags);
    r->descs = base + off->desc;
    r->mask = RING_SIZE - 1;
    r->cached_prod = *r->producer;
    r->cached_cons = *r->consumer;
    return 0;
}

static void unmap_ring(struct ring *r)
{
    if (r->map)
        munmap(r->map, r->map_len);
    r->map = NULL;
}

static void queue_close(struct xsk_queue *q)
{
    if (!q)
        return;
    unmap_ring(&q->rx);
    unmap_ring(&q->tx);
    unmap_ring(&q->fill);
    unmap_ring(&q->comp);
    if (q->fd >= 0)
        close(q->fd); /* unbinds; the kernel drops its UMEM reference */
    if (q->umem)
        munmap(q->umem, (size_t)N_FRAMES * FRAME_SIZE);
    free(q);
}

static int queue_open(struct xsk_queue **out, int ifindex, uint32_t queue_id, const char **step)
{
    struct xsk_queue *q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    q->fd = -1;
    int err;
    *step = "AF_XDP socket";
    q->fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (q->fd < 0)
        goto fail_errno;
    *step = "UMEM allocation";
    q->umem = mmap(NULL, (size_t)N_FRAMES * FRAME_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q->umem == MAP_FAILED) {
        q->umem = NULL;
        goto fail_errno;
    }
    struct xdp_umem_reg reg = {.addr = (uint64_t)(uintptr_t)q->umem,
                               .len = (uint64_t)N_FRAMES * FRAME_SIZE,
                               .chunk_size = FRAME_SIZE,
                               .headroom = 0};
    unsigned int rs = RING_SIZE;
    *step = "UMEM registration";
    if (setsockopt(q->fd, SOL_XDP, XDP_UMEM_REG, &reg, sizeof reg) < 0)
        goto fail_errno;
    *step = "ring setup";
    if (setsockopt(q->fd, SOL_XDP, XDP_UMEM_FILL_RING, &rs, sizeof rs) < 0 ||
        setsockopt(q->fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, &rs, sizeof rs) < 0 ||
        setsockopt(q->fd, SOL_XDP, XDP_RX_RING, &rs, sizeof rs) < 0 ||
        setsockopt(q->fd, SOL_XDP, XDP_TX_RING, &rs, sizeof rs) < 0)
        goto fail_errno;
    struct xdp_mmap_offsets off;
    socklen_t optlen = sizeof off;
    if (getsockopt(q->fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &optlen) < 0)
        goto fail_errno;
    *step = "ring mmap";
    if ((err = map_ring(q->fd, &q->fill, &off.fr, XDP_UMEM_PGOFF_FILL_RING, sizeof(uint64_t))) ||
        (err = map_ring(q->fd, &q->comp, &off.cr, XDP_UMEM_PGOFF_COMPLETION_RING,
                        sizeof(uint64_t))) ||
        (err = map_ring(q->fd, &q->rx, &off.rx, XDP_PGOFF_RX_RING, sizeof(struct xdp_desc))) ||
        (err = map_ring(q->fd, &q->tx, &off.tx, XDP_PGOFF_TX_RING, sizeof(struct xdp_desc))))
        goto fail;
    /* Lend the receive half of the UMEM to the kernel before binding. */
    uint64_t *fill = q->fill.descs;
    for (uint32_t i = 0; i < N_RX_FRAMES; i++)
        fill[(q->fill.cached_prod + i) & q->fill.mask] = (uint64_t)i * FRAME_SIZE;
    q->fill.cached_prod += N_RX_FRAMES;
    store_rel(q->fill.producer, q->fill.cached_prod);
    for (uint32_t i = N_RX_FRAMES; i < N_FRAMES; i++)
        q->tx_free[q->n_tx_free++] = (uint64_t)i * FRAME_SIZE;
    struct sockaddr_xdp sxdp = {.sxdp_family = AF_XDP,
                                .sxdp_flags = XDP_COPY | XDP_USE_NEED_WAKEUP,
                                .sxdp_ifindex = (uint32_t)ifindex,
                                .sxdp_queue_id = queue_id};
    *step = "AF_XDP bind";
    /* EBUSY: a socket closed a moment ago (a port re-added) still holds the
     * queue; the kernel lets go of it from a workqueue, so wait a little. */
    for (int tries = 0; bind(q->fd, (struct sockaddr *)&sxdp, sizeof sxdp) < 0; tries++) {
        if (errno != EBUSY || tries == 200)
            goto fail_errno;
        usleep(5000);
    }
    *out = q;
    return 0;
fail_errno:
    err = -errno;
fail:
    queue_close(q);
    return err;
}

/* The number of rx queues the driver exposes (1 when it does not say). */
static uint32_t rx_queue_count(const char *ifname)
{
    struct ethtool_channels ch = {.cmd = ETHTOOL_GCHANNELS};
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    ifr.ifr_data = (void *)&ch;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    uint32_t n = 1;
    if (s >= 0 && ioctl(s, SIOCETHTOOL, &ifr) == 0) {
        uint32_t rx = ch.rx_count + ch.combined_count;
        if (rx > n)
            n = rx;
    }
    if (s >= 0)
        close(s);
    return n > MAX_QUEUES ? MAX_QUEUES : n;
}

/* A switch port receives every frame, as with afpacket.  The membership is
 * reference-counted by the kernel and dropped when the socket closes, so a
 * crash cannot leave the device promiscuous.  Protocol 0: it receives
 * nothing itself. */
static int hold_promisc(int ifindex)
{
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct packet_mreq mr = {.mr_ifindex = ifindex, .mr_type = PACKET_MR_PROMISC};
    if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* The socket coalesced TCP frames leave by (afxdp.h): AF_PACKET, bound to
 * the device for transmit only (protocol 0: it receives nothing), a
 * virtio_net_hdr in front of each frame, past the qdisc as the AF_XDP
 * socket's frames are.  -1 if it cannot be had. */
static int open_gso_socket(int ifindex)
{
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = ifindex};
    if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static struct vs_afxdp *fail_open(struct vs_afxdp *x, struct vs_afxdp_info *info,
                                  const char *step, int err)
{
    info->error = err;
    snprintf(info->step, sizeof info->step, "%s", step);
    vs_afxdp_close(x);
    return NULL;
}

struct vs_afxdp *vs_afxdp_open(const char *ifname, int mode, int tier, struct vs_afxdp_info *info)
{
    memset(info, 0, sizeof *info);
    int ifindex = (int)if_nametoindex(ifname);
    if (!ifindex) {
        info->error = -ENODEV;
        snprintf(info->step, sizeof info->step, "find device");
        return NULL;
    }
    if (mode != VS_XDP_NATIVE && mode != VS_XDP_GENERIC && mode != VS_XDP_BEST_EFFORT) {
        info->error = -EINVAL;
        snprintf(info->step, sizeof info->step, "xdp mode");
        return NULL;
    }
    struct vs_afxdp *x = calloc(1, sizeof *x);
    if (!x) {
        info->error = -ENOMEM;
        return NULL;
    }
    x->promisc_fd = x->gso_fd = -1;
    x->prog.map_fd = x->prog.prog_fd = x->prog.link_fd = -1;
    x->n_queues = rx_queue_count(ifname);
    int err = tier ? vs_xdp_tier_load(&x->prog, x->n_queues)
                   : vs_xdp_prog_load(&x->prog, x->n_queues);
    if (err)
        return fail_open(x, info, tier ? "load XDP tier program" : "load XDP program", err);
    if (tier) {
        /* A redirect target from now on; a reference on the shared maps is
         * held until close (vs_xdp_tier_release). */
        x->tier_ifindex = ifindex;
        err = vs_xdp_tier_expose(ifindex);
        if (err)
            return fail_open(x, info, "XDP tier devmap", err);
    }
    err = -EINVAL;
    if (mode == VS_XDP_NATIVE || mode == VS_XDP_BEST_EFFORT) {
        err = vs_xdp_prog_attach(&x->prog, ifindex, VS_XDP_ATTACH_NATIVE);
        info->mode = VS_XDP_NATIVE;
        if (err && mode == VS_XDP_NATIVE)
            return fail_open(x, info, "attach native XDP", err);
    }
    if (mode == VS_XDP_GENERIC || (mode == VS_XDP_BEST_EFFORT && err)) {
        err = vs_xdp_prog_attach(&x->prog, ifindex, VS_XDP_ATTACH_GENERIC);
        info->mode = VS_XDP_GENERIC;
        if (err)
            return fail_open(x, info, "attach generic XDP", err);
    }
    for (uint32_t i = 0; i < x->n_queues; i++) {
        const char *step = "";
        err = queue_open(&x->q[i], ifindex, i, &step);
        if (err)
            return fail_open(x, info, step, err);
        err = vs_xdp_prog_set_socket(&x->prog, i, x->q[i]->fd);
        if (err)
            return fail_open(x, info, "XSKMAP update", err);
    }
    x->promisc_fd = hold_promisc(ifindex);
    if (x->promisc_fd < 0)
        return fail_open(x, info, "promiscuous mode", x->promisc_fd);
    x->gso_fd = open_gso_socket(ifindex); /* optional: without it, no coalescing */
    info->n_queues = x->n_queues;
    return x;
}

void vs_afxdp_close(struct vs_afxdp *x)
{
    if (!x)
        return;
    for (uint32_t i = 0; x->prog.map_fd >= 0 && i < x->n_queues; i++)
        if (x->q[i])
            vs_xdp_prog_del_socket(&x->prog, i);
    if (x->tier_ifindex)
        vs_xdp_tier_unexpose(x->tier_ifindex); /* no more redirects to it */
    vs_xdp_prog_close(&x->prog); /* detach first: no more redirects */
    if (x->tier_ifindex)
        vs_xdp_tier_release();
    for (uint32_t i = 0; i < MAX_QUEUES; i++)
        queue_close(x->q[i]);
    if (x->promisc_fd >= 0)
        close(x->promisc_fd);
    if (x->gso_fd >= 0)
        close(x->gso_fd);
    free(x);
}

int vs_afxdp_fds(const struct vs_afxdp *x, int *fds, int max)
{
    int n = 0;
    for (uint32_t i = 0; i < x->n_queues && n < max; i++)
        fds[n++] = x->q[i]->fd;
    return n;
}

/* ---- receive ---- */

/* Chunks go back to the fill ring: there is always room, since the ring
 * holds every receive chunk. */
static void fill_put(struct xsk_queue *q, const uint64_t *chunks, uint32_t n)
{
    if (!n)
        return;
    prod_free(&q->fill, n);
    uint64_t *fill = q->fill.descs;
    for (uint32_t i = 0; i < n; i++)
        fill[(q->fill.cached_prod + i) & q->fill.mask] = chunks[i];
    q->fill.cached_prod += n;
    store_rel(q->fill.producer, q->fill.cached_prod);
}

/* The packet points into its chunk (afxdp.h: receive in place): the
 * kernel's own headroom in front of the frame (XDP_PACKET_HEADROOM, in copy
 * mode) is where a VLAN tag or an MPLS/PBB header is pushed.  A frame with
 * less than VS_HEADROOM in front of it is copied out, as every frame of a
 * type that receives into the datapath's buffers is. */
static int rx_in_place(struct xsk_queue *q, const struct xdp_desc *d, struct vs_packet *p)
{
    uint64_t chunk = d->addr & ~(uint64_t)(FRAME_SIZE - 1);
    if (d->addr - chunk >= VS_HEADROOM) {
        p->buf = q->umem + chunk;
        p->data = q->umem + d->addr;
        return 1;
    }
    p->data = p->buf + VS_HEADROOM;
    memcpy(p->data, q->umem + d->addr, d->len);
    return 0;
}

static int queue_recv(struct xsk_queue *q, struct vs_packet *pkts, int n,
                      struct vs_afxdp_stats *st)
{
    /* The previous batch is done with (netdev_provider.h, recv). */
    fill_put(q, q->held, q->n_held);
    q->n_held = 0;
    uint32_t got = cons_avail(&q->rx, (uint32_t)n);
    if (!got) {
        /* Rx ring empty: make sure the kernel is not waiting for fill
         * entries (need_wakeup), then report nothing. */
        if (*q->fill.flags & XDP_RING_NEED_WAKEUP)
            (void)syscall(SYS_recvfrom, q->fd, NULL, (size_t)0, MSG_DONTWAIT, NULL, NULL);
        return 0;
    }
    const struct xdp_desc *rx = q->rx.descs;
    uint64_t back[VS_BATCH]; /* chunks given back at once: copied out or bad */
    uint32_t n_back = 0;
    int kept = 0;
    for (uint32_t i = 0; i < got && i < RX_PREFETCH_AHEAD; i++) {
        uint64_t a = rx[(q->rx.cached_cons + i) & q->rx.mask].addr;
        if (a < (uint64_t)N_FRAMES * FRAME_SIZE)
            __builtin_prefetch(q->umem + a);
    }
    for (uint32_t i = 0; i < got; i++) {
        const struct xdp_desc *d = &rx[(q->rx.cached_cons + i) & q->rx.mask];
        if (i + RX_PREFETCH_AHEAD < got) {
            uint64_t a = rx[(q->rx.cached_cons + i + RX_PREFETCH_AHEAD) & q->rx.mask].addr;
            if (a < (uint64_t)N_FRAMES * FRAME_SIZE)
                __builtin_prefetch(q->umem + a);
        }
        uint64_t chunk = d->addr & ~(uint64_t)(FRAME_SIZE - 1);
        if (d->len <= VS_MAX_FRAME && chunk < (uint64_t)N_FRAMES * FRAME_SIZE &&
            (d->addr & (FRAME_SIZE - 1)) + d->len <= FRAME_SIZE) {
            struct vs_packet *p = &pkts[kept++];
            if (rx_in_place(q, d, p)) {
                q->held[q->n_held++] = chunk;
            } else {
                back[n_back++] = chunk;
                st->rx_copied++;
            }
            p->len = d->len;
            memset(&p->vnet, 0, sizeof p->vnet);
            st->rx_csum_fixed += (uint64_t)vs_offload_rx_fix_csum(p->data, p->len);
        } else {
            back[n_back++] = chunk;
        }
    }
    q->rx.cached_cons += got;
    store_rel(q->rx.consumer, q->rx.cached_cons);
    fill_put(q, back, n_back);
    return kept;
}

int vs_afxdp_recv(struct vs_afxdp *x, int rxq, struct vs_packet *pkts, int n)
{
    if (n > VS_BATCH)
        n = VS_BATCH;
    if (rxq < 0 || (uint32_t)rxq >= x->n_queues)
        return 0;
    return queue_recv(x->q[rxq], pkts, n, &x->stats);
}

/* ---- transmit ---- */

static void reap_completions(struct xsk_queue *q)
{
    /* Never more than we lent: a misbehaving ring cannot overrun tx_free. */
    uint32_t n = cons_avail(&q->comp, (N_FRAMES - N_RX_FRAMES) - q->n_tx_free);
    const uint64_t *comp = q->comp.descs;
    for (uint32_t i = 0; i < n; i++)
        q->tx_free[q->n_tx_free++] = comp[(q->comp.cached_cons + i) & q->comp.mask];
    q->comp.cached_cons += n;
    store_rel(q->comp.consumer, q->comp.cached_cons);
    q->tx_outstanding -= n;
}

/* Hands the tx ring to the kernel.  In copy mode each sendto() transmits a
 * bounded number of descriptors, so keep kicking while it makes progress.
 * The kicks are raw system calls: the C library's sendto/recvfrom are
 * cancellation points, whose bookkeeping the poll thread (never cancelled)
 * need not pay on every batch. */
static void kick_tx(struct xsk_queue *q)
{
    for (int tries = 0; tries < 64; tries++) {
        if (!(*q->tx.flags & XDP_RING_NEED_WAKEUP) && tries)
            break;
        if (syscall(SYS_sendto, q->fd, NULL, (size_t)0, MSG_DONTWAIT, NULL, 0) < 0 &&
            errno != EAGAIN && errno != EBUSY && errno != ENOBUFS)
            break; /* e.g. ENETDOWN: the descriptors complete as errors */
        if (load_acq(q->tx.consumer) == q->tx.cached_prod)
            break;
    }
}

/* Sends the run vs_tcp_coalesce_run found (from `first`) as one TSO
 * frame on the gso socket.  Returns 0, or -errno (nothing sent: the caller
 * sends the segments one by one instead). */
static int send_coalesced(struct vs_afxdp *x, const struct vs_packet *first,
                          const struct vs_tcp_run *run, struct iovec *iov)
{
    uint8_t hdr[VS_TCP_MAX_HLEN];
    struct vs_vnet_hdr vnet;
    struct msghdr msg = {.msg_iov = iov,
                         .msg_iovlen = (size_t)vs_tcp_run_frame(first, run, hdr, &vnet, iov)};
    if (syscall(SYS_sendmsg, x->gso_fd, &msg, MSG_DONTWAIT) < 0)
        return -errno;
    vs_tcp_coalesce_sent(&x->stats.coalesce, run->k);
    return 0;
}

int vs_afxdp_send(struct vs_afxdp *x, struct vs_packet *const *pkts, int n)
{
    struct xsk_queue *q = x->q[0];
    reap_completions(q);
    struct xdp_desc *tx = q->tx.descs;
    uint8_t *outs[MAX_SEGS];
    uint32_t lens[MAX_SEGS];
    struct iovec iov[VS_TCP_RUN_IOV];
    int sent = 0, queued = 0, coalesce = x->gso_fd >= 0;
    for (int i = 0; i < n; i++) {
        const struct vs_packet *p = pkts[i];
        struct vs_tcp_run run;
        int k = coalesce ? vs_tcp_coalesce_run(pkts, i, n, &run, iov) : 0;
        if (k) {
            /* What is queued for the AF_XDP socket leaves first: the
             * frames keep their order on the wire. */
            if (queued) {
                store_rel(q->tx.producer, q->tx.cached_prod);
                kick_tx(q);
                queued = 0;
            }
            int err = send_coalesced(x, p, &run, iov);
            if (!err) {
                sent += k;
                i += k - 1;
                continue;
            }
            /* e.g. the socket's send buffer full: the rest of this batch
             * goes one by one. */
            x->stats.coalesce.errors++;
            coalesce = 0;
        }
        int need = vs_offload_nsegs(p->data, p->len, &p->vnet);
        if (need < 0 || need > MAX_SEGS) {
            x->stats.tx_offload_drops++;
            continue;
        }
        if (q->n_tx_free < (uint32_t)need || prod_free(&q->tx, (uint32_t)need) < (uint32_t)need) {
            /* Out of room: push what we have and take back what completed. */
            if (queued) {
                store_rel(q->tx.producer, q->tx.cached_prod);
                kick_tx(q);
                queued = 0;
            }
            reap_completions(q);
            if (q->n_tx_free < (uint32_t)need ||
                prod_free(&q->tx, (uint32_t)need) < (uint32_t)need) {
                x->stats.tx_no_room += (uint64_t)(n - i);
                break;
            }
        }
        for (int s = 0; s < need; s++)
            outs[s] = q->umem + q->tx_free[q->n_tx_free - 1 - s];
        int nseg = vs_offload_segment(p->data, p->len, &p->vnet, outs, FRAME_SIZE, lens, need);
        if (nseg < 0) {
            x->stats.tx_offload_drops++;
            continue;
        }
        if ((p->vnet.gso_type & ~VS_GSO_ECN) != VS_GSO_NONE)
            x->stats.tx_segments += (uint64_t)nseg;
        else if (p->vnet.flags & VS_VNET_F_NEEDS_CSUM)
            x->stats.tx_csum++;
        for (int s = 0; s < nseg; s++) {
            struct xdp_desc *d = &tx[q->tx.cached_prod++ & q->tx.mask];
            d->addr = q->tx_free[--q->n_tx_free];
            d->len = lens[s];
            d->options = 0;
        }
        q->tx_outstanding += (uint32_t)nseg;
        queued += nseg;
        sent++;
    }
    if (queued) {
        store_rel(q->tx.producer, q->tx.cached_prod);
        kick_tx(q);
    }
    return sent;
}

void vs_afxdp_get_stats(struct vs_afxdp *x, struct vs_afxdp_stats *out)
{
    *out = x->stats;
    for (uint32_t i = 0; i < x->n_queues; i++) {
        struct xdp_statistics st;
        socklen_t len = sizeof st;
        memset(&st, 0, sizeof st);
        if (getsockopt(x->q[i]->fd, SOL_XDP, XDP_STATISTICS, &st, &len) == 0) {
            out->rx_dropped += st.rx_dropped + st.rx_ring_full;
            out->rx_fill_empty += st.rx_fill_ring_empty_descs;
        }
    }
}

/* ---- the port type ---- */

struct netdev_afxdp {
    struct vs_netdev up;
    struct vs_afxdp *x;
    struct vs_afxdp_info info;
};

/* options:xdp-mode values (as in OVS, minus native-with-zerocopy: copy mode
 * only), by enum vs_xdp_mode. */
static const char *const xdp_modes[] = {
    [VS_XDP_BEST_EFFORT] = "best-effort", [VS_XDP_NATIVE] = "native", [VS_XDP_GENERIC] = "generic"};

static int afxdp_port_open(const char *ifname, uint32_t port_no, const struct vs_port_option *opts,
                           int n_opts, struct vs_netdev **out, char *err, size_t errlen)
{
    (void)port_no;
    static const char *const allowed[] = {"xdp-mode", "xdp-offload", NULL};
    int r = vs_netdev_check_options(opts, n_opts, allowed, err, errlen);
    if (r)
        return r;
    const char *mode_name = vs_netdev_option(opts, n_opts, "xdp-mode", "best-effort");
    int mode = -1;
    for (int i = 0; i < (int)(sizeof xdp_modes / sizeof *xdp_modes); i++)
        if (!strcmp(mode_name, xdp_modes[i]))
            mode = i;
    if (mode < 0)
        return vs_netdev_fail(err, errlen, "xdp mode", -EINVAL);
    const char *offload = vs_netdev_option(opts, n_opts, "xdp-offload", "false");
    if (strcmp(offload, "true") && strcmp(offload, "false"))
        return vs_netdev_fail(err, errlen, "xdp-offload (true or false)", -EINVAL);
    int tier = !strcmp(offload, "true");
    if (tier && !vs_xdp_tier_available())
        return vs_netdev_fail(err, errlen, "xdp-offload: built without clang/libbpf",
                              -EOPNOTSUPP);
    r = vs_netdev_set_up(ifname);
    if (r < 0)
        return vs_netdev_fail(err, errlen, "bring the device up", r);
    struct netdev_afxdp *nd = calloc(1, sizeof *nd);
    if (!nd)
        return vs_netdev_fail(err, errlen, "allocate", -ENOMEM);
    nd->x = vs_afxdp_open(ifname, mode, tier, &nd->info);
    if (!nd->x) {
        r = vs_netdev_fail(err, errlen, nd->info.step[0] ? nd->info.step : "open",
                           nd->info.error ? nd->info.error : -EINVAL);
        free(nd);
        return r;
    }
    *out = &nd->up;
    return 0;
}

static void afxdp_port_close(struct vs_netdev *netdev)
{
    struct netdev_afxdp *nd = (struct netdev_afxdp *)netdev;
    vs_afxdp_close(nd->x); /* detaches the XDP program, frees the UMEMs */
    free(nd);
}

/* One descriptor per receive queue: its AF_XDP socket (afxdp.h). */
static int afxdp_port_rx_fds(struct vs_netdev *netdev, int *fds, int max)
{
    return vs_afxdp_fds(((struct netdev_afxdp *)netdev)->x, fds, max);
}

static int afxdp_port_recv(struct vs_netdev *netdev, int rxq, struct vs_packet *pkts, int n,
                           uint64_t *truncated)
{
    (void)truncated;
    return vs_afxdp_recv(((struct netdev_afxdp *)netdev)->x, rxq, pkts, n);
}

static int afxdp_port_send(struct vs_netdev *netdev, struct vs_packet *const *pkts, int n)
{
    return vs_afxdp_send(((struct netdev_afxdp *)netdev)->x, pkts, n);
}

static int afxdp_port_status(struct vs_netdev *netdev, struct vs_port_kv *out, int max)
{
    const struct vs_afxdp_info *info = &((struct netdev_afxdp *)netdev)->info;
    int n = 0;
    if (info->mode == VS_XDP_NATIVE || info->mode == VS_XDP_GENERIC)
        n = vs_netdev_kv(out, n, max, "xdp_mode", "%s", xdp_modes[info->mode]);
    else
        n = vs_netdev_kv(out, n, max, "xdp_mode", "%d", (int)info->mode);
    n = vs_netdev_kv(out, n, max, "xdp_bind", "%s", info->zerocopy ? "zerocopy" : "copy");
    n = vs_netdev_kv(out, n, max, "n_rxq", "%u", info->n_queues);
    n = vs_netdev_kv(out, n, max, "xdp_offload", "%s",
                     ((struct netdev_afxdp *)netdev)->x->tier_ifindex ? "true" : "false");
    return n;
}

/* Software offloads and kernel ring drops (Interface statistics afxdp_*). */
static int afxdp_port_stats(struct vs_netdev *netdev, struct vs_port_counter *out, int max)
{
    struct vs_afxdp_stats st;
    vs_afxdp_get_stats(((struct netdev_afxdp *)netdev)->x, &st);
    int n = 0;
    n = vs_netdev_counter(out, n, max, "rx_dropped", st.rx_dropped);
    n = vs_netdev_counter(out, n, max, "rx_fill_empty", st.rx_fill_empty);
    n = vs_netdev_counter(out, n, max, "tx_no_room", st.tx_no_room);
    n = vs_netdev_counter(out, n, max, "tx_segments", st.tx_segments);
    n = vs_netdev_counter(out, n, max, "tx_csum", st.tx_csum);
    n = vs_netdev_counter(out, n, max, "tx_offload_drops", st.tx_offload_drops);
    n = vs_netdev_counter(out, n, max, "rx_csum_fixed", st.rx_csum_fixed);
    n = vs_netdev_counter(out, n, max, "rx_copied", st.rx_copied);
    return vs_tcp_coalesce_counters(&st.coalesce, out, n, max);
}

static int afxdp_port_tier_ifindex(struct vs_netdev *netdev)
{
    return ((struct netdev_afxdp *)netdev)->x->tier_ifindex;
}

static const struct vs_netdev_class afxdp_class = {
    .type = "afxdp",
    .open = afxdp_port_open,
    .close = afxdp_port_close,
    .rx_fds = afxdp_port_rx_fds,
    .recv = afxdp_port_recv,
    .send = afxdp_port_send,
    /* poll_error: the default (SO_ERROR on the socket). */
    .get_status = afxdp_port_status,
    .get_stats = afxdp_port_stats,
    .tier_ifindex = afxdp_port_tier_ifindex,
};

VS_NETDEV_REGISTER(afxdp_class)
