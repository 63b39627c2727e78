/* packet_edit.c — set-field rewrites with incremental checksum updates. */
#include "packet_edit.h"

#include <string.h>

#include "flow_key.h"

#define ETH_ADDRS_LEN 12 /* destination and source MAC */
#define VLAN_TAG_LEN 4
#define IP_PROTO_SCTP 132
#define SCTP_HDR_LEN 12
#define SCTP_CSUM_OFF 8
#define MPLS_LSE_LEN 4
#define MPLS_BOS 0x100

struct layout {
    uint32_t l3;        /* offset of the IP header */
    uint32_t l4;        /* offset of the L4 header, 0 if none */
    uint16_t ethertype; /* 0x0800, 0x86dd, or other */
    uint8_t proto;
};

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void find_layout(const struct vs_packet *pkt, struct layout *lo)
{
    memset(lo, 0, sizeof *lo);
    const uint8_t *d = pkt->data;
    uint32_t off = 12;
    if (pkt->len < 14)
        return;
    uint16_t type = rd16(d + off);
    if ((type == 0x8100 || type == 0x88a8) && pkt->len >= 18) {
        off += 4;
        type = rd16(d + off);
    }
    off += 2;
    lo->ethertype = type;
    lo->l3 = off;
    if (type == 0x0800 && pkt->len >= off + 20) {
        uint32_t ihl = (uint32_t)(d[off] & 0x0f) * 4;
        lo->proto = d[off + 9];
        if (!(rd16(d + off + 6) & 0x1fff) && ihl >= 20 && pkt->len >= off + ihl)
            lo->l4 = off + ihl; /* first fragment or whole packet */
    } else if (type == 0x86dd && pkt->len >= off + 40) {
        lo->proto = d[off + 6]; /* extension headers: L4 edits not supported */
        lo->l4 = off + 40;
    } else if (type == 0x0806 && pkt->len >= off + 28) {
        /* ARP for Ethernet/IPv4: fixed offsets from l3 */
    } else {
        lo->ethertype = 0;
    }
}

/* RFC 1624 eqn. 3 on a complemented checksum, 16 bits at a time. */
static uint16_t csum_replace(uint16_t sum, const uint8_t *old, const uint8_t *new, int len)
{
    uint32_t acc = (uint16_t)~sum;
    for (int i = 0; i < len; i += 2) {
        acc += (uint16_t)~rd16(old + i);
        acc += rd16(new + i);
    }
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)~acc;
}

/* Where the L4 checksum lives, or NULL. */
static uint8_t *l4_csum(struct vs_packet *pkt, const struct layout *lo, uint32_t *min_len)
{
    if (!lo->l4)
        return NULL;
    uint32_t at;
    if (lo->proto == 6)
        at = lo->l4 + 16, *min_len = lo->l4 + 20;
    else if (lo->proto == 17)
        at = lo->l4 + 6, *min_len = lo->l4 + 8;
    else if (lo->proto == 58 && lo->ethertype == 0x86dd)
        at = lo->l4 + 2, *min_len = lo->l4 + 4;
    else
        return NULL;
    return pkt->len >= *min_len ? pkt->data + at : NULL;
}

static int l4_partial(const struct vs_packet *pkt, const struct layout *lo)
{
    return (pkt->vnet.flags & VS_VNET_F_NEEDS_CSUM) && pkt->vnet.csum_start == lo->l4;
}

/* An address in the pseudo-header changed from old to new. */
static void update_pseudo(struct vs_packet *pkt, const struct layout *lo, const uint8_t *old,
                          const uint8_t *new, int len)
{
    uint32_t min_len;
    uint8_t *c = l4_csum(pkt, lo, &min_len);
    if (!c)
        return;
    uint16_t sum = rd16(c);
    if (l4_partial(pkt, lo)) {
        wr16(c, (uint16_t)~csum_replace((uint16_t)~sum, old, new, len));
    } else if (lo->proto == 17 && lo->ethertype == 0x0800 && sum == 0) {
        return; /* IPv4 UDP without a checksum stays without */
    } else {
        sum = csum_replace(sum, old, new, len);
        if (lo->proto == 17 && sum == 0)
            sum = 0xffff;
        wr16(c, sum);
    }
}

static int edit_ipv4(struct vs_packet *pkt, const struct layout *lo, int field,
                     const uint8_t *value)
{
    if (lo->ethertype != 0x0800)
        return -1;
    uint8_t *ip = pkt->data + lo->l3;
    uint8_t old[4], new[4];
    int at;
    switch (field) {
    case VS_EDIT_IPV4_SRC:
    case VS_EDIT_IPV4_DST:
        at = field == VS_EDIT_IPV4_SRC ? 12 : 16;
        memcpy(old, ip + at, 4);
        memcpy(ip + at, value, 4);
        wr16(ip + 10, csum_replace(rd16(ip + 10), old, value, 4));
        update_pseudo(pkt, lo, old, value, 4);
        return 0;
    case VS_EDIT_IPV4_TOS:
    case VS_EDIT_IPV4_TTL:
        at = field == VS_EDIT_IPV4_TOS ? 0 : 8; /* the 16-bit word holding it */
        memcpy(old, ip + at, 2);
        memcpy(new, ip + at, 2);
        new[field == VS_EDIT_IPV4_TOS ? 1 : 0] = value[0];
        memcpy(ip + at, new, 2);
        wr16(ip + 10, csum_replace(rd16(ip + 10), old, new, 2));
        return 0;
    default:
        return -1;
    }
}

static int edit_ipv6(struct vs_packet *pkt, const struct layout *lo, int field,
                     const uint8_t *value)
{
    if (lo->ethertype != 0x86dd)
        return -1;
    uint8_t *addr = pkt->data + lo->l3 + (field == VS_EDIT_IPV6_SRC ? 8 : 24);
    uint8_t old[16];
    memcpy(old, addr, 16);
    memcpy(addr, value, 16);
    update_pseudo(pkt, lo, old, value, 16);
    return 0;
}

/* CRC32c (Castagnoli, reflected polynomial 0x82f63b78), bitwise: SCTP port
 * rewrites are rare enough that a table is not worth its cache lines. */
static uint32_t crc32c(const uint8_t *p, uint32_t len)
{
    uint32_t crc = 0xffffffffu;
    for (uint32_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
    }
    return ~crc;
}

/* The end of the IP payload (a short frame's Ethernet padding excluded). */
static uint32_t l3_end(const struct vs_packet *pkt, const struct layout *lo)
{
    const uint8_t *ip = pkt->data + lo->l3;
    uint32_t end = lo->ethertype == 0x0800 ? lo->l3 + rd16(ip + 2) : lo->l3 + 40 + rd16(ip + 4);
    return end < pkt->len ? end : pkt->len;
}

static int edit_sctp_port(struct vs_packet *pkt, const struct layout *lo, int field,
                          const uint8_t *value)
{
    uint32_t end = l3_end(pkt, lo);
    if (!lo->l4 || end < lo->l4 + SCTP_HDR_LEN)
        return -1;
    uint8_t *sctp = pkt->data + lo->l4;
    memcpy(sctp + (field == VS_EDIT_TP_SRC ? 0 : 2), value, 2);
    memset(sctp + SCTP_CSUM_OFF, 0, 4);
    uint32_t crc = crc32c(sctp, end - lo->l4);
    /* The CRC goes on the wire least significant byte first (RFC 4960 B). */
    for (int i = 0; i < 4; i++)
        sctp[SCTP_CSUM_OFF + i] = (uint8_t)(crc >> (8 * i));
    return 0;
}

static int edit_port(struct vs_packet *pkt, const struct layout *lo, int field,
                     const uint8_t *value)
{
    if (lo->proto == IP_PROTO_SCTP && (lo->ethertype == 0x0800 || lo->ethertype == 0x86dd))
        return edit_sctp_port(pkt, lo, field, value);
    uint32_t min_len;
    uint8_t *c = l4_csum(pkt, lo, &min_len);
    if (!c || (lo->proto != 6 && lo->proto != 17))
        return -1;
    uint8_t *port = pkt->data + lo->l4 + (field == VS_EDIT_TP_SRC ? 0 : 2);
    uint8_t old[2];
    memcpy(old, port, 2);
    memcpy(port, value, 2);
    uint16_t sum = rd16(c);
    if (l4_partial(pkt, lo) || (lo->proto == 17 && sum == 0))
        return 0; /* not summed yet, or no checksum at all */
    sum = csum_replace(sum, old, value, 2);
    if (lo->proto == 17 && sum == 0)
        sum = 0xffff;
    wr16(c, sum);
    return 0;
}

/* IPv6 header fields outside the pseudo-header: no checksum changes. */
static int edit_ipv6_hdr(struct vs_packet *pkt, const struct layout *lo, int field,
                         const uint8_t *value)
{
    if (lo->ethertype != 0x86dd)
        return -1;
    uint8_t *ip = pkt->data + lo->l3;
    switch (field) {
    case VS_EDIT_IPV6_TC:
        ip[0] = (uint8_t)((ip[0] & 0xf0) | (value[0] >> 4));
        ip[1] = (uint8_t)((ip[1] & 0x0f) | (value[0] << 4));
        return 0;
    case VS_EDIT_IPV6_HLIMIT:
        ip[7] = value[0];
        return 0;
    default: /* VS_EDIT_IPV6_FLABEL */
        ip[1] = (uint8_t)((ip[1] & 0xf0) | (value[1] & 0x0f));
        ip[2] = value[2];
        ip[3] = value[3];
        return 0;
    }
}

static int edit_icmp(struct vs_packet *pkt, const struct layout *lo, int field,
                     const uint8_t *value)
{
    if (!lo->l4 || !((lo->proto == 1 && lo->ethertype == 0x0800) ||
                     (lo->proto == 58 && lo->ethertype == 0x86dd)) ||
        pkt->len < lo->l4 + 4)
        return -1;
    uint8_t *icmp = pkt->data + lo->l4;
    uint8_t old[2], new[2];
    memcpy(old, icmp, 2);
    memcpy(new, icmp, 2);
    new[field == VS_EDIT_ICMP_TYPE ? 0 : 1] = value[0];
    memcpy(icmp, new, 2);
    if (!l4_partial(pkt, lo))
        wr16(icmp + 2, csum_replace(rd16(icmp + 2), old, new, 2));
    return 0;
}

/* IPv6 neighbor discovery: the target address, or the link-layer address
 * option (source for a solicitation, target for an advertisement). */
static int edit_nd(struct vs_packet *pkt, const struct layout *lo, int field,
                   const uint8_t *value)
{
    if (!lo->l4 || lo->ethertype != 0x86dd || lo->proto != 58 || pkt->len < lo->l4 + 24)
        return -1;
    uint8_t *icmp = pkt->data + lo->l4;
    if (icmp[0] != 135 && icmp[0] != 136)
        return -1;
    uint8_t *at = NULL;
    int len = 16;
    if (field == VS_EDIT_ND_TARGET) {
        at = icmp + 8;
    } else {
        uint8_t want = field == VS_EDIT_ND_SLL ? 1 : 2;
        if (icmp[0] != (field == VS_EDIT_ND_SLL ? 135 : 136))
            return -1;
        for (uint32_t opt = lo->l4 + 24; pkt->len >= opt + 8 && pkt->data[opt + 1];
             opt += pkt->data[opt + 1] * 8u) {
            if (pkt->data[opt] == want) {
                at = pkt->data + opt + 2;
                break;
            }
        }
        len = 6;
    }
    if (!at)
        return -1;
    uint8_t old[16];
    memcpy(old, at, (size_t)len);
    memcpy(at, value, (size_t)len);
    if (!l4_partial(pkt, lo))
        wr16(icmp + 2, csum_replace(rd16(icmp + 2), old, value, len));
    return 0;
}

static int edit_arp(struct vs_packet *pkt, const struct layout *lo, int field,
                    const uint8_t *value)
{
    static const uint8_t at[] = {[VS_EDIT_ARP_OP] = 6,   [VS_EDIT_ARP_SHA] = 8,
                                 [VS_EDIT_ARP_SPA] = 14, [VS_EDIT_ARP_THA] = 18,
                                 [VS_EDIT_ARP_TPA] = 24};
    static const uint8_t width[] = {[VS_EDIT_ARP_OP] = 2,  [VS_EDIT_ARP_SHA] = 6,
                                    [VS_EDIT_ARP_SPA] = 4, [VS_EDIT_ARP_THA] = 6,
                                    [VS_EDIT_ARP_TPA] = 4};
    if (lo->ethertype != 0x0806)
        return -1;
    memcpy(pkt->data + lo->l3 + at[field], value, width[field]);
    return 0;
}

uint32_t vs_ethertype_offset(const struct vs_packet *pkt)
{
    if (pkt->len >= 18 && (rd16(pkt->data + 12) == 0x8100 || rd16(pkt->data + 12) == 0x88a8))
        return 16;
    return 12;
}

/* The outer tag's TCI; its TPID (0x8100 or 0x88a8) stays as it is. */
static int edit_vlan_tci(struct vs_packet *pkt, const uint8_t *value)
{
    if (vs_ethertype_offset(pkt) == ETH_ADDRS_LEN)
        return -1;
    memcpy(pkt->data + ETH_ADDRS_LEN + 2, value, 2);
    return 0;
}

static int edit_pbb_isid(struct vs_packet *pkt, const uint8_t *value)
{
    uint32_t off = vs_ethertype_offset(pkt);
    if (pkt->len < off + 2 + VS_PBB_ITAG_LEN || rd16(pkt->data + off) != VS_ETH_TYPE_PBB)
        return -1;
    memcpy(pkt->data + off + 3, value + 1, 3); /* after the PCP/DEI/UCA byte */
    return 0;
}

/* copy_ttl_in: the IP header under the bottom of the label stack. */
static int edit_inner_ttl(struct vs_packet *pkt, const uint8_t *value)
{
    uint32_t off = vs_ethertype_offset(pkt);
    if (pkt->len < off + 2 || (rd16(pkt->data + off) != 0x8847 && rd16(pkt->data + off) != 0x8848))
        return -1;
    off += 2;
    while (pkt->len >= off + MPLS_LSE_LEN && !(rd16(pkt->data + off + 2) & MPLS_BOS))
        off += MPLS_LSE_LEN;
    off += MPLS_LSE_LEN;
    if (pkt->len < off + 20)
        return -1;
    uint8_t *ip = pkt->data + off;
    if (ip[0] >> 4 == 4) {
        uint8_t old[2] = {ip[8], ip[9]}, new[2] = {value[0], ip[9]};
        ip[8] = value[0];
        wr16(ip + 10, csum_replace(rd16(ip + 10), old, new, 2));
        return 0;
    }
    if (ip[0] >> 4 == 6 && pkt->len >= off + 40) {
        ip[7] = value[0];
        return 0;
    }
    return -1;
}

int vs_packet_push_pbb(struct vs_packet *pkt, uint16_t ethertype)
{
    if (pkt->data - pkt->buf < VS_PBB_PUSH_LEN || pkt->len < ETH_ADDRS_LEN)
        return 0;
    pkt->data -= VS_PBB_PUSH_LEN;
    memcpy(pkt->data, pkt->data + VS_PBB_PUSH_LEN, ETH_ADDRS_LEN);
    wr16(pkt->data + ETH_ADDRS_LEN, ethertype);
    memset(pkt->data + ETH_ADDRS_LEN + 2, 0, VS_PBB_ITAG_LEN);
    pkt->len += VS_PBB_PUSH_LEN;
    return VS_PBB_PUSH_LEN;
}

int vs_packet_pop_pbb(struct vs_packet *pkt)
{
    uint32_t off = vs_ethertype_offset(pkt);
    uint32_t cut = off + 2 + VS_PBB_ITAG_LEN;
    if (pkt->len < cut + ETH_ADDRS_LEN + 2 || rd16(pkt->data + off) != VS_ETH_TYPE_PBB)
        return 0;
    pkt->data += cut;
    pkt->len -= cut;
    return -(int)cut;
}

int vs_packet_push_vlan(struct vs_packet *pkt, uint16_t tpid, uint16_t tci)
{
    if (pkt->data - pkt->buf < VLAN_TAG_LEN || pkt->len < ETH_ADDRS_LEN)
        return 0;
    pkt->data -= VLAN_TAG_LEN;
    memmove(pkt->data, pkt->data + VLAN_TAG_LEN, ETH_ADDRS_LEN);
    wr16(pkt->data + ETH_ADDRS_LEN, tpid);
    wr16(pkt->data + ETH_ADDRS_LEN + 2, tci);
    pkt->len += VLAN_TAG_LEN;
    return VLAN_TAG_LEN;
}

int vs_packet_edit(struct vs_packet *pkt, int field, const uint8_t *value)
{
    if (field == VS_EDIT_VLAN_TCI)
        return edit_vlan_tci(pkt, value);
    if (field == VS_EDIT_PBB_ISID)
        return edit_pbb_isid(pkt, value);
    if (field == VS_EDIT_INNER_TTL)
        return edit_inner_ttl(pkt, value);
    if (field == VS_EDIT_ETH_SRC || field == VS_EDIT_ETH_DST) {
        if (pkt->len < 12)
            return -1;
        memcpy(pkt->data + (field == VS_EDIT_ETH_SRC ? 6 : 0), value, 6);
        return 0;
    }
    if (field == VS_EDIT_MPLS_LSE) {
        uint32_t off = vs_ethertype_offset(pkt);
        if (pkt->len < off + 6 || (rd16(pkt->data + off) != 0x8847 && rd16(pkt->data + off) != 0x8848))
            return -1;
        memcpy(pkt->data + off + 2, value, 4);
        return 0;
    }
    struct layout lo;
    find_layout(pkt, &lo);
    switch (field) {
    case VS_EDIT_IPV4_SRC:
    case VS_EDIT_IPV4_DST:
    case VS_EDIT_IPV4_TOS:
    case VS_EDIT_IPV4_TTL:
        return edit_ipv4(pkt, &lo, field, value);
    case VS_EDIT_IPV6_SRC:
    case VS_EDIT_IPV6_DST:
        return edit_ipv6(pkt, &lo, field, value);
    case VS_EDIT_TP_SRC:
    case VS_EDIT_TP_DST:
        return edit_port(pkt, &lo, field, value);
    case VS_EDIT_IPV6_TC:
    case VS_EDIT_IPV6_HLIMIT:
    case VS_EDIT_IPV6_FLABEL:
        return edit_ipv6_hdr(pkt, &lo, field, value);
    case VS_EDIT_ICMP_TYPE:
    case VS_EDIT_ICMP_CODE:
        return edit_icmp(pkt, &lo, field, value);
    case VS_EDIT_ND_TARGET:
    case VS_EDIT_ND_SLL:
    case VS_EDIT_ND_TLL:
        return edit_nd(pkt, &lo, field, value);
    case VS_EDIT_ARP_OP:
    case VS_EDIT_ARP_SHA:
    case VS_EDIT_ARP_SPA:
    case VS_EDIT_ARP_THA:
    case VS_EDIT_ARP_TPA:
        return edit_arp(pkt, &lo, field, value);
    default:
        return -1;
    }
}
