/* vxlan_kdev.h — the kernel's VXLAN device under vxlan ports with
 * options:tc-offload=true (netdev_vxlan.c): the kernel receives, GROs and
 * decapsulates, on the skb, what user space would otherwise read datagram
 * by datagram.
 *
 * Design note (OVS's kernel datapath does the same with vxlan_sys_4789).
 *  - One kernel vxlan device in external (collect_metadata) mode per
 *    (local_ip, dst_port) — the unit netdev_vxlan.c shares a socket by —
 *    named vs_vxlan_PORT (vx, local_ip in 8 hex digits, PORT with a local_ip),
 *    created up in the switch's namespace by rtnetlink and deleted with the
 *    last port using it.  It owns UDP dst_port for receive, so in this mode
 *    netdev_vxlan.c does not bind its receive socket; user-space transmit
 *    is unchanged (its own encapsulation and send-only source-port sockets).
 *  - Receive: a tcx ingress program on the device (bpf/vxlan_kdev.bpf.c)
 *    reads each frame's tunnel key (VNI, outer addresses, TOS, TTL) and
 *    hands it to user space with that metadata in front
 *    (vxlan_kdev_abi.h), redirected into the ingress of an ifb link
 *    (vs_punt_PORT) on which an AF_PACKET socket with PACKET_VNET_HDR reads
 *    it: a GRO'd TCP train arrives as one frame with its GSO size and a
 *    partial checksum, and the kernel's checksum verdicts come along.
 *  - The tc tier (tc_tier.h): the program shares its maps.  A frame whose
 *    tunnel key names a vxlan port (vx_rx) and whose exact key (the port's
 *    tier index, the tunnel words, the inner headers) is an established
 *    flow is forwarded there and then; a flow from a tc-tier port to a
 *    vxlan port with a fixed remote_ip, key, tos is sent by the tc tier's
 *    program with that tunnel into this device (vx_tx), which encapsulates,
 *    segments and checksums on the skb.  The datapath offloads either
 *    direction as between two tc-tier ports (tier_offload_consider).
 *  - options:tc-device=per-port (opt in): a port with a fixed tunnel
 *    (remote_ip, key, tos not 1, which the kernel reads as inherit) gets a
 *    plain kernel vxlan device of its own instead, vxqPORT_VNI (VNI hex; id
 *    VNI, remote, local_ip, dst_port, DF set, outer UDP checksum on): the
 *    kernel keeps a dst cache for its sends (the external device looks the
 *    route up per skb) and allocates no metadata dst per received skb; its
 *    tcx program (vs_vxlan_plain_rx) knows the port from the device.
 *    Measured (bench/VXLAN_RESULTS.md): the external device's per-skb
 *    costs were ~20 % of one TCP stream's throughput; yet with four BBR
 *    streams the plain device was slower (not explained), hence opt-in.  Frames of a VNI no
 *    port has are dropped by the kernel (drop reason VXLAN_VNI_NOT_FOUND,
 *    before any program of ours): a tp_btf/kfree_skb program
 *    (vs_vxlan_unknown_vni: that reason, our namespace, our dst_port; it
 *    runs on drops only, forwarded frames never meet it) counts them into
 *    sock_rx_unknown_vni, for the whole dst_port (not per local_ip).  Lost
 *    on such a port: received frames carry no outer TOS/TTL (0 in tnl)
 *    and tun_dst is the port's local_ip or the route's source towards
 *    remote (read when the port opens), not each datagram's destination.
 *    The kernel shares one UDP socket only among devices of the same kind
 *    and refuses two plain devices with one VNI, so the first port that
 *    cannot have a plain device (flow-based, tc-device=shared, a VNI taken)
 *    moves every port of the (local_ip, dst_port) to the shared external
 *    device, which then stays (status tc_device says which device).  The
 *    kernel's socket is per dst_port, not per local_ip: two local_ips on
 *    one dst_port with different kinds of device are refused (EADDRINUSE).
 *  - The outer UDP source port is not in the kernel's tunnel key: frames
 *    received this way have tnl.tp_src 0.
 *  - Thread safety: open, close, port_add, port_del and port_device run in
 *    control calls under netdev_vxlan.c's socks_mutex, which guards the
 *    plain ports' table and the external device's creation; the socket is
 *    read by one poll thread (which touches neither).
 */
#ifndef VS_VXLAN_KDEV_H
#define VS_VXLAN_KDEV_H 1

#include <stddef.h>
#include <stdint.h>

#include "tc_tier_abi.h"

/* A port's own plain device (tc-device=per-port). */
struct vs_vxlan_kdev_plain {
    uint32_t tier_index;
    int ifindex, link_fd;
    char name[16];
};

struct vs_vxlan_kdev {
    uint32_t local_ip;  /* network order */
    uint16_t dst_port;  /* host order */
    int vx_ifindex;   /* the shared external vxlan device, 0 until a port needs it */
    int punt_ifindex; /* the ifb link frames come up through */
    int link_fd;      /* the tcx ingress link on the vxlan device */
    int map_fd;       /* vx_punt */
    int rx_map_fd;    /* vx_rx: the ports by (VNI, remote) */
    int maps_held;    /* holds a reference on the tc tier's maps */
    int sock_fd;      /* AF_PACKET on the punt device */
    int rx_prog_fd;   /* vs_vxlan_kdev_rx, for the external device */
    int plain_prog_fd; /* vs_vxlan_plain_rx, for the plain ones */
    int plain_map_fd; /* vx_plain */
    int drops_map_fd, drops_link_fd; /* the unknown-VNI drop counter, -1 until a plain device */
    struct vs_vxlan_kdev_plain *plain; /* the ports with a plain device */
    int n_plain, cap_plain;
    /* Each port's (vni, remote, tier_index, tx), to move it to the
     * external device (vs_vxlan_kdev_port_add). */
    struct vs_vxlan_kdev_member {
        uint32_t vni, remote, tier_index;
        int has_tx;
        struct vs_tc_vxlan_tx tx;
    } *members;
    int n_members, cap_members;
    char vx_name[16], punt_name[16];
    struct vs_vxlan_kdev *next_live; /* vxlan_kdev.c's open kdevs */
    int is_live;
};

/* 1 when the extension was built with the program. */
int vs_vxlan_kdev_available(void);

/* Creates the devices, the program and the socket for (local_ip, network
 * order; dst_port, host order).  0, or -errno with the failing step in
 * step. */
int vs_vxlan_kdev_open(struct vs_vxlan_kdev *, uint32_t local_ip, uint16_t dst_port,
                       char *step, size_t steplen);
void vs_vxlan_kdev_close(struct vs_vxlan_kdev *);

/* A vxlan port on the device: frames of (vni, remote; network order;
 * VS_VXLAN_RX_ANY / 0 for "flow") are its, under tier_index
 * (tc_tier_abi.h), in the tc tier's flows; with tx, the tier may also send
 * to it (tx: its fixed tunnel; vx_ifindex and kind are filled here).
 * per_port: a plain device of its own if it can have one (above).  0 or
 * -errno.  port_del undoes it. */
int vs_vxlan_kdev_port_add(struct vs_vxlan_kdev *, uint32_t vni, uint32_t remote,
                           uint32_t tier_index, const struct vs_tc_vxlan_tx *tx, int per_port);
void vs_vxlan_kdev_port_del(struct vs_vxlan_kdev *, uint32_t vni, uint32_t remote,
                            uint32_t tier_index);
/* The name of the kernel device that carries the port: its plain one or
 * the shared external one. */
const char *vs_vxlan_kdev_port_device(const struct vs_vxlan_kdev *, uint32_t tier_index);
/* Datagrams the kernel dropped for their VNI while plain devices held the
 * port (0 when the counter could not be loaded). */
uint64_t vs_vxlan_kdev_unknown_vni(const struct vs_vxlan_kdev *);

#endif
