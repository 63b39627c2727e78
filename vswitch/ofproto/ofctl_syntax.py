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
from dataclasses import dataclass, field

from vswitch.ofproto.ofp import (ApplyActions, ClearActions, DecMplsTtl, DecNwTtl, Enqueue, FlowMod, GotoTable,
                                 Group, Match, Meter, OFPError, Output, PopMpls, PopVlan, PushMpls,
                                 PushVlan, SetField, SetMplsTtl, SetNwTtl, SetQueue, WriteActions,
                                 WriteMetadata)
from vswitch.ofproto.ofp.constants import (OFPCML_NO_BUFFER, OFPFF_CHECK_OVERLAP, OFPFF_RESET_COUNTS,
                                           OFPFF_SEND_FLOW_REM, OFPG_ANY, OFPP_ANY, OFPP_CONTROLLER,
                                           RESERVED_PORTS)
from vswitch.ofproto.ofp.oxm import FIELDS, OFPVID_PRESENT

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

def _int(text):
    return int(text, 0)


def _mac(text):
    return int(text.replace(":", ""), 16)


def _fmt_mac(v):
    return ":".join(f"{b:02x}" for b in v.to_bytes(6, "big"))


def _ipv4(text):
    return int(ipaddress.IPv4Address(text))


def _ipv6(text):
    return int(ipaddress.IPv6Address(text))


def _prefix(bits, width):
    return ((1 << width) - 1) ^ ((1 << (width - bits)) - 1)


def _ip_value(parse, width):
    def value_mask(text):
        addr, _, mask = text.partition("/")
        if not mask:
            return parse(addr), None
        m = _prefix(int(mask), width) if mask.isdigit() else parse(mask)
        return parse(addr) & m, m
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


def _hex_value(text):
    value, _, mask = text.partition("/")
    return _int(value), (_int(mask) if mask else None)


def _plain(parse):
    def value_mask(text):
        value, _, mask = text.partition("/")
        return parse(value), (parse(mask) if mask else None)
    return value_mask


def _fmt_plain(fmt):
    return lambda v, m: fmt(v) if m is None else f"{fmt(v)}/{fmt(m)}"


_dec = _plain(_int)
_fmt_dec = _fmt_plain(str)
_fmt_hex = _fmt_plain(hex)
_macs = _plain(_mac)
_fmt_macs = _fmt_plain(_fmt_mac)
_v4 = (_ip_value(_ipv4, 32), _fmt_ip(ipaddress.IPv4Address, 32))
_v6 = (_ip_value(_ipv6, 128), _fmt_ip(ipaddress.IPv6Address, 128))

# ovs-ofctl name -> (oxm field, parse(text) -> (value, mask), format(value, mask)).
# Names that depend on the protocol (nw_src, tp_dst, icmp_type...) are in CONTEXT_FIELDS.
MATCH_FIELDS = {
    "in_port": ("in_port", lambda t: (_port(t), None), lambda v, m: _fmt_port(v)),
    "metadata": ("metadata", _hex_value, _fmt_hex),
    "tun_id": ("tunnel_id", _hex_value, _fmt_hex),
    "dl_src": ("eth_src", _macs, _fmt_macs),
    "dl_dst": ("eth_dst", _macs, _fmt_macs),
    "dl_type": ("eth_type", lambda t: (_int(t), None), lambda v, m: f"0x{v:04x}"),
    "dl_vlan_pcp": ("vlan_pcp", _dec, _fmt_dec),
    "ipv6_src": ("ipv6_src",) + _v6,
    "ipv6_dst": ("ipv6_dst",) + _v6,
    "ipv6_label": ("ipv6_flabel", _hex_value, _fmt_hex),
    "arp_sha": ("arp_sha", _macs, _fmt_macs),
    "arp_tha": ("arp_tha", _macs, _fmt_macs),
    "nw_ecn": ("ip_ecn", _dec, _fmt_dec),
    "ip_dscp": ("ip_dscp", _dec, _fmt_dec),
    "mpls_label": ("mpls_label", _dec, _fmt_dec),
    "mpls_tc": ("mpls_tc", _dec, _fmt_dec),
    "mpls_bos": ("mpls_bos", _dec, _fmt_dec),
    "nd_target": ("ipv6_nd_target",) + _v6,
    "nd_sll": ("ipv6_nd_sll", _macs, _fmt_macs),
    "nd_tll": ("ipv6_nd_tll", _macs, _fmt_macs),
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


def _port(text):
    low = text.lower()
    if low in RESERVED_PORTS:
        return RESERVED_PORTS[low]
    return _int(text)


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
                   "arp_op": _dec, "ip_proto": _dec}


def _set_match_field(match, name, text):
    name = ALIASES.get(name, name)
    if name == "dl_vlan":
        vid = _int(text)
        match["vlan_vid"] = (0, None) if vid == 0xFFFF else (vid | OFPVID_PRESENT, None)
    elif name == "dl_vlan_pcp":
        match.setdefault("vlan_vid", (OFPVID_PRESENT, OFPVID_PRESENT))   # a PCP implies a tag
        match["vlan_pcp"] = (_int(text), None)
    elif name == "nw_tos":
        match["ip_dscp"] = (_int(text) >> 2, None)
    elif name in MATCH_FIELDS:
        oxm, parse, _ = MATCH_FIELDS[name]
        match[oxm] = parse(text)
    else:
        oxm = name if name in CONTEXT_PARSERS else _context_field(name, match)
        if oxm is None:
            raise SyntaxError_(f"unknown field {name}")
        match[oxm] = CONTEXT_PARSERS.get(oxm, _dec)(text)


# OVS's print order (lib/match.c match_format), by oxm field
FORMAT_ORDER = ["tunnel_id", "metadata", "in_port", "vlan_vid", "vlan_pcp", "eth_src", "eth_dst",
                "eth_type", "ipv6_src", "ipv6_dst", "ipv6_flabel", "ipv4_src", "ipv4_dst", "arp_spa",
                "arp_tpa", "ip_proto", "arp_op", "arp_sha", "arp_tha", "ip_dscp", "ip_ecn",
                "mpls_label", "mpls_tc", "mpls_bos", "icmpv4_type", "icmpv6_type", "icmpv4_code",
                "icmpv6_code", "tcp_src", "udp_src", "sctp_src", "tcp_dst", "udp_dst", "sctp_dst",
                "ipv6_nd_target", "ipv6_nd_sll", "ipv6_nd_tll"]
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


def _output(arg):
    return Output(_port(arg), OFPCML_NO_BUFFER if _port(arg) == OFPP_CONTROLLER else 0)


def _controller(arg):
    if arg.startswith("max_len="):
        arg = arg[8:]
    return Output(OFPP_CONTROLLER, _int(arg) if arg else OFPCML_NO_BUFFER)


# action word -> build(argument text) -> action
ACTION_WORDS = {
    "output": _output,
    "controller": _controller,
    "drop": None,
    "mod_vlan_vid": lambda a: SetField("vlan_vid", _int(a) | OFPVID_PRESENT),
    "mod_vlan_pcp": _set("vlan_pcp", _int),
    "strip_vlan": lambda a: PopVlan(),
    "pop_vlan": lambda a: PopVlan(),
    "push_vlan": lambda a: PushVlan(_int(a)),
    "mod_dl_src": _set("eth_src", _mac),
    "mod_dl_dst": _set("eth_dst", _mac),
    "mod_nw_src": _set("ipv4_src", _ipv4),
    "mod_nw_dst": _set("ipv4_dst", _ipv4),
    "mod_nw_tos": lambda a: SetField("ip_dscp", _int(a) >> 2),
    "mod_tp_src": _set("tp_src", _int),
    "mod_tp_dst": _set("tp_dst", _int),
    "mod_nw_ttl": lambda a: SetNwTtl(_int(a)),
    "set_nw_ttl": lambda a: SetNwTtl(_int(a)),
    "dec_ttl": lambda a: DecNwTtl(),
    "push_mpls": lambda a: PushMpls(_int(a)),
    "pop_mpls": lambda a: PopMpls(_int(a)),
    "set_mpls_ttl": lambda a: SetMplsTtl(_int(a)),
    "dec_mpls_ttl": lambda a: DecMplsTtl(),
    "set_mpls_label": _set("mpls_label", _int),
    "set_mpls_tc": _set("mpls_tc", _int),
    "group": lambda a: Group(_int(a)),
    "set_queue": lambda a: SetQueue(_int(a)),
    "enqueue": lambda a: Enqueue(_port(a.split(":")[0]), _int(a.split(":")[1])),
    "set_field": lambda a: _parse_set_field(a),
}
for _word in ("normal", "flood", "all", "local", "in_port"):
    ACTION_WORDS[_word] = (lambda p: lambda a: Output(p, 0))(RESERVED_PORTS[_word])

# OVS names for set_field targets that differ from the OXM name
SET_FIELD_NAMES = {"ip_src": "ipv4_src", "ip_dst": "ipv4_dst", "nw_src": "ipv4_src",
                   "nw_dst": "ipv4_dst", "dl_src": "eth_src", "dl_dst": "eth_dst"}
SET_FIELD_PRINT = {v: k for k, v in SET_FIELD_NAMES.items() if k.startswith("ip")}


def _parse_set_field(arg):
    value, _, name = arg.partition("->")
    oxm = SET_FIELD_NAMES.get(name, name)
    if oxm not in FIELDS:
        raise SyntaxError_(f"unknown set_field target {name}")
    if "src" in oxm or "dst" in oxm or "sha" in oxm or "tha" in oxm or "target" in oxm:
        if ":" in value and FIELDS[oxm].size == 6:
            return SetField(oxm, _mac(value))
        if FIELDS[oxm].size == 16:
            return SetField(oxm, _ipv6(value))
        if "." in value:
            return SetField(oxm, _ipv4(value))
    return SetField(oxm, _int(value))


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


def _parse_action(word_arg):
    if word_arg.isdigit():
        return Output(int(word_arg), 0)
    for sep in (":", "(", "="):
        if sep in word_arg:
            word, arg = word_arg.split(sep, 1)
            arg = arg[:-1] if sep == "(" else arg
            break
    else:
        word, arg = word_arg, ""
    builder = ACTION_WORDS.get(word.lower())
    if builder is None:
        raise SyntaxError_(f"unknown action {word}")
    return builder(arg)


def _resolve_l4(action, match):
    """mod_tp_src/dst name the L4 protocol through the match (tcp -> tcp_src)."""
    proto = L4_NAMES.get(match.value("ip_proto")) if match is not None else None
    if isinstance(action, SetField) and action.field in ("tp_src", "tp_dst") and proto:
        return SetField(f"{proto}_{action.field[3:]}", action.value)
    return action


def parse_actions(text, match=None):
    """'output:2,goto_table:1' -> instructions (in the order OVS keeps them)."""
    apply, insts = [], []
    for item in _split_top(text):
        word = item.split(":", 1)[0].split("(", 1)[0].lower()
        if word == "drop":
            continue
        if word == "goto_table":
            insts.append(GotoTable(_int(item.split(":", 1)[1])))
        elif word == "meter":
            insts.append(Meter(_int(item.split(":", 1)[1])))
        elif word == "clear_actions":
            insts.append(ClearActions())
        elif word == "write_metadata":
            value, _, mask = item.split(":", 1)[1].partition("/")
            insts.append(WriteMetadata(_int(value), _int(mask) if mask else 0xFFFFFFFFFFFFFFFF))
        elif word == "write_actions":
            inner = item[item.index("(") + 1:item.rindex(")")]
            insts.append(WriteActions([_parse_action(a) for a in _split_top(inner)]))
        else:
            apply.append(_resolve_l4(_parse_action(item), match))
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
    simple = {PopVlan: "pop_vlan", DecNwTtl: "dec_ttl", DecMplsTtl: "dec_mpls_ttl"}
    if type(a) in simple:
        return simple[type(a)]
    words = {PushVlan: ("push_vlan", "0x{:x}"), PushMpls: ("push_mpls", "0x{:x}"),
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
    if a.field in ("ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"):
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
NUMBER_KEYS = {"table": "table_id", "priority": "priority", "idle_timeout": "idle_timeout",
               "hard_timeout": "hard_timeout", "out_group": "out_group"}


def parse_flow(text, actions_required=True):
    """One ovs-ofctl flow (add-flow / del-flows syntax) -> FlowSpec."""
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
            else:
                raise SyntaxError_(f"unknown keyword {key}")
        elif key in NUMBER_KEYS:
            setattr(spec, NUMBER_KEYS[key], _int(value))
        elif key == "cookie":
            cookie, _, mask = value.partition("/")
            spec.cookie = _int(cookie)
            spec.cookie_mask = (0xFFFFFFFFFFFFFFFF if mask == "-1" else _int(mask)) if mask else 0
        elif key == "out_port":
            spec.out_port = _port(value)
        else:
            _set_match_field(spec.match, key, value)
    try:
        spec.match.check()
    except OFPError as err:
        raise SyntaxError_(str(err)) from None
    spec.instructions = parse_actions(actions, spec.match) if sep else []
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

