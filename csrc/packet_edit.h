/* packet_edit.h — header rewrites for set-field actions, checksums kept right.
 *
 * Design note.  The slow path turns OpenFlow set-field (and dec_ttl, which
 * xlate resolves to "set TTL to the value it read minus one") into these
 * edits.  Each edit finds its header by walking the frame again (a VLAN tag
 * may have been pushed or popped by an earlier action), rewrites the field,
 * and updates checksums incrementally (RFC 1624):
 *  - IPv4 header checksum for address, TOS and TTL changes;
 *  - TCP/UDP checksums for address (pseudo-header) and port changes;
 *  - the SCTP CRC32c (RFC 4960 appendix B), recomputed over the whole SCTP
 *    packet after a port change (a CRC has no incremental update).
 * A frame whose virtio-net header says the L4 checksum is still to be
 * computed (NEEDS_CSUM) holds only the pseudo-header sum in that field, not
 * its complement: address changes update it the other way round, and port
 * changes leave it alone (the kernel sums the ports later).
 * A frame without the header the edit needs is left unchanged.
 */
#ifndef VS_PACKET_EDIT_H
#define VS_PACKET_EDIT_H 1

#include <stdint.h>

#include "netdev.h"

enum vs_edit_field {
    VS_EDIT_ETH_SRC = 1,
    VS_EDIT_ETH_DST,
    VS_EDIT_IPV4_SRC,
    VS_EDIT_IPV4_DST,
    VS_EDIT_IPV4_TOS,
    VS_EDIT_IPV4_TTL,
    VS_EDIT_IPV6_SRC,
    VS_EDIT_IPV6_DST,
    VS_EDIT_TP_SRC,
    VS_EDIT_TP_DST,
    VS_EDIT_IPV6_TC,     /* traffic class byte (DSCP and ECN) */
    VS_EDIT_IPV6_HLIMIT,
    VS_EDIT_IPV6_FLABEL, /* 4 bytes, the low 20 bits used */
    VS_EDIT_ICMP_TYPE,   /* ICMPv4 or ICMPv6, checksum updated */
    VS_EDIT_ICMP_CODE,
    VS_EDIT_ARP_OP,      /* 2 bytes */
    VS_EDIT_ARP_SHA,
    VS_EDIT_ARP_SPA,
    VS_EDIT_ARP_THA,
    VS_EDIT_ARP_TPA,
    VS_EDIT_MPLS_LSE,    /* the top MPLS label stack entry, 4 bytes */
    VS_EDIT_ND_TARGET,   /* IPv6 ND target (NS/NA), 16 bytes, checksum updated */
    VS_EDIT_ND_SLL,      /* the NS source link-layer address option, 6 bytes */
    VS_EDIT_ND_TLL,      /* the NA target link-layer address option, 6 bytes */
    VS_EDIT_VLAN_TCI,    /* the outer VLAN tag's TCI, 2 bytes (its TPID kept) */
    VS_EDIT_PBB_ISID,    /* the I-TAG's I-SID, 4 bytes, the low 24 bits used */
    VS_EDIT_INNER_TTL,   /* TTL / hop limit of the IPv4/IPv6 header under the
                          * MPLS label stack (copy_ttl_in), 1 byte */
};

/* Applies one edit; `value` holds the new field in network byte order, as
 * many bytes as the field has (6 for MACs, 4 for IPv4, 16 for IPv6, 2 for
 * ports, 1 for TOS/TTL/traffic class/hop limit/ICMP type and code, 4 for
 * the flow label, 2 for the ARP opcode).  Returns 0, or -1 if the frame has no such field. */
int vs_packet_edit(struct vs_packet *pkt, int field, const uint8_t *value);

/* Offset of the Ethertype after the Ethernet header and one VLAN tag. */
uint32_t vs_ethertype_offset(const struct vs_packet *pkt);

/* Header pushes and pops that change the frame's length (datapath actions;
 * the caller shifts its offload metadata by the returned byte count, 0 if the
 * frame was left alone).
 *
 * push_pbb: a new outer Ethernet header (the frame's own addresses, then
 * `ethertype`, normally 0x88e7) and an all-zero I-TAG go in front of the whole
 * frame (802.1ah: the customer frame becomes the payload).  Needs
 * VS_PBB_PUSH_LEN bytes of headroom.
 * pop_pbb: removes the outer Ethernet header, its B-tag if any, the 0x88e7
 * Ethertype and the I-TAG, leaving the encapsulated frame; a frame without
 * an I-TAG is left alone.
 * push_vlan: a tag with `tpid` (0x8100 or 0x88a8) and `tci` in front of any
 * existing tag. */
#define VS_PBB_PUSH_LEN 18 /* 12 address bytes, Ethertype, I-TAG */
int vs_packet_push_pbb(struct vs_packet *pkt, uint16_t ethertype);
int vs_packet_pop_pbb(struct vs_packet *pkt);
int vs_packet_push_vlan(struct vs_packet *pkt, uint16_t tpid, uint16_t tci);

#endif
