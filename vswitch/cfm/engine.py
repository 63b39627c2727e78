"""The CFM engine: one MEP per interface, behind the common engine shape."""
from vswitch.cfm.mep import Mep
from vswitch.proto import DropCounter


class CfmEngine:
    """settings: {"interfaces": {port: {"mpid": 1, "level": 0,
    "interval_ms": 1000, "md_format": "string", "md_name": "ovs",
    "ma_format": "string", "ma_name": "ovs", "remote_mpids": None (learn)
    or [2, 3], "vlan": None, "pcp": 0, "mac": "..", "extended": False,
    "opup": True}}} -- every key but mpid defaults to Open vSwitch's choice.
    A MEP whose settings did not change keeps its state across configure()."""

    def __init__(self, settings: dict | None = None):
        self.meps: dict[str, Mep] = {}
        self._settings: dict[str, dict] = {}
        self.drops = DropCounter()
        self.now = 0.0
        if settings:
            self.configure(settings)

    def configure(self, settings: dict) -> bool:
        """True if any MEP was added, removed or restarted."""
        wanted = settings.get("interfaces", {})
        changed = False
        for port in list(self.meps):
            if port not in wanted:
                del self.meps[port], self._settings[port]
                changed = True
        for port, s in wanted.items():
            if self._settings.get(port) != s:
                self.meps[port] = Mep(port, s, self.now)
                self._settings[port] = dict(s)
                changed = True
        return changed

    def process_packet(self, port: str, frame: bytes, now: float) -> None:
        self.now = now
        mep = self.meps.get(port)
        if mep is None:
            self.drops.drop("no-mep-on-port")
            return
        try:
            mep.receive(frame, now)
        except Exception:                 # a codec bug must not stop the MEP
            mep.drops.drop("undecodable")

    def run(self, now: float) -> list[tuple[str, bytes]]:
        self.now = now
        return [(port, frame) for port, mep in self.meps.items()
                for frame in mep.run(now)]

    def next_wakeup(self) -> float | None:
        return min((m.next_wakeup() for m in self.meps.values()), default=None)

    def fault(self, port: str) -> list[str]:
        """Fault reasons of the MEP on `port` ([] = healthy), for the bond."""
        mep = self.meps.get(port)
        return mep.faults() if mep else []

    def show(self) -> dict:
        return {"interfaces": {p: m.show() for p, m in sorted(self.meps.items())},
                "drops": dict(self.drops)}
