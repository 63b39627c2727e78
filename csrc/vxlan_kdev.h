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
 *  - The outer UDP source port is not in the kernel's tunnel key: frames
 *    received this way have tnl.tp_src 0.
 *  - Thread safety: open and close run in control calls (under
 *    netdev_vxlan.c's socks_mutex); the socket is read by one poll thread.
 */
#ifndef VS_VXLAN_KDEV_H
#define VS_VXLAN_KDEV_H 1

#include <stddef.h>
#include <stdint.h>

struct vs_vxlan_kdev {
    int vx_ifindex;   /* the kernel vxlan device */
    int punt_ifindex; /* the ifb link frames come up through */
    int link_fd;      /* the tcx ingress link on the vxlan device */
    int map_fd;       /* vx_punt */
    int rx_map_fd;    /* vx_rx: the ports by (VNI, remote) */
    int maps_held;    /* holds a reference on the tc tier's maps */
    int sock_fd;      /* AF_PACKET on the punt device */
    char vx_name[16], punt_name[16];
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
 * to it (tx: its fixed tunnel).  0 or -errno.  port_del undoes it. */
struct vs_tc_vxlan_tx;
int vs_vxlan_kdev_port_add(struct vs_vxlan_kdev *, uint32_t vni, uint32_t remote,
                           uint32_t tier_index, const struct vs_tc_vxlan_tx *tx);
void vs_vxlan_kdev_port_del(struct vs_vxlan_kdev *, uint32_t vni, uint32_t remote,
                            uint32_t tier_index);

#endif
