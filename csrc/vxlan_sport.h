/* vxlan_sport.h — per-flow outer UDP source ports for the vxlan port type.
 *
 * Design note.  RFC 7348 §5: the outer UDP source port should be a hash of
 * the inner frame's flow, in the dynamic range 49152-65535, so that ECMP
 * and RSS in the underlay spread tunnels' flows while one flow's packets
 * stay on one path, in order.  OVS and the Linux vxlan driver build the
 * outer header themselves; vswitch lets the kernel's UDP stack build it (and
 * segment: UDP_SEGMENT), which takes the source port from the socket.  So a
 * vxlan socket owns a pool of VXLAN_SPORT_POOL send-only sockets bound to
 * distinct ports of that range, and a packet leaves through the one its
 * inner flow hash picks: the UDP GSO batching of one super-frame is kept
 * (a super-frame is one flow).  Flows map to a pool of ports rather than
 * to all 16384: enough for ECMP entropy, a fixed number of descriptors.
 *  - The pool's sockets only send.  A datagram that arrives at one of their
 *    ports (a peer answering to the source port, or a stray one) must never
 *    queue on them, where nothing reads: each has a socket filter that drops
 *    everything (classic BPF "ret #0", run before the receive queue) and
 *    the smallest receive buffer.  VXLAN peers send to dst_port, received on
 *    the shared socket as before.
 *  - The flow hash covers the inner IPv4/IPv6 addresses and protocol, and
 *    the TCP/UDP/SCTP ports of a packet that is not a fragment; for other
 *    frames the Ethernet addresses and type.  VLAN tags are skipped.  Its
 *    IPv4 part is vxlan_flow_hash.h's, which the tc tier's programs compute
 *    too, so a flow keeps its port when the tier takes it over.
 *  - The pool is created with its vxlan socket and is read-only until it is
 *    closed with it (no lock: the datapath never sends on a port being
 *    closed); sendmsg on one UDP socket from several threads is the
 *    kernel's to serialise.
 * C-only (not part of the cffi API). */
#ifndef VS_VXLAN_SPORT_H
#define VS_VXLAN_SPORT_H 1

#include <stddef.h>
#include <stdint.h>

#include "vxlan_flow_hash.h" /* the hash, the range [VXLAN_SPORT_MIN, VXLAN_SPORT_END) */

#define VXLAN_SPORT_POOL 16

struct vxlan_sport_pool {
    int fds[VXLAN_SPORT_POOL];
    uint16_t ports[VXLAN_SPORT_POOL]; /* host order */
    int n;
};

/* Opens the pool's sockets on local_ip (network order, 0 = any), each with
 * IP_PMTUDISC_DO and a send buffer of sndbuf bytes.  Returns 0 or -errno
 * (step and reason in err); on failure nothing is left open. */
int vxlan_sport_open(struct vxlan_sport_pool *pool, uint32_t local_ip, int sndbuf, char *err,
                     size_t errlen);
void vxlan_sport_close(struct vxlan_sport_pool *pool);

/* The flow hash of an inner Ethernet frame (see the note). */
uint32_t vxlan_flow_hash(const uint8_t *frame, uint32_t len);

/* The descriptor a frame of that hash is sent on. */
static inline int vxlan_sport_fd(const struct vxlan_sport_pool *pool, uint32_t hash)
{
    return pool->fds[hash % (uint32_t)pool->n];
}

#endif
