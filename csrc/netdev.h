/* netdev.h — the packet every port type speaks, and what Python sees of
 * port types (options, status and statistics as key/value).  The port-type
 * interface itself (struct vs_netdev_class, the "netdev provider" in the
 * spirit of OVS's netdev-provider.h) is in netdev_provider.h, which the
 * datapath and the types include and Python does not.
 *
 * Design note.
 *  - One table of operations per port type, struct vs_netdev_class: open,
 *    close, the receive descriptors (rx_fds), receive a batch, send a batch,
 *    what a poll error means, status and statistics as key/value.  A type
 *    registers its table by name at load time (VS_NETDEV_REGISTER, a
 *    constructor in its own C file); the datapath looks it up by name when a
 *    port is added and from then on only calls through the table: it never
 *    tests a type.  A new port type is one C file here (the build compiles
 *    every C file in csrc/) and one entry in vswitch/datapath/port_types.py.
 *  - Types today: afpacket (netdev_afpacket.c), tap (netdev_tap.c; the
 *    switch's `internal` ports are taps too), afxdp (afxdp.c) and dummy
 *    (netdev_dummy.c: no device, frames injected and captured from Python).
 *  - Every port speaks frames prefixed by a virtio_net_hdr (struct
 *    vs_vnet_hdr), so offload state travels with the packet instead of being
 *    undone at the edge: a veth peer's TSO super-frames and partial checksums
 *    arrive on afpacket as they are and leave on tap or afpacket the same
 *    way; a type that cannot carry the header (afxdp) finishes the offloads
 *    in software on send (offload.h) and hands over zero headers on receive.
 *  - Receive descriptors: a port lists any number of descriptors (rx_fds),
 *    each one of its receive queues: afxdp lists one AF_XDP socket per
 *    queue, vhost-user would list one kick fd per queue.  A
 *    descriptor listed by several ports (a tunnel's shared UDP socket) is
 *    polled once, through the lowest-numbered live port that lists it, and
 *    recv on that port may return packets of the others: recv sets each
 *    packet's in_port (the datapath presets it to the polled port's number),
 *    and may attach tunnel metadata (vs_packet.tnl) for the flow key.  The
 *    dummy type's rx-group option takes this path today (its test is in
 *    tests/datapath/test_dp_port_types.py).
 *  - A type's own control entry points for Python (netdev_dummy.h) reach
 *    their port through vs_dp_port_call(), under the port's transmit lock.
 *
 * How VXLAN plugs in (the next port type, netdev_vxlan.c): the type keeps one
 * UDP socket per (local_ip, dst_port), reference-counted by the vxlan ports
 * using it, with a table (VNI, remote_ip) -> port number.  open() finds or
 * creates the socket and adds the port's entry; rx_fds() of every port on
 * that socket lists the socket's fd (polled once, see above); recv() reads a
 * batch with recvmmsg, strips the outer headers, looks the VNI and source up
 * and sets pkt->in_port and pkt->tnl (tun_id, outer addresses and ports),
 * dropping and counting datagrams no port claims; send() prepends the outer
 * headers for the port's remote (or pkt->tnl, once a set-tunnel action
 * fills it) and sends the batch with sendmmsg on the shared socket.  The flow
 * key then gains tunnel words, filled from pkt->tnl where process_batch sets
 * key.in_port.  Nothing in datapath.c, netdev.c or dpif.py changes.
 *
 * Locking: what a type may assume (datapath.h, "Locking", for the rest).
 *  - open() and close() run in a control call and may take their time
 *    (afxdp waits for a queue the kernel still holds).  A port is not
 *    visible to any poll thread before open() returns, and close() is
 *    called only after a grace period: no poll thread can reach it.
 *  - recv() of one receive descriptor runs in one poll thread at a time
 *    (the one that polls it), with no datapath lock: single consumer, so
 *    an AF_XDP rx/fill ring pair needs no lock.  poll_error() runs in that
 *    same thread, and rx_fds() in any poll thread rebuilding its list.
 *  - send() of a port runs under the port's transmit lock, so at most one
 *    at a time per port (single producer for an AF_XDP tx ring and its
 *    completion ring), but concurrently with recv() of the same port and
 *    with recv()/send() of other ports: state send and recv share (a
 *    dummy port's queue with inject) needs the type's own leaf lock.
 *    VXLAN: all ports of a socket share its descriptor; sendmmsg() from
 *    two threads on one UDP socket is safe in the kernel, send's buffers
 *    are per port, and recv's per-socket state is under the socket's mutex.
 *  - get_status(), get_stats() and vs_dp_port_call()'s function run in a
 *    control call under the port's transmit lock (never concurrently with
 *    send of that port), but concurrently with its recv(): counters recv
 *    writes are read racily (whole 64-bit words on the hosts we build for;
 *    the dummy type locks).
 *  - None of them may block (non-blocking descriptors, bounded work) or
 *    call back into the datapath.
 *  - State shared between ports and changed by open()/close() (a tunnel
 *    socket's demultiplexing table) needs the type's own leaf lock, or
 *    publication: another port's open() or close() can run while recv() of
 *    a port on the same socket does.
 *  - The descriptors rx_fds() lists stay open until close(); the datapath
 *    asks for them again whenever the set of ports changes.  (A type whose
 *    descriptors change while it is open, vhost-user when the guest enables
 *    a queue, will need to ask for that too: a call that bumps the port
 *    generation, not there yet.)
 */
#ifndef VS_NETDEV_H
#define VS_NETDEV_H 1

#include <stddef.h>
#include <stdint.h>

struct vs_vnet_hdr { /* struct virtio_net_hdr, little-endian on this host */
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
};

#define VS_VNET_F_NEEDS_CSUM 1

/* Tunnel metadata a port type may attach to a received packet (a tunnel
 * type after decapsulation).  flags 0: none (the datapath clears flags
 * before each receive). */
struct vs_tnl_md {
    uint64_t tun_id;  /* VNI / key, host order */
    uint32_t ip_src;  /* outer IPv4 addresses, network order */
    uint32_t ip_dst;
    uint16_t tp_src;  /* outer UDP ports, host order */
    uint16_t tp_dst;
    uint8_t tos;
    uint8_t ttl;
    uint16_t flags;   /* VS_TNL_F_* */
};

#define VS_TNL_F_PRESENT 1
#define VS_TNL_F_SET 2 /* filled by a SET_TUNNEL action, for output */

/* One packet in a batch: the frame starts at data, with headroom before it
 * so a VLAN tag can be pushed without copying. */
struct vs_packet {
    uint8_t *data;
    uint32_t len;
    /* The port it arrived on: preset by the datapath to the polled port, set
     * by a type that demultiplexes a shared descriptor. */
    uint32_t in_port;
    struct vs_vnet_hdr vnet;
    uint8_t *buf; /* start of the buffer (data - headroom) */
    struct vs_tnl_md tnl;
};

#define VS_HEADROOM 64
#define VS_MAX_FRAME (65536 + 64)
#define VS_BATCH 32
#define VS_MAX_RXQ 64 /* receive descriptors per port */

/* A port's options (the Interface options column), as strings. */
struct vs_port_option {
    const char *key;
    const char *value;
};

/* Status and statistics of a port type, as key/value. */
#define VS_KV_KEY_LEN 32
#define VS_KV_VALUE_LEN 64
#define VS_KV_MAX 32
struct vs_port_kv {
    char key[VS_KV_KEY_LEN];
    char value[VS_KV_VALUE_LEN];
};
struct vs_port_counter {
    char name[VS_KV_KEY_LEN];
    uint64_t value;
};

/* The registered port types (netdev_provider.h): writes up to max names,
 * returns how many there are. */
int vs_netdev_types(const char **names, int max);

#endif
