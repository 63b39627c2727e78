/* vxlan_kdev_abi.h — what the kernel VXLAN receive program
 * (csrc/bpf/vxlan_kdev.bpf.c) and netdev_vxlan.c share: the header the
 * program puts in front of a decapsulated frame it hands to user space.
 *
 * A frame the program does not forward (no established flow of the tc
 * tier) leaves the kernel vxlan device's tc ingress with this
 * header pushed in front of the inner Ethernet frame and is redirected into
 * the punt device (an ifb link), where netdev_vxlan.c's AF_PACKET socket
 * reads it.  The header starts as an Ethernet header (the redirect into a
 * device's ingress runs eth_type_trans over the first 14 bytes) with the
 * IEEE local experimental EtherType, so the socket binds to that type only
 * and the stack, after the socket's tap, drops the frame as unknown; the
 * tunnel metadata (the kernel keeps it in the skb's dst, which a packet
 * socket cannot see) follows. */
#ifndef VS_VXLAN_KDEV_ABI_H
#define VS_VXLAN_KDEV_ABI_H 1

/* vx_rx keys: a vxlan port by what its frames carry (its VNI or
 * VS_VXLAN_RX_ANY for key=flow; its remote, network order, or 0 for
 * remote_ip=flow) -> its tier index (tc_tier_abi.h). */
#define VS_VXLAN_RX_ANY 0xffffffffu
struct vs_vxlan_rx_key {
    uint32_t vni;
    uint32_t remote;
};

/* vx_plain: a port's own plain vxlan device (its ifindex) -> what its
 * frames carry, which the device does not put on the skb: the port's tier
 * index and its tunnel (VNI host order; addresses network order; local is
 * the port's local_ip, or the route's source towards remote). */
struct vs_vxlan_plain_cfg {
    uint32_t tier_index;
    uint32_t vni;
    uint32_t remote;
    uint32_t local;
};

/* vx_drops[0]: the unknown-VNI drops of plain devices (vxlan_kdev.h) in
 * namespace netns_inum on dst_port (host order), counted by the program. */
struct vs_vxlan_drop_count {
    uint64_t count;
    uint32_t netns_inum;
    uint32_t dst_port;
};

#define VS_VXLAN_PUNT_ETHERTYPE 0x88b5 /* IEEE 802 local experimental 1 */

struct vs_vxlan_punt_hdr {
    uint8_t eth_dst[6]; /* zeros: the punt device's stack drops it */
    uint8_t eth_src[6];
    uint16_t eth_type;  /* VS_VXLAN_PUNT_ETHERTYPE, network order */
    uint32_t vni;       /* host order */
    uint32_t remote;    /* outer source, network order */
    uint32_t local;     /* outer destination, network order */
    uint8_t tos, ttl;   /* outer */
    uint8_t pad[2];
} __attribute__((packed));

#define VS_VXLAN_PUNT_HLEN 30 /* sizeof(struct vs_vxlan_punt_hdr) */
_Static_assert(sizeof(struct vs_vxlan_punt_hdr) == VS_VXLAN_PUNT_HLEN, "punt header size");

#endif
