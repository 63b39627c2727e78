/* tc_shared.h — what the tc-attached tier programs share: the tc tier's
 * (tc_tier.bpf.c, on afpacket ports' netdevs) and the kernel vxlan
 * device's (vxlan_kdev.bpf.c): the output table `tc_ports`, the vxlan
 * ports' tunnels `vx_tx` (both created by tc_tier.c and handed to every
 * instance with bpf_map__reuse_fd), the key of an skb and the redirect of
 * a hit, so a flow from a veth to a vxlan port and back is decided and
 * sent the same way wherever it enters.
 */
#ifndef VS_TC_SHARED_H
#define VS_TC_SHARED_H 1

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include <stdint.h>
#include "tier_shared.h"
#include "tc_tier_abi.h"
#include "vxlan_flow_hash.h"

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, VS_XDP_TIER_MAX_PORTS);
    __type(key, __u32);
    __type(value, __u32);
} tc_ports SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, VS_XDP_TIER_MAX_PORTS);
    __type(key, __u32);
    __type(value, struct vs_tc_vxlan_tx);
} vx_tx SEC(".maps");

/* The skb's key, from a stack copy of its first bytes (a socket filter has
 * no direct packet access).  0, or -1 when the tier leaves it alone. */
static __always_inline int vs_tc_skb_key(struct __sk_buff *skb, struct vs_xdp_flow_key *key,
                                         struct vs_tier_parsed *parsed)
{
    __u8 hdr[VS_TIER_HDR_MAX];
    __u32 n = skb->len;
    if (skb->vlan_present)
        return -1;
    if (n > VS_TIER_HDR_MAX)
        n = VS_TIER_HDR_MAX;
    if (n < ETH_HLEN + IPV4_HLEN)
        return -1;
    __builtin_memset(hdr, 0, sizeof hdr);
    if (bpf_skb_load_bytes(skb, 0, hdr, n))
        return -1;
    if (vs_tier_parse(hdr, hdr + n, key, parsed))
        return -1;
    key->in_ifindex = skb->ifindex;
    return 0;
}

/* Whether the frame fits the tunnel t (vs_tc_vxlan_tx.inner_mtu): its IP
 * packet, or each segment of a GSO one (gso_size of payload behind the
 * headers parsed), at most inner_mtu long.  0 (no MTU known) fits. */
static __always_inline int vs_tc_fits_tunnel(const struct __sk_buff *skb,
                                             const struct vs_tier_parsed *parsed,
                                             const struct vs_tc_vxlan_tx *t)
{
    if (!t->inner_mtu)
        return 1;
    __u32 gso_size = skb->gso_size;
    __u32 ip_len = gso_size ? IPV4_HLEN + parsed->l4_hlen + gso_size : skb->len - ETH_HLEN;
    return ip_len <= t->inner_mtu;
}

/* The skb hash that makes the kernel vxlan device send the flow of *key
 * from the source port user space sends it from (vxlan_flow_hash.h); 0
 * (leave the skb's own) when the port has no pool. */
static __always_inline __u32 vs_tc_tunnel_skb_hash(const struct vs_xdp_flow_key *key,
                                                   const struct vs_tc_vxlan_tx *t)
{
    __u8 ports[4];
    __u32 ports_word;
    __u16 sport = bpf_htons(key->tp_src), dport = bpf_htons(key->tp_dst);
    if (!t->n_sports || t->n_sports > VS_TC_VXLAN_SPORTS)
        return 0;
    /* The ports as the frame has them (the key holds them in host order). */
    __builtin_memcpy(ports, &sport, 2);
    __builtin_memcpy(ports + 2, &dport, 2);
    __builtin_memcpy(&ports_word, ports, 4);
    /* The tier takes no fragments: a TCP/UDP/SCTP frame has its ports. */
    __u32 hash = vxlan_flow_hash_ipv4(key->nw_src, key->nw_dst, key->nw_proto, 1, ports_word);
    __u32 i = hash % t->n_sports;
    if (i >= VS_TC_VXLAN_SPORTS)
        return 0; /* cannot happen; the verifier wants the bound */
    return vxlan_skb_hash_for_port(t->sports[i]);
}

/* The tier's decision for the skb whose key is *key: 1 and *out_ifindex,
 * *mode, *skb_hash (to set before sending; 0: none) when it forwards it
 * (counted here, once), else 0. */
static __always_inline int vs_tc_lookup(struct __sk_buff *skb, struct vs_xdp_flow_key *key,
                                        struct vs_tier_parsed *parsed, __u32 *out_ifindex,
                                        __u32 *mode, __u32 *skb_hash)
{
    struct vs_xdp_flow_val *val = bpf_map_lookup_elem(&flows, key);
    if (!val)
        return 0;
    __u32 out = val->out_ifindex;
    __u32 *m = bpf_map_lookup_elem(&tc_ports, &out);
    if (!m)
        return 0; /* its output port closed: the datapath decides */
    *skb_hash = 0;
    if (*m == VS_TC_TIER_REDIRECT_VXLAN) {
        struct vs_tc_vxlan_tx *t = bpf_map_lookup_elem(&vx_tx, &out);
        if (t) { /* none: a port closing, vs_tc_redirect drops it */
            if (!vs_tc_fits_tunnel(skb, parsed, t))
                return 0; /* too big for the tunnel: user space segments or counts it */
            *skb_hash = vs_tc_tunnel_skb_hash(key, t);
        }
    }
    vs_tier_count(val, skb->len, parsed->tcp_flags);
    *out_ifindex = out;
    *mode = *m;
    return 1;
}

/* Sends a hit on (tc programs only: the tunnel helper is theirs).  Into a
 * vxlan port: its tunnel and skb_hash (vs_tc_lookup's) on the skb, then out
 * of the kernel vxlan device; a port gone meanwhile (no vx_tx) drops the
 * frame, as its closing would. */
static __always_inline int vs_tc_redirect(struct __sk_buff *skb, __u32 out_ifindex, __u32 mode,
                                          __u32 skb_hash)
{
    if (mode == VS_TC_TIER_REDIRECT_PEER)
        return bpf_redirect_peer(out_ifindex, 0);
    if (mode != VS_TC_TIER_REDIRECT_VXLAN)
        return bpf_redirect(out_ifindex, 0);
    struct vs_tc_vxlan_tx *t = bpf_map_lookup_elem(&vx_tx, &out_ifindex);
    if (!t)
        return TC_ACT_SHOT;
    if (skb_hash)
        bpf_set_hash(skb, skb_hash);
    if (t->kind == VS_TC_VXLAN_TX_PLAIN)
        return bpf_redirect(t->vx_ifindex, 0);
    struct bpf_tunnel_key tk;
    __builtin_memset(&tk, 0, sizeof tk);
    tk.tunnel_id = t->vni;
    tk.remote_ipv4 = t->remote;
    tk.local_ipv4 = t->local;
    tk.tunnel_tos = t->tos;
    tk.tunnel_ttl = t->ttl;
    /* Outer UDP checksum on (flags without BPF_F_ZERO_CSUM_TX), and DF set,
     * as user-space transmit and OVS's df_default: an outer packet over the
     * underlay's MTU is dropped by the device, never fragmented. */
    if (bpf_skb_set_tunnel_key(skb, &tk, sizeof tk, BPF_F_DONT_FRAGMENT))
        return TC_ACT_SHOT;
    return bpf_redirect(t->vx_ifindex, 0);
}

#endif
