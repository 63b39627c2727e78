"""The revalidator reads every megaflow on its first round and after a flush,
and otherwise only those hit since the previous round began or idle
(Switch._revalidation_dump, dpif.flow_dump_active_chunks): traffic is still
accounted (counters taken, MAC entries refreshed), idle megaflows
still expire, and a quiet megaflow the switch does not know survives until
it sees traffic (then it goes) — as the switch's design note says."""
import time

import pytest
from helpers.fake_datapath import Clock, FakeDatapath, configure
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from vswitch.datapath import dpif, flowkey
from vswitch.switch import EVERY_MEGAFLOW_NS, REVALIDATE_SINCE_SLACK_NS, Switch

MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
MAX_IDLE = 3600  # seconds: nothing goes idle unless a test says so
STRAY_PORT = 77


def frame(src, dst, sport):
    return bytes(Ether(src=src, dst=dst) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=sport, dport=53))


class CountingDatapath(FakeDatapath):
    """Records which dump each round used and how many records it returned."""

    def __init__(self):
        super().__init__()
        self.dumps = []  # ("full" | "active", records)

    def flow_dump_active_chunks(self, since_ns, idle_before_ns, chunk=dpif.DUMP_CHUNK):
        """A walk since EVERY_MEGAFLOW_NS reads every megaflow: "full"."""
        kind = "full" if since_ns == EVERY_MEGAFLOW_NS else "active"
        for c in super().flow_dump_active_chunks(since_ns, idle_before_ns, chunk):
            self.dumps.append((kind, len(c)))
            yield c

    def round(self, sw):
        self.dumps.clear()
        sw.revalidate()
        kinds = {k for k, _ in self.dumps}
        assert len(kinds) == 1, self.dumps
        return kinds.pop(), sum(n for _, n in self.dumps)


@pytest.fixture
def switch():
    dp, clock = CountingDatapath(), Clock()
    clock.now = dpif.now_ns() / 1e9    # the megaflows' idle time is read on the datapath's clock
    sw = Switch(dp, clock=clock, max_idle=MAX_IDLE)
    try:
        configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"])
        yield dp, sw
    finally:
        sw.close()


def deliver(sw, name, data):
    sw.dp.receive(sw.ifaces[name].dp_port, data)
    sw.handle_upcalls()


def mac_int(text):
    return int(text.replace(":", ""), 16)


def put_stray(dp, sport):
    key = flowkey.pack({"in_port": STRAY_PORT, "tp_src": sport})
    mask = flowkey.pack({"in_port": 0xFFFFFFFF, "tp_src": 0xFFFF})
    dp.flow_put(key, mask, [("output", 1)])
    return key, mask


def test_first_round_full_then_only_active_and_full_again_after_a_flush(switch):
    dp, sw = switch
    deliver(sw, "p2", frame(MAC_B, MAC_A, 9))    # B learned on p2 (its flood flow goes
    deliver(sw, "p1", frame(MAC_A, MAC_B, 10))   # when A is learned): one megaflow, to B
    assert len(dp.flows) == 1
    stray = put_stray(dp, 1)
    assert dp.round(sw) == ("full", 2)
    assert stray not in dp.flows                 # the full round deletes what it does not know
    assert dp.round(sw) == ("active", 0)         # quiet: nothing comes to Python
    quiet = put_stray(dp, 2)
    assert dp.round(sw) == ("active", 0)
    assert quiet in dp.flows                     # quiet and unknown: skipped (design note)
    sw.flush_flows()
    deliver(sw, "p1", frame(MAC_A, MAC_B, 11))
    assert dp.round(sw)[0] == "full"
    assert dp.round(sw) == ("active", 0)


def test_active_round_accounts_traffic_learns_and_deletes_an_unknown_flow_that_is_hit(switch):
    dp, sw = switch
    deliver(sw, "p2", frame(MAC_B, MAC_A, 9))
    deliver(sw, "p1", frame(MAC_A, MAC_B, 10))
    dp.round(sw)                                  # the full one
    to_b = next(f for f in dp.flows.values() if f.key.get("in_port") == sw.ifaces["p1"].dp_port)
    bridge = sw.bridges["br0"]
    a_entry = bridge.macs.entries[0, mac_int(MAC_A)]   # VLAN 0: the ports are access
    learned_at = a_entry.last_seen
    sw.clock.now += 5
    for _ in range(3):
        assert dp.receive(sw.ifaces["p1"].dp_port, frame(MAC_A, MAC_B, 10)) is to_b
    time.sleep(REVALIDATE_SINCE_SLACK_NS / 1e9)  # so the next round's `since` is past these hits
    assert dp.round(sw) == ("active", 1)          # only the flow that was hit
    info = sw.flows[next(k + m for (k, m), f in dp.flows.items() if f is to_b)]
    assert (info.last_packets, to_b.packets) == (3, 3)   # its counters were taken
    assert a_entry.last_seen == learned_at + 5    # A refreshed by the round (MAC learning)
    stray = put_stray(dp, 3)
    dp.flows[stray].packets, dp.flows[stray].used_ns = 1, dpif.now_ns()
    assert dp.round(sw) == ("active", 1)
    assert stray not in dp.flows                  # hit and unknown: deleted


def test_idle_megaflows_expire_in_an_active_round(switch):
    dp, sw = switch
    deliver(sw, "p2", frame(MAC_B, MAC_A, 9))
    dp.round(sw)
    assert len(dp.flows) == 1
    sw.max_idle = 0                               # everything installed is idle now
    assert dp.round(sw) == ("active", 1)
    assert not dp.flows and not sw.flows
