"""Text of vswitchd's appctl commands in Open vSwitch 3.1's layouts.

Pure functions of plain data (no daemon), so they are unit-tested alone.
Where this switch has no counterpart of an OVS field the line is kept, so a
parser written for OVS still finds it, with the value true of this switch
(0 recirculations, no SMC, no hardware offload); see the README's
"ovs-appctl" section for the few that differ.
"""
import ipaddress

from vswitch.datapath import dpif, flowkey

VLAN_CFI = flowkey.VLAN_CFI
FRAG_ANY, FRAG_LATER = 1, 2  # csrc/flow_key.h
ETH_TYPE_VLAN, ETH_TYPE_IP, ETH_TYPE_IPV6, ETH_TYPE_ARP = 0x8100, 0x0800, 0x86DD, 0x0806
L4_NAMES = {6: "tcp", 17: "udp", 132: "sctp"}
DATAPATH_NAME = "netdev@vswitch"  # dpif/show's "type@name" of the one userspace datapath


# ---------------------------------------------------------------- ODP (datapath) syntax

def _ip(value, width):
    return str(ipaddress.IPv4Address(value) if width == 32 else ipaddress.IPv6Address(value))


def _field(key, mask, name, label, text):
    """`label=value` (with `/mask` when partly wildcarded), or None when wildcarded."""
    m = mask.get(name, 0)
    if not m:
        return None
    value = key.get(name, 0) & m
    if m == flowkey.full_mask(name):
        return f"{label}={text(value)}"
    return f"{label}={text(value)}/{text(m)}"


def _frag(key, mask):
    if not mask.get("nw_frag", 0):
        return None
    frag = key.get("nw_frag", 0)
    return "frag=" + ("no" if not frag & FRAG_ANY else "later" if frag & FRAG_LATER else "first")


def _group(label, parts):
    parts = [p for p in parts if p]
    return f"{label}({','.join(parts)})" if parts else None


def _l3_l4(key, mask):
    """eth_type(...) and what follows it: the part OVS nests in encap() after a VLAN."""
    parts = []
    dl_type = key.get("dl_type", 0)
    if mask.get("dl_type", 0):
        parts.append(f"eth_type(0x{dl_type & mask['dl_type']:04x})")
    else:
        return parts
    hexa = str
    if dl_type == ETH_TYPE_IP:
        parts.append(_group("ipv4", [
            _field(key, mask, "nw_src", "src", lambda v: _ip(v, 32)),
            _field(key, mask, "nw_dst", "dst", lambda v: _ip(v, 32)),
            _field(key, mask, "nw_proto", "proto", hexa),
            _field(key, mask, "nw_tos", "tos", hexa),
            _field(key, mask, "nw_ttl", "ttl", hexa),
            _frag(key, mask)]))
    elif dl_type == ETH_TYPE_IPV6:
        parts.append(_group("ipv6", [
            _field(key, mask, "ipv6_src", "src", lambda v: _ip(v, 128)),
            _field(key, mask, "ipv6_dst", "dst", lambda v: _ip(v, 128)),
            _field(key, mask, "nw_proto", "proto", hexa),
            _field(key, mask, "nw_tos", "tclass", hexa),
            _field(key, mask, "nw_ttl", "hlimit", hexa),
            _frag(key, mask)]))
    elif dl_type == ETH_TYPE_ARP:
        parts.append(_group("arp", [
            _field(key, mask, "nw_src", "sip", lambda v: _ip(v, 32)),
            _field(key, mask, "nw_dst", "tip", lambda v: _ip(v, 32)),
            _field(key, mask, "nw_proto", "op", hexa)]))
    if dl_type in (ETH_TYPE_IP, ETH_TYPE_IPV6) and mask.get("nw_proto", 0) == 0xFF:
        proto = key.get("nw_proto", 0)
        icmp = (dl_type == ETH_TYPE_IP and proto == 1) or (dl_type == ETH_TYPE_IPV6 and proto == 58)
        if icmp:
            parts.append(_group("icmp" if proto == 1 else "icmpv6", [
                _field(key, mask, "tp_src", "type", hexa), _field(key, mask, "tp_dst", "code", hexa)]))
        elif proto in L4_NAMES:
            parts.append(_group(L4_NAMES[proto], [
                _field(key, mask, "tp_src", "src", hexa), _field(key, mask, "tp_dst", "dst", hexa)]))
    return [p for p in parts if p]


def format_odp_flow(key, mask, port_names=None):
    """A megaflow's match as `ovs-appctl dpctl/dump-flows` prints it:
    recirc_id(0),in_port(N),packet_type(ns=0,id=0),eth(src=..,dst=..),
    eth_type(0x0800),ipv4(...),tcp(...); wildcarded fields left out, partly
    wildcarded ones as value/mask, a VLAN as eth_type(0x8100),vlan(vid=..,
    pcp=..),encap(...).  This datapath never recirculates: recirc_id(0)."""
    parts = ["recirc_id(0)"]
    if mask.get("in_port", 0):
        port = key.get("in_port", 0)
        parts.append(f"in_port({(port_names or {}).get(port, port)})")
    parts.append("packet_type(ns=0,id=0)")
    eth = _group("eth", [_field(key, mask, "dl_src", "src", flowkey.mac_str),
                         _field(key, mask, "dl_dst", "dst", flowkey.mac_str)])
    if eth:
        parts.append(eth)
    rest = _l3_l4(key, mask)
    tci, tci_mask = key.get("vlan_tci", 0), mask.get("vlan_tci", 0)
    if tci_mask and tci & VLAN_CFI:
        # An untagged key has no vlan() at all, as in OVS's ODP keys.
        parts += ["eth_type(0x8100)", f"vlan({format_vlan_tci(tci, tci_mask)})",
                  f"encap({','.join(rest)})"]
    else:
        parts += rest
    return ",".join(parts)


def format_vlan_tci(tci, mask):
    """vlan()'s fields as OVS's format_vlan_tci (not verbose): vid and pcp
    when the value or the mask has any, /mask when partly wildcarded."""
    vid, vid_mask, pcp, pcp_mask = tci & 0x0FFF, mask & 0x0FFF, tci >> 13, mask >> 13
    out = []
    if vid or vid_mask:
        out.append(f"vid={vid}" + ("" if vid_mask == 0x0FFF else f"/0x{vid_mask:x}"))
    if pcp or pcp_mask:
        out.append(f"pcp={pcp}" + ("" if pcp_mask == 7 else f"/0x{pcp_mask:x}"))
    if not tci & VLAN_CFI:
        out.append("cfi=0")
    return ",".join(out)


def format_tcp_flags(flags):
    """As OVS's packet_format_tcp_flags (tcpdump's letters)."""
    if not flags:
        return "none"
    out = "".join(letter for bit, letter in ((0x02, "S"), (0x01, "F"), (0x08, "P"), (0x04, "R"),
                                              (0x20, "U"), (0x10, "."), (0x40, "E"), (0x80, "C"),
                                              (0x100, "N")) if flags & bit)
    return out + "".join(f"[{bit:x}]" for bit in (0x200, 0x400, 0x800) if flags & bit)


_SET = {  # our set-field action -> (ODP attribute, field)
    "set_eth_src": ("eth", "src"), "set_eth_dst": ("eth", "dst"),
    "set_ipv4_src": ("ipv4", "src"), "set_ipv4_dst": ("ipv4", "dst"),
    "set_ipv4_tos": ("ipv4", "tos"), "set_ipv4_ttl": ("ipv4", "ttl"),
    "set_ipv6_src": ("ipv6", "src"), "set_ipv6_dst": ("ipv6", "dst"),
    "set_ipv6_tc": ("ipv6", "tclass"), "set_ipv6_hlimit": ("ipv6", "hlimit"),
    "set_ipv6_flabel": ("ipv6", "label"),
    "set_tp_src": (None, "src"), "set_tp_dst": (None, "dst"),
    "set_icmp_type": ("icmp", "type"), "set_icmp_code": ("icmp", "code"),
    "set_arp_op": ("arp", "op"), "set_arp_sha": ("arp", "sha"), "set_arp_spa": ("arp", "sip"),
    "set_arp_tha": ("arp", "tha"), "set_arp_tpa": ("arp", "tip"),
    "set_nd_target": ("nd", "target"), "set_nd_sll": ("nd", "sll"), "set_nd_tll": ("nd", "tll"),
}


def _set_value(name, value):
    if name.startswith(("set_eth", "set_arp_sha", "set_arp_tha", "set_nd_sll", "set_nd_tll")):
        return flowkey.mac_str(value)
    if name in ("set_ipv4_src", "set_ipv4_dst", "set_arp_spa", "set_arp_tpa"):
        return _ip(value, 32)
    if name in ("set_ipv6_src", "set_ipv6_dst", "set_nd_target"):
        return _ip(value, 128)
    return str(value)


def format_odp_action(name, arg, port_names=None, nw_proto=None):
    if name == "output":
        return str((port_names or {}).get(arg, arg))
    if name == "push_vlan":
        return dpif.format_push_vlan(arg)
    if name in ("pop_vlan",):
        return name
    if name == "push_mpls":
        return f"push_mpls(eth_type=0x{arg:x})"
    if name == "pop_mpls":
        return f"pop_mpls(eth_type=0x{arg:x})"
    if name == "trunc":
        return f"trunc({arg})"
    if name == "userspace":
        return f"userspace(pid=0,userdata({arg:08x}))"
    if name == "sample":
        probability, cookie, _, _ = arg
        percent = 100.0 if probability == dpif.SAMPLE_ALWAYS else probability * 100.0 / 0xFFFFFFFF
        return f"sample(sample={percent:.1f}%,actions(userspace(pid=0,userdata({cookie:08x}))))"
    if name == "set_mpls_lse":
        return (f"set(mpls(label={arg >> 12},tc={arg >> 9 & 7},ttl={arg & 0xFF},"
                f"bos={arg >> 8 & 1}))")
    if name in _SET:
        attr, fld = _SET[name]
        if attr is None:
            attr = L4_NAMES.get(nw_proto, "tcp")
        return f"set({attr}({fld}={_set_value(name, arg)}))"
    return dpif.format_actions([(name, arg)], port_names)


def format_odp_actions(actions, port_names=None, nw_proto=None):
    if not actions:
        return "drop"
    return ",".join(format_odp_action(name, arg, port_names, nw_proto) for name, arg in actions)


def format_dp_flows(flows, now_ns, port_names=None):
    """dpctl/dump-flows: one line per megaflow (dpif.MegaflowStats), as OVS's
    format_dpif_flow: match, packets, bytes, used, TCP flags, actions."""
    lines = []
    for f in flows:
        used = "never" if not f.used_ns else f"{max(now_ns - f.used_ns, 0) / 1e9:.3f}s"
        flags = f", flags:{format_tcp_flags(f.tcp_flags)}" if f.tcp_flags else ""
        nw_proto = f.key.get("nw_proto") if f.mask.get("nw_proto") else None
        lines.append(f"{format_odp_flow(f.key, f.mask, port_names)}, packets:{f.packets}, "
                     f"bytes:{f.bytes}, used:{used}{flags}, "
                     f"actions:{format_odp_actions(f.actions, port_names, nw_proto)}")
    return "".join(line + "\n" for line in lines)


# ---------------------------------------------------------------- fdb/show, dpif/show

def format_fdb(entries):
    """fdb/show: entries are {"port": ofport number or "LOCAL", "vlan", "mac",
    "age"}, least recently seen first (OVS's LRU order)."""
    lines = [" port  VLAN  MAC                Age"]
    lines += [f"{str(e['port']):>5}  {e['vlan']:>4}  {e['mac']}  {str(e['age']):>3}" for e in entries]
    return "\n".join(lines) + "\n"


def format_dpif_show(hit, missed, bridges):
    """dpif/show: bridges is {bridge: [(name, ofport, dp_port, type)]}."""
    lines = [f"{DATAPATH_NAME}: hit:{hit} missed:{missed}"]
    for bridge in sorted(bridges):
        lines.append(f"  {bridge}:")
        for name, ofport, dp_port, type_ in sorted(bridges[bridge]):
            lines.append(f"    {name} {ofport}/{dp_port if dp_port is not None else 'none'}: ({type_})")
    return "\n".join(lines) + "\n"


US_PER_MS = 1000


def format_upcall_show(n_flows, flow_limit, rounds):
    """upcall/show: OVS's flows line; then, for the last round and the kept
    ones (round_cpu.RoundCpu.summary, None before the first), the
    revalidator's CPU (µs) and its longest step between two sleeps."""
    lines = [f"{DATAPATH_NAME}:", f"  flows         : (current {n_flows}) (limit {flow_limit})"]
    if rounds:
        lines.append(f"  round cpu     : (last {rounds['last_cpu_us']}us) (median {rounds['median_cpu_us']}us)"
                     f" (max {rounds['max_cpu_us']}us) over {rounds['rounds']} rounds")
        lines.append(f"  longest step  : (last {rounds['last_max_step_us']}us)"
                     f" (median {rounds['median_max_step_us']}us) (max {rounds['max_step_us']}us)"
                     f" of {rounds['last_steps']} steps")
        lines.append("  last steps    : " + " ".join(f"{us}us" for us in rounds["last_step_us"]))
        lines.append(f"  dump duration : {rounds['last_wall_us'] // US_PER_MS}ms")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- pmd-stats-show

PMD_COUNTERS = ("packets", "batches", "emc_hits", "megaflow_hits", "misses", "upcalls", "upcall_drops",
                "busy_cycles", "idle_cycles")


def pmd_header(pmd, numa=None):
    """OVS's format_pmd_thread: numa and core only when known (pinned)."""
    text = "pmd thread"
    if numa is not None:
        text += f" numa_id {numa}"
    if pmd.get("cpu", -1) is not None and pmd.get("cpu", -1) >= 0:
        text += f" core_id {pmd['cpu']}"
    return text + ":"


def format_pmd_stats(pmds):
    """pmd-stats-show: pmds are (header, counters) with counters already
    less the pmd-stats-clear baseline.  As OVS's pmd_info_show_stats."""
    lines = []
    for header, st in pmds:
        packets = st["packets"]
        total_cycles = st["busy_cycles"] + st["idle_cycles"]
        lines += [header,
                  f"  packets received: {packets}",
                  "  packet recirculations: 0",
                  f"  avg. datapath passes per packet: {1.0 if packets else 0.0:.2f}",
                  "  phwol hits: 0",
                  "  mfex opt hits: 0",
                  "  simple match hits: 0",
                  f"  emc hits: {st['emc_hits']}",
                  "  smc hits: 0",
                  f"  megaflow hits: {st['megaflow_hits']}",
                  "  avg. subtable lookups per megaflow hit: 0.00",
                  f"  miss with success upcall: {st['upcalls']}",
                  f"  miss with failed upcall: {st['upcall_drops']}",
                  f"  avg. packets per output batch: "
                  f"{packets / st['batches'] if st['batches'] else 0.0:.2f}"]
        if total_cycles:
            lines += [f"  idle cycles: {st['idle_cycles']} ({st['idle_cycles'] / total_cycles * 100:.2f}%)",
                      f"  processing cycles: {st['busy_cycles']} "
                      f"({st['busy_cycles'] / total_cycles * 100:.2f}%)"]
            if packets:
                lines += [f"  avg cycles per packet: {total_cycles / packets:.2f} ({total_cycles}/{packets})",
                          f"  avg processing cycles per packet: {st['busy_cycles'] / packets:.2f} "
                          f"({st['busy_cycles']}/{packets})"]
    return "".join(line + "\n" for line in lines)


# ---------------------------------------------------------------- ofproto/trace

def split_actions(text):
    """`a,b(c,d),e` -> ["a", "b(c,d)", "e"]: commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _renumber_in_port(match, ofports):
    """`in_port=NAME` (Switch.trace's) -> `in_port=OFPORT` as OVS prints it."""
    parts = []
    for part in match.split(","):
        if part.startswith("in_port="):
            name = part[len("in_port="):]
            part = f"in_port={ofports.get(name, name)}"
        parts.append(part)
    return ",".join(parts)


def format_trace(trace, ofports, dp_ports):
    """ofproto/trace from Switch.trace's dict, in OVS's layout (Flow,
    bridge("BR") and its steps, Megaflow, Datapath actions).  Ports are
    numbers as OVS prints them: OpenFlow ports in Flow and Megaflow,
    datapath ports in Datapath actions (dpif/show maps one to the other)."""
    actions = trace["datapath_actions"]
    if actions != "drop":
        actions = ",".join(str(dp_ports.get(a, a)) for a in split_actions(actions))
    title = f'bridge("{trace["bridge"]}")'
    lines = [f"Flow: {_renumber_in_port(trace['flow'], ofports)}", "", title, "-" * len(title)]
    lines += [line if line.startswith(" ") else " " + line for line in trace["trace"]]
    lines += ["", f"Megaflow: recirc_id=0,eth,{_renumber_in_port(trace['megaflow'], ofports)}",
              f"Datapath actions: {actions}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- vlog/list, memory/show

def format_vlog_list(entries):
    """vlog/list in OVS's three-column layout.  This daemon keeps one level
    per module, whichever destination is in use: it is shown in all three."""
    lines = ["                 console    syslog    file",
             "                 -------    ------    ------"]
    lines += [f"{e['module']:<16}  {e['level']:>4}       {e['level']:>4}       {e['level']:>4}"
              for e in entries]
    return "\n".join(lines) + "\n"


def format_memory(usage):
    """memory/show: `key:value` sorted by key, zeros left out (OVS's simap)."""
    return " ".join(f"{k}:{v}" for k, v in sorted(usage.items()) if v) + "\n"
