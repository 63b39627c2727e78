"""Mirrors (SPAN, RSPAN) and flood_vlans on the fake datapath: the real Switch,
Bridge, NORMAL and bridge/mirror.py, with the Mirror rows built by hand in the
shape OVS's Mirror table has (vswitch.xml)."""
import copy
import uuid

import pytest
from helpers.fake_datapath import Clock, FakeDatapath, configure
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from vswitch.config.commands import execute
from vswitch.switch import Switch

MAC_A, MAC_B, MAC_C, MAC_X = ("02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c",
                              "02:00:00:00:00:99")
BCAST = "ff:ff:ff:ff:ff:ff"


def frame(src, dst, vlan=None, sport=1000):
    eth = Ether(src=src, dst=dst)
    if vlan is not None:
        eth = eth / Dot1Q(vlan=vlan, prio=3)
    return bytes(eth / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=sport, dport=53) / b"payload")


def run_actions(data, actions):
    """[(datapath port, bytes as sent)]: the frame through a datapath action
    list, VLAN pushes and pops applied (the fake datapath only records them)."""
    out, cut = [], None
    for name, arg in actions:
        if name == "trunc":
            cut = arg
        elif name == "output":
            out.append((arg, data[:cut] if cut else data))
            cut = None
        elif name == "push_vlan":
            data = data[:12] + b"\x81\x00" + (arg & ~0x1000).to_bytes(2, "big") + data[12:]
        elif name == "pop_vlan":
            assert data[12:14] == b"\x81\x00", "pop_vlan on an untagged frame"
            data = data[:12] + data[16:]
    return out


@pytest.fixture
def sw():
    dp, clock = FakeDatapath(), Clock()
    switch = Switch(dp, clock=clock)
    yield switch
    switch.close()


def ports(sw):
    return {name: i.dp_port for name, i in sw.ifaces.items()}


def deliver(sw, port, data):
    """One frame through the fake fast path (and the slow path on a miss):
    (megaflow hit or None, {port name: [bytes sent there]}) without the
    bridge's internal port."""
    sw.dp.sent.clear()
    hit = sw.dp.receive(port, data)
    sw.handle_upcalls()
    names = {dp: name for name, dp in ports(sw).items()}
    sent = {}
    if sw.dp.sent:
        for dp, data_out in run_actions(data, sw.dp.sent[0][2]):
            if names[dp] != "br0":
                sent.setdefault(names[dp], []).append(data_out)
    return hit, sent


def set_mirrors(sw, *mirrors, flood_vlans=None):
    """Replaces br0's mirrors with `mirrors` (dicts of Mirror columns whose
    ports are given by name) and applies the configuration."""
    config = copy.deepcopy(sw.config)
    port_uuid = {row["name"]: u for u, row in config["Port"].items()}
    br = next(row for row in config["Bridge"].values() if row["name"] == "br0")
    config["Mirror"] = {}
    br["mirrors"] = []
    for m in mirrors:
        row = {"name": m["name"], "select_all": m.get("select_all", False),
               "select_src_port": [port_uuid[p] for p in m.get("src", [])],
               "select_dst_port": [port_uuid[p] for p in m.get("dst", [])],
               "select_vlan": list(m.get("vlans", [])),
               "output_port": [port_uuid[m["out"]]] if m.get("out") else [],
               "output_vlan": m.get("out_vlan"), "snaplen": m.get("snaplen"), "external_ids": {}}
        u = str(uuid.uuid4())
        config["Mirror"][u] = row
        br["mirrors"].append(u)
    if flood_vlans is not None:
        br["flood_vlans"] = list(flood_vlans)
    sw.apply_config(config)


def stats(sw, name):
    return sw.bridges["br0"].column("Mirror", "statistics", name)


def test_span_ingress_and_egress_copies_are_the_original_bytes(sw):
    configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"],
              ["add-port", "br0", "p3"])
    p = ports(sw)
    set_mirrors(sw, {"name": "m0", "src": ["p1"], "dst": ["p1"], "out": "p3"})
    # B floods from p2: p1 gets it (egress of p1 selected), p3 only the copy.
    learn_b = frame(MAC_B, BCAST)
    _, sent = deliver(sw, p["p2"], learn_b)
    assert sent == {"p1": [learn_b], "p3": [learn_b]}
    # A -> B from p1: ingress of p1, mirrored byte for byte.
    a_to_b = frame(MAC_A, MAC_B)
    hit, sent = deliver(sw, p["p1"], a_to_b)
    assert hit is None and sent == {"p2": [a_to_b], "p3": [a_to_b]}
    hit, sent = deliver(sw, p["p1"], a_to_b)  # the megaflow carries the mirror output
    assert hit is not None and sent == {"p2": [a_to_b], "p3": [a_to_b]}
    assert ("output", p["p3"]) in hit.actions
    # B -> A from p2: egress to p1 is selected.
    b_to_a = frame(MAC_B, MAC_A)
    _, sent = deliver(sw, p["p2"], b_to_a)
    assert sent == {"p1": [b_to_a], "p3": [b_to_a]}
    # Traffic that neither enters nor leaves p1 is not mirrored.
    _, sent = deliver(sw, p["p2"], frame(MAC_C, MAC_B))  # B is on p2: dropped
    assert sent == {}
    assert sw.feature_show("mirror", "m0")[0]["output_port"] == "p3"


def test_span_of_a_tagged_frame_sent_untagged_keeps_what_each_side_saw(sw):
    configure(sw, ["add-br", "br0"], ["add-port", "br0", "t1"], ["add-port", "br0", "p1", "tag=10"],
              ["add-port", "br0", "p3"])
    p = ports(sw)
    set_mirrors(sw, {"name": "in", "src": ["t1"], "out": "p3"})
    tagged = frame(MAC_A, BCAST, vlan=10)
    _, sent = deliver(sw, p["t1"], tagged)
    assert sent["p1"] == [frame(MAC_A, BCAST)]  # access port: untagged
    assert sent["p3"] == [tagged]  # the copy as received, tag and PCP included
    set_mirrors(sw, {"name": "out", "dst": ["p1"], "out": "p3"})
    _, sent = deliver(sw, p["t1"], tagged)
    assert sent["p3"] == [frame(MAC_A, BCAST)]  # as sent to p1


def test_span_snaplen_cuts_every_copy_and_nothing_else(sw):
    configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"],
              ["add-port", "br0", "p3"])
    p = ports(sw)
    set_mirrors(sw, {"name": "m0", "src": ["p1"], "out": "p3", "snaplen": 20})
    data = frame(MAC_A, BCAST)
    for _ in range(2):  # slow path, then the megaflow
        _, sent = deliver(sw, p["p1"], data)
        assert sent == {"p2": [data], "p3": [data[:20]]}


def test_rspan_snaplen_cuts_each_tagged_copy(sw):
    data = frame(MAC_A, BCAST)
    p = rspan_switch(sw)
    set_mirrors(sw, {"name": "rspan", "src": ["p1"], "out_vlan": 99, "snaplen": 30}, flood_vlans=[99])
    _, sent = deliver(sw, p["p1"], data)
    assert sent["p2"] == [data]
    assert sent["a99"] == [data[:30]]
    assert [f for f in sent["t1"] if int.from_bytes(f[14:16], "big") & 0xFFF == 99] == \
        [(data[:12] + b"\x81\x00\x00\x63" + data[12:])[:30]]


def test_select_vlan_restricts_the_mirror(sw):
    configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1", "tag=10"], ["add-port", "br0", "p2", "tag=10"],
              ["add-port", "br0", "p4", "tag=20"], ["add-port", "br0", "p5", "tag=20"],
              ["add-port", "br0", "p3"])
    p = ports(sw)
    set_mirrors(sw, {"name": "m0", "select_all": True, "vlans": [10], "out": "p3"})
    f10, f20 = frame(MAC_A, BCAST), frame(MAC_B, BCAST)
    _, sent = deliver(sw, p["p1"], f10)
    assert sent == {"p2": [f10], "p3": [f10]}
    _, sent = deliver(sw, p["p4"], f20)
    assert sent == {"p5": [f20]}


def test_select_all_mirrors_every_port_once(sw):
    configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"],
              ["add-port", "br0", "p4"], ["add-port", "br0", "p3"])
    p = ports(sw)
    set_mirrors(sw, {"name": "all", "select_all": True, "out": "p3"})
    for src, mac in (("p1", MAC_A), ("p2", MAC_B), ("p4", MAC_C)):
        data = frame(mac, BCAST)
        _, sent = deliver(sw, p[src], data)
        assert sent["p3"] == [data]  # once, although it went out of two ports
        assert len(sent) == 3


def test_no_mirroring_to_or_from_the_output_port(sw):
    configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"],
              ["add-port", "br0", "p3"])
    p = ports(sw)
    set_mirrors(sw, {"name": "all", "select_all": True, "out": "p3"})
    # What the output port receives is dropped, not mirrored and not learned.
    _, sent = deliver(sw, p["p3"], frame(MAC_C, BCAST))
    assert sent == {}
    assert sw.fdb_show("br0") == []
    # Floods skip it: p3 only has the mirror copy.
    data = frame(MAC_A, BCAST)
    _, sent = deliver(sw, p["p1"], data)
    assert sent == {"p2": [data], "p3": [data]}
    # A mirror whose output is also selected does not copy it to itself.
    set_mirrors(sw, {"name": "m1", "src": ["p3"], "dst": ["p3"], "out": "p3"})
    _, sent = deliver(sw, p["p3"], frame(MAC_C, BCAST))
    assert sent == {}


def rspan_switch(sw):
    configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1", "tag=10"], ["add-port", "br0", "p2", "tag=10"],
              ["add-port", "br0", "t1"], ["add-port", "br0", "t2", "trunks=10"],
              ["add-port", "br0", "a99", "tag=99"])
    set_mirrors(sw, {"name": "rspan", "src": ["p1"], "out_vlan": 99}, flood_vlans=[99])
    return ports(sw)


def test_rspan_sends_the_copy_tagged_with_the_output_vlan(sw):
    p = rspan_switch(sw)
    data = frame(MAC_A, BCAST)
    hit, sent = deliver(sw, p["p1"], data)
    assert sent["p2"] == [data]
    assert sent["t2"] == [data[:12] + b"\x81\x00\x00\x0a" + data[12:]]  # VLAN 10, and no copy
    # t1 carries every VLAN: the frame in VLAN 10 and the copy in VLAN 99.
    vids = sorted(int.from_bytes(f[14:16], "big") & 0xFFF for f in sent["t1"])
    assert vids == [10, 99]
    copy99 = next(f for f in sent["t1"] if int.from_bytes(f[14:16], "big") & 0xFFF == 99)
    assert copy99[12:14] == b"\x81\x00" and copy99[:12] + copy99[16:] == data
    assert len(sent["t2"]) == 1  # t2 does not carry VLAN 99
    assert sent["a99"] == [data]  # an access port of VLAN 99 gets it untagged
    assert "p1" not in sent
    hit, sent2 = deliver(sw, p["p1"], data)
    assert hit is not None and sent2 == sent
    # Not mirrored: p2's traffic (not selected) and frames already in VLAN 99.
    _, sent = deliver(sw, p["p2"], frame(MAC_B, BCAST))
    assert set(sent) == {"p1", "t1", "t2"} and len(sent["t1"]) == 1


def test_rspan_of_a_tagged_frame_replaces_the_vid_and_restores_it(sw):
    configure(sw, ["add-br", "br0"], ["add-port", "br0", "t0"], ["add-port", "br0", "t1"],
              ["add-port", "br0", "p1", "tag=10"])
    set_mirrors(sw, {"name": "rspan", "src": ["t0"], "out_vlan": 99}, flood_vlans=[99])
    p = ports(sw)
    data = frame(MAC_A, BCAST, vlan=10)
    _, sent = deliver(sw, p["t0"], data)
    assert sent["p1"] == [frame(MAC_A, BCAST)]
    by_vid = {int.from_bytes(f[14:16], "big") & 0xFFF: f for f in sent["t1"]}
    assert by_vid[10] == data
    assert by_vid[99][:14] == data[:14] and by_vid[99][16:] == data[16:]
    assert by_vid[99][14] >> 5 == 3  # PCP kept


def test_flood_vlans_are_never_learned(sw):
    p = rspan_switch(sw)
    tagged = frame(MAC_X, BCAST, vlan=99)
    deliver(sw, p["t1"], tagged)
    hit, _ = deliver(sw, p["t1"], tagged)
    assert hit is not None
    sw.revalidate()  # the megaflow's traffic does not learn it either
    assert all(e["vlan"] != 99 for e in sw.fdb_show("br0"))
    _, sent = deliver(sw, p["a99"], frame(MAC_C, MAC_X))
    assert set(sent) == {"t1"}  # flooded in VLAN 99 (t1 is its only other port)
    # VLAN 10 still learns.
    deliver(sw, p["p2"], frame(MAC_B, BCAST))
    assert any(e["vlan"] == 10 and e["port"] == "p2" for e in sw.fdb_show("br0"))


def test_statistics_count_the_mirrored_megaflow_traffic(sw):
    configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"],
              ["add-port", "br0", "p3"])
    p = ports(sw)
    set_mirrors(sw, {"name": "m0", "src": ["p1"], "out": "p3"})
    data = frame(MAC_A, BCAST)
    for _ in range(4):
        deliver(sw, p["p1"], data)
    deliver(sw, p["p2"], frame(MAC_B, BCAST))  # not selected
    deliver(sw, p["p2"], frame(MAC_B, BCAST))
    # The first packet went through the slow path and counted at once.
    assert stats(sw, "m0") == {"tx_packets": 1, "tx_bytes": len(data)}
    sw.revalidate()
    assert stats(sw, "m0") == {"tx_packets": 4, "tx_bytes": 4 * len(data)}  # + the 3 hits
    assert sw.feature_show("mirror")[0]["statistics"]["tx_packets"] == 4
    sw.revalidate()
    assert stats(sw, "m0")["tx_packets"] == 4


def test_removing_a_mirror_deletes_exactly_its_megaflows(sw):
    p = rspan_switch(sw)
    deliver(sw, p["p1"], frame(MAC_A, BCAST))  # mirrored
    deliver(sw, p["p1"], frame(MAC_A, MAC_C, sport=2))  # mirrored (flooded, C unknown)
    deliver(sw, p["p2"], frame(MAC_B, BCAST))  # not mirrored
    mirrored = [f for f in sw.dp.flows.values() if f.key.get("in_port") == p["p1"]]
    others = [f for f in sw.dp.flows.values() if f.key.get("in_port") != p["p1"]]
    assert len(mirrored) == 2 and others
    set_mirrors(sw, flood_vlans=[99])
    left = list(sw.dp.flows.values())
    assert not any(f is m for f in left for m in mirrored)
    assert all(any(f is o for f in left) for o in others)
    _, sent = deliver(sw, p["p1"], frame(MAC_A, BCAST))
    assert set(sent) == {"p2", "t1", "t2"} and len(sent["t1"]) == 1  # no copy any more


def test_changing_a_mirror_retranslates(sw):
    configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"],
              ["add-port", "br0", "p3"], ["add-port", "br0", "p4"])
    p = ports(sw)
    set_mirrors(sw, {"name": "m0", "src": ["p2"], "out": "p3"})
    data = frame(MAC_A, BCAST)
    _, sent = deliver(sw, p["p1"], data)
    assert "p3" not in sent
    set_mirrors(sw, {"name": "m0", "src": ["p1"], "out": "p3"})
    _, sent = deliver(sw, p["p1"], data)
    assert sent["p3"] == [data]


def test_openflow_pipeline_outputs_are_mirrored_as_sent(sw):
    configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"],
              ["add-port", "br0", "p3"])
    p, of = ports(sw), {n: i.ofport for n, i in sw.ifaces.items()}
    set_mirrors(sw, {"name": "m0", "src": ["p1"], "dst": ["p2"], "out": "p3"})
    sw.add_flows("br0", [f"in_port={of['p1']},actions=mod_vlan_vid:7,output:{of['p2']}",
                         f"in_port={of['p2']},actions=output:{of['p1']}"])
    data = frame(MAC_A, MAC_B)
    _, sent = deliver(sw, p["p1"], data)
    tagged = data[:12] + b"\x81\x00\x00\x07" + data[12:]
    assert sent == {"p2": [tagged], "p3": [data]}  # ingress copy: as received (p1 selected first)
    hit, sent = deliver(sw, p["p1"], data)
    assert hit is not None and sent == {"p2": [tagged], "p3": [data]}
    set_mirrors(sw, {"name": "m1", "dst": ["p2"], "out": "p3"})
    _, sent = deliver(sw, p["p1"], data)
    assert sent == {"p2": [tagged], "p3": [tagged]}  # egress copy: as sent
    _, sent = deliver(sw, p["p2"], data)
    assert sent == {"p1": [data]}


def test_span_to_a_bond_uses_one_member(sw):
    configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"],
              ["add-bond", "br0", "b0", "m1", "m2", "bond_mode=active-backup",
               "other_config:bond-primary=m2"])
    sw.run_features()
    p = ports(sw)
    set_mirrors(sw, {"name": "m0", "src": ["p1"], "out": "b0"})
    sw.run_features()
    data = frame(MAC_A, BCAST)
    _, sent = deliver(sw, p["p1"], data)
    assert sent == {"p2": [data], "m2": [data]}
    sw.link_changed("m2", False)
    _, sent = deliver(sw, p["p1"], data)
    assert sent == {"p2": [data], "m1": [data]}


def test_mirror_created_with_vsctl(sw):
    """The Mirror table of vswitch/config (ovs-vsctl's --id=@name create)."""
    configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"],
              ["add-port", "br0", "p3"],
              ["--id=@p", "get", "Port", "p3"], ["--id=@s", "get", "Port", "p1"],
              ["--id=@m", "create", "Mirror", "name=m0", "select_src_port=@s", "output_port=@p"],
              ["set", "Bridge", "br0", "mirrors=@m"])
    p = ports(sw)
    data = frame(MAC_A, BCAST)
    _, sent = deliver(sw, p["p1"], data)
    assert sent == {"p2": [data], "p3": [data]}
    deliver(sw, p["p1"], data)  # a megaflow hit, counted by the revalidator
    sw.revalidate()
    # `vsctl get Mirror m0 statistics`, answered by the switch: the slow
    # path's packet and the hit.
    _, (got,) = execute(sw.config, [["get", "Mirror", "m0", "statistics"]], sw)
    assert got == [{"tx_packets": 2, "tx_bytes": 2 * len(data)}]
    configure(sw, ["clear", "Bridge", "br0", "mirrors"])
    _, sent = deliver(sw, p["p1"], data)
    assert sent == {"p2": [data], "p3": [data]}  # p3 is a normal port again
    assert sw.feature_show("mirror") == []
