/* tc_tier.bpf.c — the kernel tc tier: forward established exact flows at
 * tc ingress (tcx) of an afpacket port's netdev, on the skb itself, so GSO
 * super-frames and partial checksums pass untouched (an XDP program on a
 * veth forces the kernel to linearise and copy them).
 *
 * Two programs, loaded by tc_tier.c per port with the process-wide `flows`
 * map (the XDP tier's: xdp_tier_abi.h), `tc_ports` and `vx_tx`
 * (tc_tier_abi.h; the key, lookup and redirect are tc_shared.h's):
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
 *    out of it, or into a vxlan port's tunnel (the kernel vxlan device of
 *    vxlan ports with tc-offload); everything else is TC_ACT_OK (on to the stack; the packet
 *    socket already has its copy).
 * The parse is tier_shared.h's, the XDP tier's.  VLAN-tagged frames (the
 * tag in skb metadata) are never offloaded.
 */
#include "tc_shared.h"

/* The tier's decision for one skb: 1 and *out_ifindex, *mode, *skb_hash
 * when it forwards it (counted here, once), else 0. */
static __always_inline int decide(struct __sk_buff *skb, __u32 *out_ifindex, __u32 *mode,
                                  __u32 *skb_hash)
{
    struct vs_xdp_flow_key key;
    struct vs_tier_parsed parsed;
    if (vs_tc_skb_key(skb, &key, &parsed))
        return 0;
    return vs_tc_lookup(skb, &key, &parsed, out_ifindex, mode, skb_hash);
}

/* Decides (parse, lookup, count) for the tc program too: it finds the
 * verdict and the output in the cb and only redirects, so each frame is
 * parsed and looked up once. */
SEC("socket")
int vs_tc_tier_sock(struct __sk_buff *skb)
{
    __u32 out_ifindex = 0, mode = 0, skb_hash = 0;
    int tier = decide(skb, &out_ifindex, &mode, &skb_hash);
    skb->cb[VS_TC_TIER_CB_MARK] = VS_TC_TIER_MARK;
    skb->cb[VS_TC_TIER_CB_VERDICT] = tier ? VS_TC_TIER_VERDICT_TIER : VS_TC_TIER_VERDICT_SOCKET;
    skb->cb[VS_TC_TIER_CB_OUT] = out_ifindex;
    skb->cb[VS_TC_TIER_CB_MODE] = mode;
    skb->cb[VS_TC_TIER_CB_HASH] = skb_hash;
    return tier ? 0 : skb->len;
}

SEC("tc")
int vs_tc_tier(struct __sk_buff *skb)
{
    __u32 out_ifindex, mode, skb_hash;
    if (skb->cb[VS_TC_TIER_CB_MARK] == VS_TC_TIER_MARK) {
        skb->cb[VS_TC_TIER_CB_MARK] = 0; /* a verdict is for this pass only */
        if (skb->cb[VS_TC_TIER_CB_VERDICT] != VS_TC_TIER_VERDICT_TIER)
            return TC_ACT_OK; /* user space has it */
        return vs_tc_redirect(skb, skb->cb[VS_TC_TIER_CB_OUT], skb->cb[VS_TC_TIER_CB_MODE],
                              skb->cb[VS_TC_TIER_CB_HASH]);
    }
    /* No socket filter ran (the socket is not bound yet, or gone). */
    if (!decide(skb, &out_ifindex, &mode, &skb_hash))
        return TC_ACT_OK;
    return vs_tc_redirect(skb, out_ifindex, mode, skb_hash);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
