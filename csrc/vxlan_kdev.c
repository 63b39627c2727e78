/* vxlan_kdev.c — the kernel vxlan device, punt device, receive program and
 * punt socket of vxlan ports with tc-offload (vxlan_kdev.h). */
#define _GNU_SOURCE
#include "vxlan_kdev.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifdef VS_HAVE_VXLAN_KDEV
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "tc_tier.h"
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

/* Creates link `name` of `kind`, up; vxlan: external mode on dst_port. */
static int link_add(const char *name, const char *kind, uint32_t local_ip, uint16_t dst_port)
{
    struct nl_req r;
    struct ifinfomsg *ifi = nl_start(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_flags = ifi->ifi_change = IFF_UP;
    nl_put(&r, IFLA_IFNAME, name, strlen(name) + 1);
    struct rtattr *info = nl_put(&r, IFLA_LINKINFO, NULL, 0);
    nl_put(&r, IFLA_INFO_KIND, kind, strlen(kind));
    if (!strcmp(kind, "vxlan")) {
        struct rtattr *data = nl_put(&r, IFLA_INFO_DATA, NULL, 0);
        uint8_t on = 1, off = 0;
        uint16_t port = htons(dst_port);
        nl_put(&r, IFLA_VXLAN_COLLECT_METADATA, &on, sizeof on);
        nl_put(&r, IFLA_VXLAN_LEARNING, &off, sizeof off);
        nl_put(&r, IFLA_VXLAN_PORT, &port, sizeof port);
        if (local_ip)
            nl_put(&r, IFLA_VXLAN_LOCAL, &local_ip, sizeof local_ip);
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
static int link_add_fresh(const char *name, const char *kind, uint32_t local_ip,
                          uint16_t dst_port)
{
    int err = link_add(name, kind, local_ip, dst_port);
    if (err == -EEXIST) {
        int stale = (int)if_nametoindex(name);
        if (stale)
            link_del(stale);
        err = link_add(name, kind, local_ip, dst_port);
    }
    return err;
}

/* ---- the program and the socket ---- */

static int load_program(struct vs_vxlan_kdev *k, int *prog_fd)
{
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "vs_vxlan_kdev");
    struct bpf_object *obj =
        bpf_object__open_mem(vs_vxlan_kdev_obj, sizeof vs_vxlan_kdev_obj, &opts);
    if (!obj)
        return -errno;
    int err = vs_tc_tier_maps_reuse(obj);
    if (!err)
        err = bpf_object__load(obj);
    if (!err) {
        struct bpf_program *p = bpf_object__find_program_by_name(obj, "vs_vxlan_kdev_rx");
        struct bpf_map *m = bpf_object__find_map_by_name(obj, "vx_punt");
        struct bpf_map *rx = bpf_object__find_map_by_name(obj, "vx_rx");
        if (!p || !m || !rx) {
            err = -ENOENT;
        } else {
            *prog_fd = fcntl(bpf_program__fd(p), F_DUPFD_CLOEXEC, 0);
            k->map_fd = fcntl(bpf_map__fd(m), F_DUPFD_CLOEXEC, 0);
            k->rx_map_fd = fcntl(bpf_map__fd(rx), F_DUPFD_CLOEXEC, 0);
            if (*prog_fd < 0 || k->map_fd < 0 || k->rx_map_fd < 0)
                err = -errno;
        }
    }
    bpf_object__close(obj);
    return err;
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

int vs_vxlan_kdev_open(struct vs_vxlan_kdev *k, uint32_t local_ip, uint16_t dst_port,
                       char *step, size_t steplen)
{
    int err, prog_fd = -1;
    memset(k, 0, sizeof *k);
    k->link_fd = k->map_fd = k->rx_map_fd = k->sock_fd = -1;
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
    char what[64];
    snprintf(what, sizeof what, "create kernel vxlan device %s", k->vx_name);
    err = link_add_fresh(k->vx_name, "vxlan", local_ip, dst_port);
    if (err)
        FAIL(what, err);
    k->vx_ifindex = (int)if_nametoindex(k->vx_name);
    snprintf(what, sizeof what, "create punt device %s", k->punt_name);
    err = link_add_fresh(k->punt_name, PUNT_KIND, 0, 0);
    if (err)
        FAIL(what, err);
    k->punt_ifindex = (int)if_nametoindex(k->punt_name);
    if (!k->vx_ifindex || !k->punt_ifindex)
        FAIL("find the kernel vxlan devices", -ENODEV);
    k->sock_fd = punt_socket(k->punt_ifindex);
    if (k->sock_fd < 0)
        FAIL("punt socket", k->sock_fd);
    err = load_program(k, &prog_fd);
    if (err)
        FAIL("load vxlan receive program", err);
    uint32_t zero = 0, punt = (uint32_t)k->punt_ifindex;
    if (bpf_map_update_elem(k->map_fd, &zero, &punt, BPF_ANY))
        FAIL("vxlan receive program's punt map", -errno);
    k->link_fd = vs_tc_tier_attach_ingress(prog_fd, k->vx_ifindex);
    if (k->link_fd < 0)
        FAIL("attach tcx ingress to the kernel vxlan device", k->link_fd);
    close(prog_fd);
    return 0;
fail:
    if (prog_fd >= 0)
        close(prog_fd);
    vs_vxlan_kdev_close(k);
    return err;
}

void vs_vxlan_kdev_close(struct vs_vxlan_kdev *k)
{
    if (k->link_fd >= 0)
        close(k->link_fd);
    if (k->map_fd >= 0)
        close(k->map_fd);
    if (k->rx_map_fd >= 0)
        close(k->rx_map_fd);
    if (k->sock_fd >= 0)
        close(k->sock_fd);
    if (k->vx_ifindex)
        link_del(k->vx_ifindex);
    if (k->punt_ifindex)
        link_del(k->punt_ifindex);
    if (k->maps_held)
        vs_tc_tier_maps_release();
    k->link_fd = k->map_fd = k->rx_map_fd = k->sock_fd = -1;
    k->vx_ifindex = k->punt_ifindex = k->maps_held = 0;
}

int vs_vxlan_kdev_port_add(struct vs_vxlan_kdev *k, uint32_t vni, uint32_t remote,
                           uint32_t tier_index, const struct vs_tc_vxlan_tx *tx)
{
    struct vs_vxlan_rx_key key = {.vni = vni, .remote = remote};
    if (bpf_map_update_elem(k->rx_map_fd, &key, &tier_index, BPF_ANY))
        return -errno;
    int err = tx ? vs_tc_tier_vxlan_expose(tier_index, tx) : 0;
    if (err)
        bpf_map_delete_elem(k->rx_map_fd, &key);
    return err;
}

void vs_vxlan_kdev_port_del(struct vs_vxlan_kdev *k, uint32_t vni, uint32_t remote,
                            uint32_t tier_index)
{
    struct vs_vxlan_rx_key key = {.vni = vni, .remote = remote};
    vs_tc_tier_vxlan_unexpose(tier_index);
    bpf_map_delete_elem(k->rx_map_fd, &key);
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
    k->link_fd = k->map_fd = k->rx_map_fd = k->sock_fd = -1;
    snprintf(step, steplen, "tc-offload: built without clang/libbpf");
    return -EOPNOTSUPP;
}

void vs_vxlan_kdev_close(struct vs_vxlan_kdev *k)
{
    (void)k;
}

int vs_vxlan_kdev_port_add(struct vs_vxlan_kdev *k, uint32_t vni, uint32_t remote,
                           uint32_t tier_index, const struct vs_tc_vxlan_tx *tx)
{
    (void)k, (void)vni, (void)remote, (void)tier_index, (void)tx;
    return -EOPNOTSUPP;
}

void vs_vxlan_kdev_port_del(struct vs_vxlan_kdev *k, uint32_t vni, uint32_t remote,
                            uint32_t tier_index)
{
    (void)k, (void)vni, (void)remote, (void)tier_index;
}

#endif
