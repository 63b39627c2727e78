"""ovs-ofctl flow syntax <-> the OpenFlow model (Match, actions, instructions).

parse_flow("priority=100,in_port=1,ip,nw_src=10.0.0.0/24,tcp,tp_dst=80,"
           "actions=output:2,mod_vlan_vid:20,goto_table:1") -> FlowSpec
format_flow(spec) prints it as `ovs-ofctl parse-flow -O OpenFlow13` does
(shorthands like "tcp", OVS field order, CONTROLLER:128, set_field:V->F);
format_flow_stats(rule, now) prints one `dump-flows` line.  Field and action
names are tables (MATCH_FIELDS, SHORTHANDS, ACTION_WORDS) read against
ovs-fields(7) and ovs-actions(7).
"""
import ipaddress
import re
from dataclasses import dataclass, field

from vswitch.ofproto.ofp import (ApplyActions, ClearActions, CopyTtlIn, CopyTtlOut, DecMplsTtl, DecNwTtl, Enqueue, FlowMod, GotoTable,
                                 Group, Match, Meter, OFPError, Output, PopMpls, PopPbb, PopVlan, PushMpls, PushPbb,
                                 PushVlan, SetField, SetMplsTtl, SetNwTtl, SetQueue, WriteActions,
                                 WriteMetadata)
from vswitch.ofproto.ofp.constants import (OFPCML_NO_BUFFER, OFPFF_CHECK_OVERLAP, OFPFF_RESET_COUNTS,
                                           OFPFF_SEND_FLOW_REM, OFPG_ANY, OFPP_ANY, OFPP_CONTROLLER,
                                           RESERVED_PORTS)
from vswitch.ofproto.ofp.oxm import FIELDS, OFPVID_PRESENT, full

DEFAULT_PRIORITY = 0x8000


class SyntaxError_(ValueError):
    """Text that is not valid ovs-ofctl flow syntax."""


@dataclass
class FlowSpec:
    match: Match = field(default_factory=Match)
    instructions: list = field(default_factory=list)
    table_id: int = 0
    priority: int = DEFAULT_PRIORITY
    cookie: int = 0
    cookie_mask: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    flags: int = 0
    out_port: int = OFPP_ANY
    out_group: int = OFPG_ANY

    def flow_mod(self, command, version=4):
        return FlowMod(cookie=self.cookie, cookie_mask=self.cookie_mask, table_id=self.table_id,
                       command=command, idle_timeout=self.idle_timeout, hard_timeout=self.hard_timeout,
                       priority=self.priority, out_port=self.out_port, out_group=self.out_group,
                       flags=self.flags, match=self.match, instructions=self.instructions,
                       version=version)


# --- values -----------------------------------------------------------------
#
# Every value is checked against the width of its field: a bad token is
# refused with a message that names it, worded as ovs-ofctl words it where
# ovs-ofctl refuses it too ("65536: value too large for 2-byte field tcp_dst",
# "1:2:3: invalid Ethernet address", "10.0.0.0/33: IPv4 network prefix bits
# not between 0 and 32, inclusive").  Where ovs-ofctl silently keeps only the
# low bits (dl_vlan=4096, dl_vlan_pcp=8, ip_dscp=64, nw_tos=3, mpls_tc=8) we
# refuse instead: a flow must match what the operator wrote.

_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


def _int(text, name="value", hi=None):
    """An unsigned number as strtoull(base 0) reads it (decimal, 0x hex, 0
    octal), checked against 0..hi when hi is given."""
    t = text.strip()
    negative = t.startswith("-") and _NUMBER.fullmatch(t[1:]) is not None
    if not negative and not _NUMBER.fullmatch(t):
        raise SyntaxError_(f"{text}: bad syntax for {name} value")
    if hi is not None and (negative or _to_int(t) > hi):
        raise SyntaxError_(_range_error(text, name, hi))
    if negative:
        raise SyntaxError_(f"{text}: bad syntax for {name} value")
    return _to_int(t)


def _to_int(t):
    if t[:2].lower() == "0x":
        return int(t, 16)
    return int(t, 8) if t.startswith("0") else int(t)


def _range_error(text, name, hi):
    nbytes = (hi.bit_length() + 7) // 8
    if hi == (1 << (8 * nbytes)) - 1:
        return f"{text}: value too large for {nbytes}-byte field {name}"
    return f"{text}: value out of range for {name} (must be 0..{hi})"


def _checked(text, hi, message):
    """A number 0..hi, or `message` (with {text} in it) as the error."""
    try:
        return _int(text, hi=hi)
    except SyntaxError_:
        raise SyntaxError_(message.format(text=text)) from None


_MAC = re.compile(r"[0-9a-fA-F]{1,2}(:[0-9a-fA-F]{1,2}){5}")


def _mac(text, error="{text}: invalid Ethernet address"):
    if not _MAC.fullmatch(text.strip()):
        raise SyntaxError_(error.format(text=text))
    return int("".join(f"{int(b, 16):02x}" for b in text.strip().split(":")), 16)


def _fmt_mac(v):
    return ":".join(f"{b:02x}" for b in v.to_bytes(6, "big"))


def _ipv4(text, error="{text}: invalid IP address"):
    try:
        return int(ipaddress.IPv4Address(text.strip()))
    except ValueError:
        raise SyntaxError_(error.format(text=text)) from None


def _ipv6(text, error="{text}: invalid IPv6 address"):
    try:
        return int(ipaddress.IPv6Address(text.strip()))
    except ValueError:
        raise SyntaxError_(error.format(text=text)) from None


def _prefix(bits, width):
    return ((1 << width) - 1) ^ ((1 << (width - bits)) - 1)


def _ip_value(parse, width, family):
    """ADDR, ADDR/BITS (0..width) or ADDR/MASK (any mask) -> (value, mask)."""
    def value_mask(text, name=None):
        addr, slash, mask = text.partition("/")
        if not slash:
            return parse(addr), None
        if re.fullmatch(r"-?[0-9]+", mask.strip()):
            bits = int(mask)
            if not 0 <= bits <= width:
                raise SyntaxError_(f"{text}: {family} network prefix bits not between 0 and {width}, inclusive")
            m = _prefix(bits, width)
        else:
            m = parse(mask, error=f"{text}: invalid {'IP' if width == 32 else 'IPv6'} address")
        return parse(addr, error=f"{text}: invalid {'IP' if width == 32 else 'IPv6'} address") & m, m
    return value_mask


def _fmt_ip(kind, width):
    def fmt(value, mask):
        text = str(kind(value))
        if mask is None or mask == (1 << width) - 1:
            return text
        ones = bin(mask).count("1")
        if mask == _prefix(ones, width):
            return f"{text}/{ones}"
        return f"{text}/{kind(mask)}"
    return fmt


def _uint_field(oxm, hi=None):
    """VALUE or VALUE/MASK, each 0..hi (the field's width by default)."""
    def value_mask(text, name):
        top = full(oxm) if hi is None else hi
        value, _, mask = text.partition("/")
        if not mask:
            return _int(value, name, top), None
        m = _int(mask, name, top)
        return _int(value, name, top) & m, m
    return value_mask


def _exact_field(oxm, hi=None):
    parse = _uint_field(oxm, hi)

    def value(text, name):
        if "/" in text:
            raise SyntaxError_(f"{text}: {name} cannot be masked")
        return parse(text, name)
    return value


def _macs(text, name=None):
    value, _, mask = text.partition("/")
    if not mask:
        return _mac(value), None
    m = _mac(mask, error=f"{text}: invalid Ethernet address")
    return _mac(value, error=f"{text}: invalid Ethernet address") & m, m


def _fmt_plain(fmt):
    return lambda v, m: fmt(v) if m is None else f"{fmt(v)}/{fmt(m)}"


_fmt_dec = _fmt_plain(str)
_fmt_hex = _fmt_plain(hex)
_fmt_macs = _fmt_plain(_fmt_mac)
_v4 = (_ip_value(_ipv4, 32, "IPv4"), _fmt_ip(ipaddress.IPv4Address, 32))
_v6 = (_ip_value(_ipv6, 128, "IPv6"), _fmt_ip(ipaddress.IPv6Address, 128))

# ovs-ofctl name -> (oxm field, parse(text) -> (value, mask), format(value, mask)).
# Names that depend on the protocol (nw_src, tp_dst, icmp_type...) are in CONTEXT_FIELDS.
MATCH_FIELDS = {
    "in_port": ("in_port", None, lambda v, m: _fmt_port(v)),      # parsed by _port (names)
    "metadata": ("metadata", _uint_field("metadata"), _fmt_hex),
    "tun_id": ("tunnel_id", _uint_field("tunnel_id"), _fmt_hex),
    "tun_src": ("tun_ipv4_src",) + _v4,
    "tun_dst": ("tun_ipv4_dst",) + _v4,
    "dl_src": ("eth_src", _macs, _fmt_macs),
    "dl_dst": ("eth_dst", _macs, _fmt_macs),
    "dl_type": ("eth_type", _exact_field("eth_type"), lambda v, m: f"0x{v:04x}"),
    "dl_vlan_pcp": ("vlan_pcp", _exact_field("vlan_pcp"), _fmt_dec),
    "ipv6_src": ("ipv6_src",) + _v6,
    "ipv6_dst": ("ipv6_dst",) + _v6,
    "ipv6_label": ("ipv6_flabel", _uint_field("ipv6_flabel"), _fmt_hex),
    "arp_sha": ("arp_sha", _macs, _fmt_macs),
    "arp_tha": ("arp_tha", _macs, _fmt_macs),
    "nw_ecn": ("ip_ecn", _exact_field("ip_ecn"), _fmt_dec),
    "ip_dscp": ("ip_dscp", _exact_field("ip_dscp"), _fmt_dec),
    "mpls_label": ("mpls_label", _exact_field("mpls_label"), _fmt_dec),
    "mpls_tc": ("mpls_tc", _exact_field("mpls_tc"), _fmt_dec),
    "mpls_bos": ("mpls_bos", _exact_field("mpls_bos"), _fmt_dec),
    "nd_target": ("ipv6_nd_target",) + _v6,
    "nd_sll": ("ipv6_nd_sll", _macs, _fmt_macs),
    "nd_tll": ("ipv6_nd_tll", _macs, _fmt_macs),
    # OF1.3's PBB I-SID (OVS has no name for it: os-ken's)
    "pbb_isid": ("pbb_isid", _uint_field("pbb_isid"), _fmt_dec),
}
ALIASES = {"eth_src": "dl_src", "eth_dst": "dl_dst", "eth_type": "dl_type", "tunnel_id": "tun_id",
           "ip_src": "nw_src", "ip_dst": "nw_dst", "ip_proto": "nw_proto", "ip_ecn": "nw_ecn",
           "icmpv4_type": "icmp_type", "icmpv4_code": "icmp_code", "icmpv6_type": "icmp_type",
           "icmpv6_code": "icmp_code", "ipv6_flabel": "ipv6_label", "vlan_pcp": "dl_vlan_pcp"}
for _l4 in ("tcp", "udp", "sctp"):
    ALIASES[_l4 + "_src"], ALIASES[_l4 + "_dst"] = "tp_src", "tp_dst"

# shorthand -> fields it sets (ovs-fields(7) "Shorthand")
SHORTHANDS = {
    "ip": {"eth_type": 0x0800}, "ipv6": {"eth_type": 0x86DD}, "arp": {"eth_type": 0x0806},
    "rarp": {"eth_type": 0x8035}, "mpls": {"eth_type": 0x8847}, "mplsm": {"eth_type": 0x8848},
    "icmp": {"eth_type": 0x0800, "ip_proto": 1}, "icmp6": {"eth_type": 0x86DD, "ip_proto": 58},
    "tcp": {"eth_type": 0x0800, "ip_proto": 6}, "tcp6": {"eth_type": 0x86DD, "ip_proto": 6},
    "udp": {"eth_type": 0x0800, "ip_proto": 17}, "udp6": {"eth_type": 0x86DD, "ip_proto": 17},
    "sctp": {"eth_type": 0x0800, "ip_proto": 132}, "sctp6": {"eth_type": 0x86DD, "ip_proto": 132},
}
L4_NAMES = {6: "tcp", 17: "udp", 132: "sctp"}
ICMP_NAMES = {(0x0800, 1): "icmpv4", (0x86DD, 58): "icmpv6"}


OF10_RESERVED_BASE = 0xFFFF0000   # OF1.0 port 0xff00..0xffff -> OF1.1+ 0xffffff00..


def _port(text, port_map=None, error="{text}: invalid or unknown port"):
    """A port as ovs-ofctl reads one: a number (0..0xffff, or a 32-bit
    reserved number 0xffffff00..), a reserved name (LOCAL, CONTROLLER...,
    any case), or a port name looked up in port_map {name: OpenFlow port}
    (the switch's port descriptions; None when there is no switch).
    Unknown names and numbers out of range raise `error`."""
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] == '"':
        t = t[1:-1]
    low = t.lower()
    if low in RESERVED_PORTS:
        return RESERVED_PORTS[low]
    if _NUMBER.fullmatch(t):
        number = _to_int(t)
        if number < 0xFF00 or number >= 0xFFFFFF00:
            return number
        if number <= 0xFFFF:
            return number + OF10_RESERVED_BASE
        raise SyntaxError_(error.format(text=text) + " (port numbers are 0..65535)")
    if port_map is not None and t in port_map:
        return port_map[t]
    message = error.format(text=text)
    if port_map is None and re.fullmatch(r"[^\s,=:()]+", t) and not t.lstrip("-").isdigit():
        message += " (a port name needs the bridge's ports: use the OpenFlow port number)"
    raise SyntaxError_(message)


PORT_NAMES = {v: k.upper() for k, v in RESERVED_PORTS.items()}


def _fmt_port(port):
    return PORT_NAMES.get(port, str(port))


# --- matches ------------------------------------------------------------------

def _context_field(name, match):
    """Protocol-dependent names: nw_src means ipv4_src or arp_spa, tp_dst tcp_dst/udp_dst..."""
    eth = match.value("eth_type")
    proto = match.value("ip_proto")
    if name in ("nw_src", "nw_dst"):
        if eth in (0x0806, 0x8035):
            return "arp_spa" if name == "nw_src" else "arp_tpa"
        return "ipv4_" + name[3:]
    if name == "nw_proto":
        return "arp_op" if eth in (0x0806, 0x8035) else "ip_proto"
    if name in ("tp_src", "tp_dst"):
        if proto not in L4_NAMES:
            raise SyntaxError_(f"{name} needs tcp, udp or sctp")
        return f"{L4_NAMES[proto]}_{name[3:]}"
    if name in ("icmp_type", "icmp_code"):
        kind = ICMP_NAMES.get((eth, proto))
        if kind is None:
            raise SyntaxError_(f"{name} needs icmp or icmp6")
        return f"{kind}_{name[5:]}"
    return None


CONTEXT_PARSERS = {"ipv4_src": _v4[0], "ipv4_dst": _v4[0], "arp_spa": _v4[0], "arp_tpa": _v4[0],
                   "arp_op": _exact_field("arp_op"), "ip_proto": _exact_field("ip_proto")}


def _set_match_field(match, name, text, port_map=None):
    typed = name
    name = ALIASES.get(name, name)
    if name == "in_port":
        match["in_port"] = (_port(text, port_map, "{text}: invalid or unknown port for in_port"), None)
    elif name == "dl_vlan":
        vid = _exact_field("vlan_vid", 0xFFFF)(text, typed)[0]
        if 4095 < vid < 0xFFFF:
            raise SyntaxError_(f"{text}: value out of range for {typed} (must be 0..4095, or 0xffff for "
                               f"no VLAN)")
        match["vlan_vid"] = (0, None) if vid == 0xFFFF else (vid | OFPVID_PRESENT, None)
    elif name == "dl_vlan_pcp":
        pcp = _exact_field("vlan_pcp")(text, typed)[0]
        match.setdefault("vlan_vid", (OFPVID_PRESENT, OFPVID_PRESENT))   # a PCP implies a tag
        match["vlan_pcp"] = (pcp, None)
    elif name == "nw_tos":
        tos = _exact_field("ip_dscp", 255)(text, typed)[0]
        if tos & 3:
            raise SyntaxError_(f"{text}: not a valid TOS for nw_tos (its low 2 bits are ECN: use a multiple "
                               f"of 4, or ip_dscp and nw_ecn)")
        match["ip_dscp"] = (tos >> 2, None)
    elif name in MATCH_FIELDS:
        oxm, parse, _ = MATCH_FIELDS[name]
        match[oxm] = parse(text, typed)
    else:
        oxm = name if name in CONTEXT_PARSERS else _context_field(name, match)
        if oxm is None:
            raise SyntaxError_(f"unknown keyword {typed}")
        shown = oxm if name in ("tp_src", "tp_dst") else typed     # ovs-ofctl says tcp_dst for tp_dst
        match[oxm] = CONTEXT_PARSERS.get(oxm, _uint_field(oxm))(text, shown)


# OVS's print order (lib/match.c match_format), by oxm field
FORMAT_ORDER = ["tunnel_id", "tun_ipv4_src", "tun_ipv4_dst", "metadata", "in_port", "vlan_vid", "vlan_pcp", "eth_src", "eth_dst",
                "eth_type", "ipv6_src", "ipv6_dst", "ipv6_flabel", "ipv4_src", "ipv4_dst", "arp_spa",
                "arp_tpa", "ip_proto", "arp_op", "arp_sha", "arp_tha", "ip_dscp", "ip_ecn",
                "mpls_label", "mpls_tc", "mpls_bos", "icmpv4_type", "icmpv6_type", "icmpv4_code",
                "icmpv6_code", "tcp_src", "udp_src", "sctp_src", "tcp_dst", "udp_dst", "sctp_dst",
                "ipv6_nd_target", "ipv6_nd_sll", "ipv6_nd_tll", "pbb_isid"]
OXM_TO_NAME = {oxm: name for name, (oxm, _, _) in MATCH_FIELDS.items()}
OXM_TO_NAME.update({"ipv4_src": "nw_src", "ipv4_dst": "nw_dst", "arp_spa": "arp_spa", "arp_tpa": "arp_tpa",
                    "ip_proto": "nw_proto", "arp_op": "arp_op", "ip_dscp": "nw_tos"})
for _p in ("tcp", "udp", "sctp"):
    OXM_TO_NAME[_p + "_src"], OXM_TO_NAME[_p + "_dst"] = "tp_src", "tp_dst"
for _k in ("icmpv4", "icmpv6"):
    OXM_TO_NAME[_k + "_type"], OXM_TO_NAME[_k + "_code"] = "icmp_type", "icmp_code"


def _format_value(oxm, value, mask):
    if oxm in ("ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"):
        return _v4[1](value, mask)
    if oxm == "ip_dscp":
        return str(value << 2)
    name = OXM_TO_NAME[oxm]
    if name in MATCH_FIELDS:
        return MATCH_FIELDS[name][2](value, mask)
    return _fmt_dec(value, mask)


def format_match(match):
    match = match.normalized()
    parts = []
    implied = {}
    for short, fields in SHORTHANDS.items():
        if all(match.get(f) == (v, None) for f, v in fields.items()) and len(fields) >= len(implied):
            best, implied = short, fields
    if implied:
        parts.append(best)
    for oxm in FORMAT_ORDER:
        if oxm not in match or oxm in implied:
            continue
        value, mask = match[oxm]
        if oxm == "vlan_vid":
            if not (value == mask == OFPVID_PRESENT and "vlan_pcp" in match):   # implied by the PCP
                parts.append(_format_vlan(value, mask))
        else:
            parts.append(f"{OXM_TO_NAME[oxm]}={_format_value(oxm, value, mask)}")
    return ",".join(parts)


def _format_vlan(value, mask):
    if mask is None and value & OFPVID_PRESENT:
        return f"dl_vlan={value & 0xFFF}"
    tci_mask = 0x1FFF if mask is None else mask
    return f"vlan_tci=0x{value:04x}/0x{tci_mask:04x}"


# --- actions and instructions -------------------------------------------------

def _set(field_name, parse):
    return lambda arg: SetField(field_name, parse(arg))


def _output(arg, port_map=None):
    port = _port(arg, port_map, "{text}: output to unknown port")
    return Output(port, OFPCML_NO_BUFFER if port == OFPP_CONTROLLER else 0)


def _controller(arg):
    if arg.startswith("max_len="):
        arg = arg[8:]
    return Output(OFPP_CONTROLLER, _checked(arg, 0xFFFF, 'invalid max_len "{text}"') if arg else OFPCML_NO_BUFFER)


def _enqueue(arg, port_map=None):
    port, sep, queue = arg.rpartition(":") if ":" in arg else arg.rpartition(",")
    if not sep or not port:
        raise SyntaxError_('"enqueue" syntax is "enqueue:PORT:QUEUE" or "enqueue(PORT,QUEUE)"')
    return Enqueue(_port(port, port_map, "{text}: enqueue to unknown port"), _int(queue, "queue", 0xFFFFFFFF))


def _tos(arg):
    tos = _checked(arg, 255, 'invalid TOS "{text}"')
    if tos & 3:
        raise SyntaxError_(f"{arg}: not a valid TOS")
    return SetField("ip_dscp", tos >> 2)


def _vlan_ethertype(arg):
    tpid = _checked(arg, 0xFFFF, 'invalid ethertype "{text}"')
    if tpid not in (0x8100, 0x88A8):
        raise SyntaxError_(f"{arg}: not a valid VLAN ethertype")
    return PushVlan(tpid)


U32 = 0xFFFFFFFF

# action word -> build(argument text) -> action
ACTION_WORDS = {
    "output": _output,
    "controller": _controller,
    "drop": None,
    "mod_vlan_vid": lambda a: SetField("vlan_vid", _checked(a, 4095, "{text}: not a valid VLAN VID")
                                       | OFPVID_PRESENT),
    "mod_vlan_pcp": _set("vlan_pcp", lambda a: _checked(a, 7, "{text}: not a valid VLAN PCP")),
    "strip_vlan": lambda a: PopVlan(),
    "pop_vlan": lambda a: PopVlan(),
    "push_vlan": _vlan_ethertype,
    "mod_dl_src": _set("eth_src", lambda a: _mac(a, "invalid mac address {text}")),
    "mod_dl_dst": _set("eth_dst", lambda a: _mac(a, "invalid mac address {text}")),
    "mod_nw_src": _set("ipv4_src", lambda a: _ipv4(a, "{text}: could not convert to IP address")),
    "mod_nw_dst": _set("ipv4_dst", lambda a: _ipv4(a, "{text}: could not convert to IP address")),
    "mod_nw_tos": _tos,
    "mod_tp_src": _set("tp_src", lambda a: _checked(a, 0xFFFF, 'invalid source port "{text}"')),
    "mod_tp_dst": _set("tp_dst", lambda a: _checked(a, 0xFFFF, 'invalid destination port "{text}"')),
    "mod_nw_ttl": lambda a: SetNwTtl(_checked(a, 255, 'invalid TTL "{text}"')),
    "set_nw_ttl": lambda a: SetNwTtl(_checked(a, 255, 'invalid TTL "{text}"')),
    "dec_ttl": lambda a: DecNwTtl(),
    "push_mpls": lambda a: PushMpls(_checked(a, 0xFFFF, 'invalid ethertype "{text}"')),
    "pop_mpls": lambda a: PopMpls(_checked(a, 0xFFFF, 'invalid pop_mpls "{text}"')),
    "set_mpls_ttl": lambda a: SetMplsTtl(_checked(a, 255, 'invalid MPLS TTL "{text}"')),
    "dec_mpls_ttl": lambda a: DecMplsTtl(),
    "set_mpls_label": _set("mpls_label", lambda a: _checked(a, full("mpls_label"), "{text}: not a valid MPLS label")),
    "set_mpls_tc": _set("mpls_tc", lambda a: _checked(a, 7, "{text}: not a valid MPLS TC")),
    "group": lambda a: Group(_checked(a, U32, "invalid numeric format {text}")),
    "set_queue": lambda a: SetQueue(_checked(a, U32, "invalid numeric format {text}")),
    "enqueue": _enqueue,
    "set_field": lambda a: _parse_set_field(a),
    # OF1.3 actions ovs-ofctl has no words for (OVS lacks them); the words
    # os-ken's switch tests use, so that what vswitch prints parses back
    "push_pbb": lambda a: PushPbb(_checked(a, 0xFFFF, 'invalid ethertype "{text}"')),
    "pop_pbb": lambda a: PopPbb(),
    "copy_ttl_in": lambda a: CopyTtlIn(),
    "copy_ttl_out": lambda a: CopyTtlOut(),
}
PORT_ACTIONS = {"output", "enqueue"}      # builders that take the port map too
for _word in ("normal", "flood", "all", "local", "in_port"):
    ACTION_WORDS[_word] = (lambda p: lambda a: Output(p, 0))(RESERVED_PORTS[_word])

# OVS names for set_field targets that differ from the OXM name
SET_FIELD_NAMES = {"ip_src": "ipv4_src", "ip_dst": "ipv4_dst", "nw_src": "ipv4_src",
                   "nw_dst": "ipv4_dst", "dl_src": "eth_src", "dl_dst": "eth_dst",
                   "tun_id": "tunnel_id", "tun_src": "tun_ipv4_src", "tun_dst": "tun_ipv4_dst"}
SET_FIELD_PRINT = {v: k for k, v in SET_FIELD_NAMES.items() if k.startswith(("ip", "tun"))}


def _parse_set_field(arg):
    value, arrow, name = arg.partition("->")
    if not arrow:
        raise SyntaxError_(f"{arg}: missing `->' in set_field")
    oxm = SET_FIELD_NAMES.get(name.strip(), name.strip())
    if oxm not in FIELDS:
        raise SyntaxError_(f"unknown set_field target {name}")
    f = FIELDS[oxm]
    if oxm in ("ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa", "tun_ipv4_src", "tun_ipv4_dst"):
        return SetField(oxm, _ipv4(value))
    if f.size == 6:
        return SetField(oxm, _mac(value))
    if f.size == 16:
        return SetField(oxm, _ipv6(value))
    hi = full(oxm)
    try:
        number = _int(value, oxm, hi)
    except SyntaxError_:
        if _NUMBER.fullmatch(value.strip()) and FIELDS[oxm].bits % 8:
            raise SyntaxError_(f"{value} is not a valid value for field {oxm} (must be 0..{hi})") from None
        raise
    if oxm == "vlan_vid" and not number & OFPVID_PRESENT:
        # the OXM value: 0x1000 (OFPVID_PRESENT) | VID, as ovs-ofctl wants it
        raise SyntaxError_(f"{value} is not a valid value for field vlan_vid (set_field takes "
                           f"0x1000|VID, e.g. {number | OFPVID_PRESENT} for VLAN {number}; or use "
                           f"mod_vlan_vid:{number})")
    return SetField(oxm, number)


def _split_top(text, sep=","):
    """Split on `sep` outside parentheses."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == sep and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += (ch == "(") - (ch == ")")
        cur += ch
    if cur:
        out.append(cur)
    return [p.strip() for p in out if p.strip()]


def _parse_action(word_arg, port_map=None):
    if word_arg.isdigit():
        return _output(word_arg)
    for sep in (":", "(", "="):
        if sep in word_arg:
            word, arg = word_arg.split(sep, 1)
            arg = arg[:-1] if sep == "(" else arg
            break
    else:
        word, arg = word_arg, ""
    builder = ACTION_WORDS.get(word.lower())
    if builder is None:
        if port_map is not None and word_arg in port_map:     # a bare port name: output to it
            return Output(port_map[word_arg], 0)
        raise SyntaxError_(f"unknown action {word}")
    if word.lower() in PORT_ACTIONS:
        return builder(arg, port_map)
    return builder(arg)


def _resolve_l4(action, match):
    """mod_tp_src/dst name the L4 protocol through the match (tcp -> tcp_src)."""
    proto = L4_NAMES.get(match.value("ip_proto")) if match is not None else None
    if isinstance(action, SetField) and action.field in ("tp_src", "tp_dst") and proto:
        return SetField(f"{proto}_{action.field[3:]}", action.value)
    return action


def _argument(item, word):
    _, sep, arg = item.partition(":")
    if not sep or not arg.strip():
        raise SyntaxError_(f"{word}: missing argument (syntax: {word}:VALUE)")
    return arg


def parse_actions(text, match=None, port_map=None):
    """'output:2,goto_table:1' -> instructions (in the order OVS keeps them).
    port_map {name: OpenFlow port} resolves port names (output:vm1, vm1)."""
    apply, insts = [], []
    for item in _split_top(text):
        word = item.split(":", 1)[0].split("(", 1)[0].lower()
        if word == "drop":
            continue
        if word == "goto_table":
            insts.append(GotoTable(_checked(_argument(item, word), 254, 'unknown table "{text}"')))
        elif word == "meter":
            insts.append(Meter(_checked(_argument(item, word), U32, "invalid numeric format {text}")))
        elif word == "clear_actions":
            insts.append(ClearActions())
        elif word == "write_metadata":
            value, _, mask = _argument(item, word).partition("/")
            insts.append(WriteMetadata(_int(value, "write_metadata", full("metadata")),
                                       _int(mask, "write_metadata", full("metadata")) if mask
                                       else 0xFFFFFFFFFFFFFFFF))
        elif word == "write_actions":
            if "(" not in item or not item.endswith(")"):
                raise SyntaxError_(f"{item}: syntax is write_actions(ACTIONS)")
            inner = item[item.index("(") + 1:item.rindex(")")]
            insts.append(WriteActions([_parse_action(a, port_map) for a in _split_top(inner)]))
        else:
            apply.append(_resolve_l4(_parse_action(item, port_map), match))
    order = {Meter: 0, ApplyActions: 1, ClearActions: 2, WriteActions: 3, WriteMetadata: 4, GotoTable: 5}
    if apply:
        insts.append(ApplyActions(apply))
    return sorted(insts, key=lambda i: order[type(i)])


# OF1.0 spellings of set-field and pop-vlan (what ovs-ofctl -O OpenFlow10 prints)
OF10_SET_WORDS = {"vlan_vid": ("mod_vlan_vid", lambda v: v & 0xFFF), "vlan_pcp": ("mod_vlan_pcp", int),
                  "eth_src": ("mod_dl_src", _fmt_mac), "eth_dst": ("mod_dl_dst", _fmt_mac),
                  "ipv4_src": ("mod_nw_src", lambda v: ipaddress.IPv4Address(v)),
                  "ipv4_dst": ("mod_nw_dst", lambda v: ipaddress.IPv4Address(v)),
                  "ip_dscp": ("mod_nw_tos", lambda v: v << 2)}
for _p in ("tp", "tcp", "udp", "sctp"):
    OF10_SET_WORDS[_p + "_src"], OF10_SET_WORDS[_p + "_dst"] = ("mod_tp_src", int), ("mod_tp_dst", int)


def format_action(a, version=4):
    if version == 1 and isinstance(a, SetField) and a.field in OF10_SET_WORDS:
        word, conv = OF10_SET_WORDS[a.field]
        return f"{word}:{conv(a.value)}"
    if version == 1 and isinstance(a, PopVlan):
        return "strip_vlan"
    if isinstance(a, Output):
        if a.port == OFPP_CONTROLLER:
            return f"CONTROLLER:{a.max_len}"
        return PORT_NAMES.get(a.port, f"output:{a.port}")
    if isinstance(a, SetField):
        return f"set_field:{_format_set_value(a)}->{SET_FIELD_PRINT.get(a.field, a.field)}"
    simple = {PopVlan: "pop_vlan", DecNwTtl: "dec_ttl", DecMplsTtl: "dec_mpls_ttl", PopPbb: "pop_pbb",
              CopyTtlIn: "copy_ttl_in", CopyTtlOut: "copy_ttl_out"}
    if type(a) in simple:
        return simple[type(a)]
    words = {PushVlan: ("push_vlan", "0x{:x}"), PushMpls: ("push_mpls", "0x{:x}"), PushPbb: ("push_pbb", "0x{:x}"),
             PopMpls: ("pop_mpls", "0x{:04x}"), Group: ("group", "{}"), SetQueue: ("set_queue", "{}"),
             SetNwTtl: ("mod_nw_ttl", "{}"), SetMplsTtl: ("set_mpls_ttl", "{}")}
    if type(a) in words:
        word, fmt = words[type(a)]
        return f"{word}:{fmt.format(*vars(a).values())}"
    if isinstance(a, Enqueue):
        return f"enqueue:{_fmt_port(a.port)}:{a.queue_id}"
    return repr(a)


def _format_set_value(a):
    f = FIELDS.get(a.field)
    if f is None:
        return str(a.value)
    if f.size == 6:
        return _fmt_mac(a.value)
    if f.size == 16:
        return str(ipaddress.IPv6Address(a.value))
    if a.field in ("ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa", "tun_ipv4_src", "tun_ipv4_dst"):
        return str(ipaddress.IPv4Address(a.value))
    return str(a.value)


def format_actions(instructions, version=4):
    parts = []
    for inst in instructions:
        if isinstance(inst, ApplyActions):
            parts += [format_action(a, version) for a in inst.actions]
        elif isinstance(inst, WriteActions):
            parts.append("write_actions(" + ",".join(format_action(a) for a in inst.actions) + ")")
        elif isinstance(inst, GotoTable):
            parts.append(f"goto_table:{inst.table_id}")
        elif isinstance(inst, Meter):
            parts.append(f"meter:{inst.meter_id}")
        elif isinstance(inst, ClearActions):
            parts.append("clear_actions")
        elif isinstance(inst, WriteMetadata):
            parts.append(f"write_metadata:{inst.metadata:#x}/{inst.mask:#x}")
    return ",".join(parts) or "drop"


# --- flows --------------------------------------------------------------------

FLAG_WORDS = {"send_flow_rem": OFPFF_SEND_FLOW_REM, "check_overlap": OFPFF_CHECK_OVERLAP,
              "reset_counts": OFPFF_RESET_COUNTS}
# key -> (FlowSpec attribute, largest value); ovs-ofctl's error is 'invalid KEY "TEXT"'
NUMBER_KEYS = {"table": ("table_id", 255), "priority": ("priority", 0xFFFF),
               "idle_timeout": ("idle_timeout", 0xFFFF), "hard_timeout": ("hard_timeout", 0xFFFF),
               "out_group": ("out_group", U32)}
U64 = 0xFFFFFFFFFFFFFFFF


def _is_field(key):
    key = ALIASES.get(key, key)
    return key in MATCH_FIELDS or key in CONTEXT_PARSERS or key in (
        "dl_vlan", "nw_tos", "nw_src", "nw_dst", "nw_proto", "tp_src", "tp_dst", "icmp_type", "icmp_code")


def parse_flow(text, actions_required=True, port_map=None):
    """One ovs-ofctl flow (add-flow / del-flows syntax) -> FlowSpec.
    port_map {name: OpenFlow port} lets in_port=, out_port= and output
    actions name ports (ovs-ofctl looks names up in the switch's port
    descriptions); without it a port name is refused."""
    spec = FlowSpec()
    head, sep, actions = text.partition("actions=")
    if actions_required and not sep:
        raise SyntaxError_("must specify an action")
    head = head.replace(" ", ",").replace("\t", ",")
    for item in (p for p in head.split(",") if p):
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not eq:
            if key in SHORTHANDS:
                for f, v in SHORTHANDS[key].items():
                    spec.match[f] = (v, None)
            elif key in FLAG_WORDS:
                spec.flags |= FLAG_WORDS[key]
            elif _is_field(key) or key in NUMBER_KEYS or key in ("cookie", "out_port"):
                raise SyntaxError_(f"field {key} missing value")
            else:
                raise SyntaxError_(f"unknown keyword {key}")
        elif key in NUMBER_KEYS:
            attr, hi = NUMBER_KEYS[key]
            error = 'unknown table "{text}"' if key == "table" else f'invalid {key} "{{text}}"'
            setattr(spec, attr, _checked(value, hi, error))
        elif key == "cookie":
            cookie, _, mask = value.partition("/")
            spec.cookie = _checked(cookie, U64, "invalid numeric format {text}")
            spec.cookie_mask = ((U64 if mask.strip() == "-1" else _checked(mask, U64, "invalid numeric format {text}"))
                                if mask else 0)
        elif key == "out_port":
            spec.out_port = _port(value, port_map, "{text}: invalid or unknown port for out_port")
        else:
            _set_match_field(spec.match, key, value, port_map)
    try:
        spec.match.check()
    except OFPError as err:
        raise SyntaxError_(str(err)) from None
    spec.instructions = parse_actions(actions, spec.match, port_map) if sep else []
    return spec


def format_flow(spec, version=4):
    """'priority=100,tcp,in_port=1 actions=output:2' as ovs-ofctl prints a flow
    (OF1.0 action spellings with version=1)."""
    match = format_match(spec.match)
    prio = f"priority={spec.priority}" if spec.priority != DEFAULT_PRIORITY else ""
    head = ",".join(p for p in (prio, match) if p)
    return (head + " " if head else "") + "actions=" + format_actions(spec.instructions, version)


def format_flow_stats(rule, now):
    """One dump-flows line for a flow_table.Rule, as ovs-ofctl dump-flows prints it."""
    sec, nsec = rule.duration(now)
    parts = [f"cookie={rule.cookie:#x}", f"duration={sec}.{nsec // 1_000_000:03d}s",
             f"table={rule.table_id}", f"n_packets={rule.packet_count}", f"n_bytes={rule.byte_count}"]
    if rule.idle_timeout:
        parts.append(f"idle_timeout={rule.idle_timeout}")
    if rule.hard_timeout:
        parts.append(f"hard_timeout={rule.hard_timeout}")
    flags = "".join(w + " " for w, bit in FLAG_WORDS.items() if rule.flags & bit and w == "send_flow_rem")
    flow = format_flow(FlowSpec(rule.match, rule.instructions, priority=rule.priority))
    return " " + ", ".join(parts) + ", " + flags + flow


def parse_flows(text):
    """An add-flows file: one flow per line, '#' comments and blank lines skipped."""
    return [parse_flow(line) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]

