/* tcp_coalesce.h — TCP segments of one flow joined into one TSO frame
 * (receive offload done in user space, as the kernel's GRO does).
 *
 * Design note.  Two places meet long runs of MSS-sized segments of one
 * flow: VXLAN's receive (a UDP_GRO train of datagrams, netdev_vxlan.c) and
 * a port's transmit batch (segments the datapath forwards from a sender
 * whose offloads are off, or from an afxdp port, whose frames never carry
 * a vnet header: afxdp.c, netdev_afpacket.c, netdev_tap.c, through
 * vs_tcp_coalesce_run).  Handing such a run on as one TSO
 * frame (a virtio_net_hdr with GSO_TCPV4/6, gso_size = the MSS, a partial
 * checksum) lets the receiving stack process one skb instead of 20-40 and
 * acknowledge it once.  The rules are the kernel's (tcp_gro_receive):
 *  - a segment coalesces only if it parses (untagged Ethernet, IPv4 not a
 *    fragment or IPv6 without extension headers), its lengths agree, its
 *    checksum verifies (or is a partial one: csum_is_partial), and only
 *    ACK (and PSH) is set;
 *  - the next segment continues it: the next sequence number, and every
 *    header field equal except IP length/id/checksum and TCP sequence,
 *    checksum and flags (addresses, ports, ack, window, options —
 *    timestamps included — all equal);
 *  - every segment but the last carries exactly the first one's payload
 *    size (the MSS, which becomes gso_size); a shorter one or PSH ends the
 *    run; the IP length fields bound it to 64 KiB.
 * The coalesced frame's headers are the first segment's with the lengths,
 * the IPv4 header checksum and the OR of the flags rewritten, and a
 * partial TCP checksum (the pseudo-header sum) for the receiver or the
 * device to complete (vs_tcpseg_finish).  On transmit the payloads are
 * not copied: the run's iovec points into the packets, behind a rewritten
 * copy of the first one's headers, so the kernel's copy into its skb is
 * the only one.  Only packets without a vnet header of their own join a
 * run (one with offloads to finish keeps its own path).  C-only (not in
 * the cffi API). */
#ifndef VS_TCP_COALESCE_H
#define VS_TCP_COALESCE_H 1

#include <stdint.h>
#include <sys/uio.h>

#include "netdev.h"

#define TCP_ACK 0x10
#define TCP_PSH 0x08
#define IPV6_HLEN 40
#define IPPROTO_TCP_NUM 6
#define TCP_MIN_HLEN 20
#define TCP_CSUM_OFFSET 16
#define IPPROTO_UDP_NUM 17
#define UDP_CSUM_OFFSET 6
#define UDP_HLEN 8
#define ETH_HLEN_PLAIN 14

/* Network-order fields. */
static inline uint16_t vs_rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t vs_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void vs_wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* A TCP segment as parsed for coalescing. */
struct vs_tcpseg {
    uint32_t l3, l4, hlen; /* offsets of IP and TCP, length of all headers */
    uint32_t seq;
    uint8_t flags;
    uint8_t v6;
};

/* The pseudo-header's sum for l4len bytes of protocol `proto` after the IP
 * header at ip (v6: IPv6). */
uint64_t vs_l4_pseudo_sum(const uint8_t *ip, int v6, uint8_t proto, uint32_t l4len);
/* Whether the checksum field at l4 + csum_off holds a partial checksum (the
 * folded pseudo-header sum Linux leaves for a device to complete). */
int vs_l4_csum_is_partial(const uint8_t *ip, int v6, uint8_t proto, const uint8_t *l4,
                          uint32_t l4len, uint32_t csum_off);
/* 1 if frame f (len bytes) is a segment that may coalesce (rules above),
 * with t filled in; else 0.  _headers: the same without the checksum,
 * which vs_tcpseg_csum_ok checks. */
int vs_tcpseg_parse(const uint8_t *f, uint32_t len, struct vs_tcpseg *t);
int vs_tcpseg_parse_headers(const uint8_t *f, uint32_t len, struct vs_tcpseg *t);
int vs_tcpseg_csum_ok(const uint8_t *f, uint32_t len, const struct vs_tcpseg *t);
/* 1 if segment b (parsed as tb) continues a (parsed as ta) whose next
 * sequence number is seq. */
int vs_tcpseg_follows(const uint8_t *a, const struct vs_tcpseg *ta, const uint8_t *b,
                      const struct vs_tcpseg *tb, uint32_t seq);
/* Rewrites the headers at f (the first segment's, t0) for a coalesced frame
 * of `total` bytes with TCP flags `flags` and segment size mss, and fills
 * the vnet header that says so. */
void vs_tcpseg_finish(uint8_t *f, const struct vs_tcpseg *t0, uint32_t total, uint8_t flags,
                      uint32_t mss, struct vs_vnet_hdr *vnet);

/* A transmit batch's run of segments that coalesce (a port type's send:
 * afxdp, tap, afpacket).  Segments joined into one frame at most (the
 * kernel's GRO stops at 64 too), and the fewest worth joining. */
#define VS_TCP_RUN_MAX 64
#define VS_TCP_RUN_MIN 2
#define VS_TCP_MAX_HLEN (ETH_HLEN_PLAIN + 60 + 60) /* Ethernet, IP and TCP with options */

struct vs_tcp_run {
    struct vs_tcpseg seg; /* the first segment */
    uint32_t total;       /* the coalesced frame's length */
    uint8_t flags;        /* its TCP flags */
    int k;                /* segments */
};

/* The iovec of a coalesced frame: its vnet header, its headers, then the
 * payload of each segment. */
#define VS_TCP_RUN_IOV (VS_TCP_RUN_MAX + 2)

/* How many packets from pkts[i] on (at most VS_TCP_RUN_MAX) form one run
 * that coalesces; 0 if fewer than VS_TCP_RUN_MIN.  Packets with a vnet
 * header of their own (offloads to finish) never join one.  The payloads
 * go into iov[2..k+2) (VS_TCP_RUN_IOV entries), pointing into the
 * packets. */
int vs_tcp_coalesce_run(struct vs_packet *const *pkts, int i, int n, struct vs_tcp_run *run,
                        struct iovec *iov);
/* Completes the run's iovec: the coalesced frame's headers (from `first`,
 * the run's first packet) rewritten into hdr (VS_TCP_MAX_HLEN bytes) and
 * its vnet header into vnet, as iov[0] and iov[1].  Returns the iovec's
 * length. */
int vs_tcp_run_frame(const struct vs_packet *first, const struct vs_tcp_run *run, uint8_t *hdr,
                     struct vs_vnet_hdr *vnet, struct iovec *iov);

/* A port type's coalescing counters (Interface statistics TYPE_tx_coalesced,
 * _tx_coalesced_frames, _tx_coalesce_errors), written by the poll thread
 * that sends on the port and read by the statistics (a torn read of a
 * counter is not a concern on x86-64). */
struct vs_tcp_coalesce_stats {
    uint64_t segments; /* TCP segments sent within coalesced frames */
    uint64_t frames;   /* coalesced frames sent */
    uint64_t errors;   /* coalesced sends refused: the rest of the batch went one by one */
};

static inline void vs_tcp_coalesce_sent(struct vs_tcp_coalesce_stats *st, int k)
{
    st->segments += (uint64_t)k;
    st->frames++;
}

struct vs_port_counter;
/* Appends the three counters to out[n..max); returns the new count. */
int vs_tcp_coalesce_counters(const struct vs_tcp_coalesce_stats *st, struct vs_port_counter *out,
                             int n, int max);

#endif
