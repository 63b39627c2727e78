/* netdev.h — packet I/O for the port types: afpacket and tap (internal = tap).
 *
 * Design note.  Every port speaks frames prefixed by a virtio_net_hdr, so
 * offload state travels with the packet instead of being undone at the edge:
 *  - afpacket: an AF_PACKET socket bound to the netdev with PACKET_VNET_HDR;
 *    receive is batched with recvmmsg(), send with sendmmsg().  A veth peer's
 *    TSO super-frames and partial checksums arrive as they are and leave the
 *    same way, so TCP works with the kernel's default offloads.
 *    (Why not a TPACKET_V3 ring: V3 wakes the reader only when a block retires,
 *    which is at least 1 ms, and holds 64 KiB GSO frames poorly.  recvmmsg gives
 *    the same batching with per-packet wake-ups; the ring is a later
 *    optimisation for the busy-polling case.)
 *  - tap: the switch creates the tap (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR) and
 *    enables TUN_F_CSUM/TSO so the kernel hands over unsegmented frames.
 *    Reads and writes are one syscall per frame (tun has no batch call).
 * The header layout (10 bytes) is the same for both, so frames pass between
 * port types unchanged.
 */
#ifndef VS_NETDEV_H
#define VS_NETDEV_H 1

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

enum vs_port_type { VS_PORT_AFPACKET = 1, VS_PORT_TAP = 2, VS_PORT_AFXDP = 3 /* afxdp.h */ };

/* One packet in a batch: the frame starts at data, with headroom before it
 * so a VLAN tag can be pushed without copying. */
struct vs_packet {
    uint8_t *data;
    uint32_t len;
    struct vs_vnet_hdr vnet;
    uint8_t *buf; /* start of the buffer (data - headroom) */
};

#define VS_HEADROOM 64
#define VS_MAX_FRAME (65536 + 64)
#define VS_BATCH 32

/* Opens the I/O handle for a port, bringing the netdev up; returns an fd
 * or -errno. */
int vs_netdev_open_afpacket(const char *ifname);
int vs_netdev_open_tap(const char *ifname);
/* Brings an interface up (SIOCSIFFLAGS); returns 0 or -errno. */
int vs_netdev_set_up(const char *ifname);

/* Receives up to n packets into pkts[] (each with its buffer already set);
 * returns the count (0 if none) or -errno.  *truncated counts oversize frames. */
int vs_netdev_recv(int type, int fd, struct vs_packet *pkts, int n, uint64_t *truncated);
/* Sends n packets; returns the number sent (the rest are drops). */
int vs_netdev_send(int type, int fd, struct vs_packet *const *pkts, int n);

#endif
