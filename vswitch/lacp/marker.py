"""The Marker protocol's responder (IEEE 802.1AX-2008 clause 5.5).

A Marker PDU is a Slow Protocols frame (subtype 2): version 1, a Marker
Information TLV (type 1, length 16: requester port, system, transaction id,
2 pad octets), a Terminator and 90 reserved octets.  The responder returns
the same TLV as a Marker Response (type 2) from the port it arrived on; it
keeps no state.  A switch that distributes conversations by hash never needs
to send Markers itself, so only the responder is here.
"""
from vswitch.lacp.pdu import ETH_TYPE_SLOW, SLOW_PROTOCOLS_MAC
from vswitch.proto import MalformedFrame

SUBTYPE_MARKER = 2
TLV_MARKER_INFO = 1
TLV_MARKER_RESPONSE = 2
TLV_INFO_LEN = 16
PDU_LEN = 110  # subtype through the reserved tail


def is_marker(frame: bytes) -> bool:
    return len(frame) > 14 and frame[12:14] == ETH_TYPE_SLOW.to_bytes(2, "big") \
        and frame[14] == SUBTYPE_MARKER


def response(frame: bytes, src_mac: bytes) -> bytes:
    """The Marker Response to a Marker PDU; MalformedFrame if it is not one."""
    body = frame[14:]
    if len(body) < 2 + TLV_INFO_LEN + 2:
        raise MalformedFrame("short-marker", f"{len(body)} octets after EtherType")
    if body[0] != SUBTYPE_MARKER:
        raise MalformedFrame("not-marker-subtype", str(body[0]))
    if body[2] != TLV_MARKER_INFO or body[3] != TLV_INFO_LEN:
        raise MalformedFrame("bad-marker-tlv", body[2:4].hex())
    tlv = bytes([TLV_MARKER_RESPONSE, TLV_INFO_LEN]) + body[4:2 + TLV_INFO_LEN]
    pdu = bytes([SUBTYPE_MARKER, 1]) + tlv + b"\x00\x00"
    pdu += bytes(PDU_LEN - len(pdu))
    return SLOW_PROTOCOLS_MAC + src_mac + ETH_TYPE_SLOW.to_bytes(2, "big") + pdu
