/* tier_shared.h — what the kernel tiers' programs share: the exact-flow map
 * (one map, process-wide, for both tiers), the one parser (frame → exact
 * key) and the per-CPU count of a hit.  Included by the XDP tier
 * (xdp_tier.bpf.c) and the tc tier (tc_tier.bpf.c, its tc program and its
 * socket filter), so the programs cannot disagree on which frames they
 * handle, on the key or on what a hit counts.
 *
 * Design note.  The parse mirrors vs_parse() (flow_key.c) for the one class
 * of frames the tiers handle: untagged Ethernet, IPv4 without options, not
 * a fragment, with a complete TCP (20 bytes), UDP/SCTP (8) or ICMP (4)
 * header, or another protocol (ports stay 0).  Every other frame —
 * VLAN-tagged, IPv6, ARP, IP options, fragments, truncated headers — is
 * refused (the caller hands it to user space untouched), where vs_parse()
 * sees it.  A frame accepted gets exactly the key vs_parse() would give it
 * (in_port aside: the caller sets the receiving ifindex), packed as
 * xdp_tier_abi.h's struct vs_xdp_flow_key.  [data, end) are either packet
 * pointers (XDP, tc: direct packet access, the verifier checks each read
 * against end) or a stack copy of the first VS_TIER_HDR_MAX bytes (socket
 * filters, which have no direct access).  An 802.1Q tag the kernel moved
 * into skb metadata is invisible here: skb-based callers test it first.
 */
#ifndef VS_TIER_SHARED_H
#define VS_TIER_SHARED_H 1

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xdp_tier_abi.h"

#define ETH_HLEN 14
#define ETH_P_IPV4 0x0800
#define IPV4_HLEN 20         /* the only header length handled: no options */
#define IPV4_VERSION_IHL 0x45
#define IPV4_FRAG_BITS 0x3fff /* MF + fragment offset: vs_parse's test */
#define PROTO_ICMP 1
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_SCTP 132
#define TCP_HLEN 20
#define UDP_HLEN 8
#define TCP_DOFF_OFF 12  /* the data offset: the header's length in 32-bit words */
#define TCP_DOFF_SHIFT 4
#define TCP_DOFF_UNIT 4
#define ICMP_HLEN 4
#define TCP_FLAGS_MASK 0x0fff
#define TCP_CSUM_OFF 16
#define UDP_CSUM_OFF 6
/* The exact flows (xdp_tier_abi.h), created by xdp_tier.c and handed to
 * each program instance with bpf_map__reuse_fd(). */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, VS_XDP_TIER_MAX_FLOWS);
    __uint(map_flags, BPF_F_NO_PREALLOC); /* as xdp_tier.c creates it */
    __type(key, struct vs_xdp_flow_key);
    __type(value, struct vs_xdp_flow_val);
} flows SEC(".maps");

/* The most any accepted frame's key depends on: Ethernet, IPv4, TCP. */
#define VS_TIER_HDR_MAX (ETH_HLEN + IPV4_HLEN + TCP_HLEN)

static __always_inline __u16 rd16(const __u8 *p)
{
    return (__u16)(p[0] << 8 | p[1]);
}

/* What the parse found beside the key. */
struct vs_tier_parsed {
    __u16 tcp_flags;
    __u8 udp;               /* the L4 checksum is UDP's (0 means none) */
    const __u8 *csum_field; /* TCP/UDP: the L4 checksum field, else 0 */
    __u16 l4_hlen;          /* TCP (its data offset) or UDP header, else 0 */
};

/* Fills *key (in_ifindex left 0) and *out for a frame of the class above;
 * returns 0, or -1 for a frame the tiers leave to user space. */
static __always_inline int vs_tier_parse(const __u8 *data, const __u8 *end,
                                         struct vs_xdp_flow_key *key, struct vs_tier_parsed *out)
{
    __builtin_memset(key, 0, sizeof *key);
    out->tcp_flags = 0;
    out->udp = 0;
    out->csum_field = 0;
    out->l4_hlen = 0;
    if (data + ETH_HLEN + IPV4_HLEN > end)
        return -1;
    if (rd16(data + 12) != ETH_P_IPV4)
        return -1;
    const __u8 *ip = data + ETH_HLEN;
    if (ip[0] != IPV4_VERSION_IHL || (rd16(ip + 6) & IPV4_FRAG_BITS))
        return -1;
    __builtin_memcpy(key->dl_dst, data, 6);
    __builtin_memcpy(key->dl_src, data + 6, 6);
    key->nw_tos = ip[1];
    key->nw_ttl = ip[8];
    key->nw_proto = ip[9];
    __builtin_memcpy(&key->nw_src, ip + 12, 4);
    __builtin_memcpy(&key->nw_dst, ip + 16, 4);
    const __u8 *l4 = ip + IPV4_HLEN;
    switch (key->nw_proto) {
    case PROTO_TCP:
        if (l4 + TCP_HLEN > end)
            return -1;
        out->csum_field = l4 + TCP_CSUM_OFF;
        key->tp_src = rd16(l4);
        key->tp_dst = rd16(l4 + 2);
        out->tcp_flags = rd16(l4 + 12) & TCP_FLAGS_MASK;
        out->l4_hlen = (l4[TCP_DOFF_OFF] >> TCP_DOFF_SHIFT) * TCP_DOFF_UNIT;
        break;
    case PROTO_UDP:
        if (l4 + UDP_HLEN > end)
            return -1;
        out->csum_field = l4 + UDP_CSUM_OFF;
        out->udp = 1;
        out->l4_hlen = UDP_HLEN;
        key->tp_src = rd16(l4);
        key->tp_dst = rd16(l4 + 2);
        break;
    case PROTO_SCTP:
        if (l4 + UDP_HLEN > end)
            return -1;
        key->tp_src = rd16(l4);
        key->tp_dst = rd16(l4 + 2);
        break;
    case PROTO_ICMP:
        if (l4 + ICMP_HLEN > end)
            return -1;
        key->tp_src = l4[0];
        key->tp_dst = l4[1];
        break;
    default:
        break;
    }
    return 0;
}

/* Counts one forwarded frame in this CPU's copy of the entry (a per-CPU
 * map, touched only here in its softirq: plain stores, no locked
 * instructions).  The coarse clock (the tick's CLOCK_MONOTONIC, a jiffy of
 * resolution) reads no clock source: the precise one's TSC read was ~2 % of
 * the traffic core in a TCP profile; a jiffy is nothing to idle timeouts
 * counted in seconds, the only use of the time. */
static __always_inline void vs_tier_count(struct vs_xdp_flow_val *val, __u64 bytes,
                                          __u16 tcp_flags)
{
    val->packets++;
    val->bytes += bytes;
    if (tcp_flags)
        val->tcp_flags |= tcp_flags;
    val->used_ns = bpf_ktime_get_coarse_ns();
}

#endif
