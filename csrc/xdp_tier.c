/* xdp_tier.c — loads the kernel XDP tier's program (xdp_tier.h) with
 * libbpf from the object embedded at build time, and manages its maps. */
#define _GNU_SOURCE
#include "xdp_tier.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef VS_HAVE_XDP_TIER
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "xdp_tier_obj.h" /* generated at build time: vs_xdp_tier_obj[] */

#define ETH_TYPE_IPV4 0x0800 /* the only frames the program parses */

/* Guards shared_users and the two shared map fds (a leaf lock).  The fds are
 * only read by the flow calls while a tier port holds a reference, which is
 * the datapath's to ensure (it only offloads between open tier ports). */
static pthread_mutex_t shared_mutex = PTHREAD_MUTEX_INITIALIZER;
static int shared_users;
static int flows_fd = -1;
static int tx_ports_fd = -1;

int vs_xdp_tier_available(void)
{
    return 1;
}

static void shared_maps_close(void)
{
    if (flows_fd >= 0)
        close(flows_fd);
    if (tx_ports_fd >= 0)
        close(tx_ports_fd);
    flows_fd = tx_ports_fd = -1;
}

/* Under shared_mutex. */
static int shared_maps_get(void)
{
    if (shared_users) {
        shared_users++;
        return 0;
    }
    /* Not preallocated: a per-CPU entry takes a value per possible CPU, so
     * a full preallocation would grow with the CPU count (65536 entries ×
     * 40 bytes × 256 CPUs is 640 MiB); live entries are few. */
    LIBBPF_OPTS(bpf_map_create_opts, flows_opts, .map_flags = BPF_F_NO_PREALLOC);
    flows_fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_HASH, "vs_tier_flows",
                              sizeof(struct vs_xdp_flow_key), sizeof(struct vs_xdp_flow_val),
                              VS_XDP_TIER_MAX_FLOWS, &flows_opts);
    int err = flows_fd < 0 ? -errno : 0;
    if (!err) {
        tx_ports_fd = bpf_map_create(BPF_MAP_TYPE_DEVMAP_HASH, "vs_tier_tx", sizeof(uint32_t),
                                     sizeof(uint32_t), VS_XDP_TIER_MAX_PORTS, NULL);
        err = tx_ports_fd < 0 ? -errno : 0;
    }
    if (err)
        shared_maps_close();
    else
        shared_users = 1;
    return err;
}

void vs_xdp_tier_release(void)
{
    pthread_mutex_lock(&shared_mutex);
    if (shared_users && !--shared_users)
        shared_maps_close();
    pthread_mutex_unlock(&shared_mutex);
}

static int reuse(struct bpf_object *obj, const char *name, int fd)
{
    struct bpf_map *map = bpf_object__find_map_by_name(obj, name);
    return map ? bpf_map__reuse_fd(map, fd) : -ENOENT;
}

int vs_xdp_tier_acquire(void)
{
    pthread_mutex_lock(&shared_mutex);
    int err = shared_maps_get();
    pthread_mutex_unlock(&shared_mutex);
    return err;
}

int vs_xdp_tier_flows_fd(void)
{
    return flows_fd;
}

int vs_xdp_tier_load(struct vs_xdp_prog *prog, uint32_t n_queues)
{
    prog->map_fd = prog->prog_fd = prog->link_fd = -1;
    int err = vs_xdp_tier_acquire();
    if (err)
        return err;
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "vs_xdp_tier");
    struct bpf_object *obj = bpf_object__open_mem(vs_xdp_tier_obj, sizeof vs_xdp_tier_obj, &opts);
    if (!obj) {
        err = -errno;
        vs_xdp_tier_release();
        return err;
    }
    struct bpf_map *xsks = bpf_object__find_map_by_name(obj, "xsks");
    err = xsks ? bpf_map__set_max_entries(xsks, n_queues ? n_queues : 1) : -ENOENT;
    if (!err)
        err = reuse(obj, "flows", flows_fd);
    if (!err)
        err = reuse(obj, "tx_ports", tx_ports_fd);
    if (!err)
        err = bpf_object__load(obj);
    if (!err) {
        struct bpf_program *p = bpf_object__find_program_by_name(obj, "vs_xdp_tier");
        /* Descriptors of our own: closing the object closes its. */
        prog->prog_fd = p ? fcntl(bpf_program__fd(p), F_DUPFD_CLOEXEC, 0) : -1;
        prog->map_fd = fcntl(bpf_map__fd(xsks), F_DUPFD_CLOEXEC, 0);
        if (prog->prog_fd < 0 || prog->map_fd < 0)
            err = p ? -errno : -ENOENT;
    }
    bpf_object__close(obj);
    if (err) {
        vs_xdp_prog_close(prog);
        vs_xdp_tier_release();
    }
    return err;
}

int vs_xdp_tier_expose(int ifindex)
{
    uint32_t key = (uint32_t)ifindex, value = (uint32_t)ifindex;
    return bpf_map_update_elem(tx_ports_fd, &key, &value, BPF_ANY) ? -errno : 0;
}

void vs_xdp_tier_unexpose(int ifindex)
{
    uint32_t key = (uint32_t)ifindex;
    bpf_map_delete_elem(tx_ports_fd, &key);
}

/* Packs a datapath key into the map's key (xdp_tier_abi.h): -EINVAL for a
 * key outside the class the program parses, whose fields the packed key
 * leaves out (the packed key would then stand for another flow). */
static int pack_key(const struct vs_key *key, struct vs_xdp_flow_key *out)
{
    static const uint8_t no_ipv6[sizeof key->ipv6_src];
    if (key->dl_type != ETH_TYPE_IPV4 || key->vlan_tci || key->nw_frag || key->pbb_isid
        || key->tun_id > UINT32_MAX /* VXLAN's are 24 bits */
        || memcmp(key->ipv6_src, no_ipv6, sizeof no_ipv6)
        || memcmp(key->ipv6_dst, no_ipv6, sizeof no_ipv6))
        return -EINVAL;
    memset(out, 0, sizeof *out);
    out->in_ifindex = key->in_port;
    out->nw_src = key->nw_src;
    out->nw_dst = key->nw_dst;
    out->tp_src = key->tp_src;
    out->tp_dst = key->tp_dst;
    memcpy(out->dl_dst, key->dl_dst, sizeof out->dl_dst);
    memcpy(out->dl_src, key->dl_src, sizeof out->dl_src);
    out->nw_proto = key->nw_proto;
    out->nw_tos = key->nw_tos;
    out->nw_ttl = key->nw_ttl;
    out->tun_id = (uint32_t)key->tun_id;
    out->tun_src = key->tun_src;
    out->tun_dst = key->tun_dst;
    return 0;
}

/* The per-CPU values of one entry, as the bpf() calls move them: one
 * vs_xdp_flow_val per possible CPU (its size is a multiple of 8, the
 * kernel's stride).  NULL when allocation fails. */
static struct vs_xdp_flow_val *percpu_vals(int *n_cpus)
{
    *n_cpus = libbpf_num_possible_cpus();
    return *n_cpus > 0 ? calloc((size_t)*n_cpus, sizeof(struct vs_xdp_flow_val)) : NULL;
}

/* What the CPUs counted, as one value: sums, OR of the flags, latest use. */
static void percpu_fold(const struct vs_xdp_flow_val *vals, int n_cpus,
                        struct vs_xdp_flow_val *out)
{
    memset(out, 0, sizeof *out);
    out->out_ifindex = vals[0].out_ifindex;
    for (int i = 0; i < n_cpus; i++) {
        out->packets += vals[i].packets;
        out->bytes += vals[i].bytes;
        out->tcp_flags |= vals[i].tcp_flags;
        if (vals[i].used_ns > out->used_ns)
            out->used_ns = vals[i].used_ns;
    }
}

int vs_xdp_tier_flow_put(const struct vs_key *key, uint32_t out_ifindex)
{
    struct vs_xdp_flow_key k;
    int n_cpus, err = pack_key(key, &k);
    if (err)
        return err;
    struct vs_xdp_flow_val *vals = percpu_vals(&n_cpus);
    if (!vals)
        return -ENOMEM;
    for (int i = 0; i < n_cpus; i++)
        vals[i].out_ifindex = out_ifindex;
    /* NOEXIST: an entry already there (another thread's, same flow) keeps
     * its counters. */
    err = bpf_map_update_elem(flows_fd, &k, vals, BPF_NOEXIST) ? -errno : 0;
    free(vals);
    return err == -EEXIST ? 1 : err;
}

/* Reads one entry (lookup), or reads and deletes it in one call, so
 * nothing counted between is lost (LOOKUP_AND_DELETE on hash maps, kernel
 * 5.14+). */
static int flow_fetch(const struct vs_key *key, struct vs_xdp_flow_val *val, int del)
{
    struct vs_xdp_flow_key k;
    int n_cpus;
    if (pack_key(key, &k))
        return -ENOENT;
    struct vs_xdp_flow_val *vals = percpu_vals(&n_cpus);
    if (!vals)
        return -ENOMEM;
    int err = (del ? bpf_map_lookup_and_delete_elem(flows_fd, &k, vals)
                   : bpf_map_lookup_elem(flows_fd, &k, vals)) ? -errno : 0;
    if (!err)
        percpu_fold(vals, n_cpus, val);
    free(vals);
    return err;
}

int vs_xdp_tier_flow_read(const struct vs_key *key, struct vs_xdp_flow_val *val)
{
    return flow_fetch(key, val, 0);
}

int vs_xdp_tier_flow_del(const struct vs_key *key, struct vs_xdp_flow_val *val)
{
    return flow_fetch(key, val, 1);
}

#else /* built without clang/libbpf: the tier is absent, and says so */

int vs_xdp_tier_available(void)
{
    return 0;
}

int vs_xdp_tier_load(struct vs_xdp_prog *prog, uint32_t n_queues)
{
    (void)n_queues;
    prog->map_fd = prog->prog_fd = prog->link_fd = -1;
    return -EOPNOTSUPP;
}

void vs_xdp_tier_release(void) {}

int vs_xdp_tier_acquire(void)
{
    return -EOPNOTSUPP;
}

int vs_xdp_tier_flows_fd(void)
{
    return -1;
}

int vs_xdp_tier_expose(int ifindex)
{
    (void)ifindex;
    return -EOPNOTSUPP;
}

void vs_xdp_tier_unexpose(int ifindex)
{
    (void)ifindex;
}

int vs_xdp_tier_flow_put(const struct vs_key *key, uint32_t out_ifindex)
{
    (void)key, (void)out_ifindex;
    return -EOPNOTSUPP;
}

int vs_xdp_tier_flow_read(const struct vs_key *key, struct vs_xdp_flow_val *val)
{
    (void)key, (void)val;
    return -ENOENT;
}

int vs_xdp_tier_flow_del(const struct vs_key *key, struct vs_xdp_flow_val *val)
{
    (void)key, (void)val;
    return -ENOENT;
}

#endif
