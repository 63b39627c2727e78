"""A datapath in Python for bridge-layer tests that need no root and no
kernel devices: the switch's real slow path (Switch, Bridge, features, NORMAL,
OpenFlow xlate) runs on top of it unchanged.

Frames are parsed by the real C parser (dpif.parse_frame: no device needed);
megaflows are matched like the reference classifier of the datapath tests
(the one flow whose mask and masked key match).  A hit records the flow's
actions as the frame's fate and counts packets/bytes; a miss queues an
upcall.  `sent` collects every (datapath port, frame, actions) that left,
including frames the slow path executed or features transmitted.

    dp = FakeDatapath()
    sw = Switch(dp, clock=clock)
    dp.receive(1, frame)       # hit -> sent, miss -> upcall queued
    sw.handle_upcalls()
"""
import random
from collections import Counter
from dataclasses import dataclass, field

from vswitch.config.commands import execute
from vswitch.config.schema import empty_config
from vswitch.datapath import dpif, flowkey


class Clock:
    """The switch's injected clock: tests move `now` by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def configure(switch, *chain):
    """Runs vsctl commands (lists of words) on the switch's config and applies it."""
    config = switch.config or empty_config()
    config, _ = execute(config, [list(c) for c in chain], switch)
    switch.apply_config(config)
    return config


@dataclass
class FakeMegaflow:
    key: dict
    mask: dict
    actions: list
    packets: int = 0
    bytes: int = 0
    used_ns: int = 0
    created_ns: int = field(default_factory=dpif.now_ns)  # as vs_dp_flow_put stamps it


class FakeDatapath:
    upcall_fd = -1

    def __init__(self):
        self.ports = {}  # port number -> (type, ifname)
        self.flows = {}  # (packed key, packed mask) -> FakeMegaflow
        self.upcalls = []
        self.sent = []  # (datapath port, frame, actions of the whole decision)
        self.hits = 0
        self.misses = 0
        self.samples = []  # dpif.DatapathSample, as the SAMPLE action queues them
        self.sample_pools = Counter()  # (in port, cookie) -> packets that reached a SAMPLE
        self.random = random.Random(1)

    # -- ports ---------------------------------------------------------------------
    def add_port(self, port_no, driver, ifname, options=None):
        if driver == "afxdp":  # no AF_XDP here: the switch falls back to afpacket
            raise dpif.PortOpenError(95, "open")
        self.ports[port_no] = (driver, ifname)

    def del_port(self, port_no):
        return self.ports.pop(port_no, None) is not None

    def port_stats(self, port_no):
        return {} if port_no in self.ports else None

    def port_type_status(self, port_no):
        return {} if port_no in self.ports else None

    def port_type_stats(self, port_no):
        return {} if port_no in self.ports else None

    # -- flows ---------------------------------------------------------------------
    def flow_put(self, key, mask, actions):
        fid = (key, mask)
        new = fid not in self.flows
        self.flows[fid] = FakeMegaflow(flowkey.unpack(key), flowkey.unpack(mask), list(actions))
        return new

    def flow_del(self, key, mask):
        return self.flows.pop((key, mask), None) is not None

    def flow_del_stats(self, key, mask):
        f = self.flows.pop((key, mask), None)
        if f is None:
            return None
        return dpif.MegaflowStats(key=f.key, mask=f.mask, actions=f.actions, packets=f.packets,
                                  bytes=f.bytes, used_ns=f.used_ns, tcp_flags=0,
                                  packed_key=key, packed_mask=mask)

    def flow_flush(self):
        self.flows.clear()

    def flow_dump(self):
        return [self._stats(fid) for fid in self.flows]

    def flow_dump_chunks(self, chunk=dpif.DUMP_CHUNK):
        """As the datapath's cursor walk: each chunk is read when asked for,
        so flows deleted before then are not in it."""
        return self._read_chunks(chunk)

    def _read_chunks(self, chunk):
        fids = list(self.flows)
        for i in range(0, max(1, len(fids)), chunk):
            yield [self._stats(fid) for fid in fids[i:i + chunk] if fid in self.flows]

    def flow_dump_active_chunks(self, since_ns, idle_before_ns, chunk=dpif.DUMP_CHUNK):
        """As vs_dp_flow_dump_active (no kernel tier here): only the flows
        hit at or after since_ns, or idle (last hit, or install if never
        hit, before idle_before_ns)."""
        for stats in self._read_chunks(chunk):
            yield [s for s in stats if s.used_ns >= since_ns or
                   (s.used_ns or self.flows[s.packed_key, s.packed_mask].created_ns) < idle_before_ns]

    def _stats(self, fid):
        f = self.flows[fid]
        return dpif.MegaflowStats(key=f.key, mask=f.mask, actions=f.actions, packets=f.packets,
                                  bytes=f.bytes, used_ns=f.used_ns, tcp_flags=0,
                                  packed_key=fid[0], packed_mask=fid[1])

    def stats(self):
        return {"n_flows": len(self.flows)}

    # -- packets -------------------------------------------------------------------
    def lookup(self, key):
        hits = [f for f in self.flows.values()
                if flowkey.apply_mask(key, f.mask) == flowkey.apply_mask(f.key, f.mask)]
        assert len(hits) <= 1, f"overlapping megaflows for {key}: {hits}"
        return hits[0] if hits else None

    def receive(self, in_port, frame):
        """A frame arriving on a port: the fast path's lookup, then its fate."""
        key = dpif.parse_frame(frame, in_port)
        assert key is not None, "malformed test frame"
        key.pop("tcp_flags", None)
        flow = self.lookup(key)
        if flow is None:
            self.misses += 1
            self.upcalls.append(dpif.Upcall(in_port=in_port, cookie=0, key=key, frame=frame, vnet=None))
            return None
        self.hits += 1
        flow.packets += 1
        flow.bytes += len(frame)
        flow.used_ns = dpif.now_ns()
        self._apply(in_port, frame, flow.actions)
        return flow

    def _apply(self, in_port, frame, actions):
        cut = None  # a trunc's length, for the next output
        for name, arg in actions:
            if name == "sample":
                self._sample(in_port, frame, *arg)
            elif name == "trunc":
                cut = arg
            elif name == "output":
                self.sent.append((arg, frame[:cut] if cut else frame, list(actions)))
                cut = None
            elif name == "userspace":
                key = dpif.parse_frame(frame, in_port)
                self.upcalls.append(dpif.Upcall(in_port=in_port, cookie=arg, key=key,
                                                frame=frame, vnet=None))

    def _sample(self, in_port, frame, probability, cookie, out_port, header):
        self.sample_pools[in_port, cookie] += 1
        if probability != 0xFFFFFFFF and self.random.getrandbits(32) >= probability:
            return
        key = dpif.parse_frame(frame, in_port)
        key.pop("tcp_flags", None)
        self.samples.append(dpif.DatapathSample(
            in_port=in_port, cookie=cookie, out_port=out_port, frame_len=len(frame),
            header=frame[:header], pool=self.sample_pools[in_port, cookie], drops=0, key=key))

    def recv_samples(self):
        batch, self.samples = self.samples[:dpif.SAMPLE_BATCH], self.samples[dpif.SAMPLE_BATCH:]
        return batch

    def recv_upcalls(self):
        batch, self.upcalls = self.upcalls[:dpif.UPCALL_BATCH], self.upcalls[dpif.UPCALL_BATCH:]
        return batch

    def execute(self, in_port, frame, actions, vnet=None):
        self._apply(in_port, frame, actions)

    def outputs(self, port):
        return [frame for p, frame, _ in self.sent if p == port]
