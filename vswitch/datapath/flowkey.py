"""Flow keys and masks as Python dicts of ints, and their C conversions.

A key is {field: int}; a mask has the same fields with the bits that matter.
MACs are 48-bit ints, IPv4 addresses 32-bit ints in the usual order
(10.0.0.1 == 0x0a000001), IPv6 addresses 128-bit ints.  Fields absent from a
mask are wildcarded.
"""
import ipaddress
import struct

# field name -> (C member, width in bits, kind); kind says how C stores it.
FIELDS = {
    "in_port": ("in_port", 32, "int"),
    "vlan_tci": ("vlan_tci", 16, "int"),
    "dl_type": ("dl_type", 16, "int"),
    "dl_dst": ("dl_dst", 48, "bytes"),
    "dl_src": ("dl_src", 48, "bytes"),
    "nw_src": ("nw_src", 32, "be32"),
    "nw_dst": ("nw_dst", 32, "be32"),
    "ipv6_src": ("ipv6_src", 128, "bytes"),
    "ipv6_dst": ("ipv6_dst", 128, "bytes"),
    "nw_proto": ("nw_proto", 8, "int"),
    "nw_tos": ("nw_tos", 8, "int"),
    "nw_ttl": ("nw_ttl", 8, "int"),
    "nw_frag": ("nw_frag", 8, "int"),
    "tp_src": ("tp_src", 16, "int"),
    "tp_dst": ("tp_dst", 16, "int"),
    # I-SID of a PBB (802.1ah) frame, dl_type 0x88e7 (0 otherwise)
    "pbb_isid": ("pbb_isid", 24, "int"),
    # Tunnel metadata of a packet a tunnel port decapsulated (0 otherwise).
    "tun_id": ("tun_id", 64, "int"),
    "tun_src": ("tun_src", 32, "be32"),
    "tun_dst": ("tun_dst", 32, "be32"),
}

VLAN_CFI = 0x1000
VLAN_VID_MASK = 0x0FFF


def full_mask(field):
    return (1 << FIELDS[field][1]) - 1


# The C struct vs_key as bytes (88, little-endian host): see csrc/flow_key.h.
_LAYOUT = struct.Struct("<IHH6s6s4s4s16s16sBBBBHHIQ4s4s")
PACKED_SIZE = _LAYOUT.size
_from_bytes = int.from_bytes


def unpack(raw):
    """88 bytes of a C struct vs_key -> dict (the hot path of every upcall)."""
    v = _LAYOUT.unpack(raw)
    return {"in_port": v[0], "vlan_tci": v[1], "dl_type": v[2],
            "dl_dst": _from_bytes(v[3], "big"), "dl_src": _from_bytes(v[4], "big"),
            "nw_src": _from_bytes(v[5], "big"), "nw_dst": _from_bytes(v[6], "big"),
            "ipv6_src": _from_bytes(v[7], "big"), "ipv6_dst": _from_bytes(v[8], "big"),
            "nw_proto": v[9], "nw_tos": v[10], "nw_ttl": v[11], "nw_frag": v[12],
            "tp_src": v[13], "tp_dst": v[14], "pbb_isid": v[15],
            "tun_id": v[16], "tun_src": _from_bytes(v[17], "big"), "tun_dst": _from_bytes(v[18], "big")}


def pack(values):
    """dict -> 88 bytes laid out as C struct vs_key (missing fields are 0).
    Written out field by field: this runs several times per upcall."""
    g = values.get
    return _LAYOUT.pack(
        g("in_port", 0), g("vlan_tci", 0), g("dl_type", 0),
        g("dl_dst", 0).to_bytes(6, "big"), g("dl_src", 0).to_bytes(6, "big"),
        g("nw_src", 0).to_bytes(4, "big"), g("nw_dst", 0).to_bytes(4, "big"),
        g("ipv6_src", 0).to_bytes(16, "big"), g("ipv6_dst", 0).to_bytes(16, "big"),
        g("nw_proto", 0), g("nw_tos", 0), g("nw_ttl", 0), g("nw_frag", 0),
        g("tp_src", 0), g("tp_dst", 0), g("pbb_isid", 0),
        g("tun_id", 0), g("tun_src", 0).to_bytes(4, "big"), g("tun_dst", 0).to_bytes(4, "big"))


def _pointer(ffi, ckey):
    # A struct field or array element comes as the struct itself, not a pointer.
    return ffi.addressof(ckey) if ffi.typeof(ckey).kind == "struct" else ckey


def from_c(ckey):
    """C struct vs_key (cdata) -> dict."""
    from ._datapath import ffi
    return unpack(ffi.buffer(_pointer(ffi, ckey), _LAYOUT.size)[:])


def to_c(values, ckey):
    """dict -> C struct vs_key (fields not given stay zero)."""
    from ._datapath import ffi
    ffi.memmove(_pointer(ffi, ckey), pack(values), _LAYOUT.size)
    return ckey


def mask_packed(packed_key, packed_mask):
    """pack(apply_mask(key, mask)) from the packed forms: one AND over the
    whole struct instead of a dict comprehension and a second pack (every
    flow setup does this)."""
    return (_from_bytes(packed_key, "little") & _from_bytes(packed_mask, "little")).to_bytes(
        PACKED_SIZE, "little")


def apply_mask(key, mask):
    return {f: key.get(f, 0) & m for f, m in mask.items() if m}


def mac_str(value):
    return ":".join(f"{b:02x}" for b in value.to_bytes(6, "big"))


def mac_int(text):
    return int(text.replace(":", "").replace("-", ""), 16)


def is_multicast_mac(value):
    return bool((value >> 40) & 1)


def _fmt_field(name, value):
    kind = FIELDS[name][2]
    if name in ("dl_src", "dl_dst"):
        return mac_str(value)
    if kind == "be32":
        return str(ipaddress.IPv4Address(value))
    if name.startswith("ipv6"):
        return str(ipaddress.IPv6Address(value))
    if name in ("dl_type", "vlan_tci"):
        return f"0x{value:04x}"
    return str(value)


def format_match(key, mask, port_names=None):
    """Megaflow match in an ovs-dpctl-like notation: only fields in the mask,
    with /mask where a field is partly wildcarded."""
    parts = []
    for name in FIELDS:
        m = mask.get(name, 0)
        if not m:
            continue
        value = key.get(name, 0) & m
        if name == "in_port" and port_names:
            text = port_names.get(value, str(value))
        else:
            text = _fmt_field(name, value)
        if m != full_mask(name):
            text += "/" + _fmt_field(name, m)
        parts.append(f"{name}={text}")
    return ",".join(parts) or "any"
