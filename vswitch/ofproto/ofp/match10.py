"""OF1.0 ofp_match (40 bytes, wildcard bits) <-> the internal Match.

OF1.0 ignores a field whose protocol is not matched (nw_src without
dl_type=0x0800), so such fields are dropped here, as Open vSwitch does, and the
result always passes Match.check().  nw_proto and nw_src/dst mean the ARP
opcode and addresses when dl_type is ARP; tp_src/dst mean ICMP type/code when
nw_proto is ICMP.
"""
import struct

from .constants import port_from_of10, port_to_of10
from .errors import OFPError
from .oxm import ETH_ARP, ETH_IP, OFPVID_PRESENT, Match, full

FMT = "!IH6s6sHBxHBB2xIIHH"
SIZE = struct.calcsize(FMT)  # 40

W_IN_PORT, W_DL_VLAN, W_DL_SRC, W_DL_DST = 1 << 0, 1 << 1, 1 << 2, 1 << 3
W_DL_TYPE, W_NW_PROTO, W_TP_SRC, W_TP_DST = 1 << 4, 1 << 5, 1 << 6, 1 << 7
NW_SRC_SHIFT, NW_DST_SHIFT = 8, 14
W_DL_VLAN_PCP, W_NW_TOS = 1 << 20, 1 << 21
W_ALL = (1 << 22) - 1
OFP_VLAN_NONE = 0xFFFF

L4_FIELDS = {6: ("tcp_src", "tcp_dst"), 17: ("udp_src", "udp_dst"),
             132: ("sctp_src", "sctp_dst"), 1: ("icmpv4_type", "icmpv4_code")}


def _prefix_mask(wildcards, shift):
    """Number of wildcarded low bits -> (mask or None for exact, or 0 for any)."""
    n = (wildcards >> shift) & 0x3F
    if n >= 32:
        return 0
    return None if n == 0 else (0xFFFFFFFF << n) & 0xFFFFFFFF


def decode_match10(reader):
    (w, in_port, dl_src, dl_dst, dl_vlan, dl_vlan_pcp, dl_type, nw_tos, nw_proto,
     nw_src, nw_dst, tp_src, tp_dst) = reader.unpack(FMT)
    m = Match()
    if not w & W_IN_PORT:
        m["in_port"] = (port_from_of10(in_port), None)
    if not w & W_DL_DST:
        m["eth_dst"] = (int.from_bytes(dl_dst, "big"), None)
    if not w & W_DL_SRC:
        m["eth_src"] = (int.from_bytes(dl_src, "big"), None)
    if not w & W_DL_TYPE:
        m["eth_type"] = (dl_type, None)
    if not w & W_DL_VLAN:
        m["vlan_vid"] = (0 if dl_vlan == OFP_VLAN_NONE else (dl_vlan & 0xFFF) | OFPVID_PRESENT, None)
    if not w & W_DL_VLAN_PCP and m.get("vlan_vid", (OFPVID_PRESENT,))[0]:
        m.setdefault("vlan_vid", (OFPVID_PRESENT, OFPVID_PRESENT))
        m["vlan_pcp"] = (dl_vlan_pcp & 7, None)
    ip, arp = dl_type == ETH_IP and not w & W_DL_TYPE, dl_type == ETH_ARP and not w & W_DL_TYPE
    if ip and not w & W_NW_TOS:
        m["ip_dscp"] = (nw_tos >> 2, None)
    if (ip or arp) and not w & W_NW_PROTO:
        m["ip_proto" if ip else "arp_op"] = (nw_proto, None)
    for shift, addr, ip_name, arp_name in ((NW_SRC_SHIFT, nw_src, "ipv4_src", "arp_spa"),
                                           (NW_DST_SHIFT, nw_dst, "ipv4_dst", "arp_tpa")):
        mask = _prefix_mask(w, shift)
        if (ip or arp) and mask != 0:
            m[ip_name if ip else arp_name] = (addr & (0xFFFFFFFF if mask is None else mask), mask)
    l4 = L4_FIELDS.get(nw_proto) if ip and not w & W_NW_PROTO else None
    if l4:
        if not w & W_TP_SRC:
            m[l4[0]] = (tp_src if nw_proto != 1 else tp_src & 0xFF, None)
        if not w & W_TP_DST:
            m[l4[1]] = (tp_dst if nw_proto != 1 else tp_dst & 0xFF, None)
    return m.check()


def _take(match, name, error=("BAD_MATCH", "BAD_FIELD")):
    """(value, is_exact) of a field that OF1.0 can only match exactly."""
    value, mask = match[name]
    if mask is not None and mask != full(name):
        raise OFPError(*error, detail=f"OpenFlow 1.0 cannot mask {name}")
    return value


def encode_match10(match, normalized=False):
    """Match -> ofp_match; fields OF1.0 cannot express raise BAD_MATCH errors.
    normalized: the caller's match is already Match.normalized() (a table's
    rules are), so the per-entry copy and sort of a flow dump is skipped."""
    w = W_ALL
    v = dict(in_port=0, dl_src=0, dl_dst=0, dl_vlan=0, pcp=0, dl_type=0, tos=0, proto=0,
             nw_src=0, nw_dst=0, tp_src=0, tp_dst=0)
    nw_bits = {NW_SRC_SHIFT: 32, NW_DST_SHIFT: 32}   # any count >= 32 means "any"; OVS writes 32
    for name, (value, mask) in (match if normalized else match.normalized()).items():
        if name == "in_port":
            w &= ~W_IN_PORT
            v["in_port"] = port_to_of10(value, ("BAD_MATCH", "BAD_VALUE"))
        elif name in SIMPLE:
            bit, key, conv = SIMPLE[name]
            w &= ~bit
            v[key] = conv(_take(match, name))
        elif name == "vlan_vid":
            if mask == OFPVID_PRESENT and value == OFPVID_PRESENT:
                continue  # "any VLAN": OF1.0 expresses it with the pcp alone
            w &= ~W_DL_VLAN
            v["dl_vlan"] = _take(match, name) & 0xFFF if value else OFP_VLAN_NONE
        elif name in NW_ADDRS:
            shift, key = NW_ADDRS[name]
            ones = 32 if mask is None else bin(mask).count("1")
            if mask is not None and mask != (0xFFFFFFFF << (32 - ones)) & 0xFFFFFFFF:
                raise OFPError("BAD_MATCH", "BAD_NW_ADDR_MASK", detail=name)
            nw_bits[shift] = 32 - ones
            v[key] = value
        else:
            raise OFPError("BAD_MATCH", "BAD_FIELD", detail=f"{name} not in OpenFlow 1.0")
    for shift, n in nw_bits.items():
        w = (w & ~(0x3F << shift)) | (n << shift)
    return struct.pack(FMT, w, v["in_port"], v["dl_src"].to_bytes(6, "big"),
                       v["dl_dst"].to_bytes(6, "big"), v["dl_vlan"], v["pcp"], v["dl_type"],
                       v["tos"], v["proto"], v["nw_src"], v["nw_dst"], v["tp_src"], v["tp_dst"])


_same = int
SIMPLE = {
    "eth_src": (W_DL_SRC, "dl_src", _same), "eth_dst": (W_DL_DST, "dl_dst", _same),
    "eth_type": (W_DL_TYPE, "dl_type", _same), "vlan_pcp": (W_DL_VLAN_PCP, "pcp", _same),
    "ip_dscp": (W_NW_TOS, "tos", lambda d: d << 2), "ip_proto": (W_NW_PROTO, "proto", _same),
    "arp_op": (W_NW_PROTO, "proto", lambda op: op & 0xFF),
}
for _proto, (_src, _dst) in L4_FIELDS.items():
    SIMPLE[_src] = (W_TP_SRC, "tp_src", _same)
    SIMPLE[_dst] = (W_TP_DST, "tp_dst", _same)
NW_ADDRS = {"ipv4_src": (NW_SRC_SHIFT, "nw_src"), "ipv4_dst": (NW_DST_SHIFT, "nw_dst"),
            "arp_spa": (NW_SRC_SHIFT, "nw_src"), "arp_tpa": (NW_DST_SHIFT, "nw_dst")}
