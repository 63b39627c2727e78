"""One Maintenance association End Point on one interface (802.1Q clause 20).

The MEP sends a CCM every interval and classifies every CCM it receives the
way the MEP Continuity Check Receiver does (20.16/20.17): a higher MD level
passes by, a lower level or another MAID is a cross-connect ("level",
"maid"), our own MPID ("loopback"), an MPID not in the configured list
("unexpected-mpid") or another interval ("interval") is an error CCM; a good
CCM feeds that remote MEP's state machine (20.20, table below), whose
rMEPwhile timer of 3.5 intervals raises "recv" when it runs out. Error and
cross-connect faults clear 3.5 intervals after the last offending CCM, as
errorCCMwhile/xconCCMwhile do. "rdi" is raised while a remote MEP's last
CCM carried RDI; we set RDI in our CCMs while we see any other fault.
"""
from dataclasses import dataclass, field

from vswitch.cfm import ccm as C
from vswitch.proto import DropCounter, MalformedFrame, StateTable

MAX_REMOTE_MEPS = 256
LOSS_FACTOR = 3.5
FAULT_ORDER = ("recv", "rdi", "maid", "level", "interval", "unexpected-mpid",
               "loopback", "overflow")

# 20.20 Remote MEP state machine.
REMOTE_MEP = StateTable("remote-mep", {
    ("RMEP_IDLE", "UCT"): ("rmep_start", "RMEP_START"),
    ("RMEP_START", "ccm_received"): ("rmep_ok", "RMEP_OK"),
    ("RMEP_START", "rmep_while_expired"): ("rmep_failed", "RMEP_FAILED"),
    ("RMEP_OK", "ccm_received"): ("rmep_ok", "RMEP_OK"),
    ("RMEP_OK", "rmep_while_expired"): ("rmep_failed", "RMEP_FAILED"),
    ("RMEP_FAILED", "ccm_received"): ("rmep_ok", "RMEP_OK"),
})

DEFAULTS = {                     # what Open vSwitch's CFM uses
    "level": 0, "interval_ms": 1000, "md_format": "string", "md_name": "ovs",
    "ma_format": "string", "ma_name": "ovs", "remote_mpids": None,
    "vlan": None, "pcp": 0, "extended": False, "opup": True,
}


@dataclass
class RemoteMep:
    mpid: int
    learned: bool
    state: str = "RMEP_IDLE"
    rmep_while: float | None = None
    pending: C.Ccm | None = None
    last: C.Ccm | None = None
    last_rx: float | None = None
    rx: int = 0
    seq_errors: int = 0
    mep: "Mep" = field(default=None, repr=False)

    def rmep_start(self):
        self.rmep_while = self.mep.now + self.mep.loss_time

    def rmep_ok(self):
        ccm, self.pending = self.pending, None
        if self.last is not None and ccm.seq != (self.last.seq + 1) & 0xffffffff:
            self.seq_errors += 1
        self.last, self.last_rx = ccm, self.mep.now
        self.rx += 1
        self.rmep_while = self.mep.now + self.mep.loss_time

    def rmep_failed(self):
        self.rmep_while = None

    def events(self, now):
        yield "UCT"
        if self.pending is not None:
            yield "ccm_received"
        if self.rmep_while is not None and now >= self.rmep_while:
            yield "rmep_while_expired"

    def step(self, now):
        self.state = REMOTE_MEP.step(self.state, lambda s: self.events(now),
                                     lambda action: getattr(self, action)())

    @property
    def rdi(self) -> bool:
        return self.state == "RMEP_OK" and self.last is not None and self.last.rdi


class Mep:
    def __init__(self, port: str, settings: dict, now: float):
        s = {**DEFAULTS, **settings}
        self.port = port
        self.mpid = int(s["mpid"])
        self.extended = bool(s["extended"])
        if not (1 <= self.mpid <= (2**64 - 1 if self.extended else 8191)):
            raise ValueError(f"MPID {self.mpid} out of range")
        self.level = int(s["level"])
        if not 0 <= self.level <= 7:
            raise ValueError(f"MD level {self.level} out of range 0-7")
        self.interval = C.interval_code(float(s["interval_ms"]))
        self.interval_time = C.INTERVALS[self.interval]
        self.loss_time = LOSS_FACTOR * self.interval_time
        self.maid_name = C.Maid(s["md_format"], s["md_name"], s["ma_format"], s["ma_name"])
        self.maid = self.maid_name.encode()
        self.vlan, self.pcp, self.opup = s["vlan"], int(s["pcp"]), bool(s["opup"])
        self.mac = bytes.fromhex(s["mac"].replace(":", "")) if s.get("mac") else \
            bytes.fromhex("02" + f"{self.mpid & 0xffffffffff:010x}")
        self.configured = s["remote_mpids"] is not None
        self.now = self.started = now
        self.seq = 0
        self.tx_at = now                 # the first CCM goes out at once
        self.remotes: dict[int, RemoteMep] = {}
        for mpid in s["remote_mpids"] or ():
            self._add_remote(int(mpid), learned=False)
        self.fault_until: dict[str, float] = {}
        self.counters = {"tx": 0, "rx": 0, "higher_level": 0}
        self.drops = DropCounter()

    # -- receive ----------------------------------------------------------------
    def receive(self, frame: bytes, now: float) -> None:
        self.now = now
        try:
            ccm = C.decode(frame)
        except MalformedFrame as e:
            self.drops.drop(e.reason)
            return
        self.counters["rx"] += 1
        if ccm.level > self.level:
            self.counters["higher_level"] += 1      # another MD's CCM passing by
            return
        mpid = ccm.mpid64 if self.extended else ccm.mpid
        fault = self._classify(ccm, mpid)
        if fault:
            self.fault_until[fault] = now + self.loss_time
            return
        rmep = self.remotes.get(mpid) or self._learn(mpid)
        if rmep is None:
            self.fault_until["overflow"] = now + self.loss_time
            return
        rmep.pending = ccm
        rmep.step(now)

    def _classify(self, ccm: C.Ccm, mpid: int) -> str | None:
        if ccm.level < self.level:
            return "level"
        if ccm.maid != self.maid:
            return "maid"
        if mpid == self.mpid:
            return "loopback"
        if self.configured and mpid not in self.remotes:
            return "unexpected-mpid"
        if ccm.interval != self.interval:
            return "interval"
        return None

    def _learn(self, mpid: int) -> RemoteMep | None:
        if self.configured or len(self.remotes) >= MAX_REMOTE_MEPS:
            return None
        return self._add_remote(mpid, learned=True)

    def _add_remote(self, mpid: int, learned: bool) -> RemoteMep:
        rmep = self.remotes[mpid] = RemoteMep(mpid, learned, mep=self)
        rmep.step(self.now)
        return rmep

    # -- timers and transmit --------------------------------------------------------
    def run(self, now: float) -> list[bytes]:
        self.now = now
        for rmep in self.remotes.values():
            rmep.step(now)
        for reason in [r for r, t in self.fault_until.items() if now >= t]:
            del self.fault_until[reason]
        out = []
        if now >= self.tx_at:
            out.append(self._ccm_frame())
            # Keep the cadence; after a stall, restart it from now.
            self.tx_at += self.interval_time
            if self.tx_at <= now:
                self.tx_at = now + self.interval_time
        return out

    def _ccm_frame(self) -> bytes:
        self.seq = (self.seq + 1) & 0xffffffff
        self.counters["tx"] += 1
        ccm = C.Ccm(mpid=self.mpid & 0x1fff, seq=self.seq, interval=self.interval,
                    maid=self.maid, level=self.level, rdi=self.rdi_to_send(),
                    mpid64=self.mpid if self.extended else 0,
                    opdown=self.extended and not self.opup)
        dst = C.OVS_EXTENDED_GROUP if self.extended else None
        return C.encode(ccm, self.mac, dst=dst, vlan=self.vlan, pcp=self.pcp)

    def next_wakeup(self) -> float:
        times = [self.tx_at, *self.fault_until.values()]
        times += [r.rmep_while for r in self.remotes.values() if r.rmep_while is not None]
        if self.now < self.started + self.loss_time:
            times.append(self.started + self.loss_time)   # "nobody heard" starts
        return min(t for t in times if t is not None)

    # -- status -----------------------------------------------------------------------
    def faults(self) -> list[str]:
        now = self.now
        found = {r for r, t in self.fault_until.items() if now < t}
        if any(r.state == "RMEP_FAILED" for r in self.remotes.values()):
            found.add("recv")
        if not any(r.state == "RMEP_OK" for r in self.remotes.values()) \
                and now >= self.started + self.loss_time:
            found.add("recv")                      # nobody heard at all
        if any(r.rdi for r in self.remotes.values()):
            found.add("rdi")
        return [r for r in FAULT_ORDER if r in found]

    def rdi_to_send(self) -> bool:
        return any(f != "rdi" for f in self.faults())

    def remote_opup(self) -> bool:
        return not any(r.last is not None and r.last.opdown and r.state == "RMEP_OK"
                       for r in self.remotes.values())

    def show(self) -> dict:
        return {
            "mpid": self.mpid,
            "extended": self.extended,
            "level": self.level,
            "maid": self.maid_name.text(),
            "interval_ms": self.interval_time * 1000,
            "fault": self.faults(),
            "rdi_tx": self.rdi_to_send(),
            "opstate": "up" if self.opup else "down",
            "remote_opstate": "up" if self.remote_opup() else "down",
            "seq": self.seq,
            "next_ccm_tx_ms": max(0.0, (self.tx_at - self.now) * 1000),
            "next_fault_check_ms": max(0.0, (min(
                (r.rmep_while for r in self.remotes.values() if r.rmep_while is not None),
                default=self.now + self.loss_time) - self.now) * 1000),
            "remote_mpids": [m for m, r in sorted(self.remotes.items())
                             if r.state == "RMEP_OK"],
            "remote_meps": {m: _show_remote(r, self.now)
                            for m, r in sorted(self.remotes.items())},
            "counters": {**self.counters, "drops": dict(self.drops)},
        }


def _show_remote(r: RemoteMep, now: float) -> dict:
    return {"state": r.state.removeprefix("RMEP_").lower(),
            "learned": r.learned,
            "rdi": r.rdi,
            "opstate": "down" if r.last is not None and r.last.opdown else "up",
            "mac": ":".join(f"{b:02x}" for b in r.last.src) if r.last else None,
            "seq": r.last.seq if r.last else None,
            "seq_errors": r.seq_errors,
            "rx": r.rx,
            "last_rx_age_ms": None if r.last_rx is None else (now - r.last_rx) * 1000}
