"""The records the datapath hands to the exporters, and their validation.

Addresses are text ("10.0.0.1", "2001:db8::1", "02:00:00:00:00:01") so the
caller never packs anything; the exporters parse them once on input and drop
(with a reason) what does not parse.

Byte counts: the datapath counts L2 frame bytes (Ethernet header, and the
802.1Q tag when the frame carried one, no FCS). NetFlow v5 dOctets and IPFIX
octetDeltaCount are IP-layer counts, so `ip_layer_bytes()` subtracts
`l2_header_len` per packet: 14, or 18 when the key has a VLAN, unless the
datapath says otherwise in `FlowStats.l2_header_len` (e.g. an access port
whose frames were untagged on the wire but carry a VLAN in the key).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

ETH_HEADER_LEN = 14
VLAN_TAG_LEN = 4

TCP_FIN = 0x01
TCP_RST = 0x04


@dataclass(frozen=True)
class FlowKey:
    """What identifies a flow. ip_version 4 or 6, or 0 for a non-IP flow."""
    in_port: int
    out_port: int = 0          # 0: unknown / dropped
    vlan: int = 0              # 802.1Q VID, 0: untagged
    src_mac: str = "00:00:00:00:00:00"
    dst_mac: str = "00:00:00:00:00:00"
    ip_version: int = 4
    src_ip: str = "0.0.0.0"
    dst_ip: str = "0.0.0.0"
    protocol: int = 0
    src_port: int = 0
    dst_port: int = 0
    tos: int = 0


@dataclass
class FlowStats:
    """Counters of one flow since the previous report (deltas).

    first_seen/last_seen are the times (seconds, same clock as `now`) of the
    first and last packet counted in this delta, not of the flow's creation.
    """
    key: FlowKey
    packets: int
    bytes: int                 # L2 frame bytes, see module docstring
    first_seen: float
    last_seen: float
    tcp_flags: int = 0
    l2_header_len: int | None = None


@dataclass
class PacketSample:
    """One sampled frame (sFlow). `header` is the start of the frame as seen
    on the wire without FCS; frame_length is its full length without FCS.
    out_port: an ifindex-mapped port, None if unknown, or a list of ports
    when the frame went to several (flood)."""
    header: bytes
    frame_length: int
    in_port: int
    out_port: int | None | list[int]
    sampling_rate: int
    sample_pool: int
    drops: int = 0
    in_vlan: int = 0
    out_vlan: int = 0
    in_priority: int = 0
    out_priority: int = 0


@dataclass
class InterfaceCounters:
    """sFlow generic interface counters (RFC 2863 names), cumulative."""
    if_type: int = 6           # ethernetCsmacd
    if_speed: int = 0          # bits per second
    if_direction: int = 1      # 1 full duplex, 2 half, 0 unknown
    admin_up: bool = True
    oper_up: bool = True
    in_octets: int = 0
    in_ucast_pkts: int = 0
    in_multicast_pkts: int = 0
    in_broadcast_pkts: int = 0
    in_discards: int = 0
    in_errors: int = 0
    in_unknown_protos: int = 0
    out_octets: int = 0
    out_ucast_pkts: int = 0
    out_multicast_pkts: int = 0
    out_broadcast_pkts: int = 0
    out_discards: int = 0
    out_errors: int = 0
    promiscuous: bool = False


@dataclass(frozen=True)
class ParsedKey:
    """A FlowKey with its addresses packed once, as the encoders need them."""
    key: FlowKey
    src_mac: bytes
    dst_mac: bytes
    src_ip: bytes = field(default=b"")
    dst_ip: bytes = field(default=b"")


class InvalidRecord(ValueError):
    """Raised by the parsers below; the engines turn it into a drop reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _require(cond: bool, reason: str) -> None:
    if not cond:
        raise InvalidRecord(reason)


def _is_uint(value, bits: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) \
        and 0 <= value < (1 << bits)


def mac_bytes(text) -> bytes:
    _require(isinstance(text, str), "bad_mac")
    parts = text.split(":")
    _require(len(parts) == 6 and all(len(p) == 2 for p in parts), "bad_mac")
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise InvalidRecord("bad_mac") from None


def ip_bytes(text, version: int) -> bytes:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidRecord("bad_ip_address") from None
    _require(addr.version == version, "ip_version_mismatch")
    return addr.packed


def parse_key(key) -> ParsedKey:
    _require(isinstance(key, FlowKey), "not_a_flow_key")
    _require(_is_uint(key.in_port, 32) and _is_uint(key.out_port, 32), "bad_port")
    _require(_is_uint(key.vlan, 12), "bad_vlan")
    _require(key.ip_version in (0, 4, 6), "bad_ip_version")
    _require(_is_uint(key.protocol, 8) and _is_uint(key.tos, 8), "bad_protocol_or_tos")
    _require(_is_uint(key.src_port, 16) and _is_uint(key.dst_port, 16), "bad_l4_port")
    src_mac, dst_mac = mac_bytes(key.src_mac), mac_bytes(key.dst_mac)
    if key.ip_version == 0:
        return ParsedKey(key, src_mac, dst_mac)
    return ParsedKey(key, src_mac, dst_mac,
                     ip_bytes(key.src_ip, key.ip_version),
                     ip_bytes(key.dst_ip, key.ip_version))


def check_flow_stats(stats) -> ParsedKey:
    """Validates a FlowStats; returns its parsed key or raises InvalidRecord."""
    _require(isinstance(stats, FlowStats), "not_flow_stats")
    parsed = parse_key(stats.key)
    _require(_is_uint(stats.packets, 64) and _is_uint(stats.bytes, 64), "bad_counters")
    _require(_is_uint(stats.tcp_flags, 16), "bad_tcp_flags")
    _require(isinstance(stats.first_seen, (int, float))
             and isinstance(stats.last_seen, (int, float))
             and 0 <= stats.first_seen <= stats.last_seen, "bad_timestamps")
    _require(stats.bytes >= stats.packets * l2_header_len(stats), "bytes_below_headers")
    return parsed


def l2_header_len(stats: FlowStats) -> int:
    if stats.l2_header_len is not None:
        return stats.l2_header_len
    return ETH_HEADER_LEN + (VLAN_TAG_LEN if stats.key.vlan else 0)


def ip_layer_bytes(stats: FlowStats) -> int:
    """L2 frame bytes minus the L2 header of every packet (see module doc)."""
    if stats.key.ip_version == 0:
        return stats.bytes
    return stats.bytes - stats.packets * l2_header_len(stats)


def check_packet_sample(sample) -> None:
    _require(isinstance(sample, PacketSample), "not_a_packet_sample")
    _require(isinstance(sample.header, (bytes, bytearray)) and len(sample.header) > 0,
             "empty_header")
    _require(_is_uint(sample.frame_length, 32)
             and sample.frame_length >= len(sample.header), "bad_frame_length")
    _require(_is_uint(sample.in_port, 30), "bad_in_port")
    out = sample.out_port
    if isinstance(out, list):
        _require(all(_is_uint(p, 30) for p in out), "bad_out_port")
    else:
        _require(out is None or _is_uint(out, 30), "bad_out_port")
    _require(_is_uint(sample.sampling_rate, 32) and sample.sampling_rate >= 1,
             "bad_sampling_rate")
    _require(_is_uint(sample.sample_pool, 32) and _is_uint(sample.drops, 32),
             "bad_pool_or_drops")
    for vlan in (sample.in_vlan, sample.out_vlan):
        _require(_is_uint(vlan, 12), "bad_vlan")
    for prio in (sample.in_priority, sample.out_priority):
        _require(_is_uint(prio, 3), "bad_priority")


def check_counters(ifindex, counters) -> InterfaceCounters:
    """Accepts an InterfaceCounters or a dict of its fields."""
    _require(_is_uint(ifindex, 32), "bad_ifindex")
    if isinstance(counters, dict):
        try:
            counters = InterfaceCounters(**counters)
        except TypeError:
            raise InvalidRecord("unknown_counter_field") from None
    _require(isinstance(counters, InterfaceCounters), "not_interface_counters")
    # 32-bit counters wrap like SNMP Counter32: the encoder keeps the low bits.
    for name, value in vars(counters).items():
        if name not in ("admin_up", "oper_up", "promiscuous"):
            _require(_is_uint(value, 64), "bad_counter_value")
    return counters
