/* netdev_tap.c — the tap port type (and the switch's internal ports, which
 * are taps too): the switch creates the tap (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR)
 * and holds its descriptor, and enables TUN_F_CSUM/TSO so the kernel hands
 * over unsegmented frames.  Reads and writes are one syscall per frame (tun
 * has no batch call).  Closing the descriptor deletes the tap. */
#define _GNU_SOURCE
#include "netdev_provider.h"
#include "tcp_coalesce.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

struct netdev_tap {
    struct vs_netdev up;
    int fd;
    struct vs_tcp_coalesce_stats coalesce;
};

static int tap_open(const char *ifname, uint32_t port_no, const struct vs_port_option *opts,
                    int n_opts, struct vs_netdev **out, char *err, size_t errlen)
{
    (void)port_no;
    int r = vs_netdev_check_options(opts, n_opts, NULL, err, errlen);
    if (r)
        return r;
    struct netdev_tap *nd = calloc(1, sizeof *nd);
    if (!nd)
        return vs_netdev_fail(err, errlen, "allocate", -ENOMEM);
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        free(nd);
        return vs_netdev_fail(err, errlen, "open /dev/net/tun", -errno);
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    unsigned int offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETOFFLOAD, offloads) < 0) {
        int e = -errno;
        close(fd);
        free(nd);
        return vs_netdev_fail(err, errlen, "create tap", e);
    }
    int up = vs_netdev_set_up(ifname); /* the tap exists only now */
    if (up < 0) {
        close(fd);
        free(nd);
        return vs_netdev_fail(err, errlen, "bring the device up", up);
    }
    nd->fd = fd;
    *out = &nd->up;
    return 0;
}

static void tap_close(struct vs_netdev *netdev)
{
    struct netdev_tap *nd = (struct netdev_tap *)netdev;
    close(nd->fd);
    free(nd);
}

static int tap_rx_fds(struct vs_netdev *netdev, int *fds, int max)
{
    if (max < 1)
        return 0;
    fds[0] = ((struct netdev_tap *)netdev)->fd;
    return 1;
}

static int tap_recv(struct vs_netdev *netdev, int rxq, struct vs_packet *pkts, int n,
                    uint64_t *truncated)
{
    (void)rxq;
    int fd = ((struct netdev_tap *)netdev)->fd;
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

/* A run of TCP segments of one flow goes in as one TSO frame
 * (tcp_coalesce.h): one write instead of one per segment, and one skb for
 * the stack behind the tap. */
static int tap_send(struct vs_netdev *netdev, struct vs_packet *const *pkts, int n)
{
    struct netdev_tap *nd = (struct netdev_tap *)netdev;
    int fd = nd->fd;
    int sent = 0, coalesce = 1;
    struct iovec run_iov[VS_TCP_RUN_IOV];
    for (int i = 0; i < n; i++) {
        struct vs_packet *p = pkts[i];
        struct vs_tcp_run run;
        if (coalesce && vs_tcp_coalesce_run(pkts, i, n, &run, run_iov)) {
            uint8_t hdr[VS_TCP_MAX_HLEN];
            struct vs_vnet_hdr vnet;
            if (writev(fd, run_iov, vs_tcp_run_frame(p, &run, hdr, &vnet, run_iov)) >= 0) {
                vs_tcp_coalesce_sent(&nd->coalesce, run.k);
                sent += run.k;
                i += run.k - 1;
                continue;
            }
            /* Refused: the rest of the batch goes one by one, as on the
             * other port types. */
            nd->coalesce.errors++;
            coalesce = 0;
        }
        struct iovec iov[2] = {{&p->vnet, sizeof p->vnet}, {p->data, p->len}};
        if (writev(fd, iov, 2) >= 0)
            sent++;
    }
    return sent;
}

/* Transmit coalescing (Interface statistics tap_*). */
static int tap_get_stats(struct vs_netdev *netdev, struct vs_port_counter *out, int max)
{
    return vs_tcp_coalesce_counters(&((const struct netdev_tap *)netdev)->coalesce, out, 0, max);
}

static const struct vs_netdev_class tap_class = {
    .type = "tap",
    .open = tap_open,
    .close = tap_close,
    .rx_fds = tap_rx_fds,
    .recv = tap_recv,
    .send = tap_send,
    /* poll_error: the default.  A tap whose device was deleted reports
     * POLLERR/POLLHUP that no read clears (it is not a socket): dead. */
    .get_stats = tap_get_stats,
};

VS_NETDEV_REGISTER(tap_class)
