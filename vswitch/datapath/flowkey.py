"""Flow keys and masks as Python dicts of ints, and their C conversions.

A key is {field: int}; a mask has the same fields with the bits that matter.
MACs are 48-bit ints, IPv4 addresses 32-bit ints in the usual order
(10.0.0.1 == 0x0a000001), IPv6 addresses 128-bit ints.  Fields absent from a
mask are wildcarded.
"""
import ipaddress

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
}

VLAN_CFI = 0x1000
VLAN_VID_MASK = 0x0FFF


def full_mask(field):
    return (1 << FIELDS[field][1]) - 1


def from_c(ckey):
    """C struct vs_key -> dict."""
    key = {}
    for name, (member, bits, kind) in FIELDS.items():
        value = getattr(ckey, member)
        if kind == "bytes":
            key[name] = int.from_bytes(bytes(value), "big")
        elif kind == "be32":
            key[name] = int.from_bytes(value.to_bytes(4, "little"), "big")
        else:
            key[name] = value
    return key


def to_c(values, ckey):
    """dict -> C struct vs_key (fields not given stay zero)."""
    for name, value in values.items():
        member, bits, kind = FIELDS[name]
        if kind == "bytes":
            setattr(ckey, member, list(value.to_bytes(bits // 8, "big")))
        elif kind == "be32":
            setattr(ckey, member, int.from_bytes(value.to_bytes(4, "big"), "little"))
        else:
            setattr(ckey, member, value)
    return ckey


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
