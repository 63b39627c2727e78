/* offload.c — checksum completion and GSO segmentation in software. */
#include "offload.h"
#include "inet_csum.h"

#include <string.h>

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* One's-complement sum of big-endian 16-bit words; n must be even except
 * for the last piece of a sum.  The words are summed by inet_csum.h, whose
 * folded result converts to this host-order sum (RFC 1071 §2(B)). */
static uint64_t csum_add(uint64_t sum, const uint8_t *p, uint32_t n)
{
    return sum + vs_csum_be(p, n);
}

static uint16_t csum_fold(uint64_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

int vs_offload_csum(uint8_t *frame, uint32_t len, const struct vs_vnet_hdr *vnet)
{
    if (!(vnet->flags & VS_VNET_F_NEEDS_CSUM))
        return 0;
    uint32_t start = vnet->csum_start, field = start + vnet->csum_offset;
    if (start >= len || field + 2 > len)
        return VS_OFFLOAD_EMALFORMED;
    /* The field already holds the pseudo-header sum: sum over it too. */
    uint16_t c = csum_fold(csum_add(0, frame + start, len - start));
    if (c == 0 && vnet->csum_offset == 6) /* UDP: 0 means "no checksum" */
        c = 0xffff;
    wr16(frame + field, c);
    return 0;
}

static uint16_t fold16(uint64_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)sum;
}

int vs_offload_rx_fix_csum(uint8_t *f, uint32_t len)
{
    if (len < 14 + 20)
        return 0;
    uint32_t off = 14;
    uint16_t type = rd16(f + 12);
    for (int tags = 0; tags < 2 && (type == 0x8100 || type == 0x88a8); tags++) {
        if (off + 4 > len)
            return 0;
        type = rd16(f + off + 2);
        off += 4;
    }
    uint32_t l4, l4len;
    uint8_t proto;
    uint64_t pseudo;
    if (type == 0x0800) {
        if (off + 20 > len || (f[off] >> 4) != 4 || (rd16(f + off + 6) & 0x3fff))
            return 0; /* not IPv4, or a fragment */
        uint32_t ihl = (uint32_t)(f[off] & 15) * 4, tot = rd16(f + off + 2);
        if (ihl < 20 || tot < ihl || off + tot > len)
            return 0;
        proto = f[off + 9];
        l4 = off + ihl;
        l4len = tot - ihl;
        pseudo = csum_add(0, f + off + 12, 8);
    } else if (type == 0x86dd) {
        if (off + 40 > len || (f[off] >> 4) != 6)
            return 0;
        proto = f[off + 6]; /* extension headers: left alone */
        l4 = off + 40;
        l4len = rd16(f + off + 4);
        if (l4 + l4len > len)
            return 0;
        pseudo = csum_add(0, f + off + 8, 32);
    } else {
        return 0;
    }
    uint32_t field;
    if (proto == 6 && l4len >= 20)
        field = l4 + 16;
    else if (proto == 17 && l4len >= 8)
        field = l4 + 6;
    else
        return 0;
    pseudo += (uint64_t)proto + l4len;
    if (rd16(f + field) != fold16(pseudo))
        return 0; /* cheap test first: most frames stop here */
    uint64_t s = csum_add(0, f + l4, l4len);
    if (fold16(pseudo + s) == 0xffff)
        return 0; /* verifies: complete already */
    uint16_t c = (uint16_t)~fold16(s);
    wr16(f + field, c == 0 && proto == 17 ? 0xffff : c);
    return 1;
}

struct hdrs {
    uint32_t l3, l4, hlen; /* offsets of the IP and L4 headers; all headers */
    int v6;
    uint32_t nseg, payload, mss;
};

/* Parses a GSO frame's headers; fills h.  Returns 0 or VS_OFFLOAD_E*. */
static int parse_gso(const uint8_t *f, uint32_t len, const struct vs_vnet_hdr *v,
                     struct hdrs *h)
{
    int gso = v->gso_type & ~VS_GSO_ECN;
    if (gso != VS_GSO_TCPV4 && gso != VS_GSO_TCPV6 && gso != VS_GSO_UDP_L4)
        return VS_OFFLOAD_EUNSUPPORTED;
    if (len < 14)
        return VS_OFFLOAD_EMALFORMED;
    uint32_t off = 14;
    uint16_t type = rd16(f + 12);
    for (int tags = 0; tags < 2 && (type == 0x8100 || type == 0x88a8); tags++) {
        if (off + 4 > len)
            return VS_OFFLOAD_EMALFORMED;
        type = rd16(f + off + 2);
        off += 4;
    }
    uint8_t proto;
    h->l3 = off;
    if (type == 0x0800) {
        if (off + 20 > len || (f[off] >> 4) != 4)
            return VS_OFFLOAD_EMALFORMED;
        uint32_t ihl = (uint32_t)(f[off] & 15) * 4;
        if (ihl < 20 || off + ihl > len || (rd16(f + off + 6) & 0x3fff))
            return VS_OFFLOAD_EMALFORMED; /* a fragment cannot be GSO */
        proto = f[off + 9];
        h->l4 = off + ihl;
        h->v6 = 0;
    } else if (type == 0x86dd) {
        if (off + 40 > len || (f[off] >> 4) != 6)
            return VS_OFFLOAD_EMALFORMED;
        proto = f[off + 6];
        h->l4 = off + 40;
        h->v6 = 1;
        /* Skip hop-by-hop, routing and destination options headers. */
        for (int i = 0; i < 4 && (proto == 0 || proto == 43 || proto == 60); i++) {
            if (h->l4 + 8 > len)
                return VS_OFFLOAD_EMALFORMED;
            proto = f[h->l4];
            h->l4 += ((uint32_t)f[h->l4 + 1] + 1) * 8;
        }
    } else {
        return VS_OFFLOAD_EMALFORMED;
    }
    if ((v->flags & VS_VNET_F_NEEDS_CSUM) && v->csum_start != h->l4)
        return VS_OFFLOAD_EMALFORMED; /* header and parse disagree */
    if (gso == VS_GSO_UDP_L4) {
        if (proto != 17 || h->l4 + 8 > len)
            return VS_OFFLOAD_EMALFORMED;
        h->hlen = h->l4 + 8;
    } else {
        if (proto != 6 || (gso == VS_GSO_TCPV4) == h->v6 || h->l4 + 20 > len)
            return VS_OFFLOAD_EMALFORMED;
        uint32_t thl = (uint32_t)(f[h->l4 + 12] >> 4) * 4;
        if (thl < 20 || h->l4 + thl > len)
            return VS_OFFLOAD_EMALFORMED;
        h->hlen = h->l4 + thl;
    }
    h->mss = v->gso_size;
    if (!h->mss)
        return VS_OFFLOAD_EMALFORMED;
    h->payload = len - h->hlen;
    h->nseg = h->payload ? (h->payload + h->mss - 1) / h->mss : 1;
    return 0;
}

int vs_offload_nsegs(const uint8_t *frame, uint32_t len, const struct vs_vnet_hdr *vnet)
{
    if ((vnet->gso_type & ~VS_GSO_ECN) == VS_GSO_NONE)
        return 1;
    struct hdrs h;
    int r = parse_gso(frame, len, vnet, &h);
    return r < 0 ? r : (int)h.nseg;
}

/* Rewrites lengths, ids and checksums of one segment whose headers are in
 * s (h->hlen bytes) and whose payload (slen - h->hlen bytes) is at pay:
 * right behind them, or still in the super-frame (vs_offload_segment_headers). */
static void fix_segment(uint8_t *s, uint32_t slen, const uint8_t *pay, const struct hdrs *h,
                        int udp, uint32_t i, uint32_t last)
{
    uint8_t *ip = s + h->l3, *l4 = s + h->l4;
    uint32_t l4len = slen - h->l4;
    uint64_t sum;
    if (h->v6) {
        wr16(ip + 4, (uint16_t)(slen - h->l3 - 40));
        sum = csum_add(0, ip + 8, 32);
    } else {
        uint32_t ihl = (uint32_t)(ip[0] & 15) * 4;
        wr16(ip + 2, (uint16_t)(slen - h->l3));
        wr16(ip + 4, (uint16_t)(rd16(ip + 4) + i));
        wr16(ip + 10, 0);
        wr16(ip + 10, csum_fold(csum_add(0, ip, ihl)));
        sum = csum_add(0, ip + 12, 8);
    }
    sum += (uint64_t)(udp ? 17 : 6) + l4len;
    if (udp) {
        wr16(l4 + 4, (uint16_t)l4len);
        wr16(l4 + 6, 0);
        uint16_t c = csum_fold(csum_add(csum_add(sum, l4, 8), pay, l4len - 8));
        wr16(l4 + 6, c ? c : 0xffff);
    } else {
        wr32(l4 + 4, rd32(l4 + 4) + i * h->mss);
        if (i != last)
            l4[13] &= (uint8_t)~0x09; /* FIN, PSH: only the last segment */
        if (i != 0)
            l4[13] &= (uint8_t)~0x80; /* CWR: only the first */
        wr16(l4 + 16, 0);
        /* The TCP header's length is a multiple of 4: the payload's words
         * keep their alignment in the sum. */
        uint32_t thl = h->hlen - h->l4;
        wr16(l4 + 16, csum_fold(csum_add(csum_add(sum, l4, thl), pay, l4len - thl)));
    }
}

int vs_offload_segment(const uint8_t *frame, uint32_t len, const struct vs_vnet_hdr *vnet,
                       uint8_t *const *outs, uint32_t cap, uint32_t *out_lens, int max_segs)
{
    if (max_segs < 1)
        return VS_OFFLOAD_ENOSPACE;
    if ((vnet->gso_type & ~VS_GSO_ECN) == VS_GSO_NONE) {
        if (len > cap)
            return VS_OFFLOAD_ENOSPACE;
        memcpy(outs[0], frame, len);
        int r = vs_offload_csum(outs[0], len, vnet);
        if (r < 0)
            return r;
        out_lens[0] = len;
        return 1;
    }
    struct hdrs h;
    int r = parse_gso(frame, len, vnet, &h);
    if (r < 0)
        return r;
    if (h.nseg > (uint32_t)max_segs || h.hlen + (h.payload < h.mss ? h.payload : h.mss) > cap)
        return VS_OFFLOAD_ENOSPACE;
    int udp = (vnet->gso_type & ~VS_GSO_ECN) == VS_GSO_UDP_L4;
    for (uint32_t i = 0; i < h.nseg; i++) {
        uint32_t at = i * h.mss;
        uint32_t plen = h.payload - at < h.mss ? h.payload - at : h.mss;
        uint8_t *s = outs[i];
        memcpy(s, frame, h.hlen);
        memcpy(s + h.hlen, frame + h.hlen + at, plen);
        out_lens[i] = h.hlen + plen;
        fix_segment(s, out_lens[i], s + h.hlen, &h, udp, i, h.nseg - 1);
    }
    return (int)h.nseg;
}

int vs_offload_segment_headers(const uint8_t *frame, uint32_t len, const struct vs_vnet_hdr *vnet,
                               uint8_t *const *hdrs, uint32_t cap, uint32_t *hdr_len,
                               uint32_t *out_lens, int max_segs)
{
    struct hdrs h;
    int r = (vnet->gso_type & ~VS_GSO_ECN) == VS_GSO_NONE ? VS_OFFLOAD_EUNSUPPORTED
                                                           : parse_gso(frame, len, vnet, &h);
    if (r < 0)
        return r;
    if (h.nseg > (uint32_t)max_segs || h.hlen > cap)
        return VS_OFFLOAD_ENOSPACE;
    int udp = (vnet->gso_type & ~VS_GSO_ECN) == VS_GSO_UDP_L4;
    for (uint32_t i = 0; i < h.nseg; i++) {
        uint32_t at = i * h.mss;
        uint32_t plen = h.payload - at < h.mss ? h.payload - at : h.mss;
        memcpy(hdrs[i], frame, h.hlen);
        out_lens[i] = h.hlen + plen;
        fix_segment(hdrs[i], out_lens[i], frame + h.hlen + at, &h, udp, i, h.nseg - 1);
    }
    *hdr_len = h.hlen;
    return (int)h.nseg;
}
