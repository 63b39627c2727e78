"""802.1ag CFM on interfaces: one MEP on every interface whose `cfm_mpid`
is set, configured from the Interface columns as in Open vSwitch.

other_config: cfm_interval (ms, default 1000), cfm_extended, cfm_opstate,
cfm_ccm_vlan, cfm_ccm_pcp, and beyond OVS cfm_md_name / cfm_ma_name /
cfm_md_level (default OVS's identity: MD "ovs", MA "ovs", level 0).
cfm_demand is accepted and has no effect yet (demand mode is OVS-specific).
CCMs (Ethertype 0x8902) arriving on such an interface are claimed before any
pipeline (the megaflow keeps dl_type in its mask and sends them up); a fault
vetoes the interface (`usable`), so a faulty bond member is disabled, as OVS.
The read-only columns cfm_fault, cfm_fault_status, cfm_remote_mpids,
cfm_health, cfm_remote_opstate and cfm_flap_count come from the MEP.

Health, as OVS: with exactly one remote MEP, the share of the CCMs expected
over 6 fault-check periods (3.5 CCM intervals each) that arrived, in percent,
recomputed at the end of every such window; undefined otherwise.  The show
dict gains `health` and each remote MEP `recv_since_check` for cfm-show.
"""
import logging

from vswitch.bridge.feature import Feature
from vswitch.cfm import CfmEngine
from vswitch.cfm.ccm import ETH_TYPE_CFM
from vswitch.datapath.flowkey import full_mask

log = logging.getLogger("vswitch.bridge.cfm")

DEFAULT_INTERVAL_MS = 1000
HEALTH_CHECKS = 6  # OVS's CFM_HEALTH_INTERVAL, in fault-check periods


class CfmHealth:
    """OVS's average health of one MEP (see the module note)."""

    def __init__(self, now):
        self.window_start = now
        self.rx_at_start = None
        self.value = None  # percent, or None = undefined

    def update(self, mep, now):
        window = HEALTH_CHECKS * mep.loss_time
        if now < self.window_start + window:
            return
        remotes = list(mep.remotes.values())
        rx = remotes[0].rx if len(remotes) == 1 else None
        if rx is None or self.rx_at_start is None:
            self.value = None
        else:
            expected = window / mep.interval_time
            self.value = min(100, round(100 * (rx - self.rx_at_start) / expected))
        self.window_start, self.rx_at_start = now, rx


def _mep_settings(iface, row, host):
    other = row.get("other_config") or {}
    s = {"mpid": int(row["cfm_mpid"]),
         "interval_ms": int(other.get("cfm_interval", DEFAULT_INTERVAL_MS)),
         "extended": other.get("cfm_extended") == "true",
         "opup": other.get("cfm_opstate", "up") != "down",
         "pcp": int(other.get("cfm_ccm_pcp", 0))}
    vlan = other.get("cfm_ccm_vlan")
    if vlan and vlan != "random":
        s["vlan"] = int(vlan)
    for key, setting in (("cfm_md_name", "md_name"), ("cfm_ma_name", "ma_name")):
        if other.get(key):
            s[setting] = other[key]
    if "cfm_md_level" in other:
        s["level"] = int(other["cfm_md_level"])
    mac = host.iface_mac(iface)
    if mac:
        s["mac"] = mac.hex(":")
    return s


class CfmFeature(Feature):
    kind = "cfm"

    def __init__(self, host):
        super().__init__(host)
        self.engine = CfmEngine()
        self.flaps = {}  # iface -> times the fault state went from clear to set
        self.faulted = {}  # iface -> fault state at the last run
        self.health = {}  # iface -> CfmHealth

    def configure(self, ctx):
        wanted = {}
        for port in ctx.ports.values():
            for iface, row in port.ifaces.items():
                if row.get("cfm_mpid") is not None:
                    try:
                        wanted[iface] = _mep_settings(iface, row, self.host)
                    except ValueError as exc:
                        log.error("%s: CFM not configured: %s", iface, exc)
        self.engine.now = ctx.now
        try:
            changed = self.engine.configure({"interfaces": wanted})
        except ValueError as exc:
            log.error("CFM not configured: %s", exc)
            changed = True  # some MEPs may have been replaced before the bad one
        for iface in set(self.health) - set(self.engine.meps):
            del self.health[iface]
            self.flaps.pop(iface, None)
            self.faulted.pop(iface, None)
        for iface, mep in self.engine.meps.items():
            if iface not in self.health:
                self.health[iface] = CfmHealth(ctx.now)
                self.health[iface].rx_at_start = 0 if not mep.remotes else None
        return changed

    def claim(self, iface, key, mask):
        if iface not in self.engine.meps:
            return False
        mask["dl_type"] = full_mask("dl_type")
        return key.get("dl_type") == ETH_TYPE_CFM

    def process_packet(self, iface, frame, now):
        self.engine.process_packet(iface, frame, now)

    def usable(self, iface):
        mep = self.engine.meps.get(iface)
        return None if mep is None else not mep.faults()

    def run(self, now):
        out = self.engine.run(now)
        for iface, mep in self.engine.meps.items():
            fault = bool(mep.faults())
            if fault and not self.faulted.get(iface, False):
                self.flaps[iface] = self.flaps.get(iface, 0) + 1
            self.faulted[iface] = fault
            self.health[iface].update(mep, now)
        return out

    def next_wakeup(self):
        return self.engine.next_wakeup()

    def show(self, name=None):
        if name is not None and name not in self.engine.meps:
            raise KeyError(f"no such interface {name}")
        shown = self.engine.show()["interfaces"]
        for iface, m in shown.items():
            mep = self.engine.meps[iface]
            m["health"] = self.health[iface].value
            for r in m["remote_meps"].values():
                age = r["last_rx_age_ms"]
                r["recv_since_check"] = age is not None and age < mep.loss_time * 1000
        return [{"interfaces": {n: m}} for n, m in shown.items() if name in (None, n)]

    def column(self, table, column, name):
        mep = self.engine.meps.get(name)
        if table != "Interface" or mep is None:
            return None
        show = mep.show()
        if column == "cfm_fault":
            return bool(show["fault"])
        if column == "cfm_fault_status":
            return show["fault"]
        if column == "cfm_remote_mpids":
            return show["remote_mpids"]
        if column == "cfm_remote_opstate":
            return show["remote_opstate"] if mep.extended else None  # as OVS
        if column == "cfm_flap_count":
            return self.flaps.get(name, 0)
        if column == "cfm_health":
            return self.health[name].value
        return None
