"""LACP on bridge ports: one LacpEngine per port whose `lacp` column is
active or passive (a bond, or a single interface as OVS allows).

It claims LACPDUs and Marker PDUs (01:80:c2:00:00:02, Ethertype 0x8809) that
arrive on the port's interfaces before any pipeline, so they are never
learned or flooded; the megaflow it leaves (in_port, dl_dst, dl_type) sends
them to userspace.  Marker PDUs are answered at once.  It vetoes a member
(`usable`) unless the engine lets it collect and distribute, which is what
makes the bond stop using a member whose partner went silent.

Identity, as Open vSwitch: system id = other_config:lacp-system-id or the
bridge's MAC; priority lacp-system-priority; port id = Interface
other_config:lacp-port-id or its OpenFlow port; lacp-port-priority;
lacp-aggregation-key; PDUs leave from the member's own MAC.
"""
import logging

from vswitch.bridge.feature import Feature, earliest_wakeup
from vswitch.datapath.flowkey import full_mask
from vswitch.lacp import LacpEngine
from vswitch.lacp import marker
from vswitch.lacp.pdu import ETH_TYPE_SLOW, SLOW_PROTOCOLS_MAC, mac_text
from vswitch.proto import MalformedFrame

log = logging.getLogger("vswitch.bridge.lacp")

SLOW_MAC = int.from_bytes(SLOW_PROTOCOLS_MAC, "big")
DEFAULT_SYSTEM_PRIORITY = 65534  # OVS's lacp-system-priority default


def _engine_settings(name, port, host):
    row, other = port.row, port.row.get("other_config") or {}
    members = {}
    for i, (iface, irow) in enumerate(sorted(port.ifaces.items())):
        iother = irow.get("other_config") or {}
        ofport = host.iface_port(iface)
        member = {"port_id": int(iother.get("lacp-port-id") or (ofport if ofport and ofport > 0 else i + 1)),
                  "port_priority": int(iother.get("lacp-port-priority", 65535))}
        if "lacp-aggregation-key" in iother:
            member["key"] = int(iother["lacp-aggregation-key"])
        mac = host.iface_mac(iface)
        if mac:
            member["mac"] = mac_text(mac)
        members[iface] = member
    return {"name": name, "mode": row["lacp"],
            "rate": other.get("lacp-time", "slow"),
            "system_id": other.get("lacp-system-id") or mac_text(host.bridge_mac()),
            "system_priority": int(other.get("lacp-system-priority", DEFAULT_SYSTEM_PRIORITY)),
            "fallback_ab": other.get("lacp-fallback-ab") == "true",
            "members": members}


class LacpFeature(Feature):
    kind = "lacp"

    def __init__(self, host):
        super().__init__(host)
        self.engines = {}  # port name -> LacpEngine
        self.settings = {}  # port name -> the settings it was configured with
        self.port_of = {}  # interface -> port name
        self.replies = []  # (iface, frame) Marker responses waiting for run()

    def configure(self, ctx):
        wanted = {name: p for name, p in ctx.ports.items() if p.row.get("lacp") in ("active", "passive")}
        changed = False
        for name in set(self.engines) - set(wanted):
            del self.engines[name], self.settings[name]
            changed = True
        for name, port in wanted.items():
            settings = _engine_settings(name, port, self.host)
            if self.settings.get(name) == settings:
                continue
            engine = self.engines.get(name) or LacpEngine()
            engine.now = ctx.now
            engine.configure(settings)
            self.engines[name], self.settings[name] = engine, settings
            changed = True
        self.port_of = {iface: name for name, e in self.engines.items() for iface in e.members}
        for iface, name in self.port_of.items():
            self.engines[name].set_port_enabled(iface, self.host.carrier(iface))
        return changed

    def claim(self, iface, key, mask):
        if iface not in self.port_of:
            return False
        mask["dl_type"] = full_mask("dl_type")
        mask["dl_dst"] = full_mask("dl_dst")
        return key.get("dl_type") == ETH_TYPE_SLOW and key.get("dl_dst") == SLOW_MAC

    def process_packet(self, iface, frame, now):
        engine = self.engines.get(self.port_of.get(iface))
        if engine is None:
            return
        if marker.is_marker(frame):
            try:
                self.replies.append((iface, marker.response(frame, self.host.iface_mac(iface) or bytes(6))))
            except MalformedFrame as exc:
                engine.drops.drop(exc.reason)
            return
        engine.process_packet(iface, frame, now)

    def link_changed(self, iface, carrier, now):
        engine = self.engines.get(self.port_of.get(iface))
        if engine:
            engine.set_port_enabled(iface, carrier)

    def usable(self, iface):
        engine = self.engines.get(self.port_of.get(iface))
        return engine.member_enabled(iface) if engine else None

    def run(self, now):
        out, self.replies = self.replies, []
        for engine in self.engines.values():
            out += engine.run(now)
        return out

    def next_wakeup(self):
        return earliest_wakeup(self.engines.values())

    # -- what bonds ask -------------------------------------------------------------
    def status(self, port):
        engine = self.engines.get(port)
        if engine is None:
            return "off"
        return "negotiated" if engine.negotiated() else "configured"

    def fallback_active(self, port):
        engine = self.engines.get(port)
        return bool(engine and engine.fallback_active())

    def fallback_configured(self, port):
        engine = self.engines.get(port)
        return bool(engine and engine.fallback_ab)

    def show(self, name=None):
        if name is not None and name not in self.engines:
            raise KeyError(f"no such bond {name}")
        return [self.engines[n].show() for n in sorted(self.engines) if name in (None, n)]

    def column(self, table, column, name):
        engine = self.engines.get(self.port_of.get(name))
        if table == "Interface" and column == "lacp_current" and engine:
            return engine.show()["members"][name]["status"] == "current"
        return None
