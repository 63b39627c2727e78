/* netdev_afpacket.c — the afpacket port type: an AF_PACKET socket bound to a
 * netdev, with PACKET_VNET_HDR; receive batched with recvmmsg(), send with
 * sendmmsg().  A veth peer's TSO super-frames and partial checksums arrive as
 * they are and leave the same way, so TCP works with the kernel's default
 * offloads.  It works on every netdev: the portable type, and the fallback
 * of afxdp.
 *
 * Option tc-offload=true (default false) runs the kernel tc tier on the
 * port (tc_tier.h): a tcx ingress program forwards established exact flows
 * and a socket filter keeps them out of the socket.
 *
 * Frames the kernel could not queue because the socket's receive buffer
 * was full (the switch fell behind) are counted by the kernel per socket
 * (PACKET_STATISTICS, which resets on every read); get_stats adds them up
 * in rx_socket_drops, under the datapath's control mutex and the port's
 * tx mutex (vs_dp_port_type_stats), so no other lock guards the field.
 *
 * (Why not a TPACKET_V3 ring: V3 wakes the reader only when a block retires,
 * which is at least 1 ms, and holds 64 KiB GSO frames poorly.  recvmmsg gives
 * the same batching with per-packet wake-ups; the ring is a later
 * optimisation for the busy-polling case.) */
#define _GNU_SOURCE
#include "netdev_provider.h"
#include "tc_tier.h"
#include "tcp_coalesce.h"

#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <arpa/inet.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

struct netdev_afpacket {
    struct vs_netdev up;
    int fd;
    int tier; /* runs the tc tier (tc_tier below is attached) */
    struct vs_tc_tier tc_tier;
    struct vs_tcp_coalesce_stats coalesce;
    uint64_t rx_socket_drops; /* PACKET_STATISTICS' tp_drops, summed by get_stats */
};

static const char *const afpacket_options[] = {"tc-offload", NULL};

static int afpacket_open(const char *ifname, uint32_t port_no, const struct vs_port_option *opts,
                         int n_opts, struct vs_netdev **out, char *err, size_t errlen)
{
    (void)port_no;
    int r = vs_netdev_check_options(opts, n_opts, afpacket_options, err, errlen);
    if (r)
        return r;
    const char *offload = vs_netdev_option(opts, n_opts, "tc-offload", "false");
    if (strcmp(offload, "true") && strcmp(offload, "false"))
        return vs_netdev_fail(err, errlen, "tc-offload (true or false)", -EINVAL);
    int tier = !strcmp(offload, "true");
    if (tier && !vs_tc_tier_available())
        return vs_netdev_fail(err, errlen, "tc-offload: built without clang/libbpf",
                              -EOPNOTSUPP);
    unsigned int ifindex = if_nametoindex(ifname);
    if (!ifindex)
        return vs_netdev_fail(err, errlen, "find device", -ENODEV);
    /* Up before binding: see the pending-error note below. */
    int up = vs_netdev_set_up(ifname);
    if (up < 0)
        return vs_netdev_fail(err, errlen, "bring the device up", up);
    struct netdev_afpacket *nd = calloc(1, sizeof *nd);
    if (!nd)
        return vs_netdev_fail(err, errlen, "allocate", -ENOMEM);
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        free(nd);
        return vs_netdev_fail(err, errlen, "packet socket", -errno);
    }
    int one = 1;
    int bufsz = 4 << 20;
    struct packet_mreq mr = {.mr_ifindex = (int)ifindex, .mr_type = PACKET_MR_PROMISC};
    struct sockaddr_ll sll = {.sll_family = AF_PACKET,
                              .sll_protocol = htons(ETH_P_ALL),
                              .sll_ifindex = (int)ifindex};
    if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) < 0 ||
        /* Our own transmissions must not come back to us as receptions. */
        setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0 ||
        bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
        int e = -errno;
        close(fd);
        free(nd);
        return vs_netdev_fail(err, errlen, "bind packet socket", e);
    }
    /* Binding to a device that is down leaves ENETDOWN pending on the socket,
     * which would fail the first send; the device is up now, so clear it. */
    int pending;
    socklen_t plen = sizeof pending;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &pending, &plen);
    /* Larger buffers absorb bursts while the poll thread is busy elsewhere;
     * failure only costs burst tolerance. */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof bufsz);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsz, sizeof bufsz);
    if (tier) {
        char step[64];
        r = vs_tc_tier_open(&nd->tc_tier, ifname, (int)ifindex, fd, step, sizeof step);
        if (r) {
            close(fd);
            free(nd);
            return vs_netdev_fail(err, errlen, step, r);
        }
        nd->tier = 1;
    }
    nd->fd = fd;
    *out = &nd->up;
    return 0;
}

static void afpacket_close(struct vs_netdev *netdev)
{
    struct netdev_afpacket *nd = (struct netdev_afpacket *)netdev;
    if (nd->tier)
        vs_tc_tier_close(&nd->tc_tier);
    close(nd->fd);
    free(nd);
}

static int afpacket_rx_fds(struct vs_netdev *netdev, int *fds, int max)
{
    if (max < 1)
        return 0;
    fds[0] = ((struct netdev_afpacket *)netdev)->fd;
    return 1;
}

/* netdev_provider.h.  (Also the vxlan type's punt socket, vxlan_kdev.h.) */
void vs_netdev_restore_vlan_tag(struct vs_packet *p, const struct msghdr *mh)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)mh); c;
         c = CMSG_NXTHDR((struct msghdr *)mh, c)) {
        if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA)
            continue;
        const struct tpacket_auxdata *aux = (const void *)CMSG_DATA(c);
        if (!(aux->tp_status & TP_STATUS_VLAN_VALID) || p->len < 12)
            return;
        uint16_t tpid = (aux->tp_status & TP_STATUS_VLAN_TPID_VALID) && aux->tp_vlan_tpid
                            ? aux->tp_vlan_tpid : ETH_P_8021Q;
        p->data -= 4;
        memmove(p->data, p->data + 4, 12);
        p->data[12] = (uint8_t)(tpid >> 8);
        p->data[13] = (uint8_t)tpid;
        p->data[14] = (uint8_t)(aux->tp_vlan_tci >> 8);
        p->data[15] = (uint8_t)aux->tp_vlan_tci;
        p->len += 4;
        /* The vnet header's offsets were computed without the tag. */
        if (p->vnet.flags & VS_VNET_F_NEEDS_CSUM)
            p->vnet.csum_start = (uint16_t)(p->vnet.csum_start + 4);
        if (p->vnet.gso_type && p->vnet.hdr_len)
            p->vnet.hdr_len = (uint16_t)(p->vnet.hdr_len + 4);
        return;
    }
}

#define AUX_SPACE CMSG_SPACE(sizeof(struct tpacket_auxdata))

/* netdev_provider.h.  (Also the vxlan type's punt socket, vxlan_kdev.h.) */
int vs_netdev_packet_recv(int fd, struct vs_packet *pkts, int n, uint8_t *prefix,
                          size_t prefix_len, uint64_t *truncated)
{
    struct mmsghdr msgs[VS_BATCH];
    struct iovec iov[VS_BATCH][3];
    union {
        char buf[AUX_SPACE];
        struct cmsghdr align;
    } ctrl[VS_BATCH];
    if (n > VS_BATCH)
        n = VS_BATCH;
    int n_iov = prefix_len ? 3 : 2;
    for (int i = 0; i < n; i++) {
        pkts[i].data = pkts[i].buf + VS_HEADROOM;
        iov[i][0] = (struct iovec){&pkts[i].vnet, sizeof pkts[i].vnet};
        if (prefix_len)
            iov[i][1] = (struct iovec){prefix + (size_t)i * prefix_len, prefix_len};
        iov[i][n_iov - 1] = (struct iovec){pkts[i].data, VS_MAX_FRAME};
        memset(&msgs[i], 0, sizeof msgs[i]);
        msgs[i].msg_hdr.msg_iov = iov[i];
        msgs[i].msg_hdr.msg_iovlen = (size_t)n_iov;
        msgs[i].msg_hdr.msg_control = ctrl[i].buf;
        msgs[i].msg_hdr.msg_controllen = sizeof ctrl[i].buf;
    }
    int got = recvmmsg(fd, msgs, (unsigned)n, MSG_DONTWAIT, NULL);
    if (got < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    int kept = 0;
    for (int i = 0; i < got; i++) {
        uint32_t len = msgs[i].msg_len;
        if ((msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ||
            len < sizeof(struct vs_vnet_hdr) + prefix_len) {
            (*truncated)++;
            continue;
        }
        pkts[i].len = len - (uint32_t)(sizeof(struct vs_vnet_hdr) + prefix_len);
        vs_netdev_restore_vlan_tag(&pkts[i], &msgs[i].msg_hdr);
        if (kept != i) { /* close the gap left by a dropped frame */
            struct vs_packet tmp = pkts[kept];
            pkts[kept] = pkts[i];
            pkts[i] = tmp;
            if (prefix_len)
                memcpy(prefix + (size_t)kept * prefix_len, prefix + (size_t)i * prefix_len,
                       prefix_len);
        }
        kept++;
    }
    return kept;
}

static int afpacket_recv(struct vs_netdev *netdev, int rxq, struct vs_packet *pkts, int n,
                         uint64_t *truncated)
{
    (void)rxq;
    return vs_netdev_packet_recv(((struct netdev_afpacket *)netdev)->fd, pkts, n, NULL, 0,
                                 truncated);
}

/* One sendmmsg() per VS_BATCH messages; a run of TCP segments of one flow
 * is one message, a TSO frame (tcp_coalesce.h): one skb for the kernel to
 * build and the receiver to take instead of one per segment. */
static int afpacket_send(struct vs_netdev *netdev, struct vs_packet *const *pkts, int n)
{
    struct netdev_afpacket *nd = (struct netdev_afpacket *)netdev;
    int fd = nd->fd;
    struct mmsghdr msgs[VS_BATCH];
    struct iovec iov[VS_BATCH][VS_TCP_RUN_IOV];
    uint8_t hdrs[VS_BATCH][VS_TCP_MAX_HLEN];
    struct vs_vnet_hdr vnets[VS_BATCH];
    int counts[VS_BATCH]; /* packets in each message */
    int idx = 0, sent = 0, coalesce = 1;
    while (idx < n) {
        int m = 0;
        for (int next = idx; m < VS_BATCH && next < n; m++) {
            struct vs_packet *p = pkts[next];
            struct vs_tcp_run run;
            memset(&msgs[m], 0, sizeof msgs[m]);
            msgs[m].msg_hdr.msg_iov = iov[m];
            if (coalesce && vs_tcp_coalesce_run(pkts, next, n, &run, iov[m])) {
                msgs[m].msg_hdr.msg_iovlen =
                    (size_t)vs_tcp_run_frame(p, &run, hdrs[m], &vnets[m], iov[m]);
                counts[m] = run.k;
            } else {
                iov[m][0] = (struct iovec){&p->vnet, sizeof p->vnet};
                iov[m][1] = (struct iovec){p->data, p->len};
                msgs[m].msg_hdr.msg_iovlen = 2;
                counts[m] = 1;
            }
            next += counts[m];
        }
        int r = sendmmsg(fd, msgs, (unsigned)m, MSG_DONTWAIT);
        if (r > 0) {
            for (int j = 0; j < r; j++) {
                if (counts[j] > 1)
                    vs_tcp_coalesce_sent(&nd->coalesce, counts[j]);
                sent += counts[j];
                idx += counts[j];
            }
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else if (r < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
            break; /* queue full: the rest are drops */
        } else if (counts[0] > 1) {
            /* A coalesced frame refused: its segments go one by one, as
             * does the rest of the batch. */
            nd->coalesce.errors++;
            coalesce = 0;
        } else {
            idx++; /* a frame the kernel refuses must not block the rest */
        }
    }
    return sent;
}

/* Transmit coalescing (Interface statistics afpacket_*). */
static int afpacket_get_stats(struct vs_netdev *netdev, struct vs_port_counter *out, int max)
{
    struct netdev_afpacket *nd = (struct netdev_afpacket *)netdev;
    struct tpacket_stats st;
    socklen_t len = sizeof st;
    if (getsockopt(nd->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0)
        nd->rx_socket_drops += st.tp_drops;
    int n = vs_netdev_counter(out, 0, max, "rx_socket_drops", nd->rx_socket_drops);
    return vs_tcp_coalesce_counters(&nd->coalesce, out, n, max);
}

static int afpacket_get_status(struct vs_netdev *netdev, struct vs_port_kv *out, int max)
{
    struct netdev_afpacket *nd = (struct netdev_afpacket *)netdev;
    int n = vs_netdev_kv(out, 0, max, "tc_offload", "%s", nd->tier ? "true" : "false");
    if (nd->tier)
        n = vs_netdev_kv(out, n, max, "tc_redirect", "%s",
                         vs_tc_tier_redirect_name(&nd->tc_tier));
    return n;
}

static int afpacket_tier_ifindex(struct vs_netdev *netdev)
{
    struct netdev_afpacket *nd = (struct netdev_afpacket *)netdev;
    return nd->tier ? nd->tc_tier.ifindex : 0;
}

static const struct vs_netdev_class afpacket_class = {
    .type = "afpacket",
    .open = afpacket_open,
    .close = afpacket_close,
    .rx_fds = afpacket_rx_fds,
    .recv = afpacket_recv,
    .send = afpacket_send,
    /* poll_error: the default, a packet socket's error (ENETDOWN when the
     * netdev goes down or away) is read and cleared. */
    .get_status = afpacket_get_status,
    .get_stats = afpacket_get_stats,
    .tier_ifindex = afpacket_tier_ifindex,
    .tier_kind = VS_TIER_TC,
};

VS_NETDEV_REGISTER(afpacket_class)
