/* tc_tier.bpf.c — the kernel tc tier: forward established exact flows at
 * tc ingress (tcx) of an afpacket port's netdev, on the skb itself, so GSO
 * super-frames and partial checksums pass untouched (an XDP program on a
 * veth forces the kernel to linearise and copy them).
 *
 * Two programs, loaded by tc_tier.c per port with the process-wide `flows`
 * map (the XDP tier's: xdp_tier_abi.h) and `tc_ports` (tc_tier_abi.h):
 *  - vs_tc_tier_sock, a SOCKET_FILTER on the port's AF_PACKET socket.  The
 *    socket's tap sees each received skb before tc ingress runs, so without
 *    it the socket would copy every frame the tier forwards and user space
 *    would forward it a second time.  It decides for both programs: parses,
 *    looks the key up, and for a hit counts it (per CPU), returns 0 (drop
 *    before the copy) and leaves the verdict and the output in the skb's cb.
 *  - vs_tc_tier, the tcx ingress program: follows the filter's verdict when
 *    there is one (no second parse or lookup); else (no socket yet) decides
 *    itself.  A hit is redirected to the output netdev, into a veth's peer
 *    directly (bpf_redirect_peer: no second pass through the backlog) or
 *    out of it; everything else is TC_ACT_OK (on to the stack; the packet
 *    socket already has its copy).
 * The parse is tier_shared.h's, the XDP tier's.  VLAN-tagged frames (the
 * tag in skb metadata) are never offloaded.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "tier_shared.h"
#include "tc_tier_abi.h"

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, VS_XDP_TIER_MAX_PORTS);
    __type(key, __u32);
    __type(value, __u32);
} tc_ports SEC(".maps");

/* The skb's key, from a stack copy of its first bytes (a socket filter has
 * no direct packet access).  0, or -1 when the tier leaves it alone. */
static __always_inline int skb_key(struct __sk_buff *skb, struct vs_xdp_flow_key *key,
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

/* The tier's decision for one skb: 1 and *out_ifindex, *mode when it
 * forwards it (counted here, once), else 0. */
static __always_inline int decide(struct __sk_buff *skb, __u32 *out_ifindex, __u32 *mode)
{
    struct vs_xdp_flow_key key;
    struct vs_tier_parsed parsed;
    if (skb_key(skb, &key, &parsed))
        return 0;
    struct vs_xdp_flow_val *val = bpf_map_lookup_elem(&flows, &key);
    if (!val)
        return 0;
    __u32 out = val->out_ifindex;
    __u32 *m = bpf_map_lookup_elem(&tc_ports, &out);
    if (!m)
        return 0; /* its output port closed: the datapath decides */
    vs_tier_count(val, skb->len, parsed.tcp_flags);
    *out_ifindex = out;
    *mode = *m;
    return 1;
}

static __always_inline int redirect(__u32 out_ifindex, __u32 mode)
{
    if (mode == VS_TC_TIER_REDIRECT_PEER)
        return bpf_redirect_peer(out_ifindex, 0);
    return bpf_redirect(out_ifindex, 0);
}

/* Decides (parse, lookup, count) for the tc program too: it finds the
 * verdict and the output in the cb and only redirects, so each frame is
 * parsed and looked up once. */
SEC("socket")
int vs_tc_tier_sock(struct __sk_buff *skb)
{
    __u32 out_ifindex = 0, mode = 0;
    int tier = decide(skb, &out_ifindex, &mode);
    skb->cb[VS_TC_TIER_CB_MARK] = VS_TC_TIER_MARK;
    skb->cb[VS_TC_TIER_CB_VERDICT] = tier ? VS_TC_TIER_VERDICT_TIER : VS_TC_TIER_VERDICT_SOCKET;
    skb->cb[VS_TC_TIER_CB_OUT] = out_ifindex;
    skb->cb[VS_TC_TIER_CB_MODE] = mode;
    return tier ? 0 : skb->len;
}

SEC("tc")
int vs_tc_tier(struct __sk_buff *skb)
{
    __u32 out_ifindex, mode;
    if (skb->cb[VS_TC_TIER_CB_MARK] == VS_TC_TIER_MARK) {
        skb->cb[VS_TC_TIER_CB_MARK] = 0; /* a verdict is for this pass only */
        if (skb->cb[VS_TC_TIER_CB_VERDICT] != VS_TC_TIER_VERDICT_TIER)
            return TC_ACT_OK; /* user space has it */
        return redirect(skb->cb[VS_TC_TIER_CB_OUT], skb->cb[VS_TC_TIER_CB_MODE]);
    }
    /* No socket filter ran (the socket is not bound yet, or gone). */
    if (!decide(skb, &out_ifindex, &mode))
        return TC_ACT_OK;
    return redirect(out_ifindex, mode);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
