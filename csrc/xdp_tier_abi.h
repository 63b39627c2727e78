/* xdp_tier_abi.h — what the kernel XDP tier's program and the datapath share:
 * the exact-flow map's key and value, and the map sizes.  Included by the
 * BPF program (csrc/bpf/xdp_tier.bpf.c, compiled by clang for the BPF target)
 * and by xdp_tier.c, so the two cannot drift.
 *
 * The key IS the datapath's flow key (struct vs_key, flow_key.h) with
 * in_port holding the receiving netdev's ifindex instead of the datapath
 * port number: the program fills it exactly as vs_parse() would, for the
 * frames it handles, so an entry can only be hit by packets whose parsed key
 * is identical to the one the datapath classified (see xdp_tier.h).
 */
#ifndef VS_XDP_TIER_ABI_H
#define VS_XDP_TIER_ABI_H 1

#include "flow_key.h"

/* Exact flows the kernel forwards, across all ports of the process. */
#define VS_XDP_TIER_MAX_FLOWS 65536
/* Output netdevs (devmap slots, keyed by ifindex). */
#define VS_XDP_TIER_MAX_PORTS 1024
/* AF_XDP sockets per port (one per rx queue), as afxdp.c's MAX_QUEUES. */
#define VS_XDP_TIER_MAX_QUEUES 64

struct vs_xdp_flow_val {
    uint32_t out_ifindex; /* devmap key: where the kernel redirects */
    uint32_t tcp_flags;   /* OR of the flags seen (atomic OR in the program) */
    uint64_t packets;     /* atomic adds in the program */
    uint64_t bytes;       /* frame bytes, as the datapath counts them */
    uint64_t used_ns;     /* CLOCK_MONOTONIC of the last hit (bpf_ktime_get_ns) */
};

#endif
