/* flow_key.h — the compact flow key and the one-pass packet parser.
 *
 * Design note.  Every packet is parsed exactly once, on receive, into a fixed
 * 88-byte key (eleven 64-bit words).  The classifier masks keys word by word, so
 * the layout is plain data with explicit padding and no pointers.  Fields the
 * slow path needs to read are in host byte order (dl_type, vlan_tci, tp_*);
 * addresses stay in network order as they appear on the wire.
 *
 * vlan_tci carries VS_VLAN_CFI when the frame has an 802.1Q/802.1ad tag, so
 * "no tag" (0) and "tag with VID 0" (0x1000) are distinct, as in OVS.
 * Only the outer tag is parsed; a second tag leaves dl_type = 0x8100.
 *
 * A PBB frame (802.1ah, Ethertype 0x88e7 after the B-tag if any) keeps
 * dl_type = 0x88e7 and carries its I-SID in pbb_isid; parsing stops at the
 * I-TAG (what it encapsulates is another whole Ethernet frame, which OpenFlow
 * only matches after a pop_pbb).  pbb_isid is 0 for any other frame.
 *
 * A frame shorter than an Ethernet header, or whose IPv4/IPv6/L4 header is cut
 * short, is malformed: vs_parse() returns -1 and the caller counts and drops
 * it.  Nothing here reads past `len`.
 */
#ifndef VS_FLOW_KEY_H
#define VS_FLOW_KEY_H 1

#include <stddef.h>
#include <stdint.h>

#define VS_VLAN_CFI 0x1000
#define VS_ETH_TYPE_PBB 0x88e7  /* 802.1ah backbone service instance tag */
#define VS_PBB_ITAG_LEN 4       /* PCP/DEI/UCA/reserved, then the 24-bit I-SID */
#define VS_PBB_ISID_MASK 0xffffff
#define VS_KEY_WORDS 11

/* nw_frag values */
#define VS_FRAG_ANY 1   /* packet is a fragment */
#define VS_FRAG_LATER 2 /* ... and not the first one */

struct vs_key {
    uint32_t in_port;
    uint16_t vlan_tci;
    uint16_t dl_type;
    uint8_t dl_dst[6];
    uint8_t dl_src[6];
    uint32_t nw_src; /* IPv4 source, or ARP sender IP */
    uint32_t nw_dst; /* IPv4 destination, or ARP target IP */
    uint8_t ipv6_src[16];
    uint8_t ipv6_dst[16];
    uint8_t nw_proto; /* IP protocol, or low byte of ARP opcode */
    uint8_t nw_tos;
    uint8_t nw_ttl;
    uint8_t nw_frag;
    uint16_t tp_src; /* L4 source port, ICMP type */
    uint16_t tp_dst; /* L4 destination port, ICMP code */
    uint32_t pbb_isid; /* I-SID of a PBB frame (host order), else 0 */
    /* Tunnel metadata of a packet a tunnel port decapsulated (netdev.h,
     * struct vs_tnl_md), set by the datapath after vs_parse(); all zero for
     * a packet that did not come through a tunnel. */
    uint64_t tun_id;  /* VNI / key, host order */
    uint32_t tun_src; /* outer IPv4 source, network order */
    uint32_t tun_dst; /* outer IPv4 destination (the local VTEP), network order */
};

/* Parses `frame` into `key` (in_port is left to the caller).  Returns 0, or
 * -1 for a malformed frame.  `*tcp_flags` receives the TCP flags (0 if none). */
int vs_parse(const uint8_t *frame, uint32_t len, struct vs_key *key,
             uint16_t *tcp_flags);

#endif
