/* vxlan_kdev.bpf.c — tcx ingress of the kernel vxlan device that vxlan
 * ports with options:tc-offload=true share (vxlan_kdev.h): every
 * decapsulated frame goes to user space through the punt device, with its
 * tunnel metadata in front (vxlan_kdev_abi.h).  The kernel has done the
 * outer work: UDP receive, GRO (a TCP train arrives as one GSO skb), outer
 * checksum, decapsulation.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include <stdint.h>
#include "vxlan_kdev_abi.h"

/* [0]: the punt device's ifindex, set by vxlan_kdev.c after loading. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} vx_punt SEC(".maps");

SEC("tc")
int vs_vxlan_kdev_rx(struct __sk_buff *skb)
{
    struct bpf_tunnel_key tk;
    __u32 zero = 0;
    __builtin_memset(&tk, 0, sizeof tk);
    if (bpf_skb_get_tunnel_key(skb, &tk, sizeof tk, 0))
        return TC_ACT_SHOT; /* not from the tunnel: nothing of ours */
    __u32 *punt = bpf_map_lookup_elem(&vx_punt, &zero);
    if (!punt || !*punt)
        return TC_ACT_SHOT;
    struct vs_vxlan_punt_hdr h;
    __builtin_memset(&h, 0, sizeof h);
    h.eth_type = bpf_htons(VS_VXLAN_PUNT_ETHERTYPE);
    h.vni = tk.tunnel_id;
    h.remote = bpf_htonl(tk.remote_ipv4); /* the helper gives host order */
    h.local = bpf_htonl(tk.local_ipv4);
    h.tos = tk.tunnel_tos;
    h.ttl = tk.tunnel_ttl;
    if (bpf_skb_change_head(skb, sizeof h, 0))
        return TC_ACT_SHOT;
    if (bpf_skb_store_bytes(skb, 0, &h, sizeof h, 0))
        return TC_ACT_SHOT;
    return bpf_redirect(*punt, BPF_F_INGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
