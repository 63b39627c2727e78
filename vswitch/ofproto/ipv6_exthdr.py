"""The OF1.3 ipv6_exthdr pseudo-field (OXM 39): which IPv6 extension headers
a packet has, as OFPIEH_* flags (OF1.3 section 7.2.3.8, table 13).

Design note.  The flow key has no room for it, so xlate reads it from the
frame (pipeline.FRAME_FIELDS): a table lookup that consults it makes the flow
slow-path, as for the other frame-only fields.  The walk follows the chain
of next-header values from the fixed header; it stops at ESP (what follows
is encrypted), at "no next header", at an upper-layer protocol, or where the
frame ends.  UNREP: a header that may appear once appeared twice (the
destination options header may appear twice); UNSEQ: the headers are not in
RFC 8200's preferred order.
"""
OFPIEH_NONEXT, OFPIEH_ESP, OFPIEH_AUTH, OFPIEH_DEST = 1 << 0, 1 << 1, 1 << 2, 1 << 3
OFPIEH_FRAG, OFPIEH_ROUTER, OFPIEH_HOP = 1 << 4, 1 << 5, 1 << 6
OFPIEH_UNREP, OFPIEH_UNSEQ = 1 << 7, 1 << 8

IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT = 0, 43, 44
IPPROTO_ESP, IPPROTO_AH, IPPROTO_NONE, IPPROTO_DSTOPTS = 50, 51, 59, 60
IPV6_HEADER_LEN = 40
EXT_LEN_UNIT = 8      # hop-by-hop, routing, destination options: (len + 1) * 8 bytes
AH_LEN_UNIT = 4       # authentication header: (len + 2) * 4 bytes
FRAGMENT_LEN = 8
FLAGS = {IPPROTO_HOPOPTS: OFPIEH_HOP, IPPROTO_ROUTING: OFPIEH_ROUTER, IPPROTO_FRAGMENT: OFPIEH_FRAG,
         IPPROTO_ESP: OFPIEH_ESP, IPPROTO_AH: OFPIEH_AUTH, IPPROTO_DSTOPTS: OFPIEH_DEST,
         IPPROTO_NONE: OFPIEH_NONEXT}
# RFC 8200 section 4.1's order (destination options before routing, and last)
ORDER = [IPPROTO_HOPOPTS, IPPROTO_DSTOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_AH,
         IPPROTO_ESP, IPPROTO_DSTOPTS]


def _length(proto, frame, off):
    if proto == IPPROTO_FRAGMENT:
        return FRAGMENT_LEN
    if proto == IPPROTO_AH:
        return (frame[off + 1] + 2) * AH_LEN_UNIT
    return (frame[off + 1] + 1) * EXT_LEN_UNIT


def exthdr_flags(frame, l3):
    """OFPIEH_* flags of the IPv6 packet whose fixed header is at frame[l3:]."""
    if len(frame) < l3 + IPV6_HEADER_LEN:
        return 0
    flags, seen, order_at = 0, [], 0
    proto, off = frame[l3 + 6], l3 + IPV6_HEADER_LEN
    while proto in FLAGS:
        flags |= FLAGS[proto]
        if proto in seen and not (proto == IPPROTO_DSTOPTS and seen.count(proto) == 1):
            flags |= OFPIEH_UNREP
        seen.append(proto)
        if proto != IPPROTO_NONE:   # "no next header" may end any chain
            try:
                order_at = ORDER.index(proto, order_at)
            except ValueError:
                flags |= OFPIEH_UNSEQ
        if proto in (IPPROTO_ESP, IPPROTO_NONE) or len(frame) < off + 2:
            break
        next_proto, off = frame[off], off + _length(proto, frame, off)
        proto = next_proto
    return flags
