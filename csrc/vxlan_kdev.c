/* vxlan_kdev.c — the kernel vxlan device, punt device, receive program and
 * punt socket of vxlan ports with tc-offload (vxlan_kdev.h). */
#define _GNU_SOURCE
#include "vxlan_kdev.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Every descriptor of k: none open (both builds). */
static void fds_reset(struct vs_vxlan_kdev *k)
{
    k->link_fd = k->map_fd = k->rx_map_fd = k->sock_fd = -1;
    k->rx_prog_fd = k->plain_prog_fd = k->plain_map_fd = -1;
    k->drops_map_fd = k->drops_link_fd = -1;
}

#ifdef VS_HAVE_VXLAN_KDEV
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "tc_tier.h"
#include "vxlan_flow_hash.h" /* the source port range */
#include "vxlan_kdev_abi.h"
#include "vxlan_kdev_obj.h" /* generated at build time: vs_vxlan_kdev_obj[] */

#ifndef PACKET_VNET_HDR
#define PACKET_VNET_HDR 15
#endif
/* The punt device's kind: an ifb (a bare Ethernet device that only
 * receives; the dummy kind is not in every kernel, this one lacks it). */
#define PUNT_KIND "ifb"
#define NL_BUF 1024
#define PUNT_SOCK_BUF (8 << 20) /* bursts of a TCP stream, as netdev_vxlan.c's */
/* The kernel's vxlan reads a device's TOS 1 as "inherit the inner's": a
 * port with outer TOS 1 stays on the external device (the key says 1). */
#define VS_VXLAN_KERNEL_TOS_INHERIT 1
#define DROPS_PROG "vs_vxlan_unknown_vni"

int vs_vxlan_kdev_available(void)
{
    return 1;
}

/* ---- rtnetlink: a request built attribute by attribute ---- */

struct nl_req {
    struct nlmsghdr *h;
    char buf[NL_BUF];
};

static struct rtattr *nl_put(struct nl_req *r, uint16_t type, const void *data, size_t len)
{
    struct rtattr *a = (struct rtattr *)((char *)r->h + NLMSG_ALIGN(r->h->nlmsg_len));
    a->rta_type = type;
    a->rta_len = (unsigned short)RTA_LENGTH(len);
    if (len)
        memcpy(RTA_DATA(a), data, len);
    r->h->nlmsg_len = NLMSG_ALIGN(r->h->nlmsg_len) + RTA_ALIGN(a->rta_len);
    return a;
}

static void nl_end(struct nl_req *r, struct rtattr *nest)
{
    nest->rta_len = (unsigned short)((char *)r->h + r->h->nlmsg_len - (char *)nest);
}

static struct ifinfomsg *nl_start(struct nl_req *r, uint16_t type, uint16_t flags)
{
    memset(r->buf, 0, sizeof r->buf);
    r->h = (struct nlmsghdr *)r->buf;
    r->h->nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
    r->h->nlmsg_type = type;
    r->h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    return NLMSG_DATA(r->h);
}

/* Sends r and waits for the kernel's answer: 0 or -errno. */
static int nl_talk(struct nl_req *r)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -errno;
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    int err = 0;
    if (sendto(fd, r->h, r->h->nlmsg_len, 0, (struct sockaddr *)&sa, sizeof sa) < 0) {
        err = -errno;
    } else {
        char ans[NL_BUF];
        ssize_t n = recv(fd, ans, sizeof ans, 0);
        const struct nlmsghdr *h = (const void *)ans;
        if (n < 0)
            err = -errno;
        else if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) || h->nlmsg_type != NLMSG_ERROR)
            err = -EPROTO;
        else
            err = ((const struct nlmsgerr *)NLMSG_DATA(h))->error;
    }
    close(fd);
    return err;
}

/* What a vxlan link is made with: external (collect_md) on dst_port, or
 * plain with one fixed tunnel (vni, remote). */
struct vxlan_link {
    uint32_t local_ip; /* network order, 0: any */
    uint16_t dst_port; /* host order */
    int plain;
    uint32_t vni;    /* plain: host order */
    uint32_t remote; /* plain: network order */
    uint8_t tos, ttl;
};

/* Creates link `name` of `kind`, up; vxlan: as *vx says. */
static int link_add(const char *name, const char *kind, const struct vxlan_link *vx)
{
    struct nl_req r;
    struct ifinfomsg *ifi = nl_start(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_flags = ifi->ifi_change = IFF_UP;
    nl_put(&r, IFLA_IFNAME, name, strlen(name) + 1);
    struct rtattr *info = nl_put(&r, IFLA_LINKINFO, NULL, 0);
    nl_put(&r, IFLA_INFO_KIND, kind, strlen(kind));
    if (vx) {
        struct rtattr *data = nl_put(&r, IFLA_INFO_DATA, NULL, 0);
        uint8_t on = 1, off = 0, df = VXLAN_DF_SET;
        uint16_t port = htons(vx->dst_port);
        if (vx->plain) {
            /* As the tc program's tunnel key would be: DF set, outer UDP
             * checksum on, the port's TOS and TTL. */
            nl_put(&r, IFLA_VXLAN_ID, &vx->vni, sizeof vx->vni);
            nl_put(&r, IFLA_VXLAN_GROUP, &vx->remote, sizeof vx->remote);
            nl_put(&r, IFLA_VXLAN_TOS, &vx->tos, sizeof vx->tos);
            nl_put(&r, IFLA_VXLAN_TTL, &vx->ttl, sizeof vx->ttl);
            nl_put(&r, IFLA_VXLAN_DF, &df, sizeof df);
            nl_put(&r, IFLA_VXLAN_UDP_CSUM, &on, sizeof on);
        } else {
            nl_put(&r, IFLA_VXLAN_COLLECT_METADATA, &on, sizeof on);
        }
        /* The source ports user space sends from (vxlan_flow_hash.h): the
         * tc tier sets the skb hash that lands on the same one. */
        struct ifla_vxlan_port_range sports = {.low = htons(VXLAN_SPORT_MIN),
                                               .high = htons(VXLAN_SPORT_END)};
        nl_put(&r, IFLA_VXLAN_LEARNING, &off, sizeof off);
        nl_put(&r, IFLA_VXLAN_PORT, &port, sizeof port);
        nl_put(&r, IFLA_VXLAN_PORT_RANGE, &sports, sizeof sports);
        if (vx->local_ip)
            nl_put(&r, IFLA_VXLAN_LOCAL, &vx->local_ip, sizeof vx->local_ip);
        nl_end(&r, data);
    }
    nl_end(&r, info);
    return nl_talk(&r);
}

static void link_del(int ifindex)
{
    struct nl_req r;
    struct ifinfomsg *ifi = nl_start(&r, RTM_DELLINK, 0);
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = ifindex;
    nl_talk(&r);
}

/* link_add(), after deleting a link of that name left behind by a daemon
 * that did not close its ports (killed): our names are ours, and a daemon
 * holding the same (local_ip, dst_port) in this namespace could not run
 * beside us anyway (the port is one receive socket).  OVS reuses its
 * vxlan_sys_PORT the same way. */
static int link_add_fresh(const char *name, const char *kind, const struct vxlan_link *vx)
{
    int err = link_add(name, kind, vx);
    if (err == -EEXIST) {
        int stale = (int)if_nametoindex(name);
        if (stale)
            link_del(stale);
        err = link_add(name, kind, vx);
    }
    return err;
}

/* The open kdevs of this process (another local_ip's may have plain
 * devices on the same dst_port); guarded by netdev_vxlan.c's socks_mutex,
 * which every caller holds. */
static struct vs_vxlan_kdev *live_kdevs;

static int ours(int ifindex)
{
    for (const struct vs_vxlan_kdev *k = live_kdevs; k; k = k->next_live)
        for (int i = 0; i < k->n_plain; i++)
            if (k->plain[i].ifindex == ifindex)
                return 1;
    return 0;
}

/* Deletes the links whose name starts with prefix and that no open kdev
 * of ours has: the per-port plain devices of our dst_port a killed daemon
 * left (they would hold the UDP port for their kind of device). */
static void links_del_prefix(const char *prefix)
{
    struct if_nameindex *all = if_nameindex();
    if (!all)
        return;
    for (struct if_nameindex *i = all; i->if_index; i++)
        if (!strncmp(i->if_name, prefix, strlen(prefix)) && !ours((int)i->if_index))
            link_del((int)i->if_index);
    if_freenameindex(all);
}

/* The address the host sends from towards remote (network order), or 0. */
static uint32_t route_source(uint32_t remote, uint16_t dst_port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(dst_port),
                              .sin_addr.s_addr = remote};
    socklen_t len = sizeof sin;
    uint32_t src = 0;
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
        getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
        src = sin.sin_addr.s_addr;
    close(fd);
    return src;
}

/* ---- the program and the socket ---- */

static int load_program(struct vs_vxlan_kdev *k)
{
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "vs_vxlan_kdev");
    struct bpf_object *obj =
        bpf_object__open_mem(vs_vxlan_kdev_obj, sizeof vs_vxlan_kdev_obj, &opts);
    if (!obj)
        return -errno;
    int err = vs_tc_tier_maps_reuse(obj);
    struct bpf_program *drops = bpf_object__find_program_by_name(obj, DROPS_PROG);
    if (drops)
        bpf_program__set_autoload(drops, false); /* drops_open's */
    if (!err)
        err = bpf_object__load(obj);
    if (!err) {
        struct bpf_program *p = bpf_object__find_program_by_name(obj, "vs_vxlan_kdev_rx");
        struct bpf_program *pp = bpf_object__find_program_by_name(obj, "vs_vxlan_plain_rx");
        struct bpf_map *m = bpf_object__find_map_by_name(obj, "vx_punt");
        struct bpf_map *rx = bpf_object__find_map_by_name(obj, "vx_rx");
        struct bpf_map *pm = bpf_object__find_map_by_name(obj, "vx_plain");
        if (!p || !pp || !m || !rx || !pm) {
            err = -ENOENT;
        } else {
            k->rx_prog_fd = fcntl(bpf_program__fd(p), F_DUPFD_CLOEXEC, 0);
            k->plain_prog_fd = fcntl(bpf_program__fd(pp), F_DUPFD_CLOEXEC, 0);
            k->map_fd = fcntl(bpf_map__fd(m), F_DUPFD_CLOEXEC, 0);
            k->rx_map_fd = fcntl(bpf_map__fd(rx), F_DUPFD_CLOEXEC, 0);
            k->plain_map_fd = fcntl(bpf_map__fd(pm), F_DUPFD_CLOEXEC, 0);
            if (k->rx_prog_fd < 0 || k->plain_prog_fd < 0 || k->map_fd < 0 ||
                k->rx_map_fd < 0 || k->plain_map_fd < 0)
                err = -errno;
        }
    }
    bpf_object__close(obj);
    return err;
}

/* The unknown-VNI drop counter (vs_vxlan_unknown_vni) for this namespace
 * and dst_port: its own load of the object, that program only.  A kernel
 * without the drop reason or BTF: not counted (drops_link_fd stays -1). */
static void drops_open(struct vs_vxlan_kdev *k)
{
    struct stat st;
    if (k->drops_link_fd >= 0 || stat("/proc/self/ns/net", &st))
        return;
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "vs_vxlan_drops");
    struct bpf_object *obj =
        bpf_object__open_mem(vs_vxlan_kdev_obj, sizeof vs_vxlan_kdev_obj, &opts);
    if (!obj)
        return;
    struct bpf_program *p;
    bpf_object__for_each_program(p, obj)
        bpf_program__set_autoload(p, !strcmp(bpf_program__name(p), DROPS_PROG));
    struct bpf_map *m = bpf_object__find_map_by_name(obj, "vx_drops");
    p = bpf_object__find_program_by_name(obj, DROPS_PROG);
    if (m && p && !vs_tc_tier_maps_reuse(obj) && !bpf_object__load(obj)) {
        uint32_t zero = 0;
        struct vs_vxlan_drop_count c = {.netns_inum = (uint32_t)st.st_ino,
                                        .dst_port = k->dst_port};
        k->drops_map_fd = fcntl(bpf_map__fd(m), F_DUPFD_CLOEXEC, 0);
        if (k->drops_map_fd >= 0 && !bpf_map_update_elem(k->drops_map_fd, &zero, &c, BPF_ANY))
            k->drops_link_fd = bpf_raw_tracepoint_open(NULL, bpf_program__fd(p));
    }
    bpf_object__close(obj);
}

uint64_t vs_vxlan_kdev_unknown_vni(const struct vs_vxlan_kdev *k)
{
    uint32_t zero = 0;
    struct vs_vxlan_drop_count c = {0};
    if (k->drops_map_fd < 0 || bpf_map_lookup_elem(k->drops_map_fd, &zero, &c))
        return 0;
    return c.count;
}

static int punt_socket(int ifindex)
{
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    htons(VS_VXLAN_PUNT_ETHERTYPE));
    if (fd < 0)
        return -errno;
    int one = 1, bufsz = PUNT_SOCK_BUF;
    struct sockaddr_ll sll = {.sll_family = AF_PACKET,
                              .sll_protocol = htons(VS_VXLAN_PUNT_ETHERTYPE),
                              .sll_ifindex = ifindex};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof bufsz) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
    if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

#define FAIL(what, e)                        \
    do {                                     \
        snprintf(step, steplen, "%s", what); \
        err = (e);                           \
        goto fail;                           \
    } while (0)

/* The plain devices' names on dst_port: PLAIN_PREFIX PORT _ VNI (hex). */
#define PLAIN_PREFIX "vxq"

int vs_vxlan_kdev_open(struct vs_vxlan_kdev *k, uint32_t local_ip, uint16_t dst_port,
                       char *step, size_t steplen)
{
    int err;
    memset(k, 0, sizeof *k);
    fds_reset(k);
    k->local_ip = local_ip;
    k->dst_port = dst_port;
    err = vs_tc_tier_maps_acquire();
    if (err) {
        snprintf(step, steplen, "tc tier maps");
        return err;
    }
    k->maps_held = 1;
    if (local_ip) {
        snprintf(k->vx_name, sizeof k->vx_name, "vx%08x%u", ntohl(local_ip), dst_port);
        snprintf(k->punt_name, sizeof k->punt_name, "vp%08x%u", ntohl(local_ip), dst_port);
    } else {
        snprintf(k->vx_name, sizeof k->vx_name, "vs_vxlan_%u", dst_port);
        snprintf(k->punt_name, sizeof k->punt_name, "vs_punt_%u", dst_port);
    }
    /* A killed daemon's devices on this port, of either kind, would hold
     * the UDP port: whichever kind the ports need now is made fresh. */
    int stale = (int)if_nametoindex(k->vx_name);
    if (stale)
        link_del(stale);
    char prefix[16];
    snprintf(prefix, sizeof prefix, PLAIN_PREFIX "%u_", dst_port);
    links_del_prefix(prefix);
    char what[64];
    snprintf(what, sizeof what, "create punt device %s", k->punt_name);
    err = link_add_fresh(k->punt_name, PUNT_KIND, NULL);
    if (err)
        FAIL(what, err);
    k->punt_ifindex = (int)if_nametoindex(k->punt_name);
    if (!k->punt_ifindex)
        FAIL("find the punt device", -ENODEV);
    k->sock_fd = punt_socket(k->punt_ifindex);
    if (k->sock_fd < 0)
        FAIL("punt socket", k->sock_fd);
    err = load_program(k);
    if (err)
        FAIL("load vxlan receive program", err);
    uint32_t zero = 0, punt = (uint32_t)k->punt_ifindex;
    if (bpf_map_update_elem(k->map_fd, &zero, &punt, BPF_ANY))
        FAIL("vxlan receive program's punt map", -errno);
    k->next_live = live_kdevs;
    live_kdevs = k;
    k->is_live = 1;
    return 0;
fail:
    vs_vxlan_kdev_close(k);
    return err;
}

/* The shared external device and its program, made when the first port
 * needs it.  0 or -errno. */
static int external_open(struct vs_vxlan_kdev *k)
{
    if (k->vx_ifindex)
        return 0;
    struct vxlan_link vx = {.local_ip = k->local_ip, .dst_port = k->dst_port};
    int err = link_add_fresh(k->vx_name, "vxlan", &vx);
    if (err)
        return err;
    k->vx_ifindex = (int)if_nametoindex(k->vx_name);
    if (!k->vx_ifindex)
        return -ENODEV;
    k->link_fd = vs_tc_tier_attach_ingress(k->rx_prog_fd, k->vx_ifindex);
    if (k->link_fd < 0) {
        err = k->link_fd;
        link_del(k->vx_ifindex);
        k->vx_ifindex = 0;
        return err;
    }
    return 0;
}

static int plain_find(const struct vs_vxlan_kdev *k, uint32_t tier_index)
{
    for (int i = 0; i < k->n_plain; i++)
        if (k->plain[i].tier_index == tier_index)
            return i;
    return -1;
}

/* Removes plain port i's device (tx and the config first: no redirect
 * into a device being deleted). */
static void plain_remove(struct vs_vxlan_kdev *k, int i)
{
    struct vs_vxlan_kdev_plain *p = &k->plain[i];
    uint32_t ifindex = (uint32_t)p->ifindex;
    vs_tc_tier_vxlan_unexpose(p->tier_index);
    if (p->link_fd >= 0)
        close(p->link_fd);
    bpf_map_delete_elem(k->plain_map_fd, &ifindex);
    link_del(p->ifindex);
    k->plain[i] = k->plain[--k->n_plain];
}

#define TABLE_FIRST_CAP 4

/* Grows table *arr (n used of *cap, elements of size bytes) so one more
 * fits.  0 or -ENOMEM (the table unchanged). */
static int room_for_one(void **arr, int *cap, int n, size_t size)
{
    if (n < *cap)
        return 0;
    int grown = *cap ? 2 * *cap : TABLE_FIRST_CAP;
    void *p = realloc(*arr, (size_t)grown * size);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = grown;
    return 0;
}

/* A plain device for member m.  0, or -errno (nothing left made). */
static int plain_add(struct vs_vxlan_kdev *k, const struct vs_vxlan_kdev_member *m)
{
    if (room_for_one((void **)&k->plain, &k->cap_plain, k->n_plain, sizeof *k->plain))
        return -ENOMEM;
    drops_open(k); /* the kernel drops unknown VNIs for plain devices */
    struct vs_vxlan_kdev_plain *p = &k->plain[k->n_plain];
    memset(p, 0, sizeof *p);
    p->link_fd = -1;
    p->tier_index = m->tier_index;
    snprintf(p->name, sizeof p->name, PLAIN_PREFIX "%u_%x", k->dst_port, m->vni);
    struct vxlan_link vx = {.local_ip = k->local_ip, .dst_port = k->dst_port, .plain = 1,
                            .vni = m->vni, .remote = m->remote, .tos = m->tx.tos,
                            .ttl = m->tx.ttl};
    int err = link_add_fresh(p->name, "vxlan", &vx);
    if (err)
        return err;
    p->ifindex = (int)if_nametoindex(p->name);
    uint32_t ifindex = (uint32_t)p->ifindex;
    struct vs_vxlan_plain_cfg cfg = {
        .tier_index = m->tier_index, .vni = m->vni, .remote = m->remote,
        .local = k->local_ip ? k->local_ip : route_source(m->remote, k->dst_port)};
    struct vs_tc_vxlan_tx tx = m->tx;
    tx.vx_ifindex = ifindex;
    tx.kind = VS_TC_VXLAN_TX_PLAIN;
    if (!p->ifindex)
        err = -ENODEV;
    else if (bpf_map_update_elem(k->plain_map_fd, &ifindex, &cfg, BPF_ANY))
        err = -errno;
    else if ((p->link_fd = vs_tc_tier_attach_ingress(k->plain_prog_fd, p->ifindex)) < 0)
        err = p->link_fd;
    else
        err = vs_tc_tier_vxlan_expose(m->tier_index, &tx);
    k->n_plain++;
    if (err)
        plain_remove(k, k->n_plain - 1);
    return err;
}

/* Member m on the external device. */
static int external_add(struct vs_vxlan_kdev *k, const struct vs_vxlan_kdev_member *m)
{
    struct vs_vxlan_rx_key key = {.vni = m->vni, .remote = m->remote};
    if (bpf_map_update_elem(k->rx_map_fd, &key, &m->tier_index, BPF_ANY))
        return -errno;
    struct vs_tc_vxlan_tx tx = m->tx;
    tx.vx_ifindex = (uint32_t)k->vx_ifindex;
    tx.kind = VS_TC_VXLAN_TX_KEY;
    int err = m->has_tx ? vs_tc_tier_vxlan_expose(m->tier_index, &tx) : 0;
    if (err)
        bpf_map_delete_elem(k->rx_map_fd, &key);
    return err;
}

/* Moves every port to the external device (the kernel shares a UDP port
 * only among devices of one kind: the plain devices go first, and their
 * ports' tier traffic goes to user space meanwhile).  When the external
 * device cannot be made, the plain devices are made again. */
static int external_take_all(struct vs_vxlan_kdev *k)
{
    if (k->vx_ifindex)
        return 0;
    while (k->n_plain)
        plain_remove(k, k->n_plain - 1);
    int err = external_open(k);
    for (int i = 0; i < k->n_members; i++) {
        int e = err ? plain_add(k, &k->members[i]) : external_add(k, &k->members[i]);
        if (e && !err)
            err = e;
    }
    return err;
}

void vs_vxlan_kdev_close(struct vs_vxlan_kdev *k)
{
    for (struct vs_vxlan_kdev **p = &live_kdevs; k->is_live && *p; p = &(*p)->next_live)
        if (*p == k) {
            *p = k->next_live;
            break;
        }
    k->is_live = 0;
    while (k->n_plain)
        plain_remove(k, k->n_plain - 1);
    int fds[] = {k->link_fd, k->map_fd, k->rx_map_fd, k->sock_fd, k->rx_prog_fd,
                 k->plain_prog_fd, k->plain_map_fd, k->drops_map_fd, k->drops_link_fd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (k->vx_ifindex)
        link_del(k->vx_ifindex);
    if (k->punt_ifindex)
        link_del(k->punt_ifindex);
    if (k->maps_held)
        vs_tc_tier_maps_release();
    free(k->plain);
    free(k->members);
    k->plain = NULL;
    k->members = NULL;
    k->n_plain = k->cap_plain = k->n_members = k->cap_members = 0;
    fds_reset(k);
    k->vx_ifindex = k->punt_ifindex = k->maps_held = 0;
}

/* Whether member m can have a plain device of its own now. */
static int plain_possible(const struct vs_vxlan_kdev *k, const struct vs_vxlan_kdev_member *m)
{
    if (k->vx_ifindex || !m->has_tx || m->vni == VS_VXLAN_RX_ANY || !m->remote ||
        m->tx.tos == VS_VXLAN_KERNEL_TOS_INHERIT)
        return 0;
    for (int i = 0; i < k->n_members; i++)
        if (k->members[i].vni == m->vni) /* the kernel: one plain device per VNI and port */
            return 0;
    return 1;
}

int vs_vxlan_kdev_port_add(struct vs_vxlan_kdev *k, uint32_t vni, uint32_t remote,
                           uint32_t tier_index, const struct vs_tc_vxlan_tx *tx, int per_port)
{
    struct vs_vxlan_kdev_member m = {.vni = vni, .remote = remote, .tier_index = tier_index,
                                     .has_tx = tx != NULL};
    if (tx)
        m.tx = *tx;
    if (room_for_one((void **)&k->members, &k->cap_members, k->n_members, sizeof *k->members))
        return -ENOMEM;
    int err;
    if (per_port && plain_possible(k, &m)) {
        err = plain_add(k, &m);
    } else {
        err = external_take_all(k);
        if (!err)
            err = external_add(k, &m);
    }
    if (!err)
        k->members[k->n_members++] = m;
    return err;
}

void vs_vxlan_kdev_port_del(struct vs_vxlan_kdev *k, uint32_t vni, uint32_t remote,
                            uint32_t tier_index)
{
    for (int i = 0; i < k->n_members; i++)
        if (k->members[i].tier_index == tier_index) {
            k->members[i] = k->members[--k->n_members];
            break;
        }
    int j = plain_find(k, tier_index);
    if (j >= 0) {
        plain_remove(k, j);
        return;
    }
    struct vs_vxlan_rx_key key = {.vni = vni, .remote = remote};
    vs_tc_tier_vxlan_unexpose(tier_index);
    bpf_map_delete_elem(k->rx_map_fd, &key);
}

const char *vs_vxlan_kdev_port_device(const struct vs_vxlan_kdev *k, uint32_t tier_index)
{
    int j = plain_find(k, tier_index);
    return j >= 0 ? k->plain[j].name : k->vx_name;
}

#else /* built without clang/libbpf */

int vs_vxlan_kdev_available(void)
{
    return 0;
}

int vs_vxlan_kdev_open(struct vs_vxlan_kdev *k, uint32_t local_ip, uint16_t dst_port,
                       char *step, size_t steplen)
{
    (void)local_ip, (void)dst_port;
    memset(k, 0, sizeof *k);
    fds_reset(k);
    snprintf(step, steplen, "tc-offload: built without clang/libbpf");
    return -EOPNOTSUPP;
}

void vs_vxlan_kdev_close(struct vs_vxlan_kdev *k)
{
    (void)k;
}

int vs_vxlan_kdev_port_add(struct vs_vxlan_kdev *k, uint32_t vni, uint32_t remote,
                           uint32_t tier_index, const struct vs_tc_vxlan_tx *tx, int per_port)
{
    (void)k, (void)vni, (void)remote, (void)tier_index, (void)tx, (void)per_port;
    return -EOPNOTSUPP;
}

void vs_vxlan_kdev_port_del(struct vs_vxlan_kdev *k, uint32_t vni, uint32_t remote,
                            uint32_t tier_index)
{
    (void)k, (void)vni, (void)remote, (void)tier_index;
}

#endif

#ifndef VS_HAVE_VXLAN_KDEV
uint64_t vs_vxlan_kdev_unknown_vni(const struct vs_vxlan_kdev *k)
{
    (void)k;
    return 0;
}

const char *vs_vxlan_kdev_port_device(const struct vs_vxlan_kdev *k, uint32_t tier_index)
{
    (void)tier_index;
    return k->vx_name;
}
#endif
