/* flow_key.c — one-pass parser: Ethernet, 802.1Q, PBB I-TAG, ARP, IPv4, IPv6, TCP/UDP/ICMP. */
#include "flow_key.h"

#include <string.h>

#define ETH_HLEN 14

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static int parse_l4(const uint8_t *p, uint32_t left, struct vs_key *k,
                    uint16_t *tcp_flags)
{
    switch (k->nw_proto) {
    case 6: /* TCP */
        if (left < 20)
            return -1;
        k->tp_src = rd16(p);
        k->tp_dst = rd16(p + 2);
        *tcp_flags = rd16(p + 12) & 0x0fff;
        return 0;
    case 17:  /* UDP */
    case 132: /* SCTP */
        if (left < 8)
            return -1;
        k->tp_src = rd16(p);
        k->tp_dst = rd16(p + 2);
        return 0;
    case 1:  /* ICMP */
    case 58: /* ICMPv6 */
        if (left < 4)
            return -1;
        k->tp_src = p[0];
        k->tp_dst = p[1];
        return 0;
    default:
        return 0;
    }
}

static int parse_ipv4(const uint8_t *p, uint32_t left, struct vs_key *k,
                      uint16_t *tcp_flags)
{
    if (left < 20 || (p[0] >> 4) != 4)
        return -1;
    uint32_t ihl = (uint32_t)(p[0] & 0x0f) * 4;
    if (ihl < 20 || left < ihl)
        return -1;
    k->nw_tos = p[1];
    uint16_t frag = rd16(p + 6);
    if (frag & 0x3fff) {
        k->nw_frag = VS_FRAG_ANY;
        if (frag & 0x1fff)
            k->nw_frag |= VS_FRAG_LATER;
    }
    k->nw_ttl = p[8];
    k->nw_proto = p[9];
    memcpy(&k->nw_src, p + 12, 4);
    memcpy(&k->nw_dst, p + 16, 4);
    if (k->nw_frag & VS_FRAG_LATER)
        return 0;
    return parse_l4(p + ihl, left - ihl, k, tcp_flags);
}

static int parse_ipv6(const uint8_t *p, uint32_t left, struct vs_key *k,
                      uint16_t *tcp_flags)
{
    if (left < 40 || (p[0] >> 4) != 6)
        return -1;
    k->nw_tos = (uint8_t)(rd16(p) >> 4);
    k->nw_ttl = p[7];
    memcpy(k->ipv6_src, p + 8, 16);
    memcpy(k->ipv6_dst, p + 24, 16);
    uint8_t next = p[6];
    p += 40;
    left -= 40;
    /* Walk the extension headers that can precede the transport header. */
    for (int i = 0; i < 8; i++) {
        if (next == 0 || next == 43 || next == 60) { /* hop-by-hop, routing, dstopts */
            if (left < 8)
                return -1;
            uint32_t hlen = ((uint32_t)p[1] + 1) * 8;
            if (left < hlen)
                return -1;
            next = p[0];
            p += hlen;
            left -= hlen;
        } else if (next == 44) { /* fragment */
            if (left < 8)
                return -1;
            uint16_t off = rd16(p + 2);
            k->nw_frag = VS_FRAG_ANY;
            if (off & 0xfff8)
                k->nw_frag |= VS_FRAG_LATER;
            next = p[0];
            p += 8;
            left -= 8;
        } else {
            break;
        }
    }
    k->nw_proto = next;
    if (k->nw_frag & VS_FRAG_LATER)
        return 0;
    return parse_l4(p, left, k, tcp_flags);
}

static int parse_arp(const uint8_t *p, uint32_t left, struct vs_key *k)
{
    if (left < 28)
        return -1;
    /* Only Ethernet/IPv4 ARP has the fields we key on. */
    if (rd16(p) == 1 && rd16(p + 2) == 0x0800 && p[4] == 6 && p[5] == 4) {
        uint16_t op = rd16(p + 6);
        k->nw_proto = op <= 0xff ? (uint8_t)op : 0;
        memcpy(&k->nw_src, p + 14, 4);
        memcpy(&k->nw_dst, p + 24, 4);
    }
    return 0;
}

int vs_parse(const uint8_t *frame, uint32_t len, struct vs_key *k, uint16_t *tcp_flags)
{
    uint32_t in_port = k->in_port;
    memset(k, 0, sizeof *k);
    k->in_port = in_port;
    *tcp_flags = 0;
    if (len < ETH_HLEN)
        return -1;
    memcpy(k->dl_dst, frame, 6);
    memcpy(k->dl_src, frame + 6, 6);
    uint32_t off = 12;
    uint16_t type = rd16(frame + off);
    if (type == 0x8100 || type == 0x88a8) {
        if (len < off + 6)
            return -1;
        k->vlan_tci = (uint16_t)(rd16(frame + off + 2) | VS_VLAN_CFI);
        off += 4;
        type = rd16(frame + off);
    }
    off += 2;
    if (type < 0x600)
        type = 0x05ff; /* 802.3 length field: OVS's "no Ethertype" value */
    k->dl_type = type;
    const uint8_t *l3 = frame + off;
    uint32_t left = len - off;
    switch (type) {
    case 0x0800:
        return parse_ipv4(l3, left, k, tcp_flags);
    case 0x86dd:
        return parse_ipv6(l3, left, k, tcp_flags);
    case 0x0806:
        return parse_arp(l3, left, k);
    case VS_ETH_TYPE_PBB:
        if (left < VS_PBB_ITAG_LEN)
            return -1;
        k->pbb_isid = (uint32_t)(l3[1] << 16 | l3[2] << 8 | l3[3]);
        return 0;
    default:
        return 0;
    }
}
