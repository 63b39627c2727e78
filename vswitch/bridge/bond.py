"""Bonds: one logical port over several interfaces (Open vSwitch's bond.c).

NORMAL sees a bond as one port: it learns MACs on the bond's name and floods
to it once.  The Bond object below is the port's `port_xlate` contribution:
  admit(in_dp, key, mask, tags)  may a frame that arrived on this member enter?
  select(key, mask, tags)        which member's datapath port sends it?
Both add every field they read to the megaflow mask and tag the megaflow so
that a change deletes exactly what it makes wrong (one tag per choice: tags
cost every flow setup):
  ("bond-bucket", bond, n)       a balancing bond hashed it into bucket n:
                                 deleted when bucket n changes hands (its
                                 member went down, the rebalancer moved it,
                                 a member came up and buckets were spread anew)
  ("bond-member", bond, member)  active-backup sent it on that member (None:
                                 on no member): deleted when the active
                                 member changes
  ("bond-rx", bond)              an admission decision: deleted when a
                                 member or the active member changes

Modes (Port bond_mode), as OVS:
  active-backup  one active member sends; frames arriving on the others are
                 dropped.  bond-primary is preferred when it is enabled.
  balance-slb    source MAC + VLAN hashed into 256 buckets, each owned by a
                 member; multicast/broadcast arriving on a member other than
                 the active one is dropped (it would loop back otherwise).
  balance-tcp    L3/L4 5-tuple (L2 for non-IP) hashed likewise; with LACP
                 negotiated every enabled member admits everything.  Without
                 LACP (OVS refuses traffic then; we run it on carrier) it
                 admits like balance-slb.
A member is enabled when its carrier is up and no feature vetoes it (LACP not
collecting/distributing, a CFM fault), after bond_updelay / bond_downdelay ms
(updelay is skipped when no member is enabled, as OVS does).  Every
bond-rebalance-interval ms (default 10 s; 0 = never) balance modes move
buckets from the most to the least loaded member, by the bytes the
revalidator attributed to each bucket since the last rebalance.

Learning packets (as OVS's bundle_send_learning_packets): when the active
member of an active-backup or balance-slb bond without LACP changes, the
upstream switch still sends our hosts' traffic to the old member until it
relearns.  So, once per change, a RARP from every MAC learned on the bridge's
other ports leaves on the member that MAC's traffic now uses.
"""
import struct

from dataclasses import dataclass

from vswitch.bridge.feature import Feature, earliest_wakeup
from vswitch.datapath.flowkey import VLAN_VID_MASK, full_mask, is_multicast_mac

N_BUCKETS = 256
DEFAULT_MODE = "active-backup"  # OVS's default bond_mode
DEFAULT_REBALANCE_MS = 10000
ETH_TYPE_IPV4 = 0x0800
ETH_TYPE_IPV6 = 0x86DD
ETH_TYPE_RARP = 0x8035
ETH_TYPE_VLAN = 0x8100
BROADCAST = b"\xff" * 6
# RARP request (RFC 903): Ethernet/IPv4, opcode 3, sender and target = our MAC.
_RARP = struct.Struct("!HHBBH6s4s6s4s")
RARP_REQUEST = 3
_TCP_FIELDS_V4 = ("nw_src", "nw_dst", "nw_proto", "tp_src", "tp_dst")
_TCP_FIELDS_V6 = ("ipv6_src", "ipv6_dst", "nw_proto", "tp_src", "tp_dst")
_L2_FIELDS = ("dl_src", "dl_dst")
_FULL = {name: full_mask(name) for name in
         ("dl_type", "vlan_tci", "dl_src", "dl_dst", "nw_src", "nw_dst", "ipv6_src",
          "ipv6_dst", "nw_proto", "tp_src", "tp_dst")}


def rarp_frame(mac, vlan):
    """The learning packet of (vlan, mac): what OVS's compose_rarp builds."""
    src = mac.to_bytes(6, "big")
    tag = struct.pack("!HH", ETH_TYPE_VLAN, vlan) if vlan else b""
    body = _RARP.pack(1, ETH_TYPE_IPV4, 6, 4, RARP_REQUEST, src, bytes(4), src, bytes(4))
    return BROADCAST + src + tag + ETH_TYPE_RARP.to_bytes(2, "big") + body


def _read(key, mask, name, bits=None):
    bits = _FULL[name] if bits is None else bits
    mask[name] = mask.get(name, 0) | bits
    return key.get(name, 0) & bits


def _spread(value):
    """A bucket number from a Python hash (ints hash to themselves: mix them)."""
    value = hash(value) & 0xFFFFFFFFFFFFFFFF
    value ^= value >> 29
    value = (value * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    value ^= value >> 32
    return value % N_BUCKETS


@dataclass
class BondMember:
    name: str
    enabled: bool = False
    change_at: float | None = None  # updelay/downdelay running until then
    load: int = 0  # bytes hashed to it since the last rebalance (show)


@dataclass
class BondSettings:
    mode: str = DEFAULT_MODE
    updelay_ms: int = 0
    downdelay_ms: int = 0
    rebalance_ms: int = DEFAULT_REBALANCE_MS
    primary: str | None = None
    hash_basis: int = 0
    members: tuple = ()

    @classmethod
    def from_row(cls, row, member_names):
        other = row.get("other_config") or {}
        return cls(mode=row.get("bond_mode") or DEFAULT_MODE,
                   updelay_ms=int(row.get("bond_updelay") or 0),
                   downdelay_ms=int(row.get("bond_downdelay") or 0),
                   rebalance_ms=int(other.get("bond-rebalance-interval", DEFAULT_REBALANCE_MS)),
                   primary=other.get("bond-primary"),
                   hash_basis=int(other.get("bond-hash-basis", 0)),
                   members=tuple(member_names))


class Bond:
    def __init__(self, feature, name, settings, now):
        self.feature, self.host, self.name = feature, feature.host, name
        self.settings = settings
        self.members = {m: BondMember(m) for m in settings.members}
        self.buckets = [None] * N_BUCKETS  # bucket -> member name
        self.bucket_load = [0] * N_BUCKETS
        self.active = None
        # Refreshed by update(), which runs after every feature's turn, so
        # that translation (every flow setup) reads attributes only.
        self.dp_ports = {}  # member -> datapath port
        self.balancing = settings.mode != "active-backup"  # not lacp-fallback-ab's active-backup
        self.lacp_negotiated = False
        self.learning_due = False  # send learning packets at the next run
        self.next_rebalance = now + settings.rebalance_ms / 1000 if settings.rebalance_ms else None

    def _lacp(self):
        return self.host.feature("lacp")

    def lacp_status(self):
        lacp = self._lacp()
        return lacp.status(self.name) if lacp else "off"

    def _lacp_fallback(self):
        lacp = self._lacp()
        return bool(lacp and lacp.fallback_active(self.name))

    # -- translation ------------------------------------------------------------------
    def _member_of_dp(self, dp):
        for name, port in self.dp_ports.items():
            if port == dp:
                return self.members[name]
        return None

    def admit(self, in_dp, key, mask, tags, vlan=0):
        """None to accept a received frame, or the reason it is dropped."""
        tags.add(("bond-rx", self.name))
        member = self._member_of_dp(in_dp)
        if member is None or not member.enabled:
            return f"member of bond {self.name} is disabled"
        if self.lacp_negotiated and self.balancing:
            return None
        if is_multicast_mac(_read(key, mask, "dl_dst")) and member.name != self.active:
            return f"multicast on inactive member {member.name} of bond {self.name}"
        if not self.balancing and member.name != self.active:
            return f"active-backup bond {self.name}: {member.name} is not the active member"
        if self.balancing:
            # Our own frame reflected by the upstream switch (OVS's
            # BV_DROP_IF_MOVED for balance-slb; balance-tcp without LACP
            # meets the same plain switch): its source was learned on
            # another port.
            src = _read(key, mask, "dl_src")
            tags.add(("mac", vlan, src))
            port = self.host.mac_port(vlan, src)
            if port is not None and port != self.name:
                return f"source learned on {port}, not on bond {self.name}: reflected"
        return None

    def select(self, key, mask, tags):
        """The datapath port to send on, or None when no member is enabled."""
        if not self.balancing:
            chosen = self.active
            tags.add(("bond-member", self.name, chosen))
        else:
            bucket = self._bucket(key, mask)
            tags.add(("bond-bucket", self.name, bucket))
            chosen = self.buckets[bucket]
        return self.dp_ports.get(chosen)

    def _bucket(self, key, mask):
        basis = self.settings.hash_basis
        if self.settings.mode == "balance-tcp":
            dl_type = _read(key, mask, "dl_type")
            fields = (_TCP_FIELDS_V4 if dl_type == ETH_TYPE_IPV4 else
                      _TCP_FIELDS_V6 if dl_type == ETH_TYPE_IPV6 else _L2_FIELDS)
            return _spread((basis, dl_type) + tuple(_read(key, mask, f) for f in fields))
        vid = _read(key, mask, "vlan_tci", VLAN_VID_MASK)
        return _spread((basis, vid, _read(key, mask, "dl_src")))

    # -- member state -------------------------------------------------------------------
    def update(self, now):
        """Applies carrier/veto changes after their delays; returns True if
        anything about forwarding changed."""
        changed = False
        self.dp_ports = {name: dp for name in self.members
                         if (dp := self.host.iface_port(name)) is not None}
        self.balancing = self.settings.mode != "active-backup" and not self._lacp_fallback()
        self.lacp_negotiated = self.lacp_status() == "negotiated"
        any_enabled = any(m.enabled for m in self.members.values())
        for m in self.members.values():
            want = self.host.usable(m.name)
            if want == m.enabled:
                m.change_at = None
                continue
            delay = self.settings.updelay_ms if want else self.settings.downdelay_ms
            if want and not any_enabled:
                delay = 0  # nothing else carries traffic: no point waiting
            if m.change_at is None:
                m.change_at = now + delay / 1000
            if now >= m.change_at:
                m.enabled, m.change_at = want, None
                changed = True
                (self._member_up if want else self._member_down)(m)
        changed |= self._elect_active()
        return changed

    def _enabled(self):
        return sorted(name for name, m in self.members.items() if m.enabled)

    def _member_down(self, member):
        for b, owner in enumerate(self.buckets):
            if owner == member.name:
                self.buckets[b] = self._least_loaded()
                self.host.invalidate(("bond-bucket", self.name, b))
        self.host.invalidate(("bond-rx", self.name))  # it admitted frames

    def _member_up(self, member):
        enabled = self._enabled()
        self.buckets = [enabled[b % len(enabled)] for b in range(N_BUCKETS)]
        for b in range(N_BUCKETS):
            self.host.invalidate(("bond-bucket", self.name, b))
        self.host.invalidate(("bond-rx", self.name))  # it dropped what it now admits

    def _least_loaded(self):
        enabled = self._enabled()
        if not enabled:
            return None
        load = {name: 0 for name in enabled}
        for b, owner in enumerate(self.buckets):
            if owner in load:
                load[owner] += self.bucket_load[b] + 1  # +1: spread even when idle
        return min(enabled, key=lambda name: (load[name], name))

    def _elect_active(self):
        enabled = self._enabled()
        primary = self.settings.primary
        if primary in enabled:
            want = primary
        elif self.active in enabled:
            want = self.active
        else:
            want = enabled[0] if enabled else None
        if want == self.active:
            return False
        self.host.invalidate(("bond-member", self.name, self.active))
        if want is not None and self.settings.mode in ("active-backup", "balance-slb") \
                and not self.lacp_negotiated:
            self.learning_due = True
        self.active = want
        self.host.invalidate(("bond-rx", self.name))
        return True

    def learning_packets(self):
        """(member, frame) RARPs for every MAC learned elsewhere on the bridge."""
        if not self.learning_due:
            return []
        self.learning_due = False
        out = []
        for vlan, mac, port in self.host.learned_macs():
            if port == self.name:
                continue
            key = {"dl_src": mac, "vlan_tci": vlan, "dl_type": ETH_TYPE_RARP}
            member = self.active if not self.balancing else self.buckets[self._bucket(key, {})]
            if member is not None:
                out.append((member, rarp_frame(mac, vlan)))
        return out

    # -- load and rebalancing -----------------------------------------------------------
    def account(self, bucket, nbytes):
        self.bucket_load[bucket] += nbytes

    def rebalance(self, now):
        if self.next_rebalance is None or now < self.next_rebalance:
            return
        self.next_rebalance = now + self.settings.rebalance_ms / 1000
        if self.balancing:
            self._move_buckets()
        self.bucket_load = [0] * N_BUCKETS

    def _member_loads(self):
        load = {name: 0 for name in self._enabled()}
        for b, owner in enumerate(self.buckets):
            if owner in load:
                load[owner] += self.bucket_load[b]
        return load

    def _move_buckets(self):
        """Greedy, as OVS's bond_rebalance: move the bucket from the busiest
        member to the idlest that most narrows the gap, while one does."""
        for _ in range(N_BUCKETS):
            load = self._member_loads()
            if len(load) < 2:
                return
            busiest = max(load, key=lambda n: (load[n], n))
            idlest = min(load, key=lambda n: (load[n], n))
            gap = load[busiest] - load[idlest]
            # Moving bucket b leaves a gap of |gap - 2 load(b)|: smaller
            # exactly when 0 < load(b) < gap.
            candidates = [b for b, owner in enumerate(self.buckets)
                          if owner == busiest and 0 < self.bucket_load[b] < gap]
            if not candidates:
                return
            best = min(candidates, key=lambda b: abs(gap - 2 * self.bucket_load[b]))
            self.buckets[best] = idlest
            self.host.invalidate(("bond-bucket", self.name, best))

    def next_wakeup(self):
        times = [m.change_at for m in self.members.values() if m.change_at is not None]
        if self.next_rebalance is not None and self.balancing:
            times.append(self.next_rebalance)
        return min(times, default=None)

    # -- show -------------------------------------------------------------------------
    def show(self, now):
        lacp = self._lacp()
        hashes = {name: {} for name in self.members}
        for b, owner in enumerate(self.buckets):
            if owner in hashes and self.bucket_load[b]:
                hashes[owner][b] = self.bucket_load[b]
        mac = self.host.iface_mac(self.active) if self.active else None
        return {
            "name": self.name,
            "bond_mode": self.settings.mode,
            "bond_hash_basis": self.settings.hash_basis,
            "updelay": self.settings.updelay_ms,
            "downdelay": self.settings.downdelay_ms,
            "next_rebalance": (max(0, round((self.next_rebalance - now) * 1000))
                               if self.next_rebalance is not None and self.balancing else None),
            "lacp_status": self.lacp_status(),
            "lacp_fallback_ab": bool(lacp and lacp.fallback_configured(self.name)),
            "primary": self.settings.primary,
            "active_member": self.active,
            "active_member_mac": ":".join(f"{b:02x}" for b in mac) if mac else "00:00:00:00:00:00",
            "members": {name: {"enabled": m.enabled, "may_enable": bool(self.host.usable(name)),
                               "hashes": hashes[name]}
                        for name, m in sorted(self.members.items())},
        }


class BondFeature(Feature):
    """Every port of the bridge with more than one interface is a bond."""
    kind = "bond"

    def __init__(self, host):
        super().__init__(host)
        self.bonds = {}  # port name -> Bond

    def configure(self, ctx):
        changed = False
        wanted = {name: p for name, p in ctx.ports.items() if len(p.ifaces) > 1}
        for name in set(self.bonds) - set(wanted):
            del self.bonds[name]
            changed = True
        for name, p in wanted.items():
            settings = BondSettings.from_row(p.row, sorted(p.ifaces))
            bond = self.bonds.get(name)
            if bond is None or bond.settings != settings:
                self.bonds[name] = Bond(self, name, settings, ctx.now)
                changed = True
        for bond in self.bonds.values():
            bond.update(ctx.now)
        return changed

    def port_xlate(self, port_name):
        return self.bonds.get(port_name)

    def flow_stats(self, delta, now):
        for tag in delta.tags:
            if tag[0] == "bond-bucket":
                bond = self.bonds.get(tag[1])
                if bond:
                    bond.account(tag[2], delta.bytes)

    def run(self, now):
        out = []
        for bond in self.bonds.values():
            bond.update(now)
            bond.rebalance(now)
            out += bond.learning_packets()
        return out

    def next_wakeup(self):
        return earliest_wakeup(self.bonds.values())

    def show(self, name=None):
        if name is not None and name not in self.bonds:
            raise KeyError(f"no such bond {name}")
        now = self.host.clock()
        return [self.bonds[n].show(now) for n in sorted(self.bonds) if name in (None, n)]
