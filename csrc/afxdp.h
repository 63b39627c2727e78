/* afxdp.h — the afxdp port type: AF_XDP sockets on a netdev's rx queues.
 * The type's operations table (netdev_provider.h) is at the end of afxdp.c;
 * this header is the AF_XDP engine under it, not part of the Python API.
 *
 * Design note.
 *  - Options: xdp-mode = best-effort (default), native or generic.  Status:
 *    xdp_mode (the mode obtained), xdp_bind (copy), n_rxq.  Statistics: the
 *    counters of struct vs_afxdp_stats.  An open that fails names the step
 *    (vs_afxdp_info.step), and the slow path falls back to afpacket.
 *  - One AF_XDP socket per rx queue of the netdev (ETHTOOL_GCHANNELS; 1 when
 *    the driver does not say), each with its own UMEM: 6144 chunks of 4 KiB
 *    (24 MiB), 4096 lent to the kernel through the fill ring for receive (a
 *    TCP window's worth: with 1024 a sender's burst emptied the fill ring
 *    while the poll thread was transmitting, and TCP retransmitted), 2048
 *    kept on a free list for transmit and returned by the completion ring.
 *    Rings of 4096 entries; bound with XDP_COPY | XDP_USE_NEED_WAKEUP (copy mode: veth
 *    has no zero-copy, and copy mode works on every driver).
 *  - Option xdp-offload=true loads the kernel XDP tier (xdp_tier.h) instead:
 *    established exact flows forwarded in the driver, the rest as below.
 *  - Our XDP program (xdp_prog.h) redirects each queue to its socket; it is
 *    attached in native (driver) mode, or generic (skb) mode, or native then
 *    generic for best-effort.  The mode obtained is reported back.
 *  - The port lists one receive descriptor per queue (rx_fds): the queue's
 *    AF_XDP socket itself, readable when its rx ring has frames.  Not an
 *    epoll set over them: a socket in an epoll set has the set's callback on
 *    its wait queue for good, and the kernel runs it (a lock, a list insert,
 *    a wake-up check) on every receive flush, in the softirq of whoever
 *    sent the frame: at 64-byte rates that is the traffic source's CPU, and
 *    it lowered what the source could offer the port.  poll() on the
 *    sockets registers a waiter only while the thread actually sleeps.
 *  - Receive in place: a packet's data points into its UMEM chunk (no
 *    copy; the kernel leaves XDP_PACKET_HEADROOM in front of the frame,
 *    room for a pushed VLAN tag, MPLS or PBB header), and the chunks of a
 *    batch go back to the fill ring when the datapath asks the queue for
 *    its next batch: by then the batch was processed and sent (a transmit
 *    copies; netdev_provider.h, recv).  So at most VS_BATCH chunks per
 *    queue are out of the fill ring's reach.  A frame with less than
 *    VS_HEADROOM in front of it would be copied out instead.
 *  - Not done, measured: forwarding between afxdp ports without the
 *    transmit copy (a UMEM shared by their sockets, XDP_SHARED_UMEM, the
 *    received chunk put on the output's tx ring) cost TCP 5 % (git log:
 *    the revert of 151bdec): copy mode still copies into the skb, and
 *    that copy then reads the chunk the other CPU just wrote, which our
 *    copy into a recently used transmit chunk had read instead.
 *  - TCP with the endpoints' offloads off (bench/pmd_sleep_ab.py --tcp
 *    --diag, which counts the system calls too), per forwarded packet:
 *    0.037 sendto (27 frames a kick, none refused), 1.17 ppoll (the
 *    spinning thread finding nothing: 31 % of its time), no recvfrom; no
 *    rx_dropped, rx_fill_empty or tx_no_room; 1 retransmit in 3.3 M
 *    segments.  So neither the chunk pool, the rings nor the socket's send
 *    memory limit transmit (a copy-mode skb is orphaned as the veth hands
 *    it to the other namespace, completing its chunk).  The traffic CPU
 *    is: both iperf3s, and the veth's XDP receive for our ports (the
 *    cloned TCP skb copied for XDP, then into the chunk, then freed: ~30 %
 *    of that CPU), 11 % idle.  Measured without gain: SO_BUSY_POLL 20 µs
 *    with a recvfrom per receive (the veth NAPI partly runs on the switch
 *    CPU: its softirq share 40 -> 33 %, throughput alike), with
 *    SO_PREFER_BUSY_POLL (alike), and with the port's
 *    napi_defer_hard_irqs 2 / gro_flush_timeout 200 µs so that the veth's
 *    XDP receive waits for our busy poll: the traffic CPU's softirq share
 *    37 -> 20 %, but the switch CPU then limits: 5.9 -> 4.3 Gbit/s (every
 *    queue read every round) or 5.5 (on poll()); threaded NAPI on the
 *    ports pinned to the switch CPU: the veth ring overflowed while the
 *    thread spun, 10 % retransmits, 2.3 Gbit/s; waiting up to 5 or 15 µs
 *    in receive for a partial batch to fill (after a batch of 8 or more):
 *    6.04 / 6.08 vs 6.03 Gbit/s (5 reps each, noise).  So the switch
 *    CPU's spinning is not spare capacity (work moved onto it lowered
 *    throughput), and what is left of the traffic CPU is the endpoints'.
 *  - Transmit copies each frame into a free chunk, finishing offloads in
 *    software first (offload.h): AF_XDP frames carry no virtio_net_hdr, so a
 *    GSO frame from a tap or afpacket port is segmented and a partial
 *    checksum completed.  Received frames get a zero vnet header: their
 *    checksums are complete.  All transmits go through queue 0's socket.
 *  - need_wakeup: the tx ring is kicked with sendto() only when the kernel
 *    asks for it (always, in copy mode), the fill ring with recvfrom().
 *  - Transmit coalescing: a run of TCP segments of one flow in a send batch
 *    (a sender with its offloads off, or a veth peer whose TSO native XDP
 *    turned off, hands the switch MSS-sized segments) leaves as one TSO
 *    frame (tcp_coalesce.h: the kernel's GRO rules) on a second socket of
 *    the port, AF_PACKET with a virtio_net_hdr (PACKET_VNET_HDR, past the
 *    qdisc): the headers rewritten in a buffer, each segment's payload
 *    gathered by an iovec straight from its chunk, so the kernel's copy
 *    into the skb is the only one.  The receiving stack then handles one
 *    skb (and sends one ACK) per frame instead of one per segment, and the
 *    kernel builds one skb instead of 20-30 on the switch's CPU: TCP with
 *    the endpoints' offloads off went from 1.84 to 3.50 Gbit/s on the
 *    bench (bench/RESULTS.md, stop 29).  What the AF_XDP socket has queued
 *    is kicked out first, so frames keep their order; a refused send
 *    (the socket's buffer full) sends the rest of the batch one by one
 *    (counted: tx_coalesce_errors).  A device that cannot take TSO gets
 *    the frame segmented by the kernel (validate_xmit_skb).  Without the
 *    socket (it could not be opened) nothing coalesces.
 */
#ifndef VS_AFXDP_H
#define VS_AFXDP_H 1

#include <stdint.h>

#include "netdev.h"
#include "tcp_coalesce.h"

enum vs_xdp_mode { VS_XDP_BEST_EFFORT = 0, VS_XDP_NATIVE = 1, VS_XDP_GENERIC = 2 };

/* What vs_afxdp_open() got, or where it failed. */
struct vs_afxdp_info {
    int32_t mode;      /* VS_XDP_NATIVE or VS_XDP_GENERIC once open */
    uint32_t n_queues; /* sockets bound, one per rx queue */
    uint32_t zerocopy; /* 0: copy mode */
    int32_t error;     /* -errno of the failing step, 0 when open */
    char step[48];     /* the failing step, e.g. "attach native XDP" */
};

/* Per-port counters beyond the datapath's own (summed over queues). */
struct vs_afxdp_stats {
    uint64_t rx_dropped;       /* kernel: no room in the rx ring (XDP_STATISTICS) */
    uint64_t rx_fill_empty;    /* kernel: fill ring empty on arrival */
    uint64_t tx_no_room;       /* frames dropped: tx ring or free chunks exhausted */
    uint64_t tx_segments;      /* software GSO: segments produced */
    uint64_t tx_csum;          /* software checksums completed */
    uint64_t tx_offload_drops; /* frames whose offload could not be done */
    uint64_t rx_csum_fixed;    /* partial checksums completed on receive */
    uint64_t rx_copied;        /* frames copied out: too little headroom in the chunk */
    struct vs_tcp_coalesce_stats coalesce; /* frames sent on the gso socket */
};

struct vs_afxdp;

/* tier: load the kernel XDP tier's program (xdp_tier.h) instead of the plain
 * redirect. */
struct vs_afxdp *vs_afxdp_open(const char *ifname, int mode, int tier, struct vs_afxdp_info *info);
/* Detaches the program, closes the sockets, frees the UMEMs. */
void vs_afxdp_close(struct vs_afxdp *);
/* The descriptors the poll thread waits on, one per receive queue (index =
 * rxq); returns how many were written, at most max. */
int vs_afxdp_fds(const struct vs_afxdp *, int *fds, int max);
/* Same contract as the port type's recv (rxq: the index in vs_afxdp_fds)
 * and send. */
int vs_afxdp_recv(struct vs_afxdp *, int rxq, struct vs_packet *pkts, int n);
int vs_afxdp_send(struct vs_afxdp *, struct vs_packet *const *pkts, int n);
void vs_afxdp_get_stats(struct vs_afxdp *, struct vs_afxdp_stats *);

#endif
