/* tc_tier.c — loads the kernel tc tier's programs (tc_tier.h) with libbpf
 * from the object embedded at build time, attaches them, and manages the
 * `tc_ports` map. */
#define _GNU_SOURCE
#include "tc_tier.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifdef VS_HAVE_TC_TIER
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "tc_tier_abi.h"
#include "tc_tier_obj.h" /* generated at build time: vs_tc_tier_obj[] */
#include "xdp_tier.h"

/* BPF_TCX_INGRESS (kernel 6.6+) postdates the system's uapi headers. */
#ifndef BPF_TCX_INGRESS
#define VS_BPF_TCX_INGRESS 46
#else
#define VS_BPF_TCX_INGRESS BPF_TCX_INGRESS
#endif
#ifndef SO_ATTACH_BPF
#define SO_ATTACH_BPF 50
#endif
#define VETH_DRIVER "veth" /* ethtool's driver name for a veth */

/* Guards ports_users, ports_fd and vx_tx_fd (a leaf lock). */
static pthread_mutex_t ports_mutex = PTHREAD_MUTEX_INITIALIZER;
static int ports_users;
static int ports_fd = -1;
static int vx_tx_fd = -1;

int vs_tc_tier_available(void)
{
    return 1;
}

/* A reference on the shared maps: the XDP tier's flows, tc_ports and
 * vx_tx. */
static int maps_get(void)
{
    int err = vs_xdp_tier_acquire();
    if (err)
        return err;
    pthread_mutex_lock(&ports_mutex);
    if (!ports_users) {
        ports_fd = bpf_map_create(BPF_MAP_TYPE_HASH, "vs_tc_ports", sizeof(uint32_t),
                                  sizeof(uint32_t), VS_XDP_TIER_MAX_PORTS, NULL);
        vx_tx_fd = bpf_map_create(BPF_MAP_TYPE_HASH, "vs_vx_tx", sizeof(uint32_t),
                                  sizeof(struct vs_tc_vxlan_tx), VS_XDP_TIER_MAX_PORTS, NULL);
        if (ports_fd < 0 || vx_tx_fd < 0) {
            err = -errno;
            if (ports_fd >= 0)
                close(ports_fd);
            if (vx_tx_fd >= 0)
                close(vx_tx_fd);
            ports_fd = vx_tx_fd = -1;
        }
    }
    if (!err)
        ports_users++;
    pthread_mutex_unlock(&ports_mutex);
    if (err)
        vs_xdp_tier_release();
    return err;
}

static void maps_put(void)
{
    pthread_mutex_lock(&ports_mutex);
    if (ports_users && !--ports_users) {
        close(ports_fd);
        close(vx_tx_fd);
        ports_fd = vx_tx_fd = -1;
    }
    pthread_mutex_unlock(&ports_mutex);
    vs_xdp_tier_release();
}

/* VS_TC_TIER_REDIRECT_PEER for a veth (bpf_redirect_peer only works into
 * a veth's or netkit's peer), else _EGRESS. */
static uint32_t redirect_mode(const char *ifname)
{
    struct ethtool_drvinfo info = {.cmd = ETHTOOL_GDRVINFO};
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    ifr.ifr_data = (void *)&info;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int veth = s >= 0 && !ioctl(s, SIOCETHTOOL, &ifr) && !strcmp(info.driver, VETH_DRIVER);
    if (s >= 0)
        close(s);
    return veth ? VS_TC_TIER_REDIRECT_PEER : VS_TC_TIER_REDIRECT_EGRESS;
}

static int reuse(struct bpf_object *obj, const char *name, int fd)
{
    struct bpf_map *map = bpf_object__find_map_by_name(obj, name);
    return map ? bpf_map__reuse_fd(map, fd) : -ENOENT;
}

int vs_tc_tier_maps_acquire(void)
{
    return maps_get();
}

void vs_tc_tier_maps_release(void)
{
    maps_put();
}

int vs_tc_tier_maps_reuse(struct bpf_object *obj)
{
    int err = reuse(obj, "flows", vs_xdp_tier_flows_fd());
    if (!err)
        err = reuse(obj, "tc_ports", ports_fd);
    if (!err)
        err = reuse(obj, "vx_tx", vx_tx_fd);
    return err;
}

int vs_tc_tier_vxlan_expose(uint32_t tier_index, const struct vs_tc_vxlan_tx *tx)
{
    uint32_t mode = VS_TC_TIER_REDIRECT_VXLAN;
    if (bpf_map_update_elem(vx_tx_fd, &tier_index, tx, BPF_ANY) ||
        bpf_map_update_elem(ports_fd, &tier_index, &mode, BPF_ANY))
        return -errno;
    return 0;
}

void vs_tc_tier_vxlan_unexpose(uint32_t tier_index)
{
    bpf_map_delete_elem(ports_fd, &tier_index); /* no more redirects to it */
    bpf_map_delete_elem(vx_tx_fd, &tier_index);
}

int vs_tc_tier_attach_ingress(int prog_fd, int ifindex)
{
    int fd = bpf_link_create(prog_fd, ifindex, VS_BPF_TCX_INGRESS, NULL);
    return fd < 0 ? -errno : fd;
}

/* A descriptor of our own for program `name` of obj (closing the object
 * closes its). */
static int prog_dup(struct bpf_object *obj, const char *name)
{
    struct bpf_program *p = bpf_object__find_program_by_name(obj, name);
    if (!p)
        return -ENOENT;
    int fd = fcntl(bpf_program__fd(p), F_DUPFD_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
}

#define FAIL(what, e)                                   \
    do {                                                \
        snprintf(step, steplen, "%s", what);            \
        err = (e);                                      \
        goto fail;                                      \
    } while (0)

int vs_tc_tier_open(struct vs_tc_tier *t, const char *ifname, int ifindex, int sock_fd,
                    char *step, size_t steplen)
{
    int err, tc_fd = -1;
    t->ifindex = ifindex;
    t->link_fd = t->sock_prog_fd = -1;
    t->maps_held = 0;
    err = maps_get();
    if (err) {
        snprintf(step, steplen, "tc tier maps");
        return err;
    }
    t->maps_held = 1;
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "vs_tc_tier");
    struct bpf_object *obj = bpf_object__open_mem(vs_tc_tier_obj, sizeof vs_tc_tier_obj, &opts);
    if (!obj)
        FAIL("open tc tier object", -errno);
    err = vs_tc_tier_maps_reuse(obj);
    if (!err)
        err = bpf_object__load(obj);
    if (!err) {
        t->sock_prog_fd = prog_dup(obj, "vs_tc_tier_sock");
        tc_fd = prog_dup(obj, "vs_tc_tier");
        err = t->sock_prog_fd < 0 ? t->sock_prog_fd : tc_fd < 0 ? tc_fd : 0;
    }
    bpf_object__close(obj);
    if (err)
        FAIL("load tc tier programs", err);
    /* The filter first: from the moment the tc program runs, the socket
     * must not copy what it forwards. */
    if (setsockopt(sock_fd, SOL_SOCKET, SO_ATTACH_BPF, &t->sock_prog_fd, sizeof t->sock_prog_fd))
        FAIL("attach tc tier socket filter", -errno);
    t->link_fd = vs_tc_tier_attach_ingress(tc_fd, ifindex);
    if (t->link_fd < 0)
        FAIL("attach tcx ingress", t->link_fd);
    close(tc_fd);
    uint32_t key = (uint32_t)ifindex, mode = redirect_mode(ifname);
    if (bpf_map_update_elem(ports_fd, &key, &mode, BPF_ANY)) {
        tc_fd = -1;
        FAIL("tc tier port map", -errno);
    }
    return 0;
fail:
    if (tc_fd >= 0)
        close(tc_fd);
    vs_tc_tier_close(t);
    return err;
}

void vs_tc_tier_close(struct vs_tc_tier *t)
{
    if (t->maps_held) {
        uint32_t key = (uint32_t)t->ifindex;
        bpf_map_delete_elem(ports_fd, &key); /* no more redirects to it */
    }
    if (t->link_fd >= 0)
        close(t->link_fd);
    if (t->sock_prog_fd >= 0)
        close(t->sock_prog_fd); /* the socket keeps its reference until it closes */
    if (t->maps_held)
        maps_put();
    t->link_fd = t->sock_prog_fd = -1;
    t->maps_held = 0;
}

const char *vs_tc_tier_redirect_name(const struct vs_tc_tier *t)
{
    uint32_t key = (uint32_t)t->ifindex, mode = 0;
    if (bpf_map_lookup_elem(ports_fd, &key, &mode))
        return "none";
    return mode == VS_TC_TIER_REDIRECT_PEER ? "peer" : "egress";
}

#else /* built without clang/libbpf: the tier is absent, and says so */

int vs_tc_tier_available(void)
{
    return 0;
}

int vs_tc_tier_open(struct vs_tc_tier *t, const char *ifname, int ifindex, int sock_fd,
                    char *step, size_t steplen)
{
    (void)ifname, (void)sock_fd;
    t->ifindex = ifindex;
    t->link_fd = t->sock_prog_fd = -1;
    t->maps_held = 0;
    snprintf(step, steplen, "tc-offload: built without clang/libbpf");
    return -EOPNOTSUPP;
}

void vs_tc_tier_close(struct vs_tc_tier *t)
{
    (void)t;
}

const char *vs_tc_tier_redirect_name(const struct vs_tc_tier *t)
{
    (void)t;
    return "none";
}

#endif
