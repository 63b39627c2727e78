"""Port mirroring (SPAN and RSPAN), as Open vSwitch's Mirror table
(vswitch.xml) and ofproto-dpif-mirror.c / the mirror handling of
ofproto-dpif-xlate.c.

Selection: a mirror selects a frame when `select_all` is set, or the frame was
received on one of `select_src_port`, or is sent to one of `select_dst_port`;
`select_vlan` (empty = every VLAN) then restricts it to the frames whose VLAN
(the one the input port puts them in, as NORMAL decides) is listed.  A packet
is mirrored at most once by each mirror, and never from or to the mirror's own
output port.

Output: `output_port` (SPAN) receives the frame unchanged, byte for byte as it
was received (ingress selection) or as it was sent to the selected port
(egress selection); a bond sends it on the member the bond chooses.  As in
OVS, an output port is reserved for mirroring: NORMAL neither floods nor
forwards to it and drops what it receives (the `reserves` hook takes it out of
NORMAL's port map).  `output_vlan` (RSPAN) sends the copy, with its VLAN
replaced by `output_vlan` (pushed on an untagged frame, PCP kept), on every
port that carries that VLAN, tagged or untagged as the port's VLAN mode says,
except the port the frame came in on, the mirror's selected source ports and
any mirror's output port.  Frames already in the RSPAN VLAN are not mirrored
again (OVS's loop guard).  Bridge `flood_vlans` should list the RSPAN VLAN so
that it is never learned and always floods (normal.py).

Mirror outputs are datapath actions added to the translation
(Feature.xlate_actions): ingress copies before the pipeline's actions, egress
copies right after the output they copy, the VLAN state restored after each
RSPAN copy; so mirrored traffic stays in the fast path.  Megaflows carrying a
mirror's outputs are tagged ("mirror", name): removing a mirror deletes
exactly those; any other mirror change asks the bridge to flush (a new or
widened selection concerns megaflows no tag names).  Statistics (tx_packets,
tx_bytes: the packets the mirror copied) come from the revalidator's
per-megaflow deltas.

`snaplen` cuts each copy to that many bytes (the datapath's TRUNC action,
which cuts only the copy the next output sends; a cut copy carries no
offload metadata, so a frame whose checksum its sender left to offload keeps
the partial checksum).  Not done: mirroring of frames NORMAL drops for an
invalid VLAN, and `output_port` selection statistics per output.
"""
from dataclasses import dataclass

from vswitch.bridge.feature import Feature
from vswitch.datapath.flowkey import VLAN_CFI, VLAN_VID_MASK, full_mask
from vswitch.ofproto import normal


@dataclass(frozen=True)
class MirrorSettings:
    name: str
    select_all: bool
    src: frozenset  # port names
    dst: frozenset
    vlans: frozenset  # empty: every VLAN
    out_port: str | None
    out_vlan: int | None
    snaplen: int | None


def _uuids(value):
    """A set column as the config store holds it: a list (or one uuid)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    return [value]


def _transition(state, target):
    """Datapath actions turning VLAN stack `state` into `target` (lists of
    TCIs without CFI, outermost last)."""
    k = 0
    while k < min(len(state), len(target)) and state[k] == target[k]:
        k += 1
    return [("pop_vlan", 0)] * (len(state) - k) + [("push_vlan", t) for t in target[k:]]


class MirrorFeature(Feature):
    kind = "mirror"

    def __init__(self, host):
        super().__init__(host)
        self.mirrors = {}  # name -> MirrorSettings
        self.stats = {}  # name -> [tx_packets, tx_bytes]
        self.port_of_dp = {}  # datapath port -> port name (every port of the bridge)
        self.out_ports = frozenset()  # port names reserved for mirror output

    # -- configuration ---------------------------------------------------------------
    def configure(self, ctx):
        tables = getattr(ctx, "tables", None) or {}
        port_names = {uuid: row.get("name") for uuid, row in tables.get("Port", {}).items()}
        mirror_rows = tables.get("Mirror", {})
        wanted = {}
        for uuid in _uuids(ctx.row.get("mirrors")):
            row = mirror_rows.get(uuid)
            if not row:
                continue
            name = row.get("name") or str(uuid)

            def names(column):
                return frozenset(port_names[u] for u in _uuids(row.get(column))
                                 if port_names.get(u) in ctx.ports)
            out = [port_names.get(u) for u in _uuids(row.get("output_port"))]
            out_port = out[0] if out and out[0] in ctx.ports else None
            out_vlan = row.get("output_vlan")
            if isinstance(out_vlan, list):  # an optional column as a set
                out_vlan = out_vlan[0] if out_vlan else None
            snaplen = row.get("snaplen")
            if isinstance(snaplen, list):
                snaplen = snaplen[0] if snaplen else None
            wanted[name] = MirrorSettings(
                name, bool(row.get("select_all")), names("select_src_port"), names("select_dst_port"),
                frozenset(int(v) for v in _uuids(row.get("select_vlan"))),
                out_port, None if out_port else out_vlan, snaplen)
        port_of_dp = {}
        for port_name, port in ctx.ports.items():
            for iface in port.ifaces:
                dp = self.host.iface_port(iface)
                if dp is not None:
                    port_of_dp[dp] = port_name
        self.port_of_dp = port_of_dp
        self.out_ports = frozenset(m.out_port for m in wanted.values() if m.out_port)
        old, self.mirrors = self.mirrors, wanted
        for name in set(self.stats) - set(wanted):
            del self.stats[name]
        for name in wanted:
            self.stats.setdefault(name, [0, 0])
        if old == wanted:
            return False
        for name, settings in old.items():
            if wanted.get(name) != settings:
                self.host.invalidate(("mirror", name))
        # A new or changed mirror may select megaflows that carry no tag of it.
        return any(old.get(name) != settings for name, settings in wanted.items())

    def reserves(self, port_name):
        return port_name in self.out_ports

    # -- translation -----------------------------------------------------------------
    def _vlan(self, in_dp, key, mask):
        """The VLAN the frame is in (as NORMAL classifies it), or None."""
        mask["in_port"] = full_mask("in_port")
        mask["vlan_tci"] = full_mask("vlan_tci")
        port = self.host.ports.get(in_dp)
        tci = key.get("vlan_tci", 0)
        if port is None:
            return tci & VLAN_VID_MASK if tci & VLAN_CFI else 0
        vlan, _ = normal.input_vlan(port, key, mask)
        return vlan

    def _selects_vlan(self, m, vlan):
        return not m.vlans or vlan in m.vlans

    def xlate_actions(self, in_dp, key, actions, mask, tags):
        if not self.mirrors:
            return actions
        in_name = self.port_of_dp.get(in_dp)
        if in_name is None or in_name in self.out_ports:
            return actions
        vlan = self._vlan(in_dp, key, mask)
        if vlan is None:
            return actions
        candidates = [m for m in self.mirrors.values()
                      if self._selects_vlan(m, vlan) and (m.out_port or m.out_vlan is not None)]
        if not candidates:
            return actions
        tci = key.get("vlan_tci", 0)
        state = [tci & ~VLAN_CFI] if tci & VLAN_CFI else []
        done = set()
        out = []

        def mirror(selected):
            for m in selected:
                done.add(m.name)
                emitted = self._emit(m, in_dp, in_name, key, mask, tags, state, vlan)
                if emitted:
                    out.extend(emitted)
                    tags.add(("mirror", m.name))

        mirror([m for m in candidates if m.select_all or in_name in m.src])
        for action in actions:
            out.append(action)
            name, arg = action
            if name == "push_vlan":
                state = state + [arg]
            elif name == "pop_vlan":
                state = state[:-1]
            elif name == "output":
                dst = self.port_of_dp.get(arg)
                if dst is None or dst in self.out_ports:
                    continue
                mirror([m for m in candidates if m.name not in done
                        and (m.select_all or dst in m.dst)])
        return out

    def _emit(self, m, in_dp, in_name, key, mask, tags, state, vlan):
        """The actions sending frame `state` to mirror m's output, leaving the
        VLAN state as it was."""
        cut = [("trunc", m.snaplen)] if m.snaplen else []  # each copy cut to snaplen
        if m.out_port:
            dp = self._port_dp(m.out_port, key, mask, tags)
            return cut + [("output", dp)] if dp is not None and dp != in_dp else []
        if vlan == m.out_vlan:
            return []  # already in the RSPAN VLAN: no loops
        targets = {}
        for p in self.host.ports.values():
            if (p.name != in_name and p.name not in m.src and p.name not in self.out_ports
                    and p.includes_vlan(m.out_vlan)):
                targets[p.name] = p
        pcp = (state[-1] & 0xE000) if state else 0
        tagged_state = state[:-1] + [pcp | m.out_vlan]
        untagged_state = state[:-1]
        actions, cur = [], state
        for p in sorted(targets.values(), key=lambda p: (p.output_tagged(m.out_vlan), p.ofport)):
            dp = p.output_port(key, mask, tags)
            if dp is None:
                continue
            want = tagged_state if p.output_tagged(m.out_vlan) else untagged_state
            actions += _transition(cur, want)
            cur = want
            actions += cut + [("output", dp)]
        if actions:
            actions += _transition(cur, state)
        return actions

    def _port_dp(self, port_name, key, mask, tags):
        bonds = self.host.feature("bond")
        bond = bonds.port_xlate(port_name) if bonds else None
        if bond is not None:
            return bond.select(key, mask, tags)
        for dp, name in sorted(self.port_of_dp.items()):
            if name == port_name:
                return dp
        return None

    # -- statistics and state ----------------------------------------------------------
    def flow_stats(self, delta, now):
        for tag in delta.tags:
            if tag[0] == "mirror" and tag[1] in self.stats:
                st = self.stats[tag[1]]
                st[0] += delta.packets
                st[1] += delta.bytes

    def column(self, table, column, name):
        if table == "Mirror" and column == "statistics" and name in self.stats:
            packets, nbytes = self.stats[name]
            return {"tx_packets": packets, "tx_bytes": nbytes}
        return None

    def show(self, name=None):
        if name is not None and name not in self.mirrors:
            raise KeyError(f"no such mirror {name}")
        shown = []
        for n in sorted(self.mirrors):
            if name not in (None, n):
                continue
            m = self.mirrors[n]
            packets, nbytes = self.stats.get(n, (0, 0))
            shown.append({
                "bridge": self.host.name, "name": n, "select_all": m.select_all,
                "select_src_port": sorted(m.src), "select_dst_port": sorted(m.dst),
                "select_vlan": sorted(m.vlans), "output_port": m.out_port,
                "output_vlan": m.out_vlan, "snaplen": m.snaplen,
                "statistics": {"tx_packets": packets, "tx_bytes": nbytes}})
        return shown
