/* tc_tier_abi.h — what the kernel tc tier's programs (csrc/bpf/tc_tier.bpf.c)
 * and their loader (tc_tier.c) share beyond the exact-flow map, whose key
 * and value are the XDP tier's (xdp_tier_abi.h: one map serves both tiers).
 *
 *  - The `tc_ports` map: output ifindex → how the tc program sends there.
 *    A netdev is in it while it is an open tc-tier port; a flow whose
 *    output is not (the port closed) is left to user space.
 *  - The socket filter's verdict, handed to the tc program in the skb's
 *    control block (__sk_buff cb[], the same bytes for both program types):
 *    an AF_PACKET tap sees a received skb before tc ingress does
 *    (__netif_receive_skb_core), so the filter decides once for both —
 *    "the tier forwards it to this output" (the socket drops its copy, the
 *    tc program redirects without a second parse or lookup) or "user space
 *    gets it" (the tc program must not forward it too).  One lookup per
 *    frame: an entry added or deleted meanwhile cannot make a frame arrive
 *    twice, or not at all.
 */
#ifndef VS_TC_TIER_ABI_H
#define VS_TC_TIER_ABI_H 1

/* tc_ports values. */
#define VS_TC_TIER_REDIRECT_EGRESS 1 /* bpf_redirect(): out of the netdev */
#define VS_TC_TIER_REDIRECT_PEER 2   /* bpf_redirect_peer(): into a veth's peer */
#define VS_TC_TIER_REDIRECT_VXLAN 3  /* a vxlan port: vx_tx has its tunnel */

/* Tier indexes of vxlan ports with tc-offload (vxlan_kdev.h) stand where a
 * netdev's ifindex would, in the flows' keys (received through the port)
 * and outputs (sent to it), from this base up: above any ifindex the
 * kernel hands out in practice, unique per port in the process. */
#define VS_TC_TIER_VXLAN_BASE 0x7f000000u

#define VS_TC_VXLAN_SPORTS 16 /* vs_tc_vxlan_tx.sports: VXLAN_SPORT_POOL */

/* vx_tx values, keyed by a vxlan port's tier index: what the tc program
 * sets with bpf_skb_set_tunnel_key before redirecting into the kernel's
 * vxlan device (which adds the outer headers, its own dst_port, and a
 * source port from the skb's hash: the tc program sets that hash so the
 * port is the one user space sends the flow from, vxlan_flow_hash.h). */
struct vs_tc_vxlan_tx {
    uint32_t vx_ifindex; /* the kernel vxlan device */
    uint32_t vni;        /* host order */
    uint32_t remote;     /* host order, as bpf_tunnel_key */
    uint32_t local;      /* host order; 0: the route's source */
    uint8_t tos, ttl;
    /* VS_TC_VXLAN_TX_PLAIN: vx_ifindex is a plain (non-collect_md) vxlan
     * device of this port alone, whose own configuration is the tunnel:
     * redirect only, no tunnel key (the device keeps a dst cache). */
    uint8_t kind;
    uint8_t pad;
    /* The largest inner IP packet the tunnel carries in one outer packet
     * of the path's MTU (tunnel_inner_mtu in the port's status).  The
     * kernel device sends the outer packets with DF and segments a TSO
     * frame at its own gso_size, so a frame or segment above this would be
     * dropped there (TCP to a 1500-byte far host stalled after its first
     * window): the tier leaves such frames to user space, which segments
     * TSO frames to this size or drops and counts the rest. */
    uint16_t inner_mtu;
    /* The port's user-space source ports (vxlan_sport.h's pool, in the
     * pool's order): a flow's packets leave from sports[hash % n_sports]
     * whichever path sends them. */
    uint16_t n_sports;
    uint16_t sports[VS_TC_VXLAN_SPORTS];
};
#define VS_TC_VXLAN_TX_KEY 0   /* the shared external device: set the key */
#define VS_TC_VXLAN_TX_PLAIN 1 /* the port's own plain device */

/* cb[VS_TC_TIER_CB_MARK] == VS_TC_TIER_MARK: cb[VS_TC_TIER_CB_VERDICT] holds
 * the socket filter's verdict for this skb and, for VS_TC_TIER_VERDICT_TIER,
 * cb[_OUT] the output ifindex, cb[_MODE] the tc_ports value and cb[_HASH]
 * the skb hash to set (0: none; a socket filter cannot set it). */
#define VS_TC_TIER_CB_MARK 0
#define VS_TC_TIER_CB_VERDICT 1
#define VS_TC_TIER_CB_OUT 2
#define VS_TC_TIER_CB_MODE 3
#define VS_TC_TIER_CB_HASH 4
#define VS_TC_TIER_MARK 0x76735463u /* "vsTc" */
#define VS_TC_TIER_VERDICT_SOCKET 0 /* the packet socket took it */
#define VS_TC_TIER_VERDICT_TIER 1   /* the tc program forwards it */

#endif
