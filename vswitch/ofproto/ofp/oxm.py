"""OXM match fields (OF1.3 section 7.2.3) and the version-independent Match.

A Match is a dict {field name: (value, mask)} of ints; mask None = exact.
MACs are 48-bit ints, IPv4 32-bit, IPv6 128-bit (as vswitch.datapath.flowkey
does).  vlan_vid follows OF1.3: 0 = untagged, 0x1000|vid = tagged
(OFPVID_PRESENT).  The OF1.0 codec converts its ofp_match into the same dict.

The FIELDS table below is read against the spec's table of OXM fields: number,
size, maskable, prerequisites.
"""
from dataclasses import dataclass

from .errors import OFPError
from .wire import pad8

OFPXMC_OPENFLOW_BASIC = 0x8000
OFPXMC_NXM_1 = 0x0001  # Nicira extensible match, class 1 (OVS's tunnel fields)
OFPXMC_EXPERIMENTER = 0xFFFF
OFPMT_STANDARD = 0
OFPMT_OXM = 1
OFPVID_PRESENT = 0x1000
OFPVID_NONE = 0

ETH_IP, ETH_ARP, ETH_IPV6 = 0x0800, 0x0806, 0x86DD
ETH_MPLS, ETH_MPLS_MC, ETH_PBB = 0x8847, 0x8848, 0x88E7
IP_ANY = (ETH_IP, ETH_IPV6)


@dataclass(frozen=True)
class Field:
    name: str
    number: int
    size: int            # bytes on the wire
    bits: int            # meaningful bits of the value
    maskable: bool
    prereqs: tuple = ()  # ((field, allowed values or None = any value), ...)
    oxm_class: int = OFPXMC_OPENFLOW_BASIC

    @property
    def order(self):
        """Where the field sorts: OpenFlow basic fields by number, then NXM."""
        return (self.oxm_class != OFPXMC_OPENFLOW_BASIC, self.number)


def _f(name, number, size, bits, maskable, *prereqs):
    return Field(name, number, size, bits, maskable, prereqs)


_ETH_IP = ("eth_type", IP_ANY)
_ETH_IPV4 = ("eth_type", (ETH_IP,))
_ETH_IPV6 = ("eth_type", (ETH_IPV6,))
_ETH_ARP = ("eth_type", (ETH_ARP,))
_ETH_MPLS = ("eth_type", (ETH_MPLS, ETH_MPLS_MC))

FIELD_LIST = [
    _f("in_port", 0, 4, 32, False),
    _f("in_phy_port", 1, 4, 32, False, ("in_port", None)),
    _f("metadata", 2, 8, 64, True),
    _f("eth_dst", 3, 6, 48, True),
    _f("eth_src", 4, 6, 48, True),
    _f("eth_type", 5, 2, 16, False),
    _f("vlan_vid", 6, 2, 13, True),
    _f("vlan_pcp", 7, 1, 3, False, ("vlan_vid", "present")),
    _f("ip_dscp", 8, 1, 6, False, _ETH_IP),
    _f("ip_ecn", 9, 1, 2, False, _ETH_IP),
    _f("ip_proto", 10, 1, 8, False, _ETH_IP),
    _f("ipv4_src", 11, 4, 32, True, _ETH_IPV4),
    _f("ipv4_dst", 12, 4, 32, True, _ETH_IPV4),
    _f("tcp_src", 13, 2, 16, False, ("ip_proto", (6,))),
    _f("tcp_dst", 14, 2, 16, False, ("ip_proto", (6,))),
    _f("udp_src", 15, 2, 16, False, ("ip_proto", (17,))),
    _f("udp_dst", 16, 2, 16, False, ("ip_proto", (17,))),
    _f("sctp_src", 17, 2, 16, False, ("ip_proto", (132,))),
    _f("sctp_dst", 18, 2, 16, False, ("ip_proto", (132,))),
    _f("icmpv4_type", 19, 1, 8, False, _ETH_IPV4, ("ip_proto", (1,))),
    _f("icmpv4_code", 20, 1, 8, False, _ETH_IPV4, ("ip_proto", (1,))),
    _f("arp_op", 21, 2, 16, False, _ETH_ARP),
    _f("arp_spa", 22, 4, 32, True, _ETH_ARP),
    _f("arp_tpa", 23, 4, 32, True, _ETH_ARP),
    _f("arp_sha", 24, 6, 48, True, _ETH_ARP),
    _f("arp_tha", 25, 6, 48, True, _ETH_ARP),
    _f("ipv6_src", 26, 16, 128, True, _ETH_IPV6),
    _f("ipv6_dst", 27, 16, 128, True, _ETH_IPV6),
    _f("ipv6_flabel", 28, 4, 20, True, _ETH_IPV6),
    _f("icmpv6_type", 29, 1, 8, False, _ETH_IPV6, ("ip_proto", (58,))),
    _f("icmpv6_code", 30, 1, 8, False, _ETH_IPV6, ("ip_proto", (58,))),
    _f("ipv6_nd_target", 31, 16, 128, False, ("icmpv6_type", (135, 136))),
    _f("ipv6_nd_sll", 32, 6, 48, False, ("icmpv6_type", (135,))),
    _f("ipv6_nd_tll", 33, 6, 48, False, ("icmpv6_type", (136,))),
    _f("mpls_label", 34, 4, 20, False, _ETH_MPLS),
    _f("mpls_tc", 35, 1, 3, False, _ETH_MPLS),
    _f("mpls_bos", 36, 1, 1, False, _ETH_MPLS),
    _f("pbb_isid", 37, 3, 24, True, ("eth_type", (ETH_PBB,))),
    _f("tunnel_id", 38, 8, 64, True),
    _f("ipv6_exthdr", 39, 2, 9, True, _ETH_IPV6),
    # OVS's outer tunnel addresses (NXM_NX_TUN_IPV4_SRC/DST, ovs-fields(7)
    # tun_src/tun_dst), as OVS sends them in OF1.3: OXM class NXM_1.
    Field("tun_ipv4_src", 31, 4, 32, True, (), OFPXMC_NXM_1),
    Field("tun_ipv4_dst", 32, 4, 32, True, (), OFPXMC_NXM_1),
]
FIELDS = {f.name: f for f in FIELD_LIST}
FIELDS_BY_NUMBER = {f.number: f for f in FIELD_LIST if f.oxm_class == OFPXMC_OPENFLOW_BASIC}
FIELDS_BY_CLASS = {(f.oxm_class, f.number): f for f in FIELD_LIST}


FULL_MASK = {f.name: (1 << f.bits) - 1 for f in FIELD_LIST}
_WIRE_ORDER = {}   # tuple of field names -> the same names in OXM field order


def full(name):
    return FULL_MASK[name]


class Match(dict):
    """{field: (value, mask or None)}; insertion order is wire order."""

    @classmethod
    def exact(cls, **fields):
        return cls({k: (v, None) for k, v in fields.items()})

    def value(self, name, default=None):
        return self[name][0] if name in self else default

    def effective_mask(self, name):
        mask = self[name][1]
        return full(name) if mask is None else mask

    def normalized(self):
        """Same match with full masks written as exact and zero masks dropped,
        so two matches that select the same packets compare equal.  Fields
        come in OXM field-number order (in_port, ..., vlan_vid, vlan_pcp, ...),
        the order OVS replies in and controllers compare against."""
        out = {}
        for name, pair in self.items():
            mask = pair[1]
            if mask is None:
                out[name] = pair           # exact: the pair as it is (immutable)
                continue
            bits = FULL_MASK[name]
            if mask & bits == bits:
                out[name] = (pair[0], None)
            elif mask:
                out[name] = (pair[0] & mask, mask)
        # Flow-mods repeat a few sets of fields: each one's order is sorted once.
        names = tuple(out)
        order = _WIRE_ORDER.get(names)
        if order is None:
            order = _WIRE_ORDER[names] = tuple(sorted(names, key=lambda name: FIELDS[name].order))
        return Match([(name, out[name]) for name in order])

    def matches(self, packet):
        """packet: {field: int}.  A field the packet lacks never matches."""
        for name, (value, mask) in self.items():
            have = packet.get(name)
            if have is None:
                return False
            m = self.effective_mask(name)
            if have & m != value & m:
                return False
        return True

    def is_subset_of(self, wider):
        """True if every packet this match selects is also selected by `wider`
        (the loose selection of OFPFC_MODIFY/DELETE)."""
        for name, (value, _) in wider.items():
            if name not in self:
                if wider.effective_mask(name) & full(name):
                    return False
                continue
            wm, sm = wider.effective_mask(name), self.effective_mask(name)
            if wm & ~sm or value & wm != self[name][0] & wm:
                return False
        return True

    def check(self):
        """Spec validation: value bits within mask and field width, prerequisites."""
        for name, (value, mask) in self.items():
            field = FIELDS[name]
            if mask is not None and not field.maskable:
                raise OFPError("BAD_MATCH", "BAD_MASK", detail=f"{name} is not maskable")
            if value >> field.bits:
                raise OFPError("BAD_MATCH", "BAD_VALUE", detail=f"{name}={value:#x}")
            if mask is not None and value & ~mask:
                raise OFPError("BAD_MATCH", "BAD_WILDCARDS", detail=f"{name} value outside mask")
            for pre_name, allowed in field.prereqs:
                if not self._prereq_met(pre_name, allowed):
                    raise OFPError("BAD_MATCH", "BAD_PREREQ", detail=f"{name} needs {pre_name}")
        return self

    def _prereq_met(self, name, allowed):
        if name not in self:
            return False
        value, mask = self[name]
        if allowed is None:
            return True
        if allowed == "present":   # vlan_pcp: the VLAN must be there
            return bool(value & OFPVID_PRESENT) and (mask is None or mask & OFPVID_PRESENT)
        return mask in (None, full(name)) and value in allowed


# --- OXM TLVs ---------------------------------------------------------------

def oxm_header(field, has_mask):
    size = field.size * (2 if has_mask else 1)
    return field.oxm_class << 16 | field.number << 9 | int(has_mask) << 8 | size


def encode_oxms(match):
    out = bytearray()
    for name, (value, mask) in match.items():
        field = FIELDS[name]
        out += oxm_header(field, mask is not None).to_bytes(4, "big")
        out += value.to_bytes(field.size, "big")
        if mask is not None:
            out += mask.to_bytes(field.size, "big")
    return bytes(out)


def read_oxm(reader):
    """One OXM TLV -> (Field, value, mask); BAD_MATCH errors as the spec names."""
    (header,) = reader.unpack("!I")
    oxm_class, number = header >> 16, (header >> 9) & 0x7F
    has_mask, length = bool(header & 0x100), header & 0xFF
    if length > reader.end - reader.pos:
        raise OFPError("BAD_MATCH", "BAD_LEN", detail=f"element of {length} bytes, {reader.remaining()} left")
    field = FIELDS_BY_CLASS.get((oxm_class, number))
    if field is None:
        raise OFPError("BAD_MATCH", "BAD_FIELD", detail=f"oxm class {oxm_class:#x} field {number}")
    if length != field.size * (2 if has_mask else 1):
        raise OFPError("BAD_MATCH", "BAD_LEN", detail=f"{field.name} length {length}")
    # Sliced straight from the buffer (the length was checked above): this
    # runs for every field of every flow-mod.
    buf, pos, size = reader.buf, reader.pos, field.size
    reader.pos = pos + length
    value = int.from_bytes(buf[pos:pos + size], "big")
    mask = int.from_bytes(buf[pos + size:pos + length], "big") if has_mask else None
    return field, value, mask


def decode_oxms(reader, check=True):
    """OXM TLVs until the reader is exhausted -> Match."""
    match = Match()
    while reader.remaining():
        field, value, mask = read_oxm(reader)
        if field.name in match:
            raise OFPError("BAD_MATCH", "DUP_FIELD", detail=field.name)
        match[field.name] = (value, mask)
    return match.check() if check else match


def encode_match(match):
    """ofp_match (OXM type), padded to 8 bytes."""
    oxms = encode_oxms(match)
    length = 4 + len(oxms)
    return (OFPMT_OXM.to_bytes(2, "big") + length.to_bytes(2, "big") + oxms
            + bytes(pad8(length)))


def decode_match(reader):
    """Reads an ofp_match and its padding from `reader` -> Match."""
    mtype, length = reader.unpack("!HH")
    if mtype != OFPMT_OXM:
        raise OFPError("BAD_MATCH", "BAD_TYPE", detail=f"match type {mtype}")
    if length < 4:
        raise OFPError("BAD_MATCH", "BAD_LEN", detail=f"match length {length}")
    body = reader.sub(length - 4, ("BAD_MATCH", "BAD_LEN"))
    reader.take(min(pad8(length), reader.remaining()))
    return decode_oxms(body)
