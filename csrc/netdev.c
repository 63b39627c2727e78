/* netdev.c — afpacket (recvmmsg/sendmmsg + PACKET_VNET_HDR) and tap I/O. */
#define _GNU_SOURCE
#include "netdev.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <arpa/inet.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

int vs_netdev_set_up(const char *ifname)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    int err = 0;
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
        err = -errno;
    } else if (!(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
            err = -errno;
    }
    close(s);
    return err;
}

int vs_netdev_open_afpacket(const char *ifname)
{
    unsigned int ifindex = if_nametoindex(ifname);
    if (!ifindex)
        return -ENODEV;
    /* Up before binding: see the pending-error note below. */
    int up = vs_netdev_set_up(ifname);
    if (up < 0)
        return up;
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
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
        int err = -errno;
        close(fd);
        return err;
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
    return fd;
}

int vs_netdev_open_tap(const char *ifname)
{
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    unsigned int offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETOFFLOAD, offloads) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    int up = vs_netdev_set_up(ifname); /* the tap exists only now */
    if (up < 0) {
        close(fd);
        return up;
    }
    return fd;
}

/* The kernel strips a received frame's 802.1Q tag into skb metadata before a
 * packet socket sees it; PACKET_AUXDATA hands it back and we re-insert it, so
 * the rest of the fast path sees the frame as it was on the wire. */
static void restore_vlan_tag(struct vs_packet *p, const struct msghdr *mh)
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

static int recv_afpacket(int fd, struct vs_packet *pkts, int n, uint64_t *truncated)
{
    struct mmsghdr msgs[VS_BATCH];
    struct iovec iov[VS_BATCH][2];
    union {
        char buf[AUX_SPACE];
        struct cmsghdr align;
    } ctrl[VS_BATCH];
    if (n > VS_BATCH)
        n = VS_BATCH;
    for (int i = 0; i < n; i++) {
        pkts[i].data = pkts[i].buf + VS_HEADROOM;
        iov[i][0].iov_base = &pkts[i].vnet;
        iov[i][0].iov_len = sizeof pkts[i].vnet;
        iov[i][1].iov_base = pkts[i].data;
        iov[i][1].iov_len = VS_MAX_FRAME;
        memset(&msgs[i], 0, sizeof msgs[i]);
        msgs[i].msg_hdr.msg_iov = iov[i];
        msgs[i].msg_hdr.msg_iovlen = 2;
        msgs[i].msg_hdr.msg_control = ctrl[i].buf;
        msgs[i].msg_hdr.msg_controllen = sizeof ctrl[i].buf;
    }
    int got = recvmmsg(fd, msgs, (unsigned)n, MSG_DONTWAIT, NULL);
    if (got < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    int kept = 0;
    for (int i = 0; i < got; i++) {
        uint32_t len = msgs[i].msg_len;
        if ((msgs[i].msg_hdr.msg_flags & MSG_TRUNC) || len < sizeof(struct vs_vnet_hdr)) {
            (*truncated)++;
            continue;
        }
        pkts[i].len = len - (uint32_t)sizeof(struct vs_vnet_hdr);
        restore_vlan_tag(&pkts[i], &msgs[i].msg_hdr);
        if (kept != i) { /* close the gap left by a dropped frame */
            struct vs_packet tmp = pkts[kept];
            pkts[kept] = pkts[i];
            pkts[i] = tmp;
        }
        kept++;
    }
    return kept;
}

static int recv_tap(int fd, struct vs_packet *pkts, int n, uint64_t *truncated)
{
    int kept = 0;
    for (int i = 0; i < n; i++) {
        struct vs_packet *p = &pkts[kept];
        p->data = p->buf + VS_HEADROOM;
        struct iovec iov[2] = {{&p->vnet, sizeof p->vnet}, {p->data, VS_MAX_FRAME}};
        ssize_t r = readv(fd, iov, 2);
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            return kept ? kept : -errno;
        }
        if (r < (ssize_t)sizeof p->vnet) {
            (*truncated)++;
            continue;
        }
        p->len = (uint32_t)(r - (ssize_t)sizeof p->vnet);
        kept++;
    }
    return kept;
}

int vs_netdev_recv(int type, int fd, struct vs_packet *pkts, int n, uint64_t *truncated)
{
    return type == VS_PORT_AFPACKET ? recv_afpacket(fd, pkts, n, truncated)
                                    : recv_tap(fd, pkts, n, truncated);
}

static int send_afpacket(int fd, struct vs_packet *const *pkts, int n)
{
    struct mmsghdr msgs[VS_BATCH];
    struct iovec iov[VS_BATCH][2];
    int idx = 0, sent = 0;
    while (idx < n) {
        int m = n - idx > VS_BATCH ? VS_BATCH : n - idx;
        for (int i = 0; i < m; i++) {
            struct vs_packet *p = pkts[idx + i];
            iov[i][0].iov_base = &p->vnet;
            iov[i][0].iov_len = sizeof p->vnet;
            iov[i][1].iov_base = p->data;
            iov[i][1].iov_len = p->len;
            memset(&msgs[i], 0, sizeof msgs[i]);
            msgs[i].msg_hdr.msg_iov = iov[i];
            msgs[i].msg_hdr.msg_iovlen = 2;
        }
        int r = sendmmsg(fd, msgs, (unsigned)m, MSG_DONTWAIT);
        if (r > 0) {
            sent += r;
            idx += r;
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else if (r < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
            break; /* queue full: the rest are drops */
        } else {
            idx++; /* a frame the kernel refuses must not block the rest */
        }
    }
    return sent;
}

static int send_tap(int fd, struct vs_packet *const *pkts, int n)
{
    int sent = 0;
    for (int i = 0; i < n; i++) {
        struct vs_packet *p = pkts[i];
        struct iovec iov[2] = {{&p->vnet, sizeof p->vnet}, {p->data, p->len}};
        if (writev(fd, iov, 2) >= 0)
            sent++;
    }
    return sent;
}

int vs_netdev_send(int type, int fd, struct vs_packet *const *pkts, int n)
{
    return type == VS_PORT_AFPACKET ? send_afpacket(fd, pkts, n) : send_tap(fd, pkts, n);
}
