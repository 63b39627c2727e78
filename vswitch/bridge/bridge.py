"""One bridge at run time: its MAC table, NORMAL's view of its ports, its
interfaces' datapath ports and its features (see feature.py).

The Switch owns the datapath, the interfaces and the megaflow cache; a Bridge
is handed three callables from it (interface lookup, megaflow invalidation,
wake-up) and implements the FeatureHost interface its features use.  The
bridge loops over FEATURES in order: LACP and CFM first, so that when the
bond feature runs it sees their verdicts on each member of the same round.
"""
from dataclasses import dataclass, field

from vswitch.bridge.bond import BondFeature
from vswitch.bridge.cfm_feature import CfmFeature
from vswitch.bridge.feature import Feature, earliest_wakeup
from vswitch.bridge.ipfix_feature import IpfixFeature
from vswitch.bridge.lacp_feature import LacpFeature
from vswitch.bridge.mirror import MirrorFeature
from vswitch.bridge.netflow_feature import NetflowFeature
from vswitch.bridge.sflow_feature import SflowFeature
from vswitch.ofproto import normal
from vswitch.ofproto.mac_learning import MacTable

# The exporters come before the mirrors: they read the pipeline's outputs
# (a record's output port), not the mirrors' copies.
FEATURES = (LacpFeature, CfmFeature, BondFeature, NetflowFeature, SflowFeature, IpfixFeature,
            MirrorFeature)
# Datapath userspace cookies of claimed frames: one per feature class (the
# upcall's in_port says which bridge).  OpenFlow packet-ins use 1 << 24 up.
FEATURE_COOKIE_BASE = 0x100


@dataclass
class PortConfig:
    row: dict
    ifaces: dict  # interface name -> Interface row


@dataclass
class BridgeConfig:
    """What features are configured from: the bridge's row and its ports."""
    row: dict
    ports: dict  # port name -> PortConfig
    now: float
    tables: dict | None = None  # the whole configuration (Mirror rows, Port uuids)


@dataclass
class ClaimedFlow:
    """The megaflow of a claimed frame: to userspace, with the feature's cookie."""
    actions: list
    mask: dict
    tags: frozenset = frozenset()
    vlan: None = None  # nothing to learn from it


@dataclass(frozen=True)
class PortSettings:
    tag: int | None
    trunks: frozenset
    vlan_mode: str | None

    @classmethod
    def from_row(cls, row):
        return cls(row.get("tag"), frozenset(row.get("trunks") or ()), row.get("vlan_mode"))


@dataclass
class Bridge:
    """interfaces(name) -> the switch's Interface or None;
    invalidate_tag(tag) and flush_all() act on this bridge's megaflows."""
    name: str
    macs: MacTable
    interfaces: object
    invalidate_tag: object
    flush_all: object
    clock: object
    wake: object = lambda: None
    mac: bytes = bytes(6)
    ports: dict = field(default_factory=dict)  # datapath port -> normal.BridgePort
    iface_names: dict = field(default_factory=dict)  # datapath port -> interface name
    port_settings: dict = field(default_factory=dict)  # port name -> PortSettings
    carriers: dict = field(default_factory=dict)  # interface -> carrier (netlink; the switch's)
    netdevs: object = lambda name: None  # interface name -> netdev_info dict (interfaces.py)

    def __post_init__(self):
        self.features = [cls(self) for cls in FEATURES]
        self.cookies = {FEATURE_COOKIE_BASE + i: f for i, f in enumerate(self.features)}
        self._cookie_of = {id(f): c for c, f in self.cookies.items()}
        # flow_stats runs per megaflow with traffic on every revalidator
        # round: only the features that read the reports are called.
        self._stats_readers = [f for f in self.features if type(f).flow_stats is not Feature.flow_stats]

    # -- configuration -----------------------------------------------------------------
    def configure(self, ctx):
        """Rebuilds NORMAL's port map and configures every feature; True if
        megaflows may be wrong now (the caller flushes)."""
        changed = False
        for f in self.features:
            changed |= bool(f.configure(ctx))
        flood_vlans = frozenset(ctx.row.get("flood_vlans") or ())
        if flood_vlans != getattr(self.macs, "flood_vlans", frozenset()):
            # As OVS's mac_learning_set_flood_vlans: NORMAL never learns
            # these VLANs (normal.py); what was learned in them goes.
            self.macs.flood_vlans = flood_vlans
            self.macs.flush()
            changed = True
        ports, names = {}, {}
        for port_name, port in ctx.ports.items():
            settings = PortSettings.from_row(port.row)
            if self.port_settings.get(port_name) != settings:
                self.port_settings[port_name] = settings
                self.macs.flush(port_name)  # its VLANs changed
                changed = True
            xlate = next((x for x in (f.port_xlate(port_name) for f in self.features) if x), None)
            dps = []
            for iface_name in sorted(port.ifaces):
                iface = self.interfaces(iface_name)
                if iface is not None and iface.open:
                    dps.append(iface.dp_port)
                    names[iface.dp_port] = iface_name
            if dps and not any(f.reserves(port_name) for f in self.features):
                tunnel = any(getattr(getattr(self.interfaces(n), "port_type", None), "tunnel", False)
                             for n in port.ifaces)
                bp = normal.BridgePort(port_name, dps[0], settings.tag, settings.trunks,
                                       settings.vlan_mode, xlate=xlate, tunnel=tunnel)
                for dp in dps:
                    ports[dp] = bp
        for name in set(self.port_settings) - set(ctx.ports):
            del self.port_settings[name]
        if ports != self.ports:
            for gone in {p.name for p in self.ports.values()} - {p.name for p in ports.values()}:
                self.macs.flush(gone)
            self.ports = ports
            changed = True
        self.iface_names = names
        return changed

    # -- frames and timers ----------------------------------------------------------------
    def claim(self, in_port, key):
        """(cookie, mask) when a feature claims this frame, else (None, mask):
        the mask holds what the features looked at either way."""
        mask = {}
        iface = self.iface_names.get(in_port)
        if iface is None:
            return None, mask
        for f in self.features:
            if f.claim(iface, key, mask):
                return self._cookie_of[id(f)], mask
        return None, mask

    def process_claimed(self, cookie, in_port, frame, now):
        feature, iface = self.cookies.get(cookie), self.iface_names.get(in_port)
        if feature is None or iface is None:
            return []
        feature.process_packet(iface, frame, now)
        return self.run(now)

    def run(self, now):
        """Runs every feature; returns (datapath port, frame) to transmit."""
        out = []
        for f in self.features:
            for iface, frame in f.run(now):
                dp = self.iface_port(iface)
                if dp is not None:
                    out.append((dp, frame))
        return out

    def next_wakeup(self):
        return earliest_wakeup(self.features)

    def link_changed(self, iface, carrier, now):
        """Called by the switch once it recorded the new carrier."""
        for f in self.features:
            f.link_changed(iface, carrier, now)
        return self.run(now)

    def xlate_actions(self, in_dp, key, actions, mask, tags):
        """A translation's datapath actions as the features rewrite them
        (mirror outputs), before the megaflow is installed."""
        for f in self.features:
            actions = f.xlate_actions(in_dp, key, actions, mask, tags)
        return actions

    def flow_stats(self, delta, now):
        for f in self._stats_readers:
            f.flow_stats(delta, now)

    def sampled(self, sample, now):
        """A datapath sample goes to the feature whose cookie it carries."""
        feature = self.cookies.get(sample.cookie)
        if feature is not None:
            feature.sampled(sample, now)

    def show(self, kind, name=None):
        f = self.feature(kind)
        return f.show(name) if f else []

    def column(self, table, column, name):
        for f in self.features:
            value = f.column(table, column, name)
            if value is not None:
                return value
        return None

    def close(self):
        for f in self.features:
            f.close()

    # -- FeatureHost ----------------------------------------------------------------------
    def iface_port(self, iface):
        i = self.interfaces(iface)
        return i.dp_port if i is not None and i.open else None

    def iface_mac(self, iface):
        i = self.interfaces(iface)
        return i.mac if i is not None else None

    def bridge_mac(self):
        return self.mac

    def carrier(self, iface):
        return self.carriers.get(iface, True)

    def usable(self, iface):
        if self.iface_port(iface) is None or not self.carrier(iface):
            return False
        return all(f.usable(iface) is not False for f in self.features)

    def invalidate(self, tag):
        self.invalidate_tag(tag)

    def flush(self):
        self.flush_all()

    def mac_port(self, vlan, mac):
        entry = self.macs.entries.get((vlan, mac))
        return entry.port if entry else None

    def learned_macs(self):
        return [(vlan, mac, e.port) for (vlan, mac), e in self.macs.entries.items()]

    def feature(self, kind):
        return next((f for f in self.features if f.kind == kind), None)

    def cookie(self, feature):
        return self._cookie_of[id(feature)]

    def netdev_info(self, iface):
        return self.netdevs(iface)
