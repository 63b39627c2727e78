/* xdp_tier.c — loads the kernel XDP tier's program (xdp_tier.h) with
 * libbpf from the object embedded at build time, and manages its maps. */
#define _GNU_SOURCE
#include "xdp_tier.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#ifdef VS_HAVE_XDP_TIER
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "xdp_tier_obj.h" /* generated at build time: vs_xdp_tier_obj[] */

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
    flows_fd = bpf_map_create(BPF_MAP_TYPE_HASH, "vs_tier_flows", sizeof(struct vs_key),
                              sizeof(struct vs_xdp_flow_val), VS_XDP_TIER_MAX_FLOWS, NULL);
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

int vs_xdp_tier_load(struct vs_xdp_prog *prog, uint32_t n_queues)
{
    prog->map_fd = prog->prog_fd = prog->link_fd = -1;
    pthread_mutex_lock(&shared_mutex);
    int err = shared_maps_get();
    pthread_mutex_unlock(&shared_mutex);
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

int vs_xdp_tier_flow_put(const struct vs_key *key, uint32_t out_ifindex)
{
    struct vs_xdp_flow_val val = {.out_ifindex = out_ifindex};
    /* NOEXIST: an entry already there (another thread's, same flow) keeps
     * its counters. */
    if (!bpf_map_update_elem(flows_fd, key, &val, BPF_NOEXIST))
        return 0;
    return errno == EEXIST ? 1 : -errno;
}

int vs_xdp_tier_flow_read(const struct vs_key *key, struct vs_xdp_flow_val *val)
{
    return bpf_map_lookup_elem(flows_fd, key, val) ? -errno : 0;
}

int vs_xdp_tier_flow_del(const struct vs_key *key, struct vs_xdp_flow_val *val)
{
    /* Read-and-delete in one call, so nothing counted between is lost
     * (LOOKUP_AND_DELETE on hash maps, kernel 5.14+). */
    return bpf_map_lookup_and_delete_elem(flows_fd, key, val) ? -errno : 0;
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
