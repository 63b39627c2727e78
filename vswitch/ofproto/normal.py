"""NORMAL: a learning L2 switch with VLANs, as Open vSwitch's NORMAL action.

xlate() reads the flow key field by field and adds each field it reads to the
megaflow mask at the point where it reads it, so the installed megaflow is as
wide as the decision allows and the trace explains the same decisions.

VLAN modes follow OVS (vswitch.xml, Port vlan_mode):
  access           untagged frames join VLAN `tag`; tagged frames are dropped
                   (except priority-tagged VID 0).  Output untagged.
  trunk            tagged frames keep their VID, untagged frames are VLAN 0;
                   the VLAN must be in `trunks` (empty = all).  Output tagged,
                   except VLAN 0 which leaves untagged.
  native-untagged  like trunk, but untagged frames join VLAN `tag`, and VLAN
                   `tag` leaves untagged.
  native-tagged    like native-untagged, but VLAN `tag` leaves tagged.

A port of several interfaces (a bond) appears once under each member's
datapath port, with `xlate` set: the bond decides whether a frame arriving on
a member is admitted and which member a frame leaves on (bridge/bond.py), and
adds what it read to the mask and its staleness tags to the result.  NORMAL
itself only ever deals in port names, so a bond is learned and flooded to as
one port.
"""
from dataclasses import dataclass, field

from vswitch.datapath.flowkey import VLAN_CFI, VLAN_VID_MASK, full_mask, is_multicast_mac, mac_str

VLAN_MODES = ("access", "trunk", "native-tagged", "native-untagged")


@dataclass(frozen=True)
class BridgePort:
    """NORMAL's view of one port."""
    name: str
    ofport: int
    tag: int | None = None
    trunks: frozenset = frozenset()
    vlan_mode: str | None = None
    xlate: object = None  # a bond: admit(in_dp, key, mask, tags, vlan), select(key, mask, tags)
    # A tunnel port (vxlan): VTEPs form a full mesh, so a frame that came
    # through one tunnel is never flooded into another (split horizon, as a
    # Linux bridge with one vxlan device or EVPN); unicast to a MAC learned
    # behind another tunnel is still forwarded.
    tunnel: bool = False

    def output_port(self, key, mask, tags):
        """The datapath port to send on (None: a bond with no usable member)."""
        return self.xlate.select(key, mask, tags) if self.xlate else self.ofport

    @property
    def mode(self):
        if self.vlan_mode:
            return self.vlan_mode
        if self.tag is None:
            return "trunk"
        return "access" if not self.trunks else "native-untagged"

    def includes_vlan(self, vlan):
        mode = self.mode
        if mode == "access":
            return vlan == (self.tag or 0)
        if mode.startswith("native") and vlan == self.tag:
            return True
        return not self.trunks or vlan in self.trunks

    def output_tagged(self, vlan):
        mode = self.mode
        if mode == "access":
            return False
        if mode == "native-untagged" and vlan == self.tag:
            return False
        if mode == "native-tagged":
            return True
        return vlan != 0


@dataclass
class XlateResult:
    actions: list = field(default_factory=list)
    mask: dict = field(default_factory=dict)
    tags: set = field(default_factory=set)  # ("mac", vlan, mac): stale when that MAC moves
    trace: list = field(default_factory=list)
    learned: tuple | None = None  # (vlan, mac) whose location changed
    vlan: int | None = None  # the VLAN the frame was found to be in


_FULL = {name: full_mask(name) for name in ("in_port", "vlan_tci", "dl_src", "dl_dst")}


def _read(key, mask, name):
    mask[name] = _FULL[name]
    return key.get(name, 0)


def input_vlan(port, key, mask):
    """The VLAN a received frame belongs to, or (None, reason) to drop it."""
    tci = _read(key, mask, "vlan_tci")
    tagged = bool(tci & VLAN_CFI)
    vid = tci & VLAN_VID_MASK if tagged else 0
    mode = port.mode
    if mode == "access":
        if vid:
            return None, f"tagged frame (VLAN {vid}) received on access port {port.name}: dropped"
        return port.tag or 0, f"access port {port.name}: frame joins VLAN {port.tag or 0}"
    if mode.startswith("native") and not vid:
        vlan = port.tag
    else:
        vlan = vid
    if not port.includes_vlan(vlan):
        return None, f"VLAN {vlan} is not trunked on port {port.name}: dropped"
    return vlan, f"{mode} port {port.name}: frame is in VLAN {vlan}"


def _is_reserved_multicast(mac):
    return mac >> 4 == 0x0180C200000  # 01:80:c2:00:00:0x (STP, LACP, ...)


def _output_actions(key, vlan, out_ports):
    """Actions that deliver the frame to each (port, datapath port) with the
    right tagging, changing the tag as few times as possible."""
    tci = key.get("vlan_tci", 0)
    pcp_bits = tci & 0xE000 if tci & VLAN_CFI else 0
    untagged = [dp for p, dp in out_ports if not p.output_tagged(vlan)]
    tagged = [dp for p, dp in out_ports if p.output_tagged(vlan)]
    in_tagged_same = bool(tci & VLAN_CFI) and (tci & VLAN_VID_MASK) == vlan
    actions = []
    state = "tagged" if in_tagged_same else ("other" if tci & VLAN_CFI else "untagged")

    def emit_untagged():
        nonlocal state
        if untagged and state != "untagged":
            actions.append(("pop_vlan", 0))
            state = "untagged"
        actions.extend(("output", dp) for dp in untagged)

    def emit_tagged():
        nonlocal state
        if tagged and state != "tagged":
            if state == "other":
                actions.append(("pop_vlan", 0))
            actions.append(("push_vlan", pcp_bits | vlan))
            state = "tagged"
        actions.extend(("output", dp) for dp in tagged)

    if state == "tagged":
        emit_tagged()
        emit_untagged()
    else:
        emit_untagged()
        emit_tagged()
    return actions


def _discard(_message):
    pass


def xlate(ports_by_ofport, mac_table, key, now, trace=True):
    """Translates one flow through NORMAL.  ports_by_ofport: {ofport: BridgePort}.
    With trace=False (the upcall path) the explanation is not built: its
    strings cost more than the decisions."""
    r = XlateResult()
    note = (lambda make: r.trace.append(make())) if trace else _discard
    in_ofport = _read(key, r.mask, "in_port")
    in_port = ports_by_ofport.get(in_ofport)
    if in_port is None:
        note(lambda: f"input port {in_ofport} is not on this bridge: dropped")
        return r
    vlan, why = input_vlan(in_port, key, r.mask)
    note(lambda: why)
    if vlan is None:
        return r
    if in_port.xlate:
        refused = in_port.xlate.admit(in_ofport, key, r.mask, r.tags, vlan)
        if refused:
            note(lambda: f"{refused}: dropped")
            return r
    # A VLAN in the bridge's flood_vlans is never learned (OVS's
    # mac_learning_set_flood_vlans: RSPAN VLANs always flood); r.vlan stays
    # None so that the revalidator does not learn it from the megaflow either.
    flood_vlan = vlan in getattr(mac_table, "flood_vlans", ())
    r.vlan = None if flood_vlan else vlan

    src = _read(key, r.mask, "dl_src")
    if flood_vlan:
        note(lambda: f"VLAN {vlan} is a flood VLAN: {mac_str(src)} not learned")
    elif is_multicast_mac(src):
        note(lambda: f"source {mac_str(src)} is multicast: not learned")
    elif mac_table.learn(vlan, src, in_port.name, now):
        r.learned = (vlan, src)
        note(lambda: f"learned {mac_str(src)} on port {in_port.name} in VLAN {vlan}")

    dst = _read(key, r.mask, "dl_dst")
    if _is_reserved_multicast(dst):
        note(lambda: f"destination {mac_str(dst)} is an IEEE 802.1D reserved address: dropped")
        return r
    out_ports = []
    if is_multicast_mac(dst):
        note(lambda: f"destination {mac_str(dst)} is multicast/broadcast: flood VLAN {vlan}")
        flood = True
    elif flood_vlan:
        note(lambda: f"VLAN {vlan} is a flood VLAN: flood")
        flood = True
    else:
        r.tags.add(("mac", vlan, dst))
        out_name = mac_table.lookup(vlan, dst, now)
        flood = out_name is None
        if flood:
            note(lambda: f"no learned port for {mac_str(dst)} in VLAN {vlan}: flood VLAN {vlan}")
        elif out_name == in_port.name:
            note(lambda: f"{mac_str(dst)} was learned on the input port {out_name}: dropped")
            return r
        else:
            out = next((p for p in ports_by_ofport.values() if p.name == out_name), None)
            if out is not None and out.includes_vlan(vlan):
                out_ports = [out]
                note(lambda: f"{mac_str(dst)} is on port {out_name} (learned): forward")
            else:
                note(lambda: f"learned port {out_name} no longer carries VLAN {vlan}: dropped")
                return r
    if flood:
        # A bond is listed under each member's datapath port: once is enough.
        unique = {p.name: p for p in ports_by_ofport.values()
                  if p.name != in_port.name and p.includes_vlan(vlan)
                  and not (in_port.tunnel and p.tunnel)}
        out_ports = sorted(unique.values(), key=lambda p: p.ofport)
        note(lambda: "flood to: " + (", ".join(p.name for p in out_ports) or "(no other port)"))
    chosen = []
    for p in out_ports:
        dp = p.output_port(key, r.mask, r.tags)
        if dp is None:
            note(lambda: f"bond {p.name} has no enabled member: not sent there")
        else:
            chosen.append((p, dp))
    r.actions = _output_actions(key, vlan, chosen)
    return r
