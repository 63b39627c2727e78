/* vxlan_kdev.bpf.c — tcx ingress of the kernel vxlan device that vxlan
 * ports with options:tc-offload=true share (vxlan_kdev.h).  The kernel has
 * done the outer work: UDP receive, GRO (a TCP train arrives as one GSO
 * skb), outer checksum, decapsulation.  Each frame's tunnel key finds its
 * vxlan port (vx_rx, as netdev_vxlan.c's demux ranks them); a frame of an
 * established exact flow (the tc tier's map, keyed with the port's tier
 * index and the tunnel words) is forwarded as the tc tier forwards
 * (tc_shared.h); every other one goes to user space through the punt
 * device, with its tunnel metadata in front (vxlan_kdev_abi.h).
 * vs_vxlan_plain_rx does the same on a port's own plain vxlan device
 * (vxlan_kdev.h: no tunnel key on the skb): the device is the port, and
 * vx_plain holds its tunnel.
 * vs_vxlan_unknown_vni (tp_btf/kfree_skb, loaded apart: vxlan_kdev.c)
 * counts what plain devices cannot: the datagrams the kernel's vxlan
 * drops for a VNI no device has, on our namespace's dst_port.
 */
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#include "tc_shared.h"
#include "vxlan_kdev_abi.h"

/* [0]: the punt device's ifindex, set by vxlan_kdev.c after loading. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} vx_punt SEC(".maps");

/* (VNI or VS_VXLAN_RX_ANY, remote or 0) -> the port's tier index. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, VS_XDP_TIER_MAX_PORTS);
    __type(key, struct vs_vxlan_rx_key);
    __type(value, __u32);
} vx_rx SEC(".maps");

/* The port of (vni, remote): exact, then remote_ip=flow, key=flow, both. */
static __always_inline __u32 *rx_port(__u32 vni, __u32 remote)
{
    struct vs_vxlan_rx_key k = {.vni = vni, .remote = remote};
    __u32 *p = bpf_map_lookup_elem(&vx_rx, &k);
    if (p)
        return p;
    k.remote = 0;
    if ((p = bpf_map_lookup_elem(&vx_rx, &k)))
        return p;
    k.vni = VS_VXLAN_RX_ANY;
    k.remote = remote;
    if ((p = bpf_map_lookup_elem(&vx_rx, &k)))
        return p;
    k.remote = 0;
    return bpf_map_lookup_elem(&vx_rx, &k);
}

/* A plain device's ifindex -> its port and tunnel. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, VS_XDP_TIER_MAX_PORTS);
    __type(key, __u32);
    __type(value, struct vs_vxlan_plain_cfg);
} vx_plain SEC(".maps");

/* Hands the frame to user space: the punt header (h: its tunnel part
 * filled) in front, into the punt device. */
static __always_inline int punt_hdr(struct __sk_buff *skb, struct vs_vxlan_punt_hdr *h)
{
    __u32 zero = 0;
    __u32 *punt_ifindex = bpf_map_lookup_elem(&vx_punt, &zero);
    if (!punt_ifindex || !*punt_ifindex)
        return TC_ACT_SHOT;
    h->eth_type = bpf_htons(VS_VXLAN_PUNT_ETHERTYPE);
    if (bpf_skb_change_head(skb, sizeof *h, 0))
        return TC_ACT_SHOT;
    if (bpf_skb_store_bytes(skb, 0, h, sizeof *h, 0))
        return TC_ACT_SHOT;
    return bpf_redirect(*punt_ifindex, BPF_F_INGRESS);
}

static __always_inline int punt(struct __sk_buff *skb, const struct bpf_tunnel_key *tk)
{
    struct vs_vxlan_punt_hdr h;
    __builtin_memset(&h, 0, sizeof h);
    h.vni = tk->tunnel_id;
    h.remote = bpf_htonl(tk->remote_ipv4); /* the helper gives host order */
    h.local = bpf_htonl(tk->local_ipv4);
    h.tos = tk->tunnel_tos;
    h.ttl = tk->tunnel_ttl;
    return punt_hdr(skb, &h);
}

#define IP_TOT_LEN_OFF 2
#define IP_PROTO_OFF 9
#define IP_ADDRS_OFF 12 /* source and destination: the pseudo-header's */
#define IP_ADDRS_WORDS 4
#define FOLD_BITS 16
#define FOLD_MASK 0xffff

/* A decapsulated TCP or UDP frame whose checksum field holds only the
 * pseudo-header's folded sum, the value a CHECKSUM_PARTIAL skb carries
 * until a NIC fills it in: a far OVS reading a veth with a packet socket
 * and no vnet header sends exactly that, unfilled.  User space passes such
 * a frame on as partial (netdev_vxlan.c, mark_partial_csum), as the
 * kernel's vxlan receiver passes a partial skb; the tier does the same by
 * marking it verified (bpf_csum_level: CHECKSUM_NONE becomes
 * CHECKSUM_UNNECESSARY), else its host would drop every such segment.  An
 * skb already verified, or a GRO'd one (GRO verified its segments), is
 * left as it is. */
static __always_inline void trust_unfilled_csum(struct __sk_buff *skb)
{
    if (skb->gso_size || bpf_csum_level(skb, BPF_CSUM_LEVEL_QUERY) >= 0)
        return;
    __u8 ip[IPV4_HLEN];
    if (bpf_skb_load_bytes(skb, ETH_HLEN, ip, sizeof ip))
        return;
    __u8 proto = ip[IP_PROTO_OFF];
    __u32 off = proto == PROTO_TCP ? TCP_CSUM_OFF
              : proto == PROTO_UDP ? UDP_CSUM_OFF : 0;
    if (!off)
        return;
    __u16 field;
    if (bpf_skb_load_bytes(skb, ETH_HLEN + IPV4_HLEN + off, &field, sizeof field))
        return;
    __u16 words[IP_ADDRS_WORDS];
    __builtin_memcpy(words, ip + IP_ADDRS_OFF, sizeof words);
    __u16 tot_len = (__u16)((ip[IP_TOT_LEN_OFF] << 8) | ip[IP_TOT_LEN_OFF + 1]);
    __u32 sum = bpf_htons(proto) + bpf_htons((__u16)(tot_len - IPV4_HLEN));
    for (int i = 0; i < IP_ADDRS_WORDS; i++)
        sum += words[i];
    sum = (sum & FOLD_MASK) + (sum >> FOLD_BITS);
    sum = (sum & FOLD_MASK) + (sum >> FOLD_BITS);
    if (field == (__u16)sum)
        bpf_csum_level(skb, BPF_CSUM_LEVEL_INC);
}

SEC("tc")
int vs_vxlan_kdev_rx(struct __sk_buff *skb)
{
    struct bpf_tunnel_key tk;
    __builtin_memset(&tk, 0, sizeof tk);
    if (bpf_skb_get_tunnel_key(skb, &tk, sizeof tk, 0))
        return TC_ACT_SHOT; /* not from the tunnel: nothing of ours */
    struct vs_xdp_flow_key key;
    struct vs_tier_parsed parsed;
    __u32 out_ifindex, mode, skb_hash;
    __u32 *port = rx_port(tk.tunnel_id, bpf_htonl(tk.remote_ipv4));
    if (!port || vs_tc_skb_key(skb, &key, &parsed))
        return punt(skb, &tk);
    key.in_ifindex = *port;
    key.tun_id = tk.tunnel_id;
    key.tun_src = bpf_htonl(tk.remote_ipv4);
    key.tun_dst = bpf_htonl(tk.local_ipv4);
    if (!vs_tc_lookup(skb, &key, &parsed, &out_ifindex, &mode, &skb_hash))
        return punt(skb, &tk);
    trust_unfilled_csum(skb);
    return vs_tc_redirect(skb, out_ifindex, mode, skb_hash);
}

/* A plain device's frames: no metadata dst to read (the kernel allocates
 * none for a plain device); the port and tunnel are the device's.  The
 * outer TOS and TTL are not known here: user space sees 0 for both. */
SEC("tc")
int vs_vxlan_plain_rx(struct __sk_buff *skb)
{
    __u32 ifindex = skb->ifindex;
    struct vs_vxlan_plain_cfg *c = bpf_map_lookup_elem(&vx_plain, &ifindex);
    if (!c)
        return TC_ACT_SHOT; /* closing: the port is gone */
    struct vs_xdp_flow_key key;
    struct vs_tier_parsed parsed;
    __u32 out_ifindex, mode, skb_hash;
    if (!vs_tc_skb_key(skb, &key, &parsed)) {
        key.in_ifindex = c->tier_index;
        key.tun_id = c->vni;
        key.tun_src = c->remote;
        key.tun_dst = c->local;
        if (vs_tc_lookup(skb, &key, &parsed, &out_ifindex, &mode, &skb_hash)) {
            trust_unfilled_csum(skb);
            return vs_tc_redirect(skb, out_ifindex, mode, skb_hash);
        }
    }
    struct vs_vxlan_punt_hdr h;
    __builtin_memset(&h, 0, sizeof h);
    h.vni = c->vni;
    h.remote = c->remote;
    h.local = c->local;
    return punt_hdr(skb, &h);
}

/* The kernel's types, as far as the drop counter reads them (CO-RE: the
 * offsets are the running kernel's, from its BTF). */
struct ns_common___vs {
    unsigned int inum;
} __attribute__((preserve_access_index));
struct net___vs {
    struct ns_common___vs ns;
} __attribute__((preserve_access_index));
struct net_device___vs {
    struct {
        struct net___vs *net;
    } nd_net;
} __attribute__((preserve_access_index));
struct sk_buff___vs {
    struct net_device___vs *dev;
    unsigned char *head;
    __u16 transport_header;
} __attribute__((preserve_access_index));
enum skb_drop_reason___vs { SKB_DROP_REASON_VXLAN_VNI_NOT_FOUND___vs = 0 };

#define UDP_DPORT_OFF 2

/* [0]: what to count (our namespace's inode, dst_port) and the count. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct vs_vxlan_drop_count);
} vx_drops SEC(".maps");

SEC("tp_btf/kfree_skb")
int vs_vxlan_unknown_vni(__u64 *ctx)
{
    __u32 reason = (__u32)ctx[2];
    if (reason != bpf_core_enum_value(enum skb_drop_reason___vs,
                                      SKB_DROP_REASON_VXLAN_VNI_NOT_FOUND___vs))
        return 0;
    __u32 zero = 0;
    struct vs_vxlan_drop_count *c = bpf_map_lookup_elem(&vx_drops, &zero);
    if (!c)
        return 0;
    struct sk_buff___vs *skb = (void *)ctx[0];
    if (BPF_CORE_READ(skb, dev, nd_net.net, ns.inum) != c->netns_inum)
        return 0;
    unsigned char *head = BPF_CORE_READ(skb, head);
    __u16 th = BPF_CORE_READ(skb, transport_header);
    __u16 dport = 0;
    bpf_probe_read_kernel(&dport, sizeof dport, head + th + UDP_DPORT_OFF);
    if (bpf_ntohs(dport) == c->dst_port)
        __sync_fetch_and_add(&c->count, 1);
    return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
