/* tcp_coalesce.c — TCP segments joined into TSO frames (tcp_coalesce.h). */
#include "tcp_coalesce.h"

#include <arpa/inet.h>
#include <string.h>

#include "inet_csum.h"
#include "netdev_provider.h"
#include "offload.h"

/* The pseudo-header's addresses: IPv4 12..20, IPv6 8..40 of the IP header. */
#define IPV4_ADDRS_OFF 12
#define IPV4_ADDRS_LEN 8
#define IPV6_ADDRS_OFF 8
#define IPV6_ADDRS_LEN 32
#define IPV4_CSUM_OFF 10
#define IPV4_FRAG_MASK 0x3fff /* MF and the fragment offset */

/* RFC 793/768 for IPv4, RFC 8200 §8.1 for IPv6: the same words while
 * l4len < 64 KiB. */
uint64_t vs_l4_pseudo_sum(const uint8_t *ip, int v6, uint8_t proto, uint32_t l4len)
{
    uint16_t pl[2] = {htons(proto), htons((uint16_t)l4len)};
    uint64_t sum = v6 ? vs_csum_partial(0, ip + IPV6_ADDRS_OFF, IPV6_ADDRS_LEN)
                      : vs_csum_partial(0, ip + IPV4_ADDRS_OFF, IPV4_ADDRS_LEN);
    return vs_csum_partial(sum, pl, sizeof pl);
}

/* A sender on this host whose skb never meets a NIC (the kernel's vxlan
 * over a veth) leaves exactly this in the field; its own receiver trusts
 * it (CHECKSUM_PARTIAL), but user space sees only the bytes. */
int vs_l4_csum_is_partial(const uint8_t *ip, int v6, uint8_t proto, const uint8_t *l4,
                          uint32_t l4len, uint32_t csum_off)
{
    uint16_t field, pc = vs_csum_fold16(vs_l4_pseudo_sum(ip, v6, proto, l4len));
    memcpy(&field, l4 + csum_off, sizeof field);
    return field == pc;
}

int vs_tcpseg_parse_headers(const uint8_t *f, uint32_t len, struct vs_tcpseg *t)
{
    if (len < ETH_HLEN_PLAIN + 20 + TCP_MIN_HLEN)
        return 0;
    const uint8_t *ip = f + ETH_HLEN_PLAIN;
    t->l3 = ETH_HLEN_PLAIN;
    if (f[12] == 0x08 && f[13] == 0x00 && (ip[0] >> 4) == 4) {
        uint32_t ihl = (uint32_t)(ip[0] & 15) * 4;
        if (ihl < 20 || ip[9] != IPPROTO_TCP_NUM || (vs_rd16(ip + 6) & IPV4_FRAG_MASK) ||
            vs_rd16(ip + 2) != len - ETH_HLEN_PLAIN)
            return 0;
        t->l4 = ETH_HLEN_PLAIN + ihl;
        t->v6 = 0;
    } else if (f[12] == 0x86 && f[13] == 0xdd && (ip[0] >> 4) == 6 &&
               len >= ETH_HLEN_PLAIN + IPV6_HLEN + TCP_MIN_HLEN) {
        if (ip[6] != IPPROTO_TCP_NUM || vs_rd16(ip + 4) != len - ETH_HLEN_PLAIN - IPV6_HLEN)
            return 0;
        t->l4 = ETH_HLEN_PLAIN + IPV6_HLEN;
        t->v6 = 1;
    } else {
        return 0;
    }
    if (len < t->l4 + TCP_MIN_HLEN)
        return 0;
    const uint8_t *th = f + t->l4;
    t->hlen = t->l4 + (uint32_t)(th[12] >> 4) * 4;
    t->flags = th[13];
    if (t->hlen < t->l4 + TCP_MIN_HLEN || t->hlen >= len || (t->flags & ~(TCP_ACK | TCP_PSH)) ||
        !(t->flags & TCP_ACK))
        return 0;
    t->seq = vs_rd32(th + 4);
    return 1;
}

/* The segment's own checksum: whoever handed it over may not have verified
 * it (the outer UDP checksum of VXLAN may be zero and covers only the
 * datagram; a veth peer's frames are not checked at all), and the
 * coalesced frame goes on with a partial checksum that the receiving stack
 * trusts. */
int vs_tcpseg_csum_ok(const uint8_t *f, uint32_t len, const struct vs_tcpseg *t)
{
    const uint8_t *ip = f + t->l3, *th = f + t->l4;
    uint64_t sum = vs_csum_partial(vs_l4_pseudo_sum(ip, t->v6, IPPROTO_TCP_NUM, len - t->l4), th,
                                   len - t->l4);
    return vs_csum_fold16(sum) == 0xffff ||
           vs_l4_csum_is_partial(ip, t->v6, IPPROTO_TCP_NUM, th, len - t->l4, TCP_CSUM_OFFSET);
}

int vs_tcpseg_parse(const uint8_t *f, uint32_t len, struct vs_tcpseg *t)
{
    return vs_tcpseg_parse_headers(f, len, t) && vs_tcpseg_csum_ok(f, len, t);
}

int vs_tcpseg_follows(const uint8_t *a, const struct vs_tcpseg *ta, const uint8_t *b,
                      const struct vs_tcpseg *tb, uint32_t seq)
{
    if (tb->hlen != ta->hlen || tb->l4 != ta->l4 || tb->v6 != ta->v6 || tb->seq != seq ||
        memcmp(a, b, ETH_HLEN_PLAIN))
        return 0;
    const uint8_t *ia = a + ETH_HLEN_PLAIN, *ib = b + ETH_HLEN_PLAIN;
    if (ta->v6) {
        /* version, class, flow label; next header, hop limit, addresses */
        if (memcmp(ia, ib, 4) || memcmp(ia + 6, ib + 6, IPV6_HLEN - 6))
            return 0;
    } else {
        /* version..tos, flags/frag..protocol, addresses and options */
        if (memcmp(ia, ib, 2) || memcmp(ia + 6, ib + 6, 4) ||
            memcmp(ia + 12, ib + 12, ta->l4 - ETH_HLEN_PLAIN - 12))
            return 0;
    }
    const uint8_t *pa = a + ta->l4, *pb = b + tb->l4;
    /* ports; ack and data offset; window; urgent pointer and options */
    return !memcmp(pa, pb, 4) && !memcmp(pa + 8, pb + 8, 5) && !memcmp(pa + 14, pb + 14, 2) &&
           !memcmp(pa + 18, pb + 18, ta->hlen - ta->l4 - 18);
}

void vs_tcpseg_finish(uint8_t *f, const struct vs_tcpseg *t0, uint32_t total, uint8_t flags,
                      uint32_t mss, struct vs_vnet_hdr *vnet)
{
    uint8_t *ip = f + t0->l3, *th = f + t0->l4;
    if (t0->v6) {
        vs_wr16(ip + 4, (uint16_t)(total - t0->l4)); /* no extension headers */
    } else {
        vs_wr16(ip + 2, (uint16_t)(total - t0->l3));
        vs_wr16(ip + IPV4_CSUM_OFF, 0);
        uint16_t ic = (uint16_t)~vs_csum_fold16(vs_csum_partial(0, ip, t0->l4 - t0->l3));
        memcpy(ip + IPV4_CSUM_OFF, &ic, 2);
    }
    th[13] = flags;
    /* A partial checksum, as the kernel leaves it: the pseudo-header sum. */
    uint16_t pc = vs_csum_fold16(vs_l4_pseudo_sum(ip, t0->v6, IPPROTO_TCP_NUM, total - t0->l4));
    memcpy(th + TCP_CSUM_OFFSET, &pc, 2);
    *vnet = (struct vs_vnet_hdr){.flags = VS_VNET_F_NEEDS_CSUM,
                                 .gso_type = t0->v6 ? VS_GSO_TCPV6 : VS_GSO_TCPV4,
                                 .hdr_len = (uint16_t)t0->hlen, .gso_size = (uint16_t)mss,
                                 .csum_start = (uint16_t)t0->l4,
                                 .csum_offset = TCP_CSUM_OFFSET};
}

int vs_tcp_coalesce_run(struct vs_packet *const *pkts, int i, int n, struct vs_tcp_run *run,
                        struct iovec *iov)
{
    const struct vs_packet *p = pkts[i];
    struct vs_tcpseg *t0 = &run->seg;
    /* Headers first, checksums (a pass over the payload) only once a
     * second segment continues the first: a lone segment costs no more
     * than a look at its headers. */
    if (n - i < VS_TCP_RUN_MIN || p->vnet.flags || p->vnet.gso_type ||
        !vs_tcpseg_parse_headers(p->data, p->len, t0) || (t0->flags & TCP_PSH) ||
        t0->hlen > VS_TCP_MAX_HLEN)
        return 0;
    uint32_t mss = p->len - t0->hlen, seq = t0->seq + mss;
    run->total = p->len;
    run->flags = t0->flags;
    struct iovec *payload_iov = iov + 2;
    payload_iov[0] = (struct iovec){p->data + t0->hlen, mss};
    int k = 1;
    while (i + k < n && k < VS_TCP_RUN_MAX) {
        const struct vs_packet *s = pkts[i + k];
        struct vs_tcpseg t;
        if (s->vnet.flags || s->vnet.gso_type || !vs_tcpseg_parse_headers(s->data, s->len, &t) ||
            !vs_tcpseg_follows(p->data, t0, s->data, &t, seq))
            break;
        uint32_t pay = s->len - t.hlen;
        /* The IP length fields (IPv4's total, IPv6's payload) are 16 bits. */
        if (pay > mss || run->total + pay - t0->l3 > UINT16_MAX)
            break;
        if ((k == 1 && !vs_tcpseg_csum_ok(p->data, p->len, t0)) ||
            !vs_tcpseg_csum_ok(s->data, s->len, &t))
            break;
        payload_iov[k] = (struct iovec){s->data + t.hlen, pay};
        run->total += pay;
        seq += pay;
        run->flags |= t.flags;
        k++;
        if (pay < mss || (t.flags & TCP_PSH))
            break;
    }
    run->k = k;
    return k >= VS_TCP_RUN_MIN ? k : 0;
}

int vs_tcp_run_frame(const struct vs_packet *first, const struct vs_tcp_run *run, uint8_t *hdr,
                     struct vs_vnet_hdr *vnet, struct iovec *iov)
{
    memcpy(hdr, first->data, run->seg.hlen);
    vs_tcpseg_finish(hdr, &run->seg, run->total, run->flags, first->len - run->seg.hlen, vnet);
    iov[0] = (struct iovec){vnet, sizeof *vnet};
    iov[1] = (struct iovec){hdr, run->seg.hlen};
    return run->k + 2;
}

int vs_tcp_coalesce_counters(const struct vs_tcp_coalesce_stats *st, struct vs_port_counter *out,
                             int n, int max)
{
    n = vs_netdev_counter(out, n, max, "tx_coalesced", st->segments);
    n = vs_netdev_counter(out, n, max, "tx_coalesced_frames", st->frames);
    return vs_netdev_counter(out, n, max, "tx_coalesce_errors", st->errors);
}
