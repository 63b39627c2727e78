/* xdp_tier_abi.h — what the kernel XDP tier's program and the datapath share:
 * the exact-flow map's key and value, and the map sizes.  Included by the
 * BPF program (csrc/bpf/xdp_tier.bpf.c, compiled by clang for the BPF target)
 * and by xdp_tier.c, so the two cannot drift.
 *
 * The key is the datapath's flow key (struct vs_key, flow_key.h) packed down
 * to the fields that can differ between the frames the program handles
 * (untagged IPv4, not a fragment): every other vs_key field is the same
 * constant for all of them (vlan_tci, nw_frag, IPv6, pbb_isid 0; dl_type
 * IPv4), so the packed key identifies
 * the full key exactly, with in_port holding the receiving netdev's ifindex
 * instead of the datapath port number.  The program fills it exactly as
 * vs_parse() would; xdp_tier.c packs the datapath's keys and refuses one
 * outside that class.  So an entry can only be hit by packets whose parsed
 * key is identical to the one the datapath classified (see xdp_tier.h).
 * The tunnel words are 0 except for frames the kernel vxlan device of
 * vxlan ports with tc-offload received (vxlan_kdev.h: its program fills
 * them from the skb's tunnel key and in_ifindex with the vxlan port's
 * tier index, as netdev_vxlan.c fills pkt->tnl and in_port).
 * 44 bytes instead of vs_key's 104: the program hashes it per packet.
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

struct vs_xdp_flow_key {
    uint32_t in_ifindex;
    uint32_t nw_src; /* network order, as vs_key */
    uint32_t nw_dst;
    uint16_t tp_src; /* host order, as vs_key (ICMP: type, code) */
    uint16_t tp_dst;
    uint8_t dl_dst[6];
    uint8_t dl_src[6];
    uint8_t nw_proto;
    uint8_t nw_tos;
    uint8_t nw_ttl;
    uint8_t pad; /* always 0: the map hashes every byte */
    uint32_t tun_id;  /* VNI, host order, as vs_key */
    uint32_t tun_src; /* outer addresses, network order, as vs_key */
    uint32_t tun_dst;
};

/* The flows map is per-CPU (BPF_MAP_TYPE_PERCPU_HASH): each CPU counts in
 * its own copy with plain stores, no locked instruction per packet;
 * xdp_tier.c folds the copies into one value when it reads an entry.  Size
 * a multiple of 8 (the kernel's per-CPU stride in bpf() calls). */
struct vs_xdp_flow_val {
    uint32_t out_ifindex; /* devmap key: where the kernel redirects (same in every copy) */
    uint32_t tcp_flags;   /* OR of the flags seen */
    uint64_t packets;
    uint64_t bytes;       /* frame bytes, as the datapath counts them */
    uint64_t used_ns;     /* CLOCK_MONOTONIC of the last hit, to a jiffy (bpf_ktime_get_coarse_ns) */
};

#endif
