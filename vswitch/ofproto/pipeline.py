"""OpenFlow xlate: one flow key through the bridge's OpenFlow tables.

Design note.  xlate() walks tables from 0 (goto-table, write-metadata,
apply/write/clear actions, meters, groups), as OF1.3 section 5 describes, and
emits datapath actions as it goes ("eager" commit: a set-field becomes a
datapath set action at once, so later outputs see the rewritten packet).  The
packet it looks at is `state`, a copy of the flow key that set-fields update,
so later tables match the rewritten values.

Megaflow mask: the union of the masks FlowTables.lookup() returns for every
table visited (converted from OXM fields to flow key fields) plus every field
an action reads (in_port always: the datapath is shared by all bridges, and
output to the input port must be refused).  Being wider than needed is never
wrong, only slower; being narrower would be.

Packets that must come back to Python go through ("userspace", cookie): the
caller's `controller_cookie(reason, table_id, rule_cookie, max_len)` returns a
nonzero 32-bit cookie for which the upcall becomes a packet-in.  A flow that
passes a meter emits ("meter", datapath meter id) and is cached: the C
datapath meters every packet (csrc/meter.h, ofproto/meter_sync.py).  Without
a datapath (PipelineView.dp_meter None) meters run here, uncached.

OF1.0 set-tp-src/dst arrive as SetField("tp_src"/"tp_dst") and rewrite
whatever L4 header the packet has.  MPLS: the flow key stops at the MPLS
Ethertype, so labels are read from the frame (xlate's `frame`), pop_mpls
parses what it uncovers, and such flows stay in the slow path.  PBB, VLAN
stacking (push_vlan onto a tag, 802.1ad TPIDs) and copy-TTL are in
xlate_encap (a mixin of _Xlate).  Actions that this datapath cannot perform
(set-field on fields it cannot rewrite) are refused when the flow is added,
by check_instructions(), with the error the spec names.
"""
import zlib
from dataclasses import dataclass, field

from vswitch.datapath.flowkey import VLAN_CFI, full_mask
from vswitch.ofproto.ofp import (ApplyActions, ClearActions, CopyTtlIn, CopyTtlOut, DecMplsTtl,
                                 DecNwTtl, Enqueue, Experimenter, ExperimenterInstruction, GotoTable,
                                 Group, Meter, OFPError, Output, PopMpls, PopPbb, PopVlan, PushMpls,
                                 PushPbb, PushVlan, SetField, SetMplsTtl, SetNwTtl, SetQueue,
                                 WriteActions, WriteMetadata)
from vswitch.ofproto.ipv6_exthdr import exthdr_flags
from vswitch.ofproto.xlate_encap import ETH_PBB, EncapXlate
from vswitch.ofproto.ofp.constants import (OFPGT_ALL, OFPP_ALL, OFPP_ANY, OFPPC_NO_FLOOD,
                                           OFPPC_NO_FWD, OFPPC_NO_PACKET_IN, OFPPC_NO_RECV,
                                           OFPPC_PORT_DOWN,
                                           OFPP_CONTROLLER, OFPP_FLOOD, OFPP_IN_PORT, OFPP_LOCAL,
                                           OFPP_MAX, OFPP_NORMAL, OFPP_TABLE, OFPR_ACTION,
                                           OFPR_INVALID_TTL, OFPR_NO_MATCH)

ETH_IP, ETH_ARP, ETH_IPV6 = 0x0800, 0x0806, 0x86DD
ETH_MPLS = (0x8847, 0x8848)
MAX_DEPTH = 16  # nested groups / table passes of one packet
IN_BLOCKED = OFPPC_NO_RECV | OFPPC_PORT_DOWN   # port-mod: nothing received is processed
OUT_BLOCKED = OFPPC_NO_FWD | OFPPC_PORT_DOWN   # port-mod: nothing is sent to it
FRAG_LATER = 2

# OXM field -> (flow key field, OXM mask -> key mask)
_same = lambda m: m  # noqa: E731
OXM_TO_KEY = {
    "in_port": ("in_port", _same), "eth_dst": ("dl_dst", _same), "eth_src": ("dl_src", _same),
    "eth_type": ("dl_type", _same), "vlan_vid": ("vlan_tci", lambda m: m & 0x1FFF),
    "vlan_pcp": ("vlan_tci", lambda m: (m << 13) & 0xE000 | VLAN_CFI),
    "ip_dscp": ("nw_tos", lambda m: (m << 2) & 0xFC), "ip_ecn": ("nw_tos", lambda m: m & 3),
    "ip_proto": ("nw_proto", _same), "arp_op": ("nw_proto", lambda m: m & 0xFF),
    "ipv4_src": ("nw_src", _same), "ipv4_dst": ("nw_dst", _same),
    "arp_spa": ("nw_src", _same), "arp_tpa": ("nw_dst", _same),
    "ipv6_src": ("ipv6_src", _same), "ipv6_dst": ("ipv6_dst", _same),
    # tunnel metadata of a packet a tunnel port decapsulated (0 otherwise)
    "tunnel_id": ("tun_id", _same), "tun_ipv4_src": ("tun_src", _same),
    "tun_ipv4_dst": ("tun_dst", _same),
    "pbb_isid": ("pbb_isid", _same),
}
# set-field on these fills the packet's tunnel metadata: committed as one
# datapath set_tunnel before the next output (a vxlan port with key=flow or
# remote_ip=flow encapsulates with it; other ports ignore it).
TUNNEL_FIELDS = {"tunnel_id": "tun_id", "tun_ipv4_dst": "tun_dst", "tun_ipv4_src": "tun_src"}
L4_NAMES = {6: "tcp", 17: "udp", 132: "sctp", 1: "icmpv4", 58: "icmpv6"}
for _proto, _name in L4_NAMES.items():
    _src, _dst = ("type", "code") if _name.startswith("icmp") else ("src", "dst")
    OXM_TO_KEY[f"{_name}_{_src}"] = ("tp_src", _same)
    OXM_TO_KEY[f"{_name}_{_dst}"] = ("tp_dst", _same)

# set-field target -> (datapath action, key field, protocol it needs)
SETTABLE = {
    "eth_src": ("set_eth_src", "dl_src", None), "eth_dst": ("set_eth_dst", "dl_dst", None),
    "ipv4_src": ("set_ipv4_src", "nw_src", ETH_IP), "ipv4_dst": ("set_ipv4_dst", "nw_dst", ETH_IP),
    "ipv6_src": ("set_ipv6_src", "ipv6_src", ETH_IPV6), "ipv6_dst": ("set_ipv6_dst", "ipv6_dst", ETH_IPV6),
    "tp_src": ("set_tp_src", "tp_src", "l4"), "tp_dst": ("set_tp_dst", "tp_dst", "l4"),
    "tcp_src": ("set_tp_src", "tp_src", 6), "tcp_dst": ("set_tp_dst", "tp_dst", 6),
    "udp_src": ("set_tp_src", "tp_src", 17), "udp_dst": ("set_tp_dst", "tp_dst", 17),
    # SCTP: the datapath recomputes the CRC32c (packet_edit.c)
    "sctp_src": ("set_tp_src", "tp_src", 132), "sctp_dst": ("set_tp_dst", "tp_dst", 132),
    "icmpv4_type": ("set_icmp_type", "tp_src", 1), "icmpv4_code": ("set_icmp_code", "tp_dst", 1),
    "icmpv6_type": ("set_icmp_type", "tp_src", 58), "icmpv6_code": ("set_icmp_code", "tp_dst", 58),
    "arp_op": ("set_arp_op", "nw_proto", ETH_ARP), "arp_spa": ("set_arp_spa", "nw_src", ETH_ARP),
    "arp_tpa": ("set_arp_tpa", "nw_dst", ETH_ARP),
    # not in the flow key: kept in the xlate state (FRAME_FIELDS)
    "arp_sha": ("set_arp_sha", "arp_sha", ETH_ARP), "arp_tha": ("set_arp_tha", "arp_tha", ETH_ARP),
    "ipv6_flabel": ("set_ipv6_flabel", "ipv6_flabel", ETH_IPV6),
    "ipv6_nd_target": ("set_nd_target", "ipv6_nd_target", "nd"),
    "ipv6_nd_sll": ("set_nd_sll", "ipv6_nd_sll", "nd"),
    "ipv6_nd_tll": ("set_nd_tll", "ipv6_nd_tll", "nd"),
}
# OXM fields the flow key lacks, read from the frame (frame_fields()): a
# table lookup that consults one the packet has makes the flow slow-path.
FRAME_FIELDS = ("arp_sha", "arp_tha", "ipv6_flabel", "ipv6_nd_target", "ipv6_nd_sll", "ipv6_nd_tll",
                "ipv6_exthdr")


def frame_fields(frame, key):
    """The FRAME_FIELDS this frame has, {OXM name: int}; `key` is its flow key."""
    out = {}
    if frame is None:
        return out
    l3 = 18 if len(frame) >= 18 and frame[12:14] in (b"\x81\x00", b"\x88\xa8") else 14
    dl_type = key.get("dl_type")
    if dl_type == ETH_ARP and len(frame) >= l3 + 28:
        out["arp_sha"] = int.from_bytes(frame[l3 + 8:l3 + 14], "big")
        out["arp_tha"] = int.from_bytes(frame[l3 + 18:l3 + 24], "big")
    elif dl_type == ETH_IPV6 and len(frame) >= l3 + 40:
        out["ipv6_flabel"] = int.from_bytes(frame[l3:l3 + 4], "big") & 0xFFFFF
        out["ipv6_exthdr"] = exthdr_flags(frame, l3)
        icmp_type, l4 = key.get("tp_src"), l3 + 40
        if key.get("nw_proto") == 58 and icmp_type in (135, 136) and len(frame) >= l4 + 24:
            out["ipv6_nd_target"] = int.from_bytes(frame[l4 + 8:l4 + 24], "big")
            out["ipv6_nd_sll" if icmp_type == 135 else "ipv6_nd_tll"] = 0
            opt = l4 + 24
            while len(frame) >= opt + 8 and frame[opt + 1]:
                if (frame[opt], icmp_type) in ((1, 135), (2, 136)):
                    out["ipv6_nd_sll" if icmp_type == 135 else "ipv6_nd_tll"] = \
                        int.from_bytes(frame[opt + 2:opt + 8], "big")
                    break
                opt += frame[opt + 1] * 8
    return out
L4_PROTOS = {"l4": (6, 17), 6: (6,), 17: (17,), 132: (132,), 1: (1,), 58: (58,)}
# key field -> datapath action that writes it back, by ethertype (restore())
RESTORE = {
    "dl_src": {None: "set_eth_src"}, "dl_dst": {None: "set_eth_dst"},
    "nw_src": {ETH_IP: "set_ipv4_src", ETH_ARP: "set_arp_spa"},
    "nw_dst": {ETH_IP: "set_ipv4_dst", ETH_ARP: "set_arp_tpa"},
    "ipv6_src": {ETH_IPV6: "set_ipv6_src"}, "ipv6_dst": {ETH_IPV6: "set_ipv6_dst"},
    "nw_tos": {ETH_IP: "set_ipv4_tos", ETH_IPV6: "set_ipv6_tc"},
    "nw_ttl": {ETH_IP: "set_ipv4_ttl", ETH_IPV6: "set_ipv6_hlimit"},
    "nw_proto": {ETH_ARP: "set_arp_op"},
}
SETTABLE_SPECIAL = {"vlan_vid", "vlan_pcp", "ip_dscp", "ip_ecn", "mpls_label", "mpls_tc", "pbb_isid",
                    *TUNNEL_FIELDS}
UNSUPPORTED_ACTIONS = ()
SETTABLE_MPLS = {"mpls_label": (12, 0xFFFFF), "mpls_tc": (9, 7)}  # shift, width mask in the LSE
# Action-set execution order (OF1.3 section 5.10).
SET_ORDER = [CopyTtlIn, PopVlan, PopMpls, PopPbb, PushMpls, PushPbb, PushVlan, CopyTtlOut,
             DecNwTtl, DecMplsTtl, SetNwTtl, SetMplsTtl, SetField, SetQueue, Group, Output, Enqueue]


def packet_fields(state, metadata=0, in_port=None):
    """Flow key (as modified so far) -> {OXM field: value}, only the fields the
    packet has (a rule on a field the packet lacks never matches).  in_port:
    the OpenFlow number of the input port (LOCAL differs from the datapath's)."""
    tci = state.get("vlan_tci", 0)
    p = {"in_port": state.get("in_port", 0) if in_port is None else in_port, "metadata": metadata,
         "eth_dst": state.get("dl_dst", 0), "eth_src": state.get("dl_src", 0),
         "eth_type": state.get("dl_type", 0), "vlan_vid": tci & 0x1FFF}
    if tci & VLAN_CFI:
        p["vlan_pcp"] = tci >> 13
    dl_type = p["eth_type"]
    p["tunnel_id"] = state.get("tun_id", 0)
    p["tun_ipv4_src"], p["tun_ipv4_dst"] = state.get("tun_src", 0), state.get("tun_dst", 0)
    for name in FRAME_FIELDS:
        if name in state:
            p[name] = state[name]
    if dl_type == ETH_PBB:
        p["pbb_isid"] = state.get("pbb_isid", 0)
    if dl_type in ETH_MPLS and "mpls_lse" in state:
        lse = state["mpls_lse"]
        p.update(mpls_label=lse >> 12, mpls_tc=(lse >> 9) & 7, mpls_bos=(lse >> 8) & 1)
    if dl_type == ETH_ARP:
        p.update(arp_op=state.get("nw_proto", 0), arp_spa=state.get("nw_src", 0),
                 arp_tpa=state.get("nw_dst", 0))
    elif dl_type in (ETH_IP, ETH_IPV6):
        tos, proto = state.get("nw_tos", 0), state.get("nw_proto", 0)
        p.update(ip_dscp=tos >> 2, ip_ecn=tos & 3, ip_proto=proto)
        if dl_type == ETH_IP:
            p.update(ipv4_src=state.get("nw_src", 0), ipv4_dst=state.get("nw_dst", 0))
        else:
            p.update(ipv6_src=state.get("ipv6_src", 0), ipv6_dst=state.get("ipv6_dst", 0))
        name = L4_NAMES.get(proto)
        if name and not state.get("nw_frag", 0) & FRAG_LATER:
            src, dst = ("type", "code") if name.startswith("icmp") else ("src", "dst")
            p[f"{name}_{src}"], p[f"{name}_{dst}"] = state.get("tp_src", 0), state.get("tp_dst", 0)
    return p


def key_mask(oxm_mask):
    """{OXM field: mask} -> {flow key field: mask} (metadata and fields the
    key does not carry drop out)."""
    out = {}
    for name, m in oxm_mask.items():
        conv = OXM_TO_KEY.get(name)
        if conv:
            kf, f = conv
            out[kf] = out.get(kf, 0) | f(m)
            if kf in ("tp_src", "tp_dst"):
                out["nw_frag"] = full_mask("nw_frag")
    return out


def check_instructions(instructions, n_tables):
    """Refuse at flow-mod time what xlate cannot do, with the spec's error."""
    for inst in instructions:
        if isinstance(inst, ExperimenterInstruction):
            raise OFPError("BAD_INSTRUCTION", "BAD_EXPERIMENTER")
        if isinstance(inst, GotoTable) and inst.table_id >= n_tables:
            raise OFPError("BAD_INSTRUCTION", "BAD_TABLE_ID")
        check_actions(getattr(inst, "actions", ()))


def check_actions(actions, packet_out=False):
    for a in actions:
        if isinstance(a, Experimenter):
            raise OFPError("BAD_ACTION", "BAD_EXPERIMENTER", detail=f"experimenter {a.experimenter:#x}")
        if isinstance(a, UNSUPPORTED_ACTIONS):
            raise OFPError("BAD_ACTION", "BAD_TYPE", detail=f"{type(a).__name__} is not supported")
        if isinstance(a, SetField) and a.field not in SETTABLE and a.field not in SETTABLE_SPECIAL:
            raise OFPError("BAD_ACTION", "BAD_SET_TYPE", detail=f"set-field {a.field} is not supported")
        if isinstance(a, (Output, Enqueue)):
            if a.port == 0 or a.port == OFPP_ANY or (OFPP_MAX < a.port < OFPP_IN_PORT):
                raise OFPError("BAD_ACTION", "BAD_OUT_PORT", detail=f"port {a.port:#x}")
            if a.port == OFPP_TABLE and not packet_out:
                raise OFPError("BAD_ACTION", "BAD_OUT_PORT", detail="output:TABLE outside packet-out")


@dataclass
class PipelineView:
    """What xlate needs to know about the bridge (built by the caller)."""
    tables: object                 # FlowTables
    groups: object                 # GroupTable
    meters: object                 # MeterTable
    ports: dict                    # OpenFlow port number -> datapath port number
    normal: object = None          # normal(key) -> normal.XlateResult, for output:NORMAL
    controller_cookie: object = None  # (reason, table_id, cookie, max_len) -> userspace cookie
    miss_to_controller: bool = False  # OF1.0 table-miss sends a packet-in
    miss_send_len: int = 128
    port_config: dict = field(default_factory=dict)  # OpenFlow port -> OFPPC_* bits set by port-mod
    dp_meter: object = None        # OpenFlow meter id -> datapath meter id (meter_sync), or None:
                                   # meters then run here, per packet, uncached


@dataclass
class OFXlateResult:
    actions: list = field(default_factory=list)
    mask: dict = field(default_factory=dict)
    tags: set = field(default_factory=set)
    trace: list = field(default_factory=list)
    learned: tuple | None = None
    rules: list = field(default_factory=list)    # rules whose counters this flow feeds
    groups: list = field(default_factory=list)   # group entries likewise
    buckets: list = field(default_factory=list)  # (group entry, bucket index)
    slow_path: bool = False                      # do not cache (meters)
    dropped_by_meter: bool = False
    lookups: list = field(default_factory=list)  # (table, packet fields, mask, winner): for revalidation


class _Xlate(EncapXlate):
    def __init__(self, bridge, key, now, packet_len, in_port_dp, frame=None):
        self.br, self.now, self.packet_len = bridge, now, packet_len
        self.state = dict(key)
        self.r = OFXlateResult()
        self.frame = frame
        self._init_encap()
        self.mpls = []          # the label stack entries (top first) as the packet has them now
        self.mpls_payload = None  # offset in `frame` of what follows the frame's own labels
        if key.get("dl_type") in ETH_MPLS:
            self._parse_mpls()
        else:
            self.state.update(frame_fields(frame, key))
        self.metadata = 0
        self.tnl_set = set()  # tunnel key fields set since the last set_tunnel
        self.in_port_dp = in_port_dp
        self.rule = None  # the rule whose instructions run now
        self.dp_to_of = {dp: of for of, dp in bridge.ports.items()}
        self.read("in_port")

    # --- MPLS ------------------------------------------------------------------
    # The flow key stops at the MPLS Ethertype, so a packet whose translation
    # depends on its labels (or on what a pop_mpls uncovers) is not cached:
    # result.slow_path, and the labels come from the frame itself.
    def _parse_mpls(self):
        self.r.slow_path = True
        f = self.frame
        if f is None:
            return
        off = 18 if len(f) >= 18 and f[12:14] in (b"\x81\x00", b"\x88\xa8") else 14
        while len(f) >= off + 4:
            lse = int.from_bytes(f[off:off + 4], "big")
            self.mpls.append(lse)
            off += 4
            if lse & 0x100:
                break
        self.mpls_payload = off
        self._mpls_state()

    def _mpls_state(self):
        if self.mpls:
            self.state["mpls_lse"] = self.mpls[0]
        else:
            self.state.pop("mpls_lse", None)

    def set_mpls_lse(self, lse):
        self.mpls[0] = lse
        self.emit("set_mpls_lse", lse)
        self._mpls_state()

    def push_mpls(self, ethertype):
        self.r.slow_path = True
        dl_type = self.read("dl_type")
        if dl_type in ETH_MPLS and self.mpls:
            lse = self.mpls[0] & ~0x100
        else:
            ttl = self.read("nw_ttl") if dl_type in (ETH_IP, ETH_IPV6) else 0
            lse = 0x100 | ttl
        self.emit("push_mpls", ethertype)
        self.emit("set_mpls_lse", lse)
        self.mpls.insert(0, lse)
        self.state["dl_type"] = ethertype
        self._mpls_state()

    def pop_mpls(self, ethertype):
        if self.read("dl_type") not in ETH_MPLS or not self.mpls:
            self.r.trace.append("    pop_mpls: no MPLS label, no change")
            return
        self.r.slow_path = True
        self.emit("pop_mpls", ethertype)
        self.mpls.pop(0)
        self.state["dl_type"] = ethertype
        self._mpls_state()
        if ethertype in ETH_MPLS or self.mpls:
            return
        # What the frame carried under its labels becomes the packet's L3/L4.
        for name in ("nw_src", "nw_dst", "ipv6_src", "ipv6_dst", "nw_proto", "nw_tos",
                     "nw_ttl", "nw_frag", "tp_src", "tp_dst"):
            self.state[name] = 0
        if self.frame is None or self.mpls_payload is None:
            return
        from vswitch.datapath import dpif
        inner = dpif.parse_frame(self.frame[:12] + ethertype.to_bytes(2, "big")
                                 + self.frame[self.mpls_payload:], self.state.get("in_port", 0))
        if inner:
            for name in ("nw_src", "nw_dst", "ipv6_src", "ipv6_dst", "nw_proto", "nw_tos",
                         "nw_ttl", "nw_frag", "tp_src", "tp_dst"):
                self.state[name] = inner.get(name, 0)
            self.state.update(frame_fields(self.frame[:12] + ethertype.to_bytes(2, "big")
                                           + self.frame[self.mpls_payload:], inner))

    def mpls_ttl(self, a, table_id, cookie):
        if self.read("dl_type") not in ETH_MPLS or not self.mpls:
            self.r.trace.append(f"    {type(a).__name__}: no MPLS label, no change")
            return True
        lse = self.mpls[0]
        if isinstance(a, SetMplsTtl):
            ttl = a.ttl & 0xFF
        else:
            if lse & 0xFF <= 1:
                self.r.trace.append(f"    dec_mpls_ttl: TTL {lse & 0xFF} expires")
                self.controller(OFPR_INVALID_TTL, table_id, cookie, self.br.miss_send_len)
                return False
            ttl = (lse & 0xFF) - 1
        self.set_mpls_lse((lse & ~0xFF) | ttl)
        return True

    # --- reading and writing the packet --------------------------------------
    def read(self, name, bits=None):
        self.r.mask[name] = self.r.mask.get(name, 0) | (full_mask(name) if bits is None else bits)
        if name in self.from_frame:
            self.r.slow_path = True  # the megaflow matches the outer key, not this
        return self.state.get(name, 0)

    def in_port_of(self):
        return self.dp_to_of.get(self.state.get("in_port"), self.state.get("in_port"))

    def commit_tunnel(self):
        """Before an output: the tunnel metadata set-fields changed, as one
        set_tunnel (fields not set are the packet's own, read into the mask)."""
        if not self.tnl_set:
            return
        vals = [self.state.get(f, 0) if f in self.tnl_set else self.read(f)
                for f in ("tun_id", "tun_dst", "tun_src")]
        self.tnl_set = set()
        self.r.actions.append(("set_tunnel", tuple(vals)))

    def emit(self, name, arg=0):
        if name == "output":
            self.commit_tunnel()
        self.r.actions.append((name, arg))
        if name == "pop_vlan":
            self.state["vlan_tci"] = 0
        elif name == "push_vlan":
            self.state["vlan_tci"] = (arg & 0xFFFF) | VLAN_CFI

    def set_vlan(self, tci):
        """Make the packet's outer tag `tci` (with CFI): a rewrite of the
        tag's TCI (its TPID stays), or a new 802.1Q tag on an untagged packet."""
        if self.read("vlan_tci") & VLAN_CFI:
            self.emit("set_vlan_tci", tci & ~VLAN_CFI)
            self.state["vlan_tci"] = tci | VLAN_CFI
        else:
            self.emit("push_vlan", tci & ~VLAN_CFI)

    def set_field(self, a):
        name, value = a.field, a.value
        if name == "vlan_vid":
            tci = self.read("vlan_tci")
            self.set_vlan((tci & 0xE000) | VLAN_CFI | (value & 0xFFF))
            return
        if name == "vlan_pcp":
            tci = self.read("vlan_tci")
            self.set_vlan((tci & 0x1FFF) | VLAN_CFI | ((value & 7) << 13))
            return
        dl_type = self.read("dl_type")
        if name in TUNNEL_FIELDS:
            key_field = TUNNEL_FIELDS[name]
            self.state[key_field] = value & full_mask(key_field)
            self.tnl_set.add(key_field)
            return
        if name == "pbb_isid":
            self.set_pbb_isid(value)
            return
        if name in SETTABLE_MPLS:
            if dl_type not in ETH_MPLS or not self.mpls:
                self.r.trace.append(f"    set {name}: no MPLS label, skipped")
                return
            shift, width = SETTABLE_MPLS[name]
            self.set_mpls_lse((self.mpls[0] & ~(width << shift)) | ((value & width) << shift))
            return
        if name in ("ip_dscp", "ip_ecn"):
            if dl_type not in (ETH_IP, ETH_IPV6):
                self.r.trace.append(f"    set {name}: not IP, skipped")
                return
            tos = self.read("nw_tos")
            tos = (value << 2) | (tos & 3) if name == "ip_dscp" else (tos & 0xFC) | (value & 3)
            self.emit("set_ipv4_tos" if dl_type == ETH_IP else "set_ipv6_tc", tos)
            self.state["nw_tos"] = tos
            return
        action, key_field, needs = SETTABLE[name]
        if needs in L4_PROTOS:
            proto = self.read("nw_proto") if dl_type in (ETH_IP, ETH_IPV6) else None
            if proto not in L4_PROTOS[needs] or (proto == 1 and dl_type != ETH_IP) \
                    or (proto == 58 and dl_type != ETH_IPV6):
                self.r.trace.append(f"    set {name}: no such L4 header, skipped")
                return
        elif needs == "nd":
            if name not in self.state:   # frame_fields() found no such ND field
                self.r.trace.append(f"    set {name}: no such ND field, skipped")
                return
            self.r.slow_path = True
        elif needs is not None and dl_type != needs:
            self.r.trace.append(f"    set {name}: wrong protocol, skipped")
            return
        if name in ("icmpv4_type", "icmpv4_code", "icmpv6_type", "icmpv6_code"):
            value &= 0xFF
        self.emit(action, value)
        if key_field:
            self.state[key_field] = value

    def restore(self, saved):
        """Undo the packet changes made since `saved` (group buckets work on copies)."""
        dl_type = self.state.get("dl_type", 0)
        icmp = dl_type in (ETH_IP, ETH_IPV6) and self.state.get("nw_proto") in (1, 58)
        for name, by_type in (*RESTORE.items(),
                              ("tp_src", {None: "set_icmp_type" if icmp else "set_tp_src"}),
                              ("tp_dst", {None: "set_icmp_code" if icmp else "set_tp_dst"})):
            action = by_type.get(None) or by_type.get(dl_type)
            if action and self.state.get(name, 0) != saved.get(name, 0):
                self.emit(action, saved.get(name, 0))
                self.state[name] = saved.get(name, 0)
        if self.state.get("vlan_tci", 0) != saved.get("vlan_tci", 0):
            if saved.get("vlan_tci", 0) & VLAN_CFI:
                self.set_vlan(saved["vlan_tci"])
            else:
                self.emit("pop_vlan")

    # --- outputs -------------------------------------------------------------
    def port_blocked(self, port, bits):
        """Port-mod config (OF1.3 7.2.1) of `port` has one of `bits`."""
        return bool(self.br.port_config.get(port, 0) & bits)

    def controller(self, reason, table_id, cookie, max_len):
        if self.br.controller_cookie is None:
            self.r.trace.append("    controller: no controller to send to, dropped")
            return
        if self.port_blocked(self.in_port_of(), OFPPC_NO_PACKET_IN):
            self.r.trace.append("    controller: the input port is no-packet-in, dropped")
            return
        self.emit("userspace", self.br.controller_cookie(reason, table_id, cookie, max_len))
        self.r.trace.append(f"    packet-in to the controller (reason {REASONS[reason]}, "
                            f"table {table_id}, cookie {cookie:#x}, max_len {max_len})")

    def output(self, port, max_len, table_id, cookie, depth):
        in_of = self.in_port_of()
        if port == OFPP_CONTROLLER:
            # OF1.3 section 7.4.1: a packet-in from the table-miss flow entry
            # (priority 0, empty match) has reason NO_MATCH.
            rule = self.rule
            miss = rule is not None and rule.priority == 0 and not rule.match
            self.controller(OFPR_NO_MATCH if miss else OFPR_ACTION, table_id, cookie, max_len)
        elif port in (OFPP_FLOOD, OFPP_ALL):
            skip = OUT_BLOCKED | (OFPPC_NO_FLOOD if port == OFPP_FLOOD else 0)
            outs = [dp for of, dp in sorted(self.br.ports.items())
                    if of != in_of and not self.port_blocked(of, skip)]
            if outs:
                self.commit_tunnel()
            self.r.actions += [("output", dp) for dp in outs]
            self.r.trace.append(f"    {'flood' if port == OFPP_FLOOD else 'all'}: output to "
                                f"{len(outs)} port(s)")
        elif port == OFPP_IN_PORT:
            if self.port_blocked(in_of, OUT_BLOCKED):
                self.r.trace.append("    output to the input port: no-fwd or down, dropped")
                return
            self.emit("output", self.state["in_port"])
            self.r.trace.append("    output to the input port")
        elif port == OFPP_NORMAL:
            self.normal()
        elif port == OFPP_TABLE:
            self.r.trace.append("    resubmit to table 0 (packet-out output:TABLE)")
            self.run_table(0, depth + 1)
        else:
            dp = self.br.ports.get(port)
            if dp is None:
                self.r.trace.append(f"    output:{_port_name(port)}: no such port, dropped")
            elif port == in_of:
                self.r.trace.append(f"    output:{_port_name(port)} is the input port: dropped "
                                    "(use in_port)")
            elif self.port_blocked(port, OUT_BLOCKED):
                self.r.trace.append(f"    output:{_port_name(port)}: no-fwd or down, dropped")
            else:
                self.emit("output", dp)
                self.r.trace.append(f"    output to port {_port_name(port)}")

    def normal(self):
        if self.br.normal is None:
            self.r.trace.append("    NORMAL: not available, dropped")
            return
        nr = self.br.normal(dict(self.state))
        for name, m in nr.mask.items():
            self.read(name, m)
        self.r.tags |= nr.tags
        self.r.learned = self.r.learned or nr.learned
        self.r.trace += ["    NORMAL: " + line for line in nr.trace]
        for name, arg in nr.actions:
            self.emit(name, arg)

    # --- actions -------------------------------------------------------------
    def apply(self, actions, table_id, cookie, depth):
        for a in actions:
            if not self.apply_one(a, table_id, cookie, depth):
                return False
        return True

    def apply_one(self, a, table_id, cookie, depth):
        """Runs one action; False stops the pipeline (invalid TTL)."""
        if isinstance(a, Output):
            self.output(a.port, a.max_len, table_id, cookie, depth)
        elif isinstance(a, Enqueue):
            self.output(a.port, 0, table_id, cookie, depth)
        elif isinstance(a, SetField):
            self.set_field(a)
        elif isinstance(a, PushVlan):
            self.push_vlan(a.ethertype)
        elif isinstance(a, PopVlan):
            self.pop_vlan()
        elif isinstance(a, PushPbb):
            self.push_pbb(a.ethertype)
        elif isinstance(a, PopPbb):
            self.pop_pbb()
        elif isinstance(a, CopyTtlOut):
            self.copy_ttl_out()
        elif isinstance(a, CopyTtlIn):
            self.copy_ttl_in()
        elif isinstance(a, (DecNwTtl, SetNwTtl)):
            return self.ttl(a, table_id, cookie)
        elif isinstance(a, PushMpls):
            self.push_mpls(a.ethertype)
        elif isinstance(a, PopMpls):
            self.pop_mpls(a.ethertype)
        elif isinstance(a, (SetMplsTtl, DecMplsTtl)):
            return self.mpls_ttl(a, table_id, cookie)
        elif isinstance(a, Group):
            self.group(a.group_id, depth, table_id, cookie)
        elif isinstance(a, SetQueue):
            pass  # no queues: output goes to the port's only queue
        return True

    def ttl(self, a, table_id, cookie):
        dl_type = self.read("dl_type")
        if dl_type not in (ETH_IP, ETH_IPV6):
            self.r.trace.append(f"    {type(a).__name__}: not IP, no change")
            return True
        set_ttl = "set_ipv4_ttl" if dl_type == ETH_IP else "set_ipv6_hlimit"
        if isinstance(a, SetNwTtl):
            self.emit(set_ttl, a.ttl)
            self.state["nw_ttl"] = a.ttl
            return True
        ttl = self.read("nw_ttl")
        if ttl <= 1:
            self.r.trace.append(f"    dec_ttl: TTL {ttl} expires")
            self.controller(OFPR_INVALID_TTL, table_id, cookie, self.br.miss_send_len)
            return False
        self.emit(set_ttl, ttl - 1)
        self.state["nw_ttl"] = ttl - 1
        return True

    def group(self, group_id, depth, table_id, cookie):
        entry = self.br.groups.groups.get(group_id)
        if entry is None or depth > MAX_DEPTH:
            self.r.trace.append(f"    group {group_id}: no such group, dropped")
            return
        self.r.groups.append(entry)
        # select hashes the addresses and ports: they join the mask
        flow_hash = zlib.crc32(repr([self.read(f) for f in
                                     ("dl_src", "dl_dst", "nw_src", "nw_dst", "tp_src", "tp_dst")]
                                    ).encode()) if entry.type == 1 else 0
        buckets = self.br.groups.buckets_to_run(group_id, flow_hash, lambda p: p in self.br.ports)
        self.r.trace.append(f"    group {group_id}: {len(buckets)} bucket(s)")
        for i, bucket in enumerate(buckets):
            saved = dict(self.state)
            self.apply(bucket.actions, table_id, cookie, depth + 1)
            if entry.type == OFPGT_ALL and i + 1 < len(buckets):
                self.restore(saved)
            self.r.buckets.append((entry, next(j for j, b in enumerate(entry.buckets) if b is bucket)))

    # --- tables --------------------------------------------------------------
    def run_table(self, table_id, depth=0):
        action_set = {}
        while table_id is not None:
            if depth > MAX_DEPTH:
                self.r.trace.append("too many table passes: dropped")
                return
            packet = packet_fields(self.state, self.metadata, self.in_port_of())
            rule, mask = self.br.tables.lookup(table_id, packet)
            self.r.lookups.append((table_id, packet, mask, rule))
            for name, m in key_mask(mask).items():
                self.read(name, m)
            if any(mask.get(name) and name in self.state for name in FRAME_FIELDS):
                self.r.slow_path = True  # decided on a field the megaflow cannot hold
            if rule is None:
                self.miss(table_id)
                return
            self.r.rules.append(rule)
            self.rule = rule
            self.r.trace.append(f"table {table_id}: matched {_rule_text(rule)}")
            table_id = None
            for inst in rule.instructions:
                if isinstance(inst, Meter):
                    if not self.meter(inst.meter_id):
                        return
                elif isinstance(inst, ApplyActions):
                    if not self.apply(inst.actions, rule.table_id, rule.cookie, depth):
                        return
                elif isinstance(inst, ClearActions):
                    action_set.clear()
                elif isinstance(inst, WriteActions):
                    for a in inst.actions:
                        action_set[(type(a), getattr(a, "field", None))] = a
                elif isinstance(inst, WriteMetadata):
                    self.metadata = (self.metadata & ~inst.mask) | (inst.metadata & inst.mask)
                elif isinstance(inst, GotoTable):
                    table_id = inst.table_id
                    self.r.trace.append(f"    goto table {table_id}")
            if table_id is None and action_set:
                self.run_action_set(action_set, rule, depth)
            depth += 1

    def run_action_set(self, action_set, rule, depth):
        items = sorted(action_set.values(), key=lambda a: SET_ORDER.index(type(a))
                       if type(a) in SET_ORDER else len(SET_ORDER))
        if any(isinstance(a, Group) for a in items):  # a group replaces the output
            items = [a for a in items if not isinstance(a, (Output, Enqueue))]
        self.r.trace.append("    action set: " + ", ".join(type(a).__name__ for a in items))
        self.apply(items, rule.table_id, rule.cookie, depth)

    def meter(self, meter_id):
        if meter_id not in self.br.meters.meters:
            self.r.trace.append(f"    meter {meter_id}: no such meter, dropped")
            return False
        if self.br.dp_meter is not None:
            self.emit("meter", self.br.dp_meter(meter_id))
            self.r.trace.append(f"    meter {meter_id}: measured by the datapath")
            return True
        self.r.slow_path = True
        if self.packet_len is None:
            self.r.trace.append(f"    meter {meter_id}: rate checked per packet (not in a trace)")
            return True
        if self.br.meters.admit(meter_id, self.packet_len, self.now):
            self.r.trace.append(f"    meter {meter_id}: within rate")
            return True
        self.r.trace.append(f"    meter {meter_id}: over rate, dropped by band")
        self.r.dropped_by_meter = True
        return False

    def miss(self, table_id):
        if self.br.miss_to_controller:
            self.r.trace.append(f"table {table_id}: no match: packet-in (OpenFlow 1.0 table-miss)")
            self.controller(OFPR_NO_MATCH, table_id, 0, self.br.miss_send_len)
        else:
            self.r.trace.append(f"table {table_id}: no match: drop (OpenFlow 1.3 table-miss)")


REASONS = {OFPR_NO_MATCH: "no_match", OFPR_ACTION: "action", OFPR_INVALID_TTL: "invalid_ttl"}


def _port_name(port):
    names = {OFPP_LOCAL: "LOCAL", OFPP_CONTROLLER: "CONTROLLER", OFPP_IN_PORT: "IN_PORT"}
    return names.get(port, str(port))


def _rule_text(rule):
    from vswitch.ofproto.ofctl_syntax import FlowSpec, format_flow
    return f"cookie={rule.cookie:#x}, " + format_flow(FlowSpec(rule.match, rule.instructions,
                                                               priority=rule.priority))


def xlate(bridge, key, now, packet_len=None, frame=None):
    """Runs `key` through the OpenFlow tables -> OFXlateResult.  packet_len is
    the frame length for meters (None in a trace: meters then pass); frame,
    when given, supplies what the key lacks (MPLS labels and what they hide)."""
    x = _Xlate(bridge, key, now, packet_len, key.get("in_port"), frame)
    if x.port_blocked(x.in_port_of(), IN_BLOCKED):
        x.r.trace.append("input port is no-recv or down: dropped")
        return x.r
    x.run_table(0)
    return x.r


def execute_actions(bridge, key, actions, now, packet_len=None, frame=None):
    """A packet-out: its action list as if applied by a rule (output:TABLE
    runs the tables)."""
    x = _Xlate(bridge, key, now, packet_len, key.get("in_port"), frame)
    x.r.trace.append("packet-out actions")
    x.apply(actions, 0xFF, 0, 0)
    return x.r


def match_to_key(match, ports):
    """An ovs-ofctl flow's match (for `trace`) -> a flow key; `ports` maps
    OpenFlow ports to datapath ports.  Unspecified fields are zero."""
    v = match.value
    key = {"in_port": ports.get(v("in_port", 0), v("in_port", 0)),
           "dl_dst": v("eth_dst", 0), "dl_src": v("eth_src", 0), "dl_type": v("eth_type", 0)}
    if "vlan_vid" in match and v("vlan_vid") & VLAN_CFI:
        key["vlan_tci"] = v("vlan_vid") & 0x1FFF | (v("vlan_pcp", 0) << 13)
    key["nw_src"] = v("ipv4_src", v("arp_spa", 0))
    key["nw_dst"] = v("ipv4_dst", v("arp_tpa", 0))
    key["ipv6_src"], key["ipv6_dst"] = v("ipv6_src", 0), v("ipv6_dst", 0)
    key["nw_proto"] = v("ip_proto", v("arp_op", 0))
    key["nw_tos"] = (v("ip_dscp", 0) << 2) | v("ip_ecn", 0)
    key["nw_ttl"] = 64 if key["dl_type"] in (ETH_IP, ETH_IPV6) else 0
    for name in match:
        kf = OXM_TO_KEY.get(name, ("",))[0]
        if kf in ("tp_src", "tp_dst"):
            key[kf] = v(name)
    return key
