"""Incremental revalidation on the fake datapath: a flow-mod deletes only the
megaflows it may change, and after it (the barrier's point) no packet is
forwarded by a megaflow the tables no longer justify."""
import random

import pytest
from helpers.fake_datapath import Clock, FakeDatapath, configure
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from vswitch.datapath import dpif, flowkey
from vswitch.ofproto import pipeline
from vswitch.switch import Switch

MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def frame(dst_ip="10.0.0.2", dport=53, sport=1000):
    return bytes(Ether(src=MAC_A, dst=MAC_B) / IP(src="10.0.0.1", dst=dst_ip)
                 / UDP(sport=sport, dport=dport) / b"payload")


@pytest.fixture
def sw():
    switch = Switch(FakeDatapath(), clock=Clock())
    configure(switch, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"],
              ["add-port", "br0", "p3"])
    yield switch
    switch.close()


def names(sw):
    return {i.dp_port: name for name, i in sw.ifaces.items()}


def ofport(sw, name):
    return sw.ifaces[name].ofport


def send(sw, port_name, data):
    """-> (megaflow hit?, sorted port names the frame left on)."""
    sw.dp.sent.clear()
    hit = sw.dp.receive(sw.ifaces[port_name].dp_port, data)
    sw.handle_upcalls()
    out = sorted(names(sw)[p] for p, _, _ in sw.dp.sent)
    return hit is not None, out


def test_added_rule_takes_the_next_packet_and_spares_other_megaflows(sw):
    p1, p2, p3 = (ofport(sw, n) for n in ("p1", "p2", "p3"))
    sw.add_flows("br0", [f"priority=10,in_port={p1},actions=output:{p2}",
                         f"priority=10,in_port={p2},actions=output:{p1}"])
    assert send(sw, "p1", frame()) == (False, ["p2"])
    assert send(sw, "p1", frame()) == (True, ["p2"])          # established
    assert send(sw, "p2", frame()) == (False, ["p1"])
    assert len(sw.dp.flows) == 2

    sw.add_flows("br0", [f"priority=20,in_port={p1},ip,nw_dst=10.0.0.2,actions=output:{p3}"])
    assert len(sw.dp.flows) == 1                               # only p1's megaflow went
    assert send(sw, "p1", frame()) == (False, ["p3"])          # the next packet obeys the new rule
    assert send(sw, "p2", frame()) == (True, ["p1"])           # p2's megaflow survived

    sw.del_flows("br0", f"priority=20,in_port={p1},ip,nw_dst=10.0.0.2", strict=True)
    assert send(sw, "p1", frame()) == (False, ["p2"])          # its megaflow is gone with it
    assert send(sw, "p2", frame()) == (True, ["p1"])

    sw.mod_flows("br0", f"in_port={p2},actions=drop")
    assert send(sw, "p2", frame()) == (False, [])              # modified rule: re-translated
    assert send(sw, "p1", frame()) == (True, ["p2"])


def test_lower_priority_add_keeps_megaflows(sw):
    p1, p2, p3 = (ofport(sw, n) for n in ("p1", "p2", "p3"))
    sw.add_flows("br0", [f"priority=50,in_port={p1},actions=output:{p2}"])
    send(sw, "p1", frame())
    sw.add_flows("br0", [f"priority=5,in_port={p1},actions=output:{p3}"])   # cannot win
    assert send(sw, "p1", frame()) == (True, ["p2"])


def test_rule_expiry_removes_its_megaflows(sw):
    p1, p2 = ofport(sw, "p1"), ofport(sw, "p2")
    sw.add_flows("br0", [f"priority=10,hard_timeout=5,in_port={p1},actions=output:{p2}"])
    assert send(sw, "p1", frame()) == (False, ["p2"])
    sw.clock.now += 6
    sw.of["br0"].run(sw.clock())
    assert len(sw.dp.flows) == 0


def _random_rule(rng, ports):
    parts = [f"priority={rng.randrange(1, 40)}"]
    if rng.random() < 0.6:
        parts.append(f"in_port={rng.choice(ports)}")
    if rng.random() < 0.7:
        parts.append("udp")
        if rng.random() < 0.6:
            parts.append(f"nw_dst=10.0.{rng.randrange(3)}.{rng.randrange(1, 4)}/{rng.choice((8, 24, 30, 32))}")
        if rng.random() < 0.4:
            parts.append(f"tp_dst={rng.choice((53, 80, 443))}")
    return ",".join(parts), f"actions=output:{rng.choice(ports)}"


@pytest.mark.parametrize("seed", range(6))
def test_random_flow_mods_never_leave_a_stale_megaflow(sw, seed):
    """After every flow-mod, every packet's fate from the cache (a megaflow
    hit) equals a fresh translation through the tables."""
    rng = random.Random(seed)
    ports = [ofport(sw, n) for n in ("p1", "p2", "p3")]
    packets = [(rng.choice(("p1", "p2", "p3")),
                frame(f"10.0.{rng.randrange(3)}.{rng.randrange(1, 4)}", rng.choice((53, 80, 443))))
               for _ in range(14)]
    rules = []
    survived = 0
    for _ in range(25):
        kind = rng.random()
        if kind < 0.55 or not rules:
            match, actions = _random_rule(rng, ports)
            sw.add_flows("br0", [f"{match},{actions}"])
            rules.append(match)
        elif kind < 0.8:
            sw.del_flows("br0", rules.pop(rng.randrange(len(rules))), strict=True)
        else:
            match = rng.choice(rules)
            sw.mod_flows("br0", f"{match},actions=output:{rng.choice(ports)}", strict=True)
        for port_name, data in packets:
            key = dpif.parse_frame(data, sw.ifaces[port_name].dp_port)
            key.pop("tcp_flags", None)
            # Every megaflow covering the packet (a surviving megaflow may
            # overlap a newer, wider one: both must be right for it).
            hits = [f for f in sw.dp.flows.values()
                    if flowkey.apply_mask(key, f.mask) == flowkey.apply_mask(f.key, f.mask)]
            fresh = pipeline.xlate(sw.of_view("br0", sw.clock()), key, sw.clock(), len(data), data)
            for hit in hits if sw.of["br0"].mode() == "openflow" else ():   # else NORMAL's
                assert hit.actions == fresh.actions, (port_name, key, rules)
                survived += 1
            if not hits:
                sw.dp.receive(sw.ifaces[port_name].dp_port, data)
                sw.handle_upcalls()
    assert survived     # megaflows did survive flow-mods (not a flush in disguise)
