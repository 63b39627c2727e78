"""A full MAC table evicts fairly (OVS's mac_learning): the oldest entry of
the port with the most entries, so a port flooding new source MACs never
evicts the other ports' MACs; evicted MACs' megaflows are invalidated."""
from helpers.fake_datapath import Clock, FakeDatapath, configure
from scapy.layers.l2 import Ether

from vswitch.ofproto.mac_learning import MacTable
from vswitch.switch import Switch


def mac(i):
    return 0x020000000000 + i


def test_a_flooding_port_evicts_its_own_entries():
    table = MacTable(max_entries=4)
    table.learn(0, mac(1), "a", 0)
    table.learn(0, mac(2), "b", 1)
    for i in range(100, 120):
        table.learn(0, mac(i), "flood", 2 + i)
        assert len(table.entries) <= 4
    assert table.lookup(0, mac(1), 200) == "a" and table.lookup(0, mac(2), 200) == "b"
    assert set(table.by_port) == {"a", "b", "flood"}
    evicted = table.take_evicted()
    assert len(evicted) == 18 and all(key[1] >= mac(100) for key in evicted)
    assert table.take_evicted() == []


def test_shrinking_and_ageing_keep_the_port_index_in_step():
    table = MacTable(aging_time=10, max_entries=10)
    for i in range(6):
        table.learn(0, mac(i), "a" if i < 4 else "b", i)
    assert sorted(table.configure(max_entries=3)) == [(0, mac(0)), (0, mac(1)), (0, mac(2))]
    assert {p: len(k) for p, k in table.by_port.items()} == {"a": 1, "b": 2}
    assert table.expire(14.5) == [(0, mac(3)), (0, mac(4))]
    assert {p: list(k) for p, k in table.by_port.items()} == {"b": [(0, mac(5))]}
    table.learn(0, mac(5), "a", 20)  # moved
    assert {p: list(k) for p, k in table.by_port.items()} == {"a": [(0, mac(5))]}
    assert table.flush("a") == [(0, mac(5))] and table.by_port == {}


def frame(src, dst):
    return bytes(Ether(src=src, dst=dst, type=0x88B5) / bytes(46))


def test_evicted_macs_megaflows_are_invalidated():
    dp, clock = FakeDatapath(), Clock()
    sw = Switch(dp, clock=clock)
    configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"],
              ["add-port", "br0", "p3"], ["set", "Bridge", "br0", "other_config:mac-table-size=4"])
    p = {n: sw.ifaces[n].dp_port for n in ("p1", "p2", "p3")}
    a, b = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
    for port, src, dst in ((p["p1"], a, b), (p["p2"], b, a), (p["p1"], a, b)):
        dp.receive(port, frame(src, dst))
        sw.handle_upcalls()
    to_b = [f for f in dp.flows.values() if f.key["dl_dst"] == int(b.replace(":", ""), 16)]
    assert to_b
    # p3 brings two new MACs (the table is full), then two more: each time
    # p3, the port with the most, loses its own oldest, never a or b
    for i in range(4):
        dp.receive(p["p3"], frame(f"02:00:00:00:01:{i:02x}", "ff:ff:ff:ff:ff:ff"))
        sw.handle_upcalls()
    macs = {m for (_, m) in sw.bridges["br0"].macs.entries}
    assert int(a.replace(":", ""), 16) in macs and int(b.replace(":", ""), 16) in macs
    assert all(any(f is g for g in dp.flows.values()) for f in to_b)  # a->b's megaflows stay
    sw.close()
