/* xdp_tier.h — the kernel XDP tier: established exact flows forwarded by an
 * XDP program in the driver, without crossing into user space.
 *
 * Design note.
 *  - Behind an option (Open_vSwitch other_config:xdp-offload=true, handed to
 *    afxdp ports as their option xdp-offload=true).  An afxdp port with it
 *    loads csrc/bpf/xdp_tier.bpf.c instead of xdp_prog.c's six
 *    instructions: the same redirect to the queue's AF_XDP socket for every
 *    frame it does not forward itself.
 *  - Three maps.  Per port, its XSKMAP.  Process-wide, `flows` (shared with
 *    the tc tier, tc_tier.h: vs_xdp_tier_acquire()) (exact key,
 *    packed as xdp_tier_abi.h says → output ifindex + per-CPU counters) and `tx_ports` (a devmap of the netdevs the
 *    tier may redirect to), created when the first tier port opens and
 *    closed with the last.  Keys carry the receiving ifindex, so ports of
 *    different datapaths of one process share the maps without meeting.
 *  - The datapath decides what goes in (datapath.c): a packet that missed
 *    the EMC and hit a megaflow whose actions are one plain output, from a
 *    tier port to a tier port, puts its exact key (vs_key with in_port = the
 *    ifindex) in `flows`, and the megaflow remembers it.  Deleting the
 *    megaflow deletes its entries first and adds their counters to its
 *    final statistics; dumping it reads them, so OpenFlow, NetFlow and port
 *    counters see every packet the kernel forwarded (up to the moment of
 *    the read: packets already past the lookup when an entry is deleted may
 *    still be counted in it, a few at most).
 *  - Built only when clang (BPF target) and libbpf are installed at build
 *    time (csrc/build_datapath.py); otherwise vs_xdp_tier_available() is 0
 *    and a port asking for the tier refuses to open, naming the reason.
 *  - A redirect needs a target that accepts XDP frames: a tap, or a veth
 *    whose peer has an XDP program or GRO enabled (the kernel drops the
 *    frame otherwise, counted in the peer's xdp drop counters).
 *  - Thread safety: the map calls are bpf() syscalls, safe from any thread;
 *    the shared map fds and their reference count are guarded by a mutex
 *    of this module (a leaf lock, held only around open/close).
 */
#ifndef VS_XDP_TIER_H
#define VS_XDP_TIER_H 1

#include <stdint.h>

#include "xdp_prog.h"
#include "xdp_tier_abi.h"

/* 1 when the extension was built with the tier's program. */
int vs_xdp_tier_available(void);

/* Loads the tier program for one port with an XSKMAP of n_queues entries,
 * taking a reference on the shared maps; fills prog as vs_xdp_prog_load()
 * does, so attaching, sockets and vs_xdp_prog_close() are unchanged.  Call
 * vs_xdp_tier_release() after vs_xdp_prog_close().  0 or -errno. */
int vs_xdp_tier_load(struct vs_xdp_prog *prog, uint32_t n_queues);
void vs_xdp_tier_release(void);

/* For the tc tier (tc_tier.h), whose programs share `flows` (one exact-flow
 * map for both tiers, so the datapath's offload code serves both): takes a
 * reference on the shared maps as vs_xdp_tier_load() does (0 or -errno;
 * release with vs_xdp_tier_release()), and, while one is held, the map's
 * descriptor. */
int vs_xdp_tier_acquire(void);
int vs_xdp_tier_flows_fd(void);

/* Makes ifindex a redirect target (devmap), or stops it being one. */
int vs_xdp_tier_expose(int ifindex);
void vs_xdp_tier_unexpose(int ifindex);

/* Exact flows.  `key` has in_port = the receiving ifindex.  put: 0, 1 when
 * the key was already there (left as it was), or -errno (-E2BIG when the
 * map is full, -EINVAL for a key the program never builds: not untagged
 * IPv4, a fragment, tunnel metadata).  read/del fill *val with the CPUs'
 * counters folded into one (del: the final counters) and return 0, or
 * -ENOENT (-ENOMEM). */
int vs_xdp_tier_flow_put(const struct vs_key *key, uint32_t out_ifindex);
int vs_xdp_tier_flow_read(const struct vs_key *key, struct vs_xdp_flow_val *val);
int vs_xdp_tier_flow_del(const struct vs_key *key, struct vs_xdp_flow_val *val);

#endif
