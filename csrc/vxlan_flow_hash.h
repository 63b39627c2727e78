/* vxlan_flow_hash.h — the inner-flow hash behind a VXLAN packet's outer UDP
 * source port, one definition for user space (vxlan_sport.c) and for the tc
 * tier's programs (bpf/tc_shared.h).
 *
 * Design note.  RFC 7348 §5: the outer source port is a hash of the inner
 * flow, so that the underlay's ECMP and RSS keep one flow's packets on one
 * path, in order.  With options:tc-offload a vxlan port's frames leave by
 * two paths: user space sends a flow's first packets (and anything the tier
 * leaves to it) from the port of its pool that the hash picks
 * (vxlan_sport.h); the tier sends the rest through the kernel vxlan device,
 * which takes the port from the skb's hash (the kernel's
 * udp_flow_src_port: hash ^= hash << 16, then scaled into the device's
 * range [min, max)).  Left to the kernel, a flow changed source port once
 * the tier took it over.  So the tier's program computes this same hash
 * from the flow key, picks the same pool port, and gives the skb the hash
 * that the kernel's scaling turns into exactly that port
 * (vxlan_skb_hash_for_port); the device's range is the pool's
 * (VXLAN_SPORT_MIN, VXLAN_SPORT_END), half-open as the kernel's is.
 *
 * Words are 4 bytes as they lie in the frame, read as one native word (what
 * memcpy into a uint32_t gives), so both sides hash the same bytes however
 * they hold them: user space reads the frame, the programs the flow key
 * (addresses in network order, as the frame has them).
 */
#ifndef VS_VXLAN_FLOW_HASH_H
#define VS_VXLAN_FLOW_HASH_H 1

#include <stdint.h>

#define VXLAN_SPORT_MIN 49152 /* RFC 7348 §5: the dynamic/private range */
#define VXLAN_SPORT_END 65535 /* first port past the range (the kernel's is half-open) */
#define VXLAN_FLOW_HASH_SEED 0x9e3779b9u /* any odd constant */
#define VXLAN_FLOW_PROTO_TCP 6
#define VXLAN_FLOW_PROTO_UDP 17
#define VXLAN_FLOW_PROTO_SCTP 132

static inline uint32_t vxlan_hash_mix(uint32_t h, uint32_t w)
{
    /* murmur3's per-word step */
    w *= 0xcc9e2d51u;
    w = w << 15 | w >> 17;
    w *= 0x1b873593u;
    h ^= w;
    h = h << 13 | h >> 19;
    return h * 5 + 0xe6546b64u;
}

static inline uint32_t vxlan_hash_finish(uint32_t h) /* murmur3's finaliser */
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    return h ^ h >> 16;
}

static inline int vxlan_hash_has_ports(uint8_t proto)
{
    return proto == VXLAN_FLOW_PROTO_TCP || proto == VXLAN_FLOW_PROTO_UDP ||
           proto == VXLAN_FLOW_PROTO_SCTP;
}

/* An IPv4 flow's hash: source and destination address words, the
 * protocol, and the ports word (source and destination port) when the
 * packet has ports (has_l4: not a fragment, header present) and the
 * protocol carries them. */
static inline uint32_t vxlan_flow_hash_ipv4(uint32_t src, uint32_t dst, uint8_t proto, int has_l4,
                                            uint32_t ports)
{
    uint32_t h = vxlan_hash_mix(vxlan_hash_mix(VXLAN_FLOW_HASH_SEED, src), dst);
    h = vxlan_hash_mix(h, proto);
    if (has_l4 && vxlan_hash_has_ports(proto))
        h = vxlan_hash_mix(h, ports);
    return vxlan_hash_finish(h);
}

/* The skb hash for which the kernel vxlan device, configured with the
 * range [VXLAN_SPORT_MIN, VXLAN_SPORT_END), sends from `port` (in that
 * range).  The kernel takes x = hash ^ hash << 16 and sends from
 * min + (x * (end - min)) >> 32: x is the smallest value that lands on port,
 * and the hash the one whose xor gives x (the low half is kept, the high
 * half was xor'ed with it).  Never 0 (the kernel would hash the Ethernet
 * addresses instead): port min is reached by x = 1 too. */
static inline uint32_t vxlan_skb_hash_for_port(uint16_t port)
{
    const uint64_t range = VXLAN_SPORT_END - VXLAN_SPORT_MIN;
    uint64_t k = (uint64_t)(port - VXLAN_SPORT_MIN);
    uint32_t x = (uint32_t)(((k << 32) + range - 1) / range);
    if (!x)
        x = 1;
    return (x & 0xffffu) | (((x >> 16) ^ (x & 0xffffu)) << 16);
}

#endif
