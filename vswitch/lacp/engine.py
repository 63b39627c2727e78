"""The LACP engine of one bond: configuration, frame input, timers, show()."""
from vswitch.lacp import pdu as P
from vswitch.lacp.machines import (MUX, PERIODIC, RECEIVE, mux_events,
                                   periodic_events, receive_events,
                                   select_aggregator)
from vswitch.lacp.member import Member
from vswitch.proto import DropCounter, MalformedFrame

DEFAULTS = {
    "name": "bond0",
    "system_priority": 65534,        # Open vSwitch's default lacp-system-priority
    "mode": "active",                # or "passive"
    "rate": "slow",                  # or "fast"
    "fallback_ab": False,
    "aggregatable": True,
    "aggregate_wait": 2.0,           # 5.4.4 Aggregate_Wait_Time
}
MEMBER_DEFAULTS = {"port_priority": 65535}


class LacpEngine:
    """settings: {"system_id": "aa:bb:..", "system_priority", "mode",
    "rate", "fallback_ab", "key", "members": {name: {"port_id",
    "port_priority", "key", "mac"}}} (see DEFAULTS). `key` defaults to the
    first member's port id, as in Open vSwitch; a member's `mac` (the source
    address of its LACPDUs) defaults to the system id."""

    def __init__(self, settings: dict | None = None):
        self.members: dict[str, Member] = {}
        self.drops = DropCounter()
        self.now = 0.0
        self.system = bytes(6)
        self._identity = None
        if settings:
            self.configure(settings)

    # -- configuration -------------------------------------------------------
    def configure(self, settings: dict) -> None:
        s = {**DEFAULTS, **settings}
        if s["mode"] not in ("active", "passive") or s["rate"] not in ("fast", "slow"):
            raise ValueError(f"bad LACP mode/rate: {s['mode']}/{s['rate']}")
        identity = (P.mac_bytes(s["system_id"]), s["system_priority"],
                    s["mode"], s["rate"], s["aggregatable"])
        restart_all = identity != self._identity
        self._identity = identity
        self.name = s["name"]
        self.system, self.system_priority = identity[0], identity[1]
        self.active, self.fast = s["mode"] == "active", s["rate"] == "fast"
        self.aggregatable = s["aggregatable"]
        self.fallback_ab = bool(s["fallback_ab"])
        self.aggregate_wait = float(s["aggregate_wait"])
        wanted = s.get("members", {})
        first_port = next(iter(wanted.values()), {}).get("port_id", 1)
        self.key = s.get("key") or first_port
        for name in list(self.members):
            if name not in wanted:
                del self.members[name]
        for name, ms in wanted.items():
            ms = {**MEMBER_DEFAULTS, **ms}
            args = (ms["port_id"], ms["port_priority"], ms.get("key") or self.key,
                    P.mac_bytes(ms.get("mac") or self.system))
            old = self.members.get(name)
            if old is None or restart_all or (old.port_id, old.port_priority,
                                              old.key, old.mac) != args:
                self.members[name] = Member(self, name, *args)

    def set_port_enabled(self, member: str, enabled: bool) -> None:
        """Carrier (MAC_Operational) of a member changed."""
        if member in self.members:
            self.members[member].port_enabled = enabled

    # -- input ------------------------------------------------------------------
    def process_packet(self, port: str, frame: bytes, now: float) -> None:
        m = self.members.get(port)
        if m is None:
            self.drops.drop("unknown-member")
            return
        try:
            pdu = P.decode(frame)
        except MalformedFrame as e:
            m.rx_bad.drop(e.reason)
            return
        except Exception:                     # a codec bug must not kill the bond
            m.rx_bad.drop("undecodable")
            return
        m.counters["rx_pdus"] += 1
        if not m.port_enabled:
            m.rx_bad.drop("port-disabled")
            return
        m.pending_pdu = pdu
        self._update(now)

    # -- timers and output -------------------------------------------------------
    def run(self, now: float) -> list[tuple[str, bytes]]:
        self._update(now)
        out = []
        for m in self.members.values():
            frame = m.transmit(now)
            if frame is not None:
                out.append((m.name, frame))
        return out

    def next_wakeup(self) -> float | None:
        times = []
        for m in self.members.values():
            if m.rx_state == "INITIALIZE":
                return self.now
            times += m.timers()
            if m.ntt and m.periodic_state != "NO_PERIODIC":
                times.append(m.tx_allowed_at(self.now))
        return min(times, default=None)

    def _update(self, now: float) -> None:
        self.now = now
        for m in self.members.values():
            m.rx_state = RECEIVE.step(m.rx_state, lambda s: receive_events(m, now),
                                      _call_on(m))
        # Selection and Mux twice: a member whose partner changed detaches
        # first (update_Selected), then may be selected again.
        for _ in range(2):
            select_aggregator(self)
            for m in self.members.values():
                m.mux_state = MUX.step(m.mux_state, lambda s: mux_events(m, now),
                                       _call_on(m))
                m.force_unselected = False
        for m in self.members.values():
            m.periodic_state = PERIODIC.step(
                m.periodic_state, lambda s: periodic_events(m, now), _call_on(m))

    # -- what the bond asks -----------------------------------------------------------
    def negotiated(self) -> bool:
        return any(m.selected == "SELECTED" for m in self.members.values())

    def member_enabled(self, member: str) -> bool:
        m = self.members.get(member)
        return bool(m and m.may_enable())

    def enabled_members(self) -> list[str]:
        return [name for name in self.members if self.member_enabled(name)]

    def fallback_active(self) -> bool:
        """True when the bond should run active-backup over defaulted members."""
        return self.fallback_ab and not self.negotiated() and bool(self.enabled_members())

    def show(self) -> dict:
        return {
            "name": self.name,
            "status": "active" if self.active else "passive",
            "negotiated": self.negotiated(),
            "sys_id": P.mac_text(self.system),
            "sys_priority": self.system_priority,
            "aggregation_key": self.key,
            "lacp_time": "fast" if self.fast else "slow",
            "fallback_ab": self.fallback_ab,
            "fallback_active": self.fallback_active(),
            "members": {name: _show_member(m) for name, m in sorted(self.members.items())},
            "drops": dict(self.drops),
        }


def _call_on(member):
    return lambda action: getattr(member, action)()


_RX_STATUS = {"CURRENT": "current", "EXPIRED": "expired"}


def _info(i: P.PortInfo) -> dict:
    return {"sys_id": P.mac_text(i.system), "sys_priority": i.system_priority,
            "port_id": i.port, "port_priority": i.port_priority, "key": i.key,
            "state": P.state_words(i.state)}


def _show_member(m: Member) -> dict:
    return {
        "status": _RX_STATUS.get(m.rx_state, "defaulted"),
        "attached": m.mux_state != "DETACHED",
        "port_id": m.port_id,
        "port_priority": m.port_priority,
        "may_enable": m.may_enable(),
        "selected": m.selected,
        "machines": {"receive": m.rx_state, "mux": m.mux_state,
                     "periodic": m.periodic_state},
        "actor": _info(m.actor_info()),
        "partner": _info(m.partner),
        "counters": {**m.counters, "rx_bad": dict(m.rx_bad)},
    }
