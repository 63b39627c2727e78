/* netdev_vxlan.c — the vxlan port type (RFC 7348): Ethernet frames in UDP,
 * encapsulated and decapsulated in the fast path, carried by the host's own
 * IP stack.
 *
 * Design note.
 *  - The VTEP address is an ordinary address of the host: the type sends and
 *    receives VXLAN datagrams on a UDP socket (routing, ARP and the outer
 *    IP/UDP headers are the kernel's), one socket per (local_ip, dst_port),
 *    shared and reference-counted by every vxlan port using it.  Each socket
 *    keeps a table of its ports: (VNI or "flow", remote_ip or "flow") ->
 *    port number, under the socket's own leaf mutex (open/close of one port
 *    run while recv of another may run).  send's buffers are per port (the
 *    datapath serialises send per port); two ports' sendmmsg() on the
 *    shared socket may run at once, which the kernel allows.
 *  - rx_fds() of every port on a socket lists the socket's descriptor, so
 *    the datapath polls it once (netdev.h); recv() reads a batch with
 *    recvmmsg() straight into the packets' buffers (the 8-byte VXLAN header
 *    lands in the headroom), checks the header (I flag set, the reserved
 *    bits and the inner frame's length: otherwise malformed), finds the
 *    port by (VNI, outer source) — an exact remote first, then a
 *    remote_ip=flow port of that VNI, then key=flow ports — sets
 *    pkt->in_port and pkt->tnl (VNI, outer addresses from the datagram and
 *    IP_PKTINFO, outer TOS/TTL).  A datagram no port claims is dropped and
 *    counted (rx_unknown_vni, on every port of the socket).
 *  - send() builds one VXLAN header per packet (VNI: the port's key, or
 *    pkt->tnl's for key=flow) and sends the batch with sendmmsg() to the
 *    port's remote (or pkt->tnl's destination for remote_ip=flow, set by a
 *    SET_TUNNEL action), the frame itself not copied (two iovecs).  Outer
 *    TOS and TTL go per message as IP_TOS/IP_TTL control messages (tos
 *    "inherit" copies the inner IPv4/IPv6 TOS).  Outer DF is set
 *    (IP_PMTUDISC_DO): a frame too large for the path is refused by the
 *    kernel with EMSGSIZE, dropped and counted (tx_mtu_drops), never cut or
 *    fragmented.
 *  - Offloads: a frame with a partial checksum (NEEDS_CSUM) has its
 *    checksum completed before encapsulation.  A GSO super-frame (TSO from
 *    a veth or a tap) is segmented here into inner frames whose outer
 *    datagram fits the path MTU (the MSS is lowered if the inner one would
 *    not fit), and handed to the kernel as one UDP GSO send (UDP_SEGMENT
 *    with the segment size): one syscall per up to 64 segments, the outer
 *    headers made by the kernel (and by the NIC where it can).  Only the
 *    segments' headers are built (VXLAN + inner headers, in gso_buf); each
 *    segment's payload is gathered by an iovec from where it lies in the
 *    super-frame, so the kernel's copy into the datagram is the only one
 *    and the inner checksums are the only other pass over the payload
 *    (vs_offload_segment_headers).  They must be complete on the wire: the
 *    far VTEP (kernel vxlan, OVS) hands the inner frame on as received.
 *    The path MTU is the route's (IP_MTU of a socket connected to the
 *    remote, read when the port opens; 1500 for remote_ip=flow).
 *  - Datagram trains: plain frames next to each other in a send batch that
 *    leave from one source port to one remote with one TOS, all as long as
 *    the first but the last (a TCP flow's MSS-sized segments from a sender
 *    without TSO or from an afxdp port; a stream of equal UDP datagrams),
 *    go as one UDP GSO send with the first's length as the segment size:
 *    the kernel cuts the same datagrams, but one skb crosses its IP stack
 *    and the route instead of one per frame (make_trains).  Only frames
 *    whose datagram fits the path ride a train; a train the kernel refuses
 *    as a whole is sent again frame by frame, so a train never loses a
 *    frame that a single send would have carried (tx_train_errors).
 *  - Receive offload: UDP_GRO on the shared socket hands over a train of
 *    VXLAN datagrams (one segment size) as one; recv coalesces consecutive
 *    inner TCP segments of one flow (IPv4 not fragmented, IPv6 without
 *    extension headers; only ACK/PSH; each segment's checksum verified, as
 *    the outer UDP checksum may be zero and never covers the inner sender)
 *    into one TSO frame with a vnet header and a partial checksum, as the
 *    kernel's GRO would: the receiving port gets ~1 frame per 20-40.
 *  - A far VTEP on the same host (the kernel's vxlan over a veth) sends
 *    inner checksums left partial (no NIC ever completes them) and may hand
 *    a whole TSO super-frame over as one datagram: such frames go on with a
 *    partial checksum (and as TSO frames sized to the tunnel's inner MTU),
 *    as the kernel's own vxlan receiver would pass them (mark_partial_csum).
 *  - The outer UDP source port is a hash of the inner flow (RFC 7348 §5,
 *    for ECMP in the underlay): each socket has a pool of send-only sockets
 *    bound to source ports of the dynamic range, and a packet (or a whole
 *    super-frame: one flow) is sent on the one its inner flow hash picks
 *    (vxlan_sport.h).  The shared socket only receives.
 *  - options:tc-offload=true (vxlan_kdev.h): the kernel's own vxlan device
 *    receives for the (local_ip, dst_port) instead of the shared socket
 *    (which is then not created: the device owns the port); recv reads the
 *    decapsulated frames, tunnel metadata in front, from the punt socket
 *    and demultiplexes them as datagrams (same counters; the kernel's GRO
 *    has coalesced TCP already: sock_rx_packets counts frames, a GRO'd
 *    train as one, and the GRO counters stay 0).  All ports of one
 *    (local_ip, dst_port) must agree on the option.  User-space transmit
 *    is the same in both modes; the tc tier sends established flows to a
 *    port with a fixed tunnel itself (tier_join).  options:tc-device=
 *    per-port gives such a port a plain kernel device of its own where it
 *    can (vxlan_kdev.h says when and what is lost: the unknown-VNI count).
 *  - Options (validated by the schema first, and again here): remote_ip
 *    (IPv4 or "flow"), key (0..2^24-1 or "flow", default 0), dst_port
 *    (default 4789), local_ip (IPv4, default any), tos (0..255 or
 *    "inherit", default 0), ttl (1..255, default 64).
 */
#define _GNU_SOURCE
#include "netdev_provider.h"
#include "inet_csum.h"
#include "offload.h"
#include "tcp_coalesce.h"
#include "tc_tier_abi.h"
#include "vxlan_kdev.h"
#include "vxlan_kdev_abi.h"
#include "vxlan_sport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#define VXLAN_HLEN 8
#define OUTER_HLEN 36 /* IPv4 + UDP + VXLAN, added to the inner frame */

/* The largest inner IP packet that crosses an underlay path of path_mtu
 * bytes: the tunnel's inner MTU (status, the tc tier, resegmenting). */
static inline uint32_t inner_ip_mtu(uint32_t path_mtu)
{
    return path_mtu - OUTER_HLEN - ETH_HLEN_PLAIN;
}
#define VXLAN_FLAG_I 0x08
#define MAX_GSO_SEGS 64 /* segments per UDP GSO send (the kernel's UDP_MAX_SEGMENTS) */
#define MAX_TX_SEGS 256  /* segments of one super-frame */
/* Per segment in gso_buf: its VXLAN header and inner headers (Ethernet,
 * VLAN tags, IP and TCP with options). */
#define GSO_HDR_STRIDE 256
#define GSO_MAX_PAYLOAD 65000 /* one UDP GSO send, within IPv4's 64 KiB */
#define KEY_FLOW UINT64_MAX
/* options:tc-device (vxlan_kdev.h): the shared external kernel device, or
 * a plain one per port where it can have one. */
#define TC_DEVICE_SHARED "shared"
#define TC_DEVICE_PER_PORT "per-port"
#define SOCK_BUF_BYTES (8 << 20) /* socket buffers: bursts of TCP streams */
#define GRO_BUFS 8
#define GRO_BUF_SIZE 65536 /* the largest UDP payload */

struct vxlan_port_entry {
    uint32_t port_no;
    uint64_t vni;    /* KEY_FLOW for key=flow */
    uint32_t remote; /* network order; 0 for remote_ip=flow */
    uint32_t path_mtu; /* the port's: sizes what arrives as a GSO super-frame */
};

struct vxlan_sock {
    uint32_t local_ip; /* network order, 0 = any */
    uint16_t dst_port; /* host order */
    int fd;    /* receives, from dst_port (tc_offload: kdev's punt socket) */
    int tc_offload; /* the kernel vxlan device receives (kdev) */
    struct vs_vxlan_kdev kdev;
    struct vxlan_sport_pool sport; /* sends, from per-flow source ports */
    int refs;
    pthread_mutex_t mutex; /* the ports table */
    struct vxlan_port_entry *ports;
    int n_ports, cap_ports;
    /* Counted by recv under the socket's mutex, reported by every port. */
    uint64_t rx_unknown_vni, rx_malformed, rx_packets;
    uint64_t rx_gro_datagrams, rx_coalesced;
    /* recv's datagrams (UDP GRO: each may hold many VXLAN packets of
     * seg bytes), read GRO_BUFS at a time with recvmmsg and consumed across
     * calls: recv returns a full batch while any is left. */
    struct gro_buf {
        uint8_t *data;
        uint32_t len, off, seg;
        uint32_t src, dst;
        uint16_t sport;
        uint8_t tos, ttl;
    } rb[GRO_BUFS];
    int rb_head, rb_count;
    struct mmsghdr msgs[GRO_BUFS];
    struct iovec iov[GRO_BUFS];
    struct sockaddr_in from[GRO_BUFS];
    uint8_t cmsg[GRO_BUFS][128];
    struct vxlan_sock *next;
};

static pthread_mutex_t socks_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct vxlan_sock *socks;
static uint32_t next_tier_index = VS_TC_TIER_VXLAN_BASE; /* atomic */

struct netdev_vxlan {
    struct vs_netdev up;
    struct vxlan_sock *sock;
    uint32_t remote;   /* network order, 0 = flow */
    uint64_t vni;      /* KEY_FLOW = flow */
    int tos;           /* -1 = inherit */
    int ttl;
    uint32_t path_mtu; /* outer IP packets at most this long */
    uint32_t tier_index; /* tc_offload: the port in the tc tier (tc_tier_abi.h), else 0 */
    char remote_text[20], key_text[16];
    uint64_t tx_packets, tx_segments, tx_mtu_drops, tx_no_remote, tx_errors,
        tx_offload_drops, tx_resegmented, tx_trains, tx_train_frames, tx_train_errors;
    /* send's per-call state: frame i's VXLAN header, iovecs (contiguous
     * across frames, so a train of frames i..i+k is iov[i], 2k long),
     * destination and source port's socket; message t's header and
     * control messages. */
    struct mmsghdr msgs[VS_BATCH];
    struct iovec iov[VS_BATCH][2];
    struct sockaddr_in to[VS_BATCH];
    uint8_t hdrs[VS_BATCH][VXLAN_HLEN];
    uint8_t cmsg[VS_BATCH][64];
    int fds[VS_BATCH]; /* the source port's socket of each frame */
    uint8_t *gso_buf; /* headers of one super-frame's segments (GSO_HDR_STRIDE each) */
    struct iovec gso_iov[2 * MAX_GSO_SEGS]; /* one UDP GSO send: headers, payload, ... */
};

/* ---- options ---- */

static int parse_ip(const char *s, uint32_t *out)
{
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1)
        return -1;
    *out = a.s_addr;
    return 0;
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    if (!*s)
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end || v > max || *s == '-' || *s == '+')
        return -1;
    *out = v;
    return 0;
}

/* ---- shared sockets ---- */

static int sock_open(uint32_t local_ip, uint16_t dst_port, int *fdp, char *err, size_t errlen)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return vs_netdev_fail(err, errlen, "UDP socket", -errno);
    int one = 1, pmtu = IP_PMTUDISC_DO, bufsz = SOCK_BUF_BYTES;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(dst_port),
                              .sin_addr.s_addr = local_ip};
    if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) < 0 ||
        setsockopt(fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof one) < 0 ||
        setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &one, sizeof one) < 0 ||
        setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu) < 0) {
        int e = -errno;
        close(fd);
        return vs_netdev_fail(err, errlen, "UDP socket options", e);
    }
    /* Bursts of a TCP stream: the larger the better; without CAP_NET_ADMIN
     * the sysctl limits apply. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof bufsz) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsz, sizeof bufsz) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof bufsz);
    /* Receive offload: the kernel hands over a train of VXLAN datagrams of
     * one flow as one (recv coalesces their inner TCP segments); optional. */
    setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        int e = -errno;
        close(fd);
        char step[64];
        snprintf(step, sizeof step, "bind UDP port %u", dst_port);
        return vs_netdev_fail(err, errlen, step, e);
    }
    *fdp = fd;
    return 0;
}

/* Frees a socket no port uses any more (out of the list already). */
static void sock_destroy(struct vxlan_sock *s)
{
    if (s->tc_offload)
        vs_vxlan_kdev_close(&s->kdev); /* closes fd, its punt socket */
    else
        close(s->fd);
    vxlan_sport_close(&s->sport);
    pthread_mutex_destroy(&s->mutex);
    for (int i = 0; i < GRO_BUFS; i++)
        free(s->rb[i].data);
    free(s->ports);
    free(s);
}

/* The receive side of a new socket: the UDP socket, or the kernel device. */
static int sock_open_rx(struct vxlan_sock *s, uint32_t local_ip, uint16_t dst_port,
                        int tc_offload, char *err, size_t errlen)
{
    if (!tc_offload)
        return sock_open(local_ip, dst_port, &s->fd, err, errlen);
    char step[96];
    int r = vs_vxlan_kdev_open(&s->kdev, local_ip, dst_port, step, sizeof step);
    if (r)
        return vs_netdev_fail(err, errlen, step, r);
    s->tc_offload = 1;
    s->fd = s->kdev.sock_fd;
    return 0;
}

/* Finds or creates the socket and adds the port to its table. */
static int sock_attach(struct netdev_vxlan *nd, uint32_t local_ip, uint16_t dst_port,
                       int tc_offload, uint32_t port_no, char *err, size_t errlen)
{
    int r = 0;
    pthread_mutex_lock(&socks_mutex);
    struct vxlan_sock *s = NULL;
    for (struct vxlan_sock *g = socks; g; g = g->next)
        if (g->local_ip == local_ip && g->dst_port == dst_port)
            s = g;
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) {
            r = vs_netdev_fail(err, errlen, "allocate", -ENOMEM);
            goto out;
        }
        r = sock_open_rx(s, local_ip, dst_port, tc_offload, err, errlen);
        if (!r) {
            r = vxlan_sport_open(&s->sport, local_ip, SOCK_BUF_BYTES, err, errlen);
            if (r && s->tc_offload)
                vs_vxlan_kdev_close(&s->kdev);
            else if (r)
                close(s->fd);
        }
        if (r) {
            free(s);
            goto out;
        }
        s->local_ip = local_ip;
        s->dst_port = dst_port;
        pthread_mutex_init(&s->mutex, NULL);
        s->next = socks;
        socks = s;
    }
    if (s->tc_offload != tc_offload) {
        r = vs_netdev_fail(err, errlen, "option tc-offload differs from the other vxlan ports "
                           "of this local_ip and dst_port", -EINVAL);
        goto undo;
    }
    pthread_mutex_lock(&s->mutex);
    for (int i = 0; i < s->n_ports; i++) {
        if (s->ports[i].vni == nd->vni && s->ports[i].remote == nd->remote) {
            pthread_mutex_unlock(&s->mutex);
            r = vs_netdev_fail(err, errlen, "another vxlan port has this key and remote_ip",
                               -EEXIST);
            goto undo;
        }
    }
    if (s->n_ports == s->cap_ports) {
        int cap = s->cap_ports ? 2 * s->cap_ports : 8;
        struct vxlan_port_entry *p = realloc(s->ports, (size_t)cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&s->mutex);
            r = vs_netdev_fail(err, errlen, "allocate", -ENOMEM);
            goto undo;
        }
        s->ports = p;
        s->cap_ports = cap;
    }
    s->ports[s->n_ports++] = (struct vxlan_port_entry){port_no, nd->vni, nd->remote,
                                                            nd->path_mtu};
    pthread_mutex_unlock(&s->mutex);
    s->refs++;
    nd->sock = s;
    goto out;
undo:
    if (!s->refs) { /* created for this port */
        for (struct vxlan_sock **p = &socks; *p; p = &(*p)->next)
            if (*p == s) {
                *p = s->next;
                break;
            }
        sock_destroy(s);
    }
out:
    pthread_mutex_unlock(&socks_mutex);
    return r;
}

static void sock_detach(struct netdev_vxlan *nd)
{
    struct vxlan_sock *s = nd->sock;
    pthread_mutex_lock(&socks_mutex);
    pthread_mutex_lock(&s->mutex);
    for (int i = 0; i < s->n_ports; i++) {
        if (s->ports[i].port_no == nd->up.port_no) {
            s->ports[i] = s->ports[--s->n_ports];
            break;
        }
    }
    pthread_mutex_unlock(&s->mutex);
    int last = --s->refs == 0;
    if (last) {
        for (struct vxlan_sock **p = &socks; *p; p = &(*p)->next)
            if (*p == s) {
                *p = s->next;
                break;
            }
    }
    if (last)
        sock_destroy(s); /* under socks_mutex: vxlan_kdev.h's tables */
    pthread_mutex_unlock(&socks_mutex);
}

/* The route's MTU towards remote (IP_MTU of a connected socket), or 1500. */
static uint32_t route_mtu(uint32_t remote)
{
    uint32_t mtu = 1500;
    if (!remote)
        return mtu;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mtu;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(4789),
                              .sin_addr.s_addr = remote};
    int v;
    socklen_t len = sizeof v;
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
        getsockopt(fd, IPPROTO_IP, IP_MTU, &v, &len) == 0 && v >= 576)
        mtu = (uint32_t)v;
    close(fd);
    return mtu;
}

/* tc_offload: the port joins the tc tier (vxlan_kdev.h) under a tier index
 * of its own; as an output only with a fixed tunnel (remote_ip, key, tos:
 * the tc program sets no per-packet ones). */
static int tier_join(struct netdev_vxlan *nd, uint32_t local_ip, int per_port)
{
    struct vxlan_sock *s = nd->sock;
    uint32_t index = __atomic_fetch_add(&next_tier_index, 1, __ATOMIC_RELAXED);
    struct vs_tc_vxlan_tx tx = {.vni = (uint32_t)nd->vni, .remote = ntohl(nd->remote),
                                .local = ntohl(local_ip), .tos = (uint8_t)nd->tos,
                                .ttl = (uint8_t)nd->ttl,
                                .inner_mtu = (uint16_t)inner_ip_mtu(nd->path_mtu)};
    _Static_assert(VS_TC_VXLAN_SPORTS == VXLAN_SPORT_POOL, "the tier's copy of the pool");
    tx.n_sports = (uint16_t)s->sport.n;
    memcpy(tx.sports, s->sport.ports, sizeof s->sport.ports);
    int fixed = nd->vni != KEY_FLOW && nd->remote && nd->tos >= 0;
    pthread_mutex_lock(&socks_mutex); /* the kdev's port tables (vxlan_kdev.h) */
    int r = vs_vxlan_kdev_port_add(&s->kdev, nd->vni == KEY_FLOW ? VS_VXLAN_RX_ANY
                                                                 : (uint32_t)nd->vni,
                                   nd->remote, index, fixed ? &tx : NULL, per_port);
    pthread_mutex_unlock(&socks_mutex);
    if (!r)
        nd->tier_index = index;
    return r;
}

static int vxlan_open(const char *name, uint32_t port_no, const struct vs_port_option *opts,
                      int n_opts, struct vs_netdev **out, char *err, size_t errlen)
{
    (void)name;
    static const char *const allowed[] = {"remote_ip", "key", "dst_port", "local_ip",
                                          "tos", "ttl", "tc-offload", "tc-device", NULL};
    int r = vs_netdev_check_options(opts, n_opts, allowed, err, errlen);
    if (r)
        return r;
    const char *remote = vs_netdev_option(opts, n_opts, "remote_ip", NULL);
    const char *key = vs_netdev_option(opts, n_opts, "key", "0");
    const char *dport = vs_netdev_option(opts, n_opts, "dst_port", "4789");
    const char *local = vs_netdev_option(opts, n_opts, "local_ip", NULL);
    const char *tos = vs_netdev_option(opts, n_opts, "tos", "0");
    const char *ttl = vs_netdev_option(opts, n_opts, "ttl", "64");
    const char *tc = vs_netdev_option(opts, n_opts, "tc-offload", "false");
    const char *tc_dev = vs_netdev_option(opts, n_opts, "tc-device", TC_DEVICE_SHARED);
    struct netdev_vxlan *nd = calloc(1, sizeof *nd);
    if (!nd)
        return vs_netdev_fail(err, errlen, "allocate", -ENOMEM);
    unsigned long long v;
    uint32_t local_ip = 0;
    uint16_t dst_port;
    if (!remote || (strcmp(remote, "flow") && (parse_ip(remote, &nd->remote) || !nd->remote))) {
        r = vs_netdev_fail(err, errlen, "option remote_ip", -EINVAL);
        goto fail;
    }
    if (!strcmp(key, "flow"))
        nd->vni = KEY_FLOW;
    else if (parse_uint(key, 0xffffff, &v) == 0)
        nd->vni = v;
    else {
        r = vs_netdev_fail(err, errlen, "option key", -EINVAL);
        goto fail;
    }
    if (parse_uint(dport, 65535, &v) || !v) {
        r = vs_netdev_fail(err, errlen, "option dst_port", -EINVAL);
        goto fail;
    }
    dst_port = (uint16_t)v;
    if (local && parse_ip(local, &local_ip)) {
        r = vs_netdev_fail(err, errlen, "option local_ip", -EINVAL);
        goto fail;
    }
    if (!strcmp(tos, "inherit"))
        nd->tos = -1;
    else if (parse_uint(tos, 255, &v) == 0)
        nd->tos = (int)v;
    else {
        r = vs_netdev_fail(err, errlen, "option tos", -EINVAL);
        goto fail;
    }
    if (parse_uint(ttl, 255, &v) || !v) {
        r = vs_netdev_fail(err, errlen, "option ttl", -EINVAL);
        goto fail;
    }
    nd->ttl = (int)v;
    if (strcmp(tc, "true") && strcmp(tc, "false")) {
        r = vs_netdev_fail(err, errlen, "option tc-offload", -EINVAL);
        goto fail;
    }
    if (strcmp(tc_dev, TC_DEVICE_SHARED) && strcmp(tc_dev, TC_DEVICE_PER_PORT)) {
        r = vs_netdev_fail(err, errlen, "option tc-device", -EINVAL);
        goto fail;
    }
    snprintf(nd->remote_text, sizeof nd->remote_text, "%s", remote);
    snprintf(nd->key_text, sizeof nd->key_text, "%s", key);
    nd->path_mtu = route_mtu(nd->remote);
    nd->up.port_no = port_no;
    r = sock_attach(nd, local_ip, dst_port, !strcmp(tc, "true"), port_no, err, errlen);
    if (r)
        goto fail;
    if (nd->sock->tc_offload) {
        r = tier_join(nd, local_ip, !strcmp(tc_dev, TC_DEVICE_PER_PORT));
        if (r) {
            sock_detach(nd);
            r = vs_netdev_fail(err, errlen, "tc tier vxlan port", r);
            goto fail;
        }
    }
    *out = &nd->up;
    return 0;
fail:
    free(nd);
    return r;
}

static void vxlan_close(struct vs_netdev *netdev)
{
    struct netdev_vxlan *nd = (struct netdev_vxlan *)netdev;
    if (nd->tier_index) {
        pthread_mutex_lock(&socks_mutex);
        vs_vxlan_kdev_port_del(&nd->sock->kdev, nd->vni == KEY_FLOW ? VS_VXLAN_RX_ANY
                                                                    : (uint32_t)nd->vni,
                               nd->remote, nd->tier_index);
        pthread_mutex_unlock(&socks_mutex);
    }
    sock_detach(nd);
    free(nd->gso_buf);
    free(nd);
}

static int vxlan_tier_ifindex(struct vs_netdev *netdev)
{
    return (int)((struct netdev_vxlan *)netdev)->tier_index;
}

static int vxlan_rx_fds(struct vs_netdev *netdev, int *fds, int max)
{
    if (max < 1)
        return 0;
    fds[0] = ((struct netdev_vxlan *)netdev)->sock->fd;
    return 1;
}

/* ---- receive ---- */

/* The port for (vni, src) on s: an exact remote, then remote_ip=flow of
 * that VNI, then key=flow with that remote, then key=flow remote_ip=flow.
 * Called with s->mutex held.  Returns the port number or UINT32_MAX. */
static const struct vxlan_port_entry *demux(const struct vxlan_sock *s, uint64_t vni,
                                            uint32_t src)
{
    int best = -1, best_rank = 5;
    for (int i = 0; i < s->n_ports; i++) {
        const struct vxlan_port_entry *e = &s->ports[i];
        int vni_ok = e->vni == vni, vni_any = e->vni == KEY_FLOW;
        int rem_ok = e->remote == src, rem_any = e->remote == 0;
        int rank = vni_ok && rem_ok ? 1 : vni_ok && rem_any ? 2 : vni_any && rem_ok ? 3
                 : vni_any && rem_any ? 4 : 5;
        if (rank < best_rank) {
            best_rank = rank;
            best = i;
            if (rank == 1)
                break;
        }
    }
    return best < 0 ? NULL : &s->ports[best];
}

/* A single (not coalesced) inner frame: if it is untagged TCP or UDP over
 * IPv4 (not a fragment) or IPv6 (no extension headers) whose checksum is
 * partial (vs_l4_csum_is_partial), its vnet header says so.  A far VTEP on this
 * host may also hand over a whole TSO super-frame in one datagram (the
 * kernel passes a UDP-tunnel GSO skb to a UDP socket unsegmented, and the
 * datagram does not say its segment size): a partial TCP frame longer than
 * the tunnel's inner MTU (from `path_mtu`) becomes a TSO frame with
 * segments that fit it, instead of one its host's link drops for size. */
static void mark_partial_csum(struct vs_packet *p, uint32_t path_mtu)
{
    const uint8_t *f = p->data, *ip = f + ETH_HLEN_PLAIN;
    uint32_t len = p->len, l4;
    uint8_t proto;
    int v6;
    if (len < ETH_HLEN_PLAIN + 20 + UDP_HLEN)
        return;
    if (f[12] == 0x08 && f[13] == 0x00 && (ip[0] >> 4) == 4) {
        l4 = ETH_HLEN_PLAIN + (uint32_t)(ip[0] & 15) * 4;
        if ((vs_rd16(ip + 6) & 0x3fff) || vs_rd16(ip + 2) != len - ETH_HLEN_PLAIN)
            return;
        proto = ip[9];
        v6 = 0;
    } else if (f[12] == 0x86 && f[13] == 0xdd && (ip[0] >> 4) == 6 &&
               len >= ETH_HLEN_PLAIN + IPV6_HLEN + UDP_HLEN) {
        if (vs_rd16(ip + 4) != len - ETH_HLEN_PLAIN - IPV6_HLEN)
            return;
        l4 = ETH_HLEN_PLAIN + IPV6_HLEN;
        proto = ip[6];
        v6 = 1;
    } else {
        return;
    }
    uint32_t off = proto == IPPROTO_TCP_NUM ? TCP_CSUM_OFFSET
                 : proto == IPPROTO_UDP_NUM ? UDP_CSUM_OFFSET : 0;
    uint32_t min = proto == IPPROTO_TCP_NUM ? TCP_MIN_HLEN : UDP_HLEN;
    if (!off || len < l4 + min)
        return;
    /* The cheap test first (the pseudo-header only); the pass over the
     * payload only for the rare frame that passes it: one whose checksum
     * verifies all the same stays as it is. */
    if (!vs_l4_csum_is_partial(ip, v6, proto, f + l4, len - l4, off))
        return;
    uint64_t sum = vs_csum_partial(vs_l4_pseudo_sum(ip, v6, proto, len - l4), f + l4, len - l4);
    if (vs_csum_fold16(sum) == 0xffff)
        return;
    p->vnet.flags = VS_VNET_F_NEEDS_CSUM;
    p->vnet.csum_start = (uint16_t)l4;
    p->vnet.csum_offset = (uint16_t)off;
    uint32_t inner_mtu = inner_ip_mtu(path_mtu);
    if (proto != IPPROTO_TCP_NUM || len - ETH_HLEN_PLAIN <= inner_mtu)
        return;
    uint32_t hlen = l4 + (uint32_t)(f[l4 + 12] >> 4) * 4;
    if (hlen < l4 + TCP_MIN_HLEN || hlen >= len || hlen - ETH_HLEN_PLAIN >= inner_mtu)
        return;
    p->vnet.gso_type = v6 ? VS_GSO_TCPV6 : VS_GSO_TCPV4;
    p->vnet.hdr_len = (uint16_t)hlen;
    p->vnet.gso_size = (uint16_t)(inner_mtu - (hlen - ETH_HLEN_PLAIN));
}

/* Reads up to GRO_BUFS datagrams.  Returns the count, 0, or -errno. */
static int sock_fill(struct vxlan_sock *s)
{
    for (int i = 0; i < GRO_BUFS; i++) {
        if (!s->rb[i].data && !(s->rb[i].data = malloc(GRO_BUF_SIZE)))
            return i ? 0 : -ENOMEM;
        s->iov[i].iov_base = s->rb[i].data;
        s->iov[i].iov_len = GRO_BUF_SIZE;
        struct msghdr *m = &s->msgs[i].msg_hdr;
        m->msg_name = &s->from[i];
        m->msg_namelen = sizeof s->from[i];
        m->msg_iov = &s->iov[i];
        m->msg_iovlen = 1;
        m->msg_control = s->cmsg[i];
        m->msg_controllen = sizeof s->cmsg[i];
        m->msg_flags = 0;
    }
    int got = recvmmsg(s->fd, s->msgs, GRO_BUFS, MSG_DONTWAIT, NULL);
    if (got < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -errno;
    for (int i = 0; i < got; i++) {
        struct gro_buf *b = &s->rb[i];
        struct msghdr *m = &s->msgs[i].msg_hdr;
        b->len = m->msg_flags & MSG_TRUNC ? 0 : s->msgs[i].msg_len;
        b->off = 0;
        b->seg = b->len;
        b->src = s->from[i].sin_addr.s_addr;
        b->sport = ntohs(s->from[i].sin_port);
        b->dst = s->local_ip;
        b->tos = b->ttl = 0;
        if (m->msg_flags & MSG_TRUNC)
            s->rx_malformed++;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
            if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
                int seg;
                memcpy(&seg, CMSG_DATA(c), sizeof seg);
                if (seg > 0 && (uint32_t)seg < b->len) {
                    b->seg = (uint32_t)seg;
                    s->rx_gro_datagrams++;
                }
            } else if (c->cmsg_level != IPPROTO_IP) {
                continue;
            } else if (c->cmsg_type == IP_PKTINFO) {
                b->dst = ((struct in_pktinfo *)CMSG_DATA(c))->ipi_addr.s_addr;
            } else if (c->cmsg_type == IP_TOS) {
                b->tos = *(uint8_t *)CMSG_DATA(c);
            } else if (c->cmsg_type == IP_TTL) {
                int ttl;
                memcpy(&ttl, CMSG_DATA(c), sizeof ttl);
                b->ttl = (uint8_t)ttl;
            }
        }
    }
    s->rb_head = 0;
    s->rb_count = got;
    return got;
}

/* The train read after cur in this batch if it comes from the same far
 * VTEP and port as `first` (one UDP GSO send holds at most 64 KiB, so a
 * super-frame arrives as a train of ~44 segments and one of the rest: its
 * segments coalesce across the two), else NULL.  recv consumes trains in
 * order, so segments taken from it are simply skipped later (off). */
static struct gro_buf *next_train(struct vxlan_sock *s, const struct gro_buf *cur,
                                  const struct gro_buf *first)
{
    int i = (int)(cur - s->rb) + 1;
    if (i >= s->rb_head + s->rb_count)
        return NULL;
    struct gro_buf *n = &s->rb[i];
    if (!n->len || n->off || n->src != first->src || n->dst != first->dst ||
        n->sport != first->sport || n->tos != first->tos || n->ttl != first->ttl)
        return NULL;
    return n;
}

/* Takes the next VXLAN packet of datagram b into p, with the TCP segments
 * that follow it in b (and on into the next train: next_train) coalesced
 * into one TSO frame (vnet header set).
 * Returns 1 if p holds a packet, 0 if the datagram's packet was dropped
 * (counted).  Called with s->mutex held. */
static int take_one(struct vxlan_sock *s, struct gro_buf *b, struct vs_packet *p,
                    uint64_t *truncated)
{
    const uint8_t *h = b->data + b->off;
    uint32_t len = b->len - b->off < b->seg ? b->len - b->off : b->seg;
    b->off += len;
    s->rx_packets++;
    /* RFC 7348: I flag set, the other flag bits and the reserved fields
     * zero; an inner Ethernet header at least. */
    if (len < VXLAN_HLEN + 14 || h[0] != VXLAN_FLAG_I || h[1] || h[2] || h[3] || h[7]) {
        s->rx_malformed++;
        (*truncated)++;
        return 0;
    }
    uint64_t vni = (uint64_t)h[4] << 16 | (uint64_t)h[5] << 8 | h[6];
    const struct vxlan_port_entry *port = demux(s, vni, b->src);
    if (!port) {
        s->rx_unknown_vni++;
        return 0;
    }
    const uint8_t *inner = h + VXLAN_HLEN;
    uint32_t ilen = len - VXLAN_HLEN;
    p->data = p->buf + VS_HEADROOM;
    memcpy(p->data, inner, ilen);
    p->len = ilen;
    p->in_port = port->port_no;
    memset(&p->vnet, 0, sizeof p->vnet);
    p->tnl = (struct vs_tnl_md){.tun_id = vni, .ip_src = b->src, .ip_dst = b->dst,
                                .tp_src = b->sport, .tp_dst = s->dst_port, .tos = b->tos,
                                .ttl = b->ttl, .flags = VS_TNL_F_PRESENT};
    struct vs_tcpseg t0;
    struct gro_buf *cur = b; /* the train the next segment is taken from */
    if ((b->off >= b->len && !(cur = next_train(s, b, b))) || !vs_tcpseg_parse(inner, ilen, &t0) ||
        (t0.flags & TCP_PSH)) {
        mark_partial_csum(p, port->path_mtu);
        return 1;
    }
    uint32_t mss = ilen - t0.hlen, seq = t0.seq + mss, total = ilen;
    uint8_t flags = t0.flags;
    int merged = 0;
    for (;;) {
        if (cur->off >= cur->len && !(cur = next_train(s, cur, b)))
            break;
        const uint8_t *nh = cur->data + cur->off;
        uint32_t nlen = cur->len - cur->off < cur->seg ? cur->len - cur->off : cur->seg;
        struct vs_tcpseg t;
        if (nlen <= VXLAN_HLEN || memcmp(nh, h, VXLAN_HLEN) ||
            !vs_tcpseg_parse(nh + VXLAN_HLEN, nlen - VXLAN_HLEN, &t) ||
            !vs_tcpseg_follows(inner, &t0, nh + VXLAN_HLEN, &t, seq))
            break;
        uint32_t pay = nlen - VXLAN_HLEN - t.hlen;
        /* The IP length fields (IPv4's total, IPv6's payload) are 16 bits. */
        if (pay > mss || total + pay - t0.l3 > UINT16_MAX || total + pay > VS_MAX_FRAME)
            break;
        memcpy(p->data + total, nh + VXLAN_HLEN + t.hlen, pay);
        total += pay;
        seq += pay;
        flags |= t.flags;
        cur->off += nlen;
        s->rx_packets++;
        merged++;
        if (pay < mss || (t.flags & TCP_PSH))
            break;
    }
    if (!merged) {
        mark_partial_csum(p, port->path_mtu);
        return 1;
    }
    s->rx_coalesced += (uint64_t)merged + 1;
    vs_tcpseg_finish(p->data, &t0, total, flags, mss, &p->vnet);
    p->len = total;
    return 1;
}

/* One frame from the punt socket (tc_offload): its metadata into p->tnl and
 * p->in_port.  1 if p holds a packet, 0 if it was dropped (counted).
 * Called with s->mutex held. */
static int take_punted(struct vxlan_sock *s, const struct vs_vxlan_punt_hdr *h,
                       struct vs_packet *p)
{
    s->rx_packets++;
    if (p->len < ETH_HLEN_PLAIN) {
        s->rx_malformed++;
        return 0;
    }
    const struct vxlan_port_entry *port = demux(s, h->vni, h->remote);
    if (!port) {
        s->rx_unknown_vni++;
        return 0;
    }
    p->in_port = port->port_no;
    p->tnl = (struct vs_tnl_md){.tun_id = h->vni, .ip_src = h->remote, .ip_dst = h->local,
                                .tp_dst = s->dst_port, .tos = h->tos, .ttl = h->ttl,
                                .flags = VS_TNL_F_PRESENT};
    /* The kernel's offsets count the punt header. */
    if (p->vnet.flags & VS_VNET_F_NEEDS_CSUM)
        p->vnet.csum_start = (uint16_t)(p->vnet.csum_start - VS_VXLAN_PUNT_HLEN);
    if (p->vnet.gso_type && p->vnet.hdr_len > VS_VXLAN_PUNT_HLEN)
        p->vnet.hdr_len = (uint16_t)(p->vnet.hdr_len - VS_VXLAN_PUNT_HLEN);
    p->vnet.flags &= VS_VNET_F_NEEDS_CSUM; /* the kernel's DATA_VALID: not ours to pass on */
    /* An unfilled inner checksum (a far OVS's from a veth): passed on as
     * partial, as the socket receive does (and the tier: vxlan_kdev.bpf.c). */
    if (!p->vnet.flags && !p->vnet.gso_type)
        mark_partial_csum(p, port->path_mtu);
    return 1;
}

/* recv for tc_offload: the punt socket's frames (vxlan_kdev.h). */
static int punt_recv(struct vxlan_sock *s, struct vs_packet *pkts, int n, uint64_t *truncated)
{
    struct vs_vxlan_punt_hdr hdrs[VS_BATCH];
    int got = vs_netdev_packet_recv(s->fd, pkts, n, (uint8_t *)hdrs, sizeof hdrs[0], truncated);
    int kept = 0;
    pthread_mutex_lock(&s->mutex);
    for (int i = 0; i < got; i++) {
        if (!take_punted(s, &hdrs[i], &pkts[i]))
            continue;
        if (kept != i) { /* close the gap left by a dropped frame */
            struct vs_packet tmp = pkts[kept];
            pkts[kept] = pkts[i];
            pkts[i] = tmp;
        }
        kept++;
    }
    pthread_mutex_unlock(&s->mutex);
    return got < 0 ? got : kept;
}

static int vxlan_recv(struct vs_netdev *netdev, int rxq, struct vs_packet *pkts, int n,
                      uint64_t *truncated)
{
    (void)rxq;
    struct vxlan_sock *s = ((struct netdev_vxlan *)netdev)->sock;
    if (s->tc_offload)
        return punt_recv(s, pkts, n, truncated);
    int out = 0, drained = 0, err = 0;
    pthread_mutex_lock(&s->mutex);
    while (out < n) {
        if (!s->rb_count) {
            if (drained)
                break;
            int got = sock_fill(s);
            if (got < GRO_BUFS)
                drained = 1;
            if (got <= 0) {
                err = got;
                break;
            }
        }
        struct gro_buf *b = &s->rb[s->rb_head];
        if (b->off >= b->len) {
            s->rb_head++;
            s->rb_count--;
            continue;
        }
        out += take_one(s, b, &pkts[out], truncated);
    }
    pthread_mutex_unlock(&s->mutex);
    return out ? out : err;
}

/* ---- send ---- */

static uint8_t inner_tos(const uint8_t *f, uint32_t len)
{
    uint32_t off = 12;
    if (len >= 18 && f[12] == 0x81 && f[13] == 0x00)
        off = 16;
    if (len < off + 4)
        return 0;
    uint16_t type = (uint16_t)(f[off] << 8 | f[off + 1]);
    if (type == 0x0800)
        return f[off + 3];
    if (type == 0x86dd)
        return (uint8_t)((f[off + 2] & 0x0f) << 4 | f[off + 3] >> 4);
    return 0;
}

/* The inner headers' length of a GSO frame (Ethernet to the end of TCP or
 * UDP), or 0. */
static uint32_t gso_hlen(const uint8_t *f, uint32_t len, const struct vs_vnet_hdr *v)
{
    uint32_t l4 = v->csum_start;
    if (!(v->flags & VS_VNET_F_NEEDS_CSUM) || l4 < 14 || l4 + 20 > len)
        return 0;
    if ((v->gso_type & ~VS_GSO_ECN) == VS_GSO_UDP_L4)
        return l4 + 8;
    return l4 + (uint32_t)(f[l4 + 12] >> 4) * 4;
}

/* A frame too large for the path that is plain TCP (IPv4 not fragmented,
 * or IPv6 without extension headers) can still be segmented: gives it the
 * vnet header of a TSO frame and returns 1, else 0. */
static int tcp_as_gso(const struct vs_packet *p, struct vs_vnet_hdr *v)
{
    const uint8_t *f = p->data;
    uint32_t off = 12, len = p->len;
    if (len >= 18 && (f[12] == 0x81 || f[12] == 0x88) && (f[13] == 0x00 || f[13] == 0xa8))
        off = 16;
    if (len < off + 2)
        return 0;
    uint16_t type = (uint16_t)(f[off] << 8 | f[off + 1]);
    uint32_t l3 = off + 2, l4;
    if (type == 0x0800) {
        if (len < l3 + 20 || (f[l3] >> 4) != 4 || f[l3 + 9] != 6 || (f[l3 + 6] & 0x3f) || f[l3 + 7])
            return 0;
        l4 = l3 + (uint32_t)(f[l3] & 15) * 4;
        v->gso_type = VS_GSO_TCPV4;
    } else if (type == 0x86dd) {
        if (len < l3 + 40 || f[l3 + 6] != 6)
            return 0;
        l4 = l3 + 40;
        v->gso_type = VS_GSO_TCPV6;
    } else {
        return 0;
    }
    if (len < l4 + 20 || len <= l4 + (uint32_t)(f[l4 + 12] >> 4) * 4)
        return 0;
    v->flags = VS_VNET_F_NEEDS_CSUM;
    v->csum_start = (uint16_t)l4;
    v->csum_offset = 16;
    v->gso_size = 0; /* send_gso picks the largest that fits */
    v->hdr_len = 0;
    return 1;
}

/* Where this packet goes: 0, or -1 if it has no destination (flow ports
 * without SET_TUNNEL). */
static int dest_of(struct netdev_vxlan *nd, const struct vs_packet *pkt, uint32_t *ip,
                   uint64_t *vni)
{
    *ip = nd->remote;
    *vni = nd->vni;
    if (!nd->remote) {
        if (!(pkt->tnl.flags & VS_TNL_F_SET) || !pkt->tnl.ip_dst)
            return -1;
        *ip = pkt->tnl.ip_dst;
    }
    if (nd->vni == KEY_FLOW)
        *vni = pkt->tnl.flags & VS_TNL_F_PRESENT ? pkt->tnl.tun_id & 0xffffff : 0;
    return 0;
}

static void put_hdr(uint8_t *h, uint64_t vni)
{
    h[0] = VXLAN_FLAG_I;
    h[1] = h[2] = h[3] = 0;
    h[4] = (uint8_t)(vni >> 16);
    h[5] = (uint8_t)(vni >> 8);
    h[6] = (uint8_t)vni;
    h[7] = 0;
}

/* IP_TOS / IP_TTL (and UDP_SEGMENT when gso) control messages; returns
 * their length. */
static size_t put_cmsgs(struct netdev_vxlan *nd, uint8_t *buf, size_t cap, int tos, int gso)
{
    struct msghdr m = {.msg_control = buf, .msg_controllen = cap};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    size_t used = 0;
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_TTL;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    *(int *)CMSG_DATA(c) = nd->ttl;
    used += CMSG_SPACE(sizeof(int));
    if (tos) {
        c = CMSG_NXTHDR(&m, c);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_TOS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        *(int *)CMSG_DATA(c) = tos;
        used += CMSG_SPACE(sizeof(int));
    }
    if (gso) {
        c = CMSG_NXTHDR(&m, c);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        *(uint16_t *)CMSG_DATA(c) = (uint16_t)gso;
        used += CMSG_SPACE(sizeof(uint16_t));
    }
    return used;
}

/* Sends one GSO super-frame as UDP GSO sends of VXLAN segments, gathered
 * with iovecs: each segment is its VXLAN header and inner headers (made in
 * gso_buf) followed by its payload, read where it is in the super-frame
 * (its checksum is summed there, and the kernel's copy into the datagram
 * is the only one).  Returns 1 if sent, 0 if dropped (counted). */
static int send_gso(struct netdev_vxlan *nd, struct vs_packet *pkt, uint32_t ip, uint64_t vni,
                    int tos, int fd)
{
    uint32_t hlen = gso_hlen(pkt->data, pkt->len, &pkt->vnet);
    if (!hlen || hlen >= pkt->len) {
        nd->tx_offload_drops++;
        return 0;
    }
    struct vs_vnet_hdr v = pkt->vnet;
    /* Lower the MSS so that each outer packet fits the path. */
    uint32_t room = nd->path_mtu > OUTER_HLEN + hlen + 64 ? nd->path_mtu - OUTER_HLEN - hlen : 64;
    if (!v.gso_size || v.gso_size > room)
        v.gso_size = (uint16_t)room;
    uint32_t mss = v.gso_size;
    if (!nd->gso_buf && !(nd->gso_buf = malloc((size_t)MAX_TX_SEGS * GSO_HDR_STRIDE))) {
        nd->tx_offload_drops++;
        return 0;
    }
    uint8_t *hdrs[MAX_TX_SEGS];
    uint32_t lens[MAX_TX_SEGS], hl;
    for (int i = 0; i < MAX_TX_SEGS; i++)
        hdrs[i] = nd->gso_buf + (size_t)i * GSO_HDR_STRIDE + VXLAN_HLEN;
    int nseg = vs_offload_segment_headers(pkt->data, pkt->len, &v, hdrs,
                                          GSO_HDR_STRIDE - VXLAN_HLEN, &hl, lens, MAX_TX_SEGS);
    if (nseg <= 0) {
        nd->tx_offload_drops++;
        return 0;
    }
    /* UDP GSO cuts the datagram every `stride` bytes: every segment but
     * the last is exactly that long. */
    uint32_t stride = VXLAN_HLEN + hl + mss;
    /* At most MAX_GSO_SEGS segments and GSO_MAX_PAYLOAD bytes per send. */
    uint32_t per = GSO_MAX_PAYLOAD / stride;
    if (per > MAX_GSO_SEGS)
        per = MAX_GSO_SEGS;
    if (!per)
        per = 1;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(nd->sock->dst_port),
                             .sin_addr.s_addr = ip};
    for (uint32_t first = 0; first < (uint32_t)nseg; first += per) {
        uint32_t cnt = (uint32_t)nseg - first < per ? (uint32_t)nseg - first : per;
        for (uint32_t j = 0; j < cnt; j++) {
            uint32_t i = first + j;
            put_hdr(hdrs[i] - VXLAN_HLEN, vni);
            nd->gso_iov[2 * j] = (struct iovec){hdrs[i] - VXLAN_HLEN, VXLAN_HLEN + hl};
            nd->gso_iov[2 * j + 1] = (struct iovec){pkt->data + hl + i * mss, lens[i] - hl};
        }
        uint8_t cbuf[64];
        struct msghdr m = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = nd->gso_iov,
                           .msg_iovlen = 2 * cnt, .msg_control = cbuf};
        m.msg_controllen = put_cmsgs(nd, cbuf, sizeof cbuf, tos, cnt > 1 ? (int)stride : 0);
        if (sendmsg(fd, &m, MSG_DONTWAIT) < 0) {
            if (errno == EMSGSIZE || errno == EINVAL)
                nd->tx_mtu_drops++;
            else
                nd->tx_errors++;
            return 0;
        }
        nd->tx_segments += cnt;
    }
    return 1;
}

/* A send batch's plain frames 0..m-1 (their iovecs, destinations and
 * sockets in nd, their TOS and datagram lengths in tos/len) as messages:
 * message t carries frames first[t] .. first[t] + count[t] - 1, one frame,
 * or a train of them as one UDP GSO send (the design note).  Returns the
 * number of messages. */
static int make_trains(struct netdev_vxlan *nd, int m, const int *tos, const uint32_t *len,
                       int *first, int *count)
{
    int t = 0;
    for (int i = 0; i < m; t++) {
        int k = 1;
        uint32_t bytes = len[i];
        if (len[i] - VXLAN_HLEN + OUTER_HLEN <= nd->path_mtu) {
            while (i + k < m && k < MAX_GSO_SEGS && nd->fds[i + k] == nd->fds[i] &&
                   nd->to[i + k].sin_addr.s_addr == nd->to[i].sin_addr.s_addr &&
                   tos[i + k] == tos[i] && len[i + k] <= len[i] && len[i + k - 1] == len[i] &&
                   bytes + len[i + k] <= GSO_MAX_PAYLOAD) {
                bytes += len[i + k];
                k++;
            }
        }
        struct msghdr *h = &nd->msgs[t].msg_hdr;
        *h = (struct msghdr){.msg_name = &nd->to[i], .msg_namelen = sizeof nd->to[i],
                             .msg_iov = nd->iov[i], .msg_iovlen = (size_t)(2 * k),
                             .msg_control = nd->cmsg[t]};
        h->msg_controllen = put_cmsgs(nd, nd->cmsg[t], sizeof nd->cmsg[t], tos[i],
                                      k > 1 ? (int)len[i] : 0);
        first[t] = i;
        count[t] = k;
        i += k;
    }
    return t;
}

static void count_tx_failure(struct netdev_vxlan *nd, int err, int frames)
{
    if (err == EMSGSIZE)
        nd->tx_mtu_drops += (uint64_t)frames;
    else
        nd->tx_errors += (uint64_t)frames;
}

/* A train the kernel refused as a whole: its frames one by one, as they
 * would have gone without trains.  Frames sent are appended to out. */
static void send_train_singly(struct netdev_vxlan *nd, int first, int count, int tos,
                              struct vs_packet *const *batch, struct vs_packet **out, int *sent)
{
    nd->tx_train_errors++;
    for (int i = first; i < first + count; i++) {
        uint8_t cbuf[64];
        struct msghdr h = {.msg_name = &nd->to[i], .msg_namelen = sizeof nd->to[i],
                           .msg_iov = nd->iov[i], .msg_iovlen = 2, .msg_control = cbuf};
        h.msg_controllen = put_cmsgs(nd, cbuf, sizeof cbuf, tos, 0);
        if (sendmsg(nd->fds[i], &h, MSG_DONTWAIT) < 0)
            count_tx_failure(nd, errno, 1);
        else
            out[(*sent)++] = batch[i];
    }
}

static int vxlan_send(struct vs_netdev *netdev, struct vs_packet *const *pkts_in, int n)
{
    struct netdev_vxlan *nd = (struct netdev_vxlan *)netdev;
    /* The datapath's own staging array: reordered so that the packets sent
     * come first (the contract counts pkts[0..sent) as sent). */
    struct vs_packet **pkts = (struct vs_packet **)pkts_in;
    int sent = 0;
    for (int base = 0; base < n;) {
        int cnt = n - base < VS_BATCH ? n - base : VS_BATCH;
        int m = 0;
        struct vs_packet *batch[VS_BATCH];
        int tos_of[VS_BATCH], first[VS_BATCH], count[VS_BATCH];
        uint32_t len_of[VS_BATCH];
        for (int i = 0; i < cnt; i++) {
            struct vs_packet *p = pkts[base + i];
            uint32_t ip;
            uint64_t vni;
            if (dest_of(nd, p, &ip, &vni)) {
                nd->tx_no_remote++;
                continue;
            }
            int tos = nd->tos >= 0 ? nd->tos : inner_tos(p->data, p->len);
            int fd = vxlan_sport_fd(&nd->sock->sport, vxlan_flow_hash(p->data, p->len));
            /* Too large for the path: TCP is segmented (below), the rest
             * is refused by the kernel (DF) and counted in tx_mtu_drops. */
            if ((p->vnet.gso_type & ~VS_GSO_ECN) == VS_GSO_NONE &&
                p->len + OUTER_HLEN > nd->path_mtu && tcp_as_gso(p, &p->vnet))
                nd->tx_resegmented++;
            if ((p->vnet.gso_type & ~VS_GSO_ECN) != VS_GSO_NONE) {
                if (send_gso(nd, p, ip, vni, tos, fd))
                    pkts[sent++] = p;
                continue;
            }
            if ((p->vnet.flags & VS_VNET_F_NEEDS_CSUM) &&
                vs_offload_csum(p->data, p->len, &p->vnet) < 0) {
                nd->tx_offload_drops++;
                continue;
            }
            put_hdr(nd->hdrs[m], vni);
            nd->iov[m][0] = (struct iovec){nd->hdrs[m], VXLAN_HLEN};
            nd->iov[m][1] = (struct iovec){p->data, p->len};
            nd->to[m] = (struct sockaddr_in){.sin_family = AF_INET,
                                             .sin_port = htons(nd->sock->dst_port),
                                             .sin_addr.s_addr = ip};
            nd->fds[m] = fd;
            tos_of[m] = tos;
            len_of[m] = VXLAN_HLEN + p->len;
            batch[m++] = p;
        }
        int nmsg = make_trains(nd, m, tos_of, len_of, first, count);
        /* One sendmmsg per run of messages leaving from the same port. */
        for (int done = 0; done < nmsg;) {
            int fd = nd->fds[first[done]];
            int end = done + 1;
            while (end < nmsg && nd->fds[first[end]] == fd)
                end++;
            int r = sendmmsg(fd, nd->msgs + done, (unsigned)(end - done), MSG_DONTWAIT);
            if (r < 0) {
                /* That message is dropped (a train: retried frame by
                 * frame unless the socket is just full), the rest are
                 * tried. */
                int e = errno;
                if (count[done] > 1 && e != EAGAIN && e != ENOBUFS)
                    send_train_singly(nd, first[done], count[done], tos_of[first[done]], batch,
                                      pkts, &sent);
                else
                    count_tx_failure(nd, e, count[done]);
                done++;
                continue;
            }
            for (int j = done; j < done + r; j++) {
                for (int k = 0; k < count[j]; k++)
                    pkts[sent++] = batch[first[j] + k];
                if (count[j] > 1) {
                    nd->tx_trains++;
                    nd->tx_train_frames += (uint64_t)count[j];
                }
            }
            done += r;
        }
        base += cnt;
    }
    nd->tx_packets += (uint64_t)sent;
    return sent;
}

static int vxlan_status(struct vs_netdev *netdev, struct vs_port_kv *out, int max)
{
    struct netdev_vxlan *nd = (struct netdev_vxlan *)netdev;
    char local[INET_ADDRSTRLEN];
    struct in_addr a = {nd->sock->local_ip};
    inet_ntop(AF_INET, &a, local, sizeof local);
    int n = vs_netdev_kv(out, 0, max, "tunnel_remote_ip", "%s", nd->remote_text);
    n = vs_netdev_kv(out, n, max, "tunnel_key", "%s", nd->key_text);
    n = vs_netdev_kv(out, n, max, "tunnel_local_ip", "%s", local);
    n = vs_netdev_kv(out, n, max, "tunnel_dst_port", "%u", nd->sock->dst_port);
    n = vs_netdev_kv(out, n, max, "tunnel_path_mtu", "%u", nd->path_mtu);
    n = vs_netdev_kv(out, n, max, "tunnel_src_ports", "%d, by inner flow hash",
                     nd->sock->sport.n);
    /* The largest inner IP packet that crosses, and what happens to larger
     * ones (status values are at most VS_KV_VALUE_LEN bytes). */
    n = vs_netdev_kv(out, n, max, "tunnel_inner_mtu", "%u", inner_ip_mtu(nd->path_mtu));
    n = vs_netdev_kv(out, n, max, "tunnel_oversize", "%s",
                     "GSO segmented; else dropped and counted (tx_mtu_drops)");
    n = vs_netdev_kv(out, n, max, "tc_offload", "%s", nd->sock->tc_offload ? "true" : "false");
    if (nd->sock->tc_offload) {
        pthread_mutex_lock(&socks_mutex);
        n = vs_netdev_kv(out, n, max, "tc_device", "%s",
                         vs_vxlan_kdev_port_device(&nd->sock->kdev, nd->tier_index));
        pthread_mutex_unlock(&socks_mutex);
    }
    return n;
}

static int vxlan_stats(struct vs_netdev *netdev, struct vs_port_counter *out, int max)
{
    struct netdev_vxlan *nd = (struct netdev_vxlan *)netdev;
    int n = 0;
    n = vs_netdev_counter(out, n, max, "tx_segments", nd->tx_segments);
    n = vs_netdev_counter(out, n, max, "tx_mtu_drops", nd->tx_mtu_drops);
    n = vs_netdev_counter(out, n, max, "tx_resegmented", nd->tx_resegmented);
    n = vs_netdev_counter(out, n, max, "tx_no_remote", nd->tx_no_remote);
    n = vs_netdev_counter(out, n, max, "tx_offload_drops", nd->tx_offload_drops);
    n = vs_netdev_counter(out, n, max, "tx_errors", nd->tx_errors);
    n = vs_netdev_counter(out, n, max, "tx_trains", nd->tx_trains);
    n = vs_netdev_counter(out, n, max, "tx_train_frames", nd->tx_train_frames);
    n = vs_netdev_counter(out, n, max, "tx_train_errors", nd->tx_train_errors);
    n = vs_netdev_counter(out, n, max, "sock_rx_packets", nd->sock->rx_packets);
    n = vs_netdev_counter(out, n, max, "sock_rx_unknown_vni",
                          nd->sock->rx_unknown_vni +
                          (nd->sock->tc_offload ? vs_vxlan_kdev_unknown_vni(&nd->sock->kdev) : 0));
    n = vs_netdev_counter(out, n, max, "sock_rx_malformed", nd->sock->rx_malformed);
    n = vs_netdev_counter(out, n, max, "sock_rx_gro_datagrams", nd->sock->rx_gro_datagrams);
    n = vs_netdev_counter(out, n, max, "sock_rx_coalesced", nd->sock->rx_coalesced);
    return n;
}

static const struct vs_netdev_class vxlan_class = {
    .type = "vxlan",
    .open = vxlan_open,
    .close = vxlan_close,
    .rx_fds = vxlan_rx_fds,
    .tier_ifindex = vxlan_tier_ifindex,
    .tier_kind = VS_TIER_TC,
    .recv = vxlan_recv,
    .send = vxlan_send,
    .get_status = vxlan_status,
    .get_stats = vxlan_stats,
};

VS_NETDEV_REGISTER(vxlan_class)
