"""vsctl's OpenFlow commands (ovs-ofctl syntax) run inside the daemon.

Design note.  Each function takes the bridge's OFSwitch and text as an
operator typed it, turns it into the same FlowMod/GroupMod/MeterMod a
controller would send, and applies it through OFSwitch — so vsctl and
controllers share one code path (validation, flow-removed, megaflow
invalidation).  Errors come back as ValueError with the OpenFlow error name.
Ports may be named wherever ovs-ofctl takes a name (in_port=vm1,
out_port=vm1, output:vm1, enqueue:vm1:Q, a bare `vm1` action, bucket
watch_port): names are looked up in the bridge's OpenFlow ports (ofs.ports,
what PORT_DESC replies list), as ovs-ofctl looks them up in the switch's
port descriptions; an unknown name gets ovs-ofctl's error ("vm9: invalid or
unknown port for in_port", "vm9: output to unknown port").
Group and meter text follows ovs-ofctl(8):
  group_id=1,type=select,bucket=weight:2,output:1,bucket=output:2
  meter=1,kbps,burst,band=type=drop,rate=1000,burst_size=100
"""
from vswitch.ofproto import ofctl_syntax
from vswitch.ofproto.ofctl_syntax import SyntaxError_, _checked, format_actions, format_flow_stats, parse_flow
from vswitch.ofproto.ofp import ApplyActions, GroupMod, MeterMod, OFPError
from vswitch.ofproto.ofp.constants import (OFPFC_ADD, OFPFC_DELETE, OFPFC_DELETE_STRICT, OFPFC_MODIFY,
                                           OFPFC_MODIFY_STRICT, OFPGC_ADD, OFPGT_ALL, OFPGT_FF,
                                           OFPGT_INDIRECT, OFPGT_SELECT, OFPMC_ADD, OFPMF_BURST,
                                           OFPMF_KBPS, OFPMF_PKTPS, OFPMF_STATS, OFPTT_ALL)
from vswitch.ofproto.ofp.messages import Bucket, MeterBand

GROUP_TYPES = {"all": OFPGT_ALL, "select": OFPGT_SELECT, "indirect": OFPGT_INDIRECT, "ff": OFPGT_FF,
               "fast_failover": OFPGT_FF}
GROUP_NAMES = {OFPGT_ALL: "all", OFPGT_SELECT: "select", OFPGT_INDIRECT: "indirect", OFPGT_FF: "ff"}
METER_FLAGS = {"kbps": OFPMF_KBPS, "pktps": OFPMF_PKTPS, "burst": OFPMF_BURST, "stats": OFPMF_STATS}


def _apply(fn, *args):
    try:
        return fn(*args)
    except SyntaxError_ as exc:
        raise ValueError(str(exc)) from None
    except OFPError as exc:
        raise ValueError(f"OpenFlow error {exc.type}/{exc.code}" + (f": {exc.detail}" if exc.detail else "")) \
            from None


def port_map(ofs):
    """{port name: OpenFlow port number} of the bridge's OpenFlow ports."""
    return {port.name: no for no, port in ofs.ports.items() if getattr(port, "name", None)}


def parse_flow_on(ofs, text, actions_required=True):
    """parse_flow with the bridge's port names (for trace and the flow commands)."""
    return parse_flow(text, actions_required=actions_required, port_map=port_map(ofs))


def _flow_mod(ofs, text, command, now, actions_required=True):
    return ofs.flow_mod(_flow_mod_msg(ofs, text, command, actions_required), now)


def _flow_mod_msg(ofs, text, command, actions_required=True):
    spec = parse_flow_on(ofs, text, actions_required)
    fm = spec.flow_mod(command)
    if command in (OFPFC_DELETE, OFPFC_MODIFY) and "table=" not in text:
        fm.table_id = OFPTT_ALL   # as ovs-ofctl: loose mod/del without table= means every table
    if command in (OFPFC_DELETE, OFPFC_DELETE_STRICT) and spec.cookie and not spec.cookie_mask:
        fm.cookie_mask = 0xFFFFFFFFFFFFFFFF
    return fm


def add_flows(ofs, lines, now):
    """Every line is parsed before any is applied (as ovs-ofctl add-flows
    reads its whole file first), so one bad line adds nothing."""
    mods = [_apply(_flow_mod_msg, ofs, line, OFPFC_ADD) for line in lines]
    for fm in mods:
        _apply(ofs.flow_mod, fm, now)
    return None


def mod_flows(ofs, text, strict, now):
    _apply(_flow_mod, ofs, text, OFPFC_MODIFY_STRICT if strict else OFPFC_MODIFY, now)


def del_flows(ofs, text, strict, now):
    _apply(_flow_mod, ofs, text or "", OFPFC_DELETE_STRICT if strict else OFPFC_DELETE, now, False)


def dump_flows(ofs, text, now):
    spec = _apply(parse_flow_on, ofs, text or "", False)
    table = spec.table_id if text and "table=" in text else OFPTT_ALL
    rules = ofs.tables.select(table, spec.match, spec.out_port, spec.out_group, spec.cookie,
                              spec.cookie_mask)
    return [{"table": r.table_id, "priority": r.priority, "cookie": f"{r.cookie:#x}",
             "duration": round(max(0.0, now - r.created), 3), "n_packets": r.packet_count,
             "n_bytes": r.byte_count, "idle_timeout": r.idle_timeout, "hard_timeout": r.hard_timeout,
             "match": ofctl_syntax.format_match(r.match), "actions": format_actions(r.instructions),
             "text": format_flow_stats(r, now)} for r in rules]


def dump_tables(ofs):
    """Table 0, every table in use and every configured one (Flow_Table),
    with its name and max_entries as ovs-ofctl's OpenFlow 1.0 dump-tables."""
    limits = ofs.tables.limits
    return [{"table": t, "name": limits.name(t), "active": len(rules), "lookup": c.lookup_count,
             "matched": c.matched_count, "max_entries": limits.max_entries(t)}
            for t, (rules, c) in enumerate(zip(ofs.tables.tables, ofs.tables.counters))
            if t == 0 or rules or c.lookup_count or t in limits.settings]


# --- groups -------------------------------------------------------------------

def parse_group(text, ports=None):
    """ports: {name: OpenFlow port} for port names in the buckets."""
    head, *buckets = text.replace(" ", ",").split(",bucket=")
    gid, gtype = None, OFPGT_ALL
    for item in (p for p in head.split(",") if p):
        key, _, value = item.partition("=")
        if key == "group_id":
            gid = _checked(value, 0xFFFFFF00, 'invalid group_id "{text}"')
        elif key == "type":
            if value not in GROUP_TYPES:
                raise ValueError(f"unknown group type {value}")
            gtype = GROUP_TYPES[value]
        else:
            raise ValueError(f"unknown group keyword {key}")
    if gid is None:
        raise ValueError("group_id is required")
    return GroupMod(OFPGC_ADD, gtype, gid, [_bucket(b, ports) for b in buckets])


def _bucket(text, ports=None):
    bucket, actions = Bucket(), []
    for item in ofctl_syntax._split_top(text.removeprefix("actions=")):
        word, _, value = item.partition(":")
        if word == "weight":
            bucket.weight = _checked(value, 0xFFFF, 'invalid weight "{text}"')
        elif word == "watch_port":
            bucket.watch_port = ofctl_syntax._port(value, ports, "{text}: invalid or unknown port for watch_port")
        elif word == "watch_group":
            bucket.watch_group = _checked(value, 0xFFFFFFFF, 'invalid watch_group "{text}"')
        else:
            actions.append(item.removeprefix("actions="))
    insts = ofctl_syntax.parse_actions(",".join(actions), port_map=ports)
    bucket.actions = [a for i in insts if isinstance(i, ApplyActions) for a in i.actions]
    return bucket


def add_group(ofs, text, now):
    gm = _apply(parse_group, text, port_map(ofs))
    _apply(ofs.group_mod, gm, now)


def dump_groups(ofs):
    out = []
    for g in sorted(ofs.groups.groups.values(), key=lambda g: g.group_id):
        buckets = []
        for b in g.buckets:
            extra = "".join(f"{k}:{getattr(b, k)}," for k in ("weight",) if g.type == OFPGT_SELECT)
            buckets.append(f"bucket={extra}actions=" + format_actions([ApplyActions(b.actions)]))
        out.append({"group_id": g.group_id, "type": GROUP_NAMES[g.type],
                    "packets": g.packet_count, "bytes": g.byte_count,
                    "text": f" group_id={g.group_id},type={GROUP_NAMES[g.type]}," + ",".join(buckets)})
    return out


# --- meters -------------------------------------------------------------------

def parse_meter(text):
    head, _, bands = text.replace(" ", ",").partition("band=")
    mid, flags = None, 0
    for item in (p for p in head.split(",") if p):
        key, _, value = item.partition("=")
        if key == "meter":
            mid = _checked(value, 0xFFFF0000, 'invalid meter "{text}"')
        elif key in METER_FLAGS:
            flags |= METER_FLAGS[key]
        else:
            raise ValueError(f"unknown meter keyword {key}")
    if mid is None:
        raise ValueError("meter=ID is required")
    out = []
    for band_text in (b for b in bands.split("band=") if b):
        band = MeterBand()
        for item in (p for p in band_text.split(",") if p):
            key, _, value = item.partition("=")
            if key == "type":
                if value != "drop":
                    raise ValueError("only drop bands are supported")
            elif key in ("rate", "burst_size"):
                setattr(band, key, _checked(value, 0xFFFFFFFF, f'invalid {key} "{{text}}"'))
            else:
                raise ValueError(f"unknown band keyword {key}")
        out.append(band)
    return MeterMod(OFPMC_ADD, flags or OFPMF_KBPS, mid, out)


def add_meter(ofs, text, now):
    mm = _apply(parse_meter, text)
    _apply(ofs.meter_mod, mm, now)


def dump_meters(ofs):
    return [{"meter": e.meter_id, "flags": [k for k, v in METER_FLAGS.items() if e.flags & v],
             "bands": [{"type": "drop", "rate": b.rate, "burst_size": b.burst_size} for b in e.bands],
             "packet_in_count": e.packet_in_count, "byte_in_count": e.byte_in_count}
            for e in sorted(ofs.meters.meters.values(), key=lambda e: e.meter_id)]
