/* vxlan_sport.c — per-flow outer UDP source ports (vxlan_sport.h). */
#define _GNU_SOURCE
#include "vxlan_sport.h"
#include "netdev_provider.h"

#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define ETH_HLEN_PLAIN 14
#define VLAN_TAG_LEN 4
#define MAX_VLAN_TAGS 2
#define ETH_P_IPV4 0x0800
#define ETH_P_IPV6 0x86dd
#define ETH_P_VLAN 0x8100
#define ETH_P_QINQ 0x88a8
#define IPV6_HLEN 40

static uint32_t mix_bytes(uint32_t h, const uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i + 4 <= n; i += 4) {
        uint32_t w;
        memcpy(&w, p + i, 4);
        h = vxlan_hash_mix(h, w);
    }
    return h;
}

uint32_t vxlan_flow_hash(const uint8_t *f, uint32_t len)
{
    uint32_t off = 12, h = VXLAN_FLOW_HASH_SEED;
    if (len < ETH_HLEN_PLAIN)
        return h;
    uint16_t type = (uint16_t)(f[off] << 8 | f[off + 1]);
    for (int t = 0; t < MAX_VLAN_TAGS && (type == ETH_P_VLAN || type == ETH_P_QINQ) &&
                    off + VLAN_TAG_LEN + 2 <= len;
         t++) {
        off += VLAN_TAG_LEN;
        type = (uint16_t)(f[off] << 8 | f[off + 1]);
    }
    uint32_t l3 = off + 2, l4 = 0;
    uint8_t proto = 0;
    if (type == ETH_P_IPV4 && len >= l3 + 20 && (f[l3] >> 4) == 4) {
        uint32_t src, dst, ports = 0;
        memcpy(&src, f + l3 + 12, 4);
        memcpy(&dst, f + l3 + 16, 4);
        /* Not a fragment (MF clear, offset 0): the ports are there. */
        if (!(f[l3 + 6] & 0x3f) && !f[l3 + 7])
            l4 = l3 + (uint32_t)(f[l3] & 15) * 4;
        int has_l4 = l4 && len >= l4 + 4;
        if (has_l4)
            memcpy(&ports, f + l4, 4);
        return vxlan_flow_hash_ipv4(src, dst, f[l3 + 9], has_l4, ports);
    } else if (type == ETH_P_IPV6 && len >= l3 + IPV6_HLEN && (f[l3] >> 4) == 6) {
        proto = f[l3 + 6];
        h = vxlan_hash_mix(mix_bytes(h, f + l3 + 8, 32), proto);
        l4 = l3 + IPV6_HLEN;
    } else {
        return vxlan_hash_finish(vxlan_hash_mix(mix_bytes(h, f, 12), type));
    }
    if (l4 && vxlan_hash_has_ports(proto) && len >= l4 + 4)
        h = mix_bytes(h, f + l4, 4);
    return vxlan_hash_finish(h);
}

/* A socket that only sends, bound to port (host order) on local_ip. */
static int open_one(uint32_t local_ip, uint16_t port, int sndbuf, int *fdp)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int pmtu = IP_PMTUDISC_DO, small = 0;
    /* "ret #0": every datagram that arrives is dropped before it queues. */
    struct sock_filter drop_all[] = {{BPF_RET | BPF_K, 0, 0, 0}};
    struct sock_fprog prog = {.len = 1, .filter = drop_all};
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port),
                              .sin_addr.s_addr = local_ip};
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0 ||
        setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu) < 0 ||
        bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    /* The kernel rounds the receive buffer up to its minimum. */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    *fdp = fd;
    return 0;
}

int vxlan_sport_open(struct vxlan_sport_pool *pool, uint32_t local_ip, int sndbuf, char *err,
                     size_t errlen)
{
    const uint32_t range = VXLAN_SPORT_END - VXLAN_SPORT_MIN;
    uint32_t start;
    /* A random start: two switches on one host (or restarts) do not fight
     * over the same ports first. */
    if (getrandom(&start, sizeof start, GRND_NONBLOCK) != sizeof start)
        start = (uint32_t)getpid();
    pool->n = 0;
    for (uint32_t i = 0; i < range && pool->n < VXLAN_SPORT_POOL; i++) {
        uint16_t port = (uint16_t)(VXLAN_SPORT_MIN + (start + i) % range);
        int r = open_one(local_ip, port, sndbuf, &pool->fds[pool->n]);
        if (r == -EADDRINUSE)
            continue;
        if (r) {
            vxlan_sport_close(pool);
            char step[64];
            snprintf(step, sizeof step, "source port socket on UDP port %u", port);
            return vs_netdev_fail(err, errlen, step, r);
        }
        pool->ports[pool->n++] = port;
    }
    if (pool->n < VXLAN_SPORT_POOL) {
        vxlan_sport_close(pool);
        return vs_netdev_fail(err, errlen, "source port sockets (range 49152-65534 in use)",
                              -EADDRINUSE);
    }
    return 0;
}

void vxlan_sport_close(struct vxlan_sport_pool *pool)
{
    for (int i = 0; i < pool->n; i++)
        close(pool->fds[i]);
    pool->n = 0;
}
