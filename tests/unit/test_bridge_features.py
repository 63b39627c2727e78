"""The bridge layer on a fake datapath (no root, no devices): the real Switch,
Bridge, features and NORMAL over tests/helpers/fake_datapath.py, with an
injected clock."""
import pytest
from helpers.fake_datapath import Clock, FakeDatapath, configure
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from vswitch.bridge.bridge import FEATURE_COOKIE_BASE
from vswitch.cfm import ccm as C
from vswitch.lacp import pdu as lacp_pdu
from vswitch.switch import Switch

MAC_A, MAC_B, MAC_C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"


def frame(src, dst, sport=1000, dport=80, proto=TCP):
    return bytes(Ether(src=src, dst=dst) / IP(src="10.0.0.1", dst="10.0.0.2") / proto(sport=sport, dport=dport))


@pytest.fixture
def sw():
    dp, clock = FakeDatapath(), Clock()
    switch = Switch(dp, clock=clock)
    switch.clock_ = clock
    yield switch
    switch.close()


def ports(sw):
    return {name: i.dp_port for name, i in sw.ifaces.items()}


def deliver(sw, port, data):
    """One frame through the fake fast path and, on a miss, the slow path;
    returns the megaflow hit (None on a miss) and the ports it left on, except
    the bridge's own internal port."""
    sw.dp.sent.clear()
    hit = sw.dp.receive(port, data)
    sw.handle_upcalls()
    local = sw.ifaces["br0"].dp_port
    return hit, [p for p, _, _ in sw.dp.sent if p != local]


def test_second_packet_hits_the_megaflow(sw):
    configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"])
    p = ports(sw)
    deliver(sw, p["p2"], frame(MAC_B, "ff:ff:ff:ff:ff:ff"))  # learn B on p2
    hit, out = deliver(sw, p["p1"], frame(MAC_A, MAC_B))
    assert hit is None and out == [p["p2"]]
    hit, out = deliver(sw, p["p1"], frame(MAC_A, MAC_B))
    assert hit is not None and out == [p["p2"]]
    assert sw.dp.misses == 2 and sw.dp.hits == 1


def test_mac_move_deletes_exactly_the_tagged_flows(sw):
    configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"],
              ["add-port", "br0", "p3"])
    p = ports(sw)
    deliver(sw, p["p2"], frame(MAC_B, "ff:ff:ff:ff:ff:ff"))
    deliver(sw, p["p3"], frame(MAC_C, "ff:ff:ff:ff:ff:ff"))
    deliver(sw, p["p1"], frame(MAC_A, MAC_B))
    deliver(sw, p["p1"], frame(MAC_A, MAC_C))
    to_b = [f for f in sw.dp.flows.values() if f.key.get("dl_dst") == int(MAC_B.replace(":", ""), 16)]
    assert len(to_b) == 1
    n_before = len(sw.dp.flows)
    deliver(sw, p["p3"], frame(MAC_B, "ff:ff:ff:ff:ff:ff"))  # B moves to p3
    remaining = list(sw.dp.flows.values())
    assert all(f.key.get("dl_dst") != int(MAC_B.replace(":", ""), 16) or f.packets == 0
               for f in remaining if f.key.get("in_port") == p["p1"])
    assert not any(f is to_b[0] for f in remaining)
    # The flow towards C was left alone; the flood from p3 added one.
    assert len(remaining) == n_before
    hit, out = deliver(sw, p["p1"], frame(MAC_A, MAC_B))
    assert hit is None and out == [p["p3"]]


def bond_switch(sw, mode, *extra):
    configure(sw, ["add-br", "br0"], ["add-bond", "br0", "bond0", "m1", "m2", f"bond_mode={mode}", *extra],
              ["add-port", "br0", "p3"])
    sw.run_features()
    return ports(sw)


def test_balance_tcp_spreads_flows_and_masks_the_5_tuple(sw):
    p = bond_switch(sw, "balance-tcp")
    used = set()
    for sport in range(1000, 1032):
        _, out = deliver(sw, p["p3"], frame(MAC_C, MAC_A, sport=sport))
        assert len(out) == 1 and out[0] in (p["m1"], p["m2"])  # flooded once to the bond
        used.add(out[0])
    assert used == {p["m1"], p["m2"]}
    flow = next(iter(sw.dp.flows.values()))
    for field in ("nw_src", "nw_dst", "nw_proto", "tp_src", "tp_dst"):
        assert flow.mask.get(field), field


def test_member_down_deletes_exactly_the_flows_that_chose_it(sw):
    p = bond_switch(sw, "balance-tcp")
    chose = {}
    for sport in range(1000, 1040):
        _, out = deliver(sw, p["p3"], frame(MAC_C, MAC_A, sport=sport))
        chose[sport] = out[0]
    on_m2 = {s for s, port in chose.items() if port == p["m2"]}
    on_m1 = {s for s, port in chose.items() if port == p["m1"]}
    assert on_m1 and on_m2
    sw.link_changed("m2", False)
    left = {f.key["tp_src"] for f in sw.dp.flows.values() if f.key.get("tp_src")}
    assert left == on_m1  # the m1 flows stayed, every m2 flow went
    for sport in on_m2:
        _, out = deliver(sw, p["p3"], frame(MAC_C, MAC_A, sport=sport))
        assert out == [p["m1"]]
    status = sw.feature_show("bond", "bond0")[0]
    assert status["members"]["m2"]["enabled"] is False and status["members"]["m1"]["enabled"]


def test_active_backup_uses_one_member_and_drops_on_the_other(sw):
    p = bond_switch(sw, "active-backup", "other_config:bond-primary=m2")
    _, out = deliver(sw, p["p3"], frame(MAC_C, "ff:ff:ff:ff:ff:ff"))
    assert sorted(out) == [p["m2"]]
    _, out = deliver(sw, p["m1"], frame(MAC_A, "ff:ff:ff:ff:ff:ff"))
    assert out == []  # arrived on the backup member: dropped
    _, out = deliver(sw, p["m2"], frame(MAC_A, "ff:ff:ff:ff:ff:ff"))
    assert out == [p["p3"]]
    assert sw.fdb_show("br0")[0]["port"] == "bond0" if isinstance(sw.fdb_show("br0")[0], dict) else True
    sw.link_changed("m2", False)
    _, out = deliver(sw, p["p3"], frame(MAC_C, MAC_A))
    assert out == [p["m1"]]


def test_balance_slb_drops_broadcast_on_the_inactive_member(sw):
    p = bond_switch(sw, "balance-slb")
    active = sw.feature_show("bond", "bond0")[0]["active_member"]
    inactive = "m2" if active == "m1" else "m1"
    _, out = deliver(sw, p[inactive], frame(MAC_A, "ff:ff:ff:ff:ff:ff"))
    assert out == []
    _, out = deliver(sw, p[active], frame(MAC_A, "ff:ff:ff:ff:ff:ff"))
    assert out == [p["p3"]]


def test_updelay_and_downdelay(sw):
    p = bond_switch(sw, "balance-tcp", "bond_updelay=200", "bond_downdelay=100")
    sw.link_changed("m1", False)
    assert sw.feature_show("bond", "bond0")[0]["members"]["m1"]["enabled"]  # downdelay running
    assert sw.next_wakeup() == pytest.approx(sw.clock_.now + 0.1)
    sw.clock_.now += 0.1
    sw.run_features()
    assert not sw.feature_show("bond", "bond0")[0]["members"]["m1"]["enabled"]
    sw.link_changed("m1", True)
    sw.clock_.now += 0.1
    sw.run_features()
    assert not sw.feature_show("bond", "bond0")[0]["members"]["m1"]["enabled"]
    sw.clock_.now += 0.1
    sw.run_features()
    assert sw.feature_show("bond", "bond0")[0]["members"]["m1"]["enabled"]
    assert p  # ports were opened


def lacpdu(src, port_id):
    pdu = lacp_pdu.Lacpdu(actor=lacp_pdu.PortInfo(system=bytes.fromhex("020000000099"), system_priority=1,
                                                  key=7, port_priority=1, port=port_id,
                                                  state=lacp_pdu.ACTIVITY | lacp_pdu.TIMEOUT | lacp_pdu.AGGREGATION),
                          partner=lacp_pdu.PortInfo())
    return lacp_pdu.encode(pdu, bytes.fromhex(src.replace(":", "")))


def test_lacpdus_are_claimed_never_flooded_and_answered_on_time(sw):
    p = bond_switch(sw, "balance-tcp", "lacp=active", "other_config:lacp-time=fast")
    assert sw.next_wakeup() == pytest.approx(sw.clock_.now + 1.0)  # fast periodic time
    sw.clock_.now += 1.0
    sw.run_features()
    sent = {port for port, data, _ in sw.dp.sent if data[12:14] == b"\x88\x09"}
    assert sent == {p["m1"], p["m2"]}
    assert sw.feature_show("bond", "bond0")[0]["lacp_status"] == "configured"  # no partner heard
    _, out = deliver(sw, p["m1"], lacpdu(MAC_A, 5))
    assert p["p3"] not in out
    cookie_flows = [f for f in sw.dp.flows.values() if f.actions[0][0] == "userspace"]
    assert len(cookie_flows) == 1 and cookie_flows[0].actions[0][1] >= FEATURE_COOKIE_BASE
    hit, out = deliver(sw, p["m1"], lacpdu(MAC_A, 5))  # second one: megaflow -> userspace
    assert hit is cookie_flows[0] and p["p3"] not in out
    show = sw.feature_show("lacp", "bond0")[0]
    assert show["members"]["m1"]["counters"]["rx_pdus"] == 2
    assert show["members"]["m1"]["partner"]["port_id"] == 5
    # A partner is heard (OVS calls that negotiated) but is not in sync: no
    # member collects and distributes, so the bond carries nothing.
    assert sw.feature_show("bond", "bond0")[0]["lacp_status"] == "negotiated"
    _, out = deliver(sw, p["p3"], frame(MAC_C, MAC_A))
    assert out == []
    # Periodic transmission: fast = 1 s.
    sw.dp.sent.clear()
    sw.clock_.now += 1.0
    sw.run_features()
    assert {port for port, data, _ in sw.dp.sent} == {p["m1"], p["m2"]}


def test_marker_pdus_are_answered(sw):
    p = bond_switch(sw, "balance-tcp", "lacp=active")
    marker = (bytes.fromhex("0180c2000002") + bytes.fromhex(MAC_A.replace(":", "")) + b"\x88\x09"
              + bytes([2, 1, 1, 16]) + b"\x00\x07" + bytes.fromhex("020000000099") + b"\x00\x00\x00\x2a"
              + b"\x00\x00" + b"\x00\x00" + bytes(90))
    _, out = deliver(sw, p["m2"], marker)
    replies = [data for port, data, _ in sw.dp.sent if port == p["m2"] and data[14] == 2]
    assert len(replies) == 1
    assert replies[0][16] == 2 and replies[0][18:30] == marker[18:30]


def test_cfm_claims_ccms_and_transmits_on_time(sw):
    config = configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"])
    config = {t: {u: dict(r) for u, r in rows.items()} for t, rows in config.items()}
    for row in config["Interface"].values():
        if row["name"] == "p1":
            row["cfm_mpid"] = 1
            row["other_config"] = {"cfm_interval": "100"}
    sw.apply_config(config)
    p = ports(sw)
    sw.dp.sent.clear()
    sw.run_features()
    assert [port for port, data, _ in sw.dp.sent] == [p["p1"]]
    assert sw.next_wakeup() == pytest.approx(sw.clock_.now + 0.1)
    ccm = C.encode(C.Ccm(mpid=2, seq=1, interval=C.interval_code(100), maid=sw.bridges["br0"].feature("cfm")
                         .engine.meps["p1"].maid, level=0, rdi=False), bytes.fromhex("020000000002"))
    _, out = deliver(sw, p["p1"], ccm)
    assert p["p2"] not in out
    assert sw.feature_column("Interface", "cfm_remote_mpids", "p1") == [2]
    assert sw.feature_column("Interface", "cfm_fault", "p1") is False
    for _ in range(4):  # 400 ms of silence > 3.5 intervals
        sw.clock_.now += 0.1
        sw.run_features()
    assert sw.feature_column("Interface", "cfm_fault_status", "p1") == ["recv"]
    assert sw.feature_column("Interface", "cfm_flap_count", "p1") == 1


def test_failover_sends_learning_packets_for_macs_learned_elsewhere(sw):
    p = bond_switch(sw, "active-backup", "other_config:bond-primary=m1")
    deliver(sw, p["p3"], frame(MAC_C, "ff:ff:ff:ff:ff:ff"))  # C learned on p3
    deliver(sw, p["m1"], frame(MAC_A, "ff:ff:ff:ff:ff:ff"))  # A learned on the bond
    sw.dp.sent.clear()
    sw.link_changed("m1", False)
    rarps = [(port, data) for port, data, _ in sw.dp.sent if data[12:14] == b"\x80\x35"]
    assert rarps == [(p["m2"], rarps[0][1])]  # one, for C only, on the new active member
    data = rarps[0][1]
    assert data[:6] == b"\xff" * 6 and data[6:12] == bytes.fromhex(MAC_C.replace(":", ""))
    assert data[20:22] == b"\x00\x03"  # RARP request


def test_balance_slb_drops_our_own_frames_reflected_by_the_upstream_switch(sw):
    p = bond_switch(sw, "balance-slb")
    active = sw.feature_show("bond", "bond0")[0]["active_member"]
    deliver(sw, p["p3"], frame(MAC_C, MAC_A))  # C learned on p3
    _, out = deliver(sw, p[active], frame(MAC_C, MAC_B))  # C's frame comes back on the bond
    assert out == []
    assert {e["port"] for e in sw.fdb_show("br0") if e["mac"] == MAC_C} == {"p3"}
    _, out = deliver(sw, p[active], frame(MAC_A, MAC_C))  # a host behind the bond: fine
    assert out == [p["p3"]]


# `ovs-appctl cfm/show` of Open vSwitch 3.1 (captured here: MEP 1, one
# remote MEP, 100 ms, after a cut of the far direction).
OVS_CFM_SHOW = ("---- c-68e565a ----\nMPID 1:\n  fault: rdi\n  average health: 100\n  opstate: up\n"
                "  remote_opstate: up\n  interval: 100ms\n  next CCM tx: 80ms\n  next fault check: 270ms\n"
                "Remote MPID 2\n  recv since check: true\n  opstate: up\n")


def _shape(text):
    """Lines with names and numbers blanked: what a parser of OVS's text relies on."""
    import re
    return [re.sub(r"\d+", "N", re.sub(r"^---- .* ----$", "---- X ----", line)) for line in text.splitlines()]


def test_cfm_show_text_and_health_follow_ovs(sw):
    from vswitch.cfm import render_show
    config = configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1"])
    config = {t: {u: dict(r) for u, r in rows.items()} for t, rows in config.items()}
    for row in config["Interface"].values():
        if row["name"] == "p1":
            row["cfm_mpid"], row["other_config"] = 1, {"cfm_interval": "100"}
    sw.apply_config(config)
    p = ports(sw)
    maid = sw.bridges["br0"].feature("cfm").engine.meps["p1"].maid
    for seq in range(1, 60):  # 5.9 s of CCMs from MPID 2 with RDI set
        ccm = C.encode(C.Ccm(mpid=2, seq=seq, interval=C.interval_code(100), maid=maid, level=0, rdi=True),
                       bytes.fromhex("020000000002"))
        deliver(sw, p["p1"], ccm)
        sw.clock_.now += 0.1
        sw.run_features()
    show = sw.feature_show("cfm", "p1")
    text = render_show(show[0])
    assert _shape(text) == _shape(OVS_CFM_SHOW)
    assert show[0]["interfaces"]["p1"]["health"] == 100
    assert sw.feature_column("Interface", "cfm_health", "p1") == 100
    assert sw.feature_column("Interface", "cfm_remote_opstate", "p1") is None  # not extended, as OVS


def test_rebalance_moves_load_to_the_idle_member_and_only_those_flows(sw):
    p = bond_switch(sw, "balance-tcp", "other_config:bond-rebalance-interval=1000")
    bond = sw.bridges["br0"].feature("bond").bonds["bond0"]
    sports, chose = range(1000, 1016), {}
    for sport in sports:
        _, out = deliver(sw, p["p3"], frame(MAC_C, MAC_A, sport=sport))
        chose[sport] = out[0]
    # Every flow onto m1: hand m1 all buckets, as if m2 had just come back idle.
    busy = [s for s, port in chose.items() if port == p["m1"]]
    assert busy
    # The first packets (forwarded by the slow path) counted to their
    # buckets, m2's too: the measured interval starts here.
    assert sum(bond.bucket_load) == sum(len(frame(MAC_C, MAC_A, sport=s)) for s in sports)
    bond.bucket_load = [0] * len(bond.bucket_load)
    for sport in busy:  # heavy traffic on m1's flows only, counted by the revalidator
        for _ in range(50):
            sw.dp.receive(p["p3"], frame(MAC_C, MAC_A, sport=sport))
    sw.revalidate()
    loads = bond._member_loads()
    assert loads["m1"] > 0 and loads["m2"] == 0
    before = {f.key["tp_src"]: f for f in sw.dp.flows.values() if f.key.get("tp_src")}
    sw.clock_.now += 1.0
    sw.run_features()
    after = {f.key["tp_src"]: f for f in sw.dp.flows.values() if f.key.get("tp_src")}
    moved = set(before) - set(after)
    assert moved and moved <= set(busy)  # only flows of moved buckets were deleted
    for sport in moved:
        _, out = deliver(sw, p["p3"], frame(MAC_C, MAC_A, sport=sport))
        assert out == [p["m2"]]
    assert all(after[s] is before[s] for s in after)


def test_cfm_fault_disables_a_bond_member(sw):
    config = configure(sw, ["add-br", "br0"],
                       ["add-bond", "br0", "bond0", "m1", "m2", "bond_mode=active-backup",
                        "other_config:bond-primary=m1"], ["add-port", "br0", "p3"])
    config = {t: {u: dict(r) for u, r in rows.items()} for t, rows in config.items()}
    for row in config["Interface"].values():
        if row["name"] == "m1":
            row["cfm_mpid"], row["other_config"] = 1, {"cfm_interval": "100"}
    sw.apply_config(config)
    sw.run_features()
    assert sw.feature_show("bond", "bond0")[0]["active_member"] == "m1"  # no fault yet
    for _ in range(4):  # nobody answers: recv fault after 3.5 intervals
        sw.clock_.now += 0.1
        sw.run_features()
    assert sw.feature_column("Interface", "cfm_fault", "m1") is True
    status = sw.feature_show("bond", "bond0")[0]
    assert status["members"]["m1"]["enabled"] is False and status["active_member"] == "m2"


def test_lowering_mac_table_size_shrinks_the_table_at_once(sw):
    configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"])
    p = ports(sw)
    for i in range(20):
        deliver(sw, p["p1"], frame(f"02:00:00:00:01:{i:02x}", "ff:ff:ff:ff:ff:ff"))
    assert len(sw.fdb_show("br0")) == 20
    configure(sw, ["set", "bridge", "br0", "other_config:mac-table-size=5"])
    macs = [e["mac"] for e in sw.fdb_show("br0")]
    assert sorted(macs) == [f"02:00:00:00:01:{i:02x}" for i in range(15, 20)]  # the newest 5


def test_flow_limit_keeps_established_flows_and_forwards_new_ones_uncached():
    dp, clock = FakeDatapath(), Clock()
    sw = Switch(dp, clock=clock, flow_limit=10)
    try:
        configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"])
        p = ports(sw)
        deliver(sw, p["p2"], frame(MAC_B, "ff:ff:ff:ff:ff:ff"))  # B learned on p2
        for i in range(30):  # a flood of new source MACs towards B
            _, out = deliver(sw, p["p1"], frame(f"02:00:00:00:02:{i:02x}", MAC_B))
            assert out == [p["p2"]]  # forwarded, cached or not
        assert len(dp.flows) == 10 and sw.flows_not_cached == 21
        first = frame("02:00:00:00:02:00", MAC_B)
        hit, _ = deliver(sw, p["p1"], first)
        assert hit is not None  # an established flow stays in the fast path
    finally:
        sw.close()
