/* xdp_tier.bpf.c — the kernel XDP tier: forward established exact flows
 * in the driver, hand everything else to the AF_XDP socket of its queue.
 *
 * Compiled by csrc/build_datapath.py with clang -target bpf (when clang and
 * libbpf are installed) and embedded in the extension; xdp_tier.c loads one
 * instance per afxdp port with xdp-offload, each with its own XSKMAP and the
 * process-wide `flows` and `tx_ports` maps.
 *
 * The parse is tier_shared.h's, shared with the tc tier (tc_tier.bpf.c):
 * every frame outside its class goes to AF_XDP untouched, where vs_parse()
 * sees it, and an exact entry is only ever hit by a packet the datapath
 * would classify the same way.
 */
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "tier_shared.h"

#define CSUM_CHUNK 256
#define CSUM_MAX_CHUNKS 6 /* 1536 bytes: an MTU-sized segment */

struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, VS_XDP_TIER_MAX_QUEUES);
    __type(key, __u32);
    __type(value, __u32);
} xsks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
    __uint(max_entries, VS_XDP_TIER_MAX_PORTS);
    __type(key, __u32);
    __type(value, __u32);
} tx_ports SEC(".maps");

static __always_inline int to_socket(struct xdp_md *ctx)
{
    /* As xdp_prog.c's program: no socket on the queue → the kernel stack. */
    return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

/* A veth peer's CHECKSUM_PARTIAL frame reaches XDP as it is: its TCP/UDP
 * checksum field holds only the pseudo-header sum, which the receiver would
 * reject.  The test is vs_offload_rx_fix_csum()'s (offload.h): the field
 * equals the pseudo-header sum (a complete checksum that happens to equal it
 * is recomputed to the same value, so it is safe).  Returns 1 if so. */
static __always_inline int partial_csum(const __u8 *ip, const __u8 *csum_field)
{
    __u32 sum = rd16(ip + 12) + rd16(ip + 14) + rd16(ip + 16) + rd16(ip + 18);
    sum += ip[9];                            /* protocol */
    sum += (__u32)(rd16(ip + 2) - IPV4_HLEN); /* L4 length, from the IP header */
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return rd16(csum_field) == sum;
}

/* Completes such a checksum here: since the field holds the pseudo-header
 * sum, the one's-complement sum of the L4 bytes as they are (field
 * included) is the sum of everything, and its complement is the checksum.
 * The bytes are summed in CSUM_CHUNK pieces copied to the stack
 * (bpf_csum_diff wants a multiple of 4 bytes, at most 512).  Returns 0, or
 * -1 for a segment too long to sum here (it goes to user space). */
static __always_inline int complete_csum(struct xdp_md *ctx, __u32 l4_off, __u32 l4_len,
                                         __u16 *field, int udp)
{
    __u8 buf[CSUM_CHUNK];
    __s64 sum = 0;
    if (l4_len > CSUM_CHUNK * CSUM_MAX_CHUNKS)
        return -1;
    for (int i = 0; i < CSUM_MAX_CHUNKS; i++) {
        __u32 off = (__u32)i * CSUM_CHUNK;
        if (off >= l4_len)
            break;
        __u32 n = l4_len - off;
        if (n >= CSUM_CHUNK) {
            n = CSUM_CHUNK;
        } else {
            __builtin_memset(buf, 0, sizeof buf); /* the pad to a word is zero */
            n &= CSUM_CHUNK - 1;
            if (n == 0)
                break;
        }
        if (bpf_xdp_load_bytes(ctx, l4_off + off, buf, n))
            return -1;
        __u32 words = (n + 3) & ~3u;
        if (words > CSUM_CHUNK)
            return -1;
        sum = bpf_csum_diff(NULL, 0, (__be32 *)buf, words, (__u32)sum);
        if (sum < 0)
            return -1;
    }
    __u32 folded = (__u32)sum;
    folded = (folded & 0xffff) + (folded >> 16);
    folded = (folded & 0xffff) + (folded >> 16);
    __u16 csum = (__u16)~folded;
    if (udp && !csum)
        csum = 0xffff; /* 0 means "no checksum" in UDP over IPv4 */
    *field = csum;     /* summed in memory order: stored as it is */
    return 0;
}
SEC("xdp")
int vs_xdp_tier(struct xdp_md *ctx)
{
    const __u8 *data = (const __u8 *)(long)ctx->data;
    const __u8 *end = (const __u8 *)(long)ctx->data_end;
    struct vs_xdp_flow_key key;
    struct vs_tier_parsed parsed;

    if (vs_tier_parse(data, end, &key, &parsed))
        return to_socket(ctx);
    key.in_ifindex = ctx->ingress_ifindex;
    struct vs_xdp_flow_val *val = bpf_map_lookup_elem(&flows, &key);
    if (!val)
        return to_socket(ctx);
    const __u8 *ip = data + ETH_HLEN;
    if (parsed.csum_field && partial_csum(ip, parsed.csum_field)
        && complete_csum(ctx, ETH_HLEN + IPV4_HLEN, rd16(ip + 2) - IPV4_HLEN,
                         (__u16 *)parsed.csum_field, parsed.udp))
        return to_socket(ctx);
    vs_tier_count(val, (__u64)(end - data), parsed.tcp_flags);
    /* An output netdev that left the devmap: the datapath decides instead. */
    return bpf_redirect_map(&tx_ports, val->out_ifindex, 0) == XDP_REDIRECT
               ? XDP_REDIRECT : to_socket(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
