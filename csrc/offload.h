/* offload.h — software checksum completion and GSO segmentation.
 *
 * Design note.  Frames inside the switch carry a virtio_net_hdr: one received
 * on a tap or an afpacket port may be a GSO super-frame (up to 64 KiB, one
 * TCP/UDP header for many segments) or carry a partial checksum (the field
 * holds only the pseudo-header sum; the rest is left to "hardware").  Ports
 * that take the header as it is (tap, afpacket) pass that on to the kernel.
 * Ports that cannot (afxdp: raw frames, no header) must finish the work
 * here, in software, before transmit:
 *  - vs_offload_csum(): NEEDS_CSUM → fold the one's-complement sum from
 *    csum_start to the end and store it at csum_start + csum_offset.
 *  - vs_offload_segment(): GSO TCPv4/TCPv6 (TSO, ECN flag honoured) and
 *    UDP_L4 (USO) → wire-size frames with their own IP lengths, IPv4 ids
 *    and header checksums, TCP sequence numbers and flags (FIN/PSH only on
 *    the last, CWR only on the first), and full L4 checksums.  UFO
 *    (IP fragmentation) is not supported: counted and dropped by the caller.
 *    vs_offload_segment_headers() makes only the segments' headers, for a
 *    sender that gathers each segment from its headers and the payload
 *    left in the super-frame (vxlan's UDP GSO send).
 * The headers are found by parsing the frame (Ethernet, up to two VLAN tags,
 * IPv4/IPv6) and csum_start, never from hdr_len: the kernel fills hdr_len
 * with the linear length of the skb, which is not the header length.
 * Both functions read only inside [frame, frame + len): a malformed frame is
 * refused with a negative return, never a crash.
 */
#ifndef VS_OFFLOAD_H
#define VS_OFFLOAD_H 1

#include <stdint.h>

#include "netdev.h"

enum {
    VS_GSO_NONE = 0,
    VS_GSO_TCPV4 = 1,
    VS_GSO_UDP = 3, /* UFO: unsupported */
    VS_GSO_TCPV6 = 4,
    VS_GSO_UDP_L4 = 5,
    VS_GSO_ECN = 0x80,
};

enum {
    VS_OFFLOAD_EMALFORMED = -1, /* headers do not parse, offsets out of range */
    VS_OFFLOAD_EUNSUPPORTED = -2,
    VS_OFFLOAD_ENOSPACE = -3, /* more segments than max_segs, or cap too small */
};

/* Completes a partial checksum in place (no-op without NEEDS_CSUM).
 * Returns 0 or VS_OFFLOAD_E*. */
int vs_offload_csum(uint8_t *frame, uint32_t len, const struct vs_vnet_hdr *vnet);

/* For frames that arrive without a vnet header (afxdp): the kernel hands a
 * veth peer's CHECKSUM_PARTIAL frames to XDP as they are, the TCP/UDP field
 * holding only the pseudo-header sum.  If the field equals that sum and the
 * frame does not verify, complete the checksum in place.  A frame that
 * verifies is never touched, so a complete checksum that happens to equal
 * the pseudo-header sum is safe.  Returns 1 if fixed, 0 if left alone. */
int vs_offload_rx_fix_csum(uint8_t *frame, uint32_t len);

/* How many frames vs_offload_segment() will write (1 for a non-GSO frame or
 * a GSO frame whose payload fits one segment), or VS_OFFLOAD_E*. */
int vs_offload_nsegs(const uint8_t *frame, uint32_t len, const struct vs_vnet_hdr *vnet);

/* Writes the wire frames for one frame with its vnet header into outs[i]
 * (each cap bytes), lengths in out_lens[i], all checksums complete.
 * Returns the number written or VS_OFFLOAD_E*. */
int vs_offload_segment(const uint8_t *frame, uint32_t len, const struct vs_vnet_hdr *vnet,
                       uint8_t *const *outs, uint32_t cap, uint32_t *out_lens, int max_segs);

/* The same for a GSO frame without copying payloads (a sender that gathers
 * iovecs): writes segment i's headers (*hdr_len bytes) into hdrs[i] (each
 * cap bytes); its payload is frame + *hdr_len + i * mss, out_lens[i] -
 * *hdr_len bytes, left in place.  Checksums are complete (the payload is
 * only read).  Returns the number of segments or VS_OFFLOAD_E*
 * (EUNSUPPORTED for a frame that is not GSO). */
int vs_offload_segment_headers(const uint8_t *frame, uint32_t len, const struct vs_vnet_hdr *vnet,
                               uint8_t *const *hdrs, uint32_t cap, uint32_t *hdr_len,
                               uint32_t *out_lens, int max_segs);

#endif
