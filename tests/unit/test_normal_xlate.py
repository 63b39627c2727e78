"""NORMAL xlate decisions with an injected clock: VLAN input/output rules,
learning, flooding, the megaflow mask and staleness tags."""
import pytest

from vswitch.datapath.flowkey import VLAN_CFI, full_mask, mac_int
from vswitch.ofproto.mac_learning import MacTable
from vswitch.ofproto.normal import BridgePort, xlate

A, B, C = mac_int("02:00:00:00:00:0a"), mac_int("02:00:00:00:00:0b"), mac_int("02:00:00:00:00:0c")
BCAST = mac_int("ff:ff:ff:ff:ff:ff")


def ports(*specs):
    return {p.ofport: p for p in specs}


def key(in_port, src, dst, vid=None, pcp=0):
    tci = 0 if vid is None else VLAN_CFI | (pcp << 13) | vid
    return {"in_port": in_port, "dl_src": src, "dl_dst": dst, "vlan_tci": tci, "dl_type": 0x0800,
            "nw_src": 1, "nw_dst": 2, "tp_src": 3, "tp_dst": 4}


ACCESS = ports(BridgePort("a1", 1, tag=10), BridgePort("a2", 2, tag=10),
               BridgePort("b1", 3, tag=20), BridgePort("t", 4, trunks=frozenset({10, 20})))


def test_unknown_unicast_floods_within_the_vlan_with_right_tagging():
    macs = MacTable()
    r = xlate(ACCESS, macs, key(1, A, B), now=0)
    # a2 gets it untagged, the trunk tagged 10, b1 (VLAN 20) nothing.
    assert r.actions == [("output", 2), ("push_vlan", 10), ("output", 4)]
    assert r.learned == (10, A)
    assert ("mac", 10, B) in r.tags


def test_learned_destination_is_forwarded_only_there():
    macs = MacTable()
    xlate(ACCESS, macs, key(2, B, A), now=0)  # learn B on a2
    r = xlate(ACCESS, macs, key(1, A, B), now=1)
    assert r.actions == [("output", 2)]
    assert any("learned" in line for line in r.trace)


def test_mask_has_exactly_the_fields_normal_reads():
    r = xlate(ACCESS, MacTable(), key(1, A, B), now=0)
    assert r.mask == {f: full_mask(f) for f in ("in_port", "vlan_tci", "dl_src", "dl_dst")}


def test_tagged_frame_on_access_port_is_dropped():
    r = xlate(ACCESS, MacTable(), key(1, A, B, vid=20), now=0)
    assert r.actions == [] and "dropped" in r.trace[-1]


def test_priority_tagged_frame_on_access_port_is_accepted():
    r = xlate(ACCESS, MacTable(), key(1, A, BCAST, vid=0), now=0)
    assert ("output", 2) in r.actions


def test_trunk_rejects_vlans_it_does_not_carry():
    r = xlate(ACCESS, MacTable(), key(4, A, B, vid=30), now=0)
    assert r.actions == [] and "not trunked" in r.trace[-1]


def test_trunk_to_access_pops_tag_and_keeps_vlan_separation():
    macs = MacTable()
    r = xlate(ACCESS, macs, key(4, C, BCAST, vid=20, pcp=3), now=0)
    assert r.actions == [("pop_vlan", 0), ("output", 3)]
    assert macs.lookup(20, C, 0) == "t" and macs.lookup(10, C, 0) is None


def test_native_untagged_and_native_tagged_output():
    p = ports(BridgePort("nu", 1, tag=10, trunks=frozenset({10, 20}), vlan_mode="native-untagged"),
              BridgePort("nt", 2, tag=10, trunks=frozenset({10, 20}), vlan_mode="native-tagged"),
              BridgePort("tr", 3))
    # Untagged on nu joins VLAN 10; nt sends VLAN 10 tagged; a trunk with no
    # trunks list carries everything tagged.
    r = xlate(p, MacTable(), key(1, A, BCAST), now=0)
    assert r.actions == [("push_vlan", 10), ("output", 2), ("output", 3)]
    # VLAN 20 arriving tagged on the trunk: nu keeps it tagged (not native).
    r = xlate(p, MacTable(), key(3, B, BCAST, vid=20), now=0)
    assert r.actions == [("output", 1), ("output", 2)]
    # VLAN 10 tagged from the trunk: leaves nu untagged, nt tagged.
    r = xlate(p, MacTable(), key(3, C, BCAST, vid=10), now=0)
    assert r.actions == [("output", 2), ("pop_vlan", 0), ("output", 1)]


def test_destination_on_input_port_is_dropped():
    macs = MacTable()
    xlate(ACCESS, macs, key(1, B, A), now=0)
    r = xlate(ACCESS, macs, key(1, A, B), now=0)
    assert r.actions == []


def test_reserved_multicast_is_not_forwarded():
    r = xlate(ACCESS, MacTable(), key(1, A, mac_int("01:80:c2:00:00:02")), now=0)
    assert r.actions == []


def test_mac_move_and_aging():
    macs = MacTable(aging_time=300)
    assert xlate(ACCESS, macs, key(1, A, BCAST), now=0).learned == (10, A)
    assert xlate(ACCESS, macs, key(1, A, BCAST), now=5).learned is None  # refresh only
    assert xlate(ACCESS, macs, key(2, A, BCAST), now=6).learned == (10, A)  # moved
    assert macs.lookup(10, A, 6) == "a2"
    assert macs.expire(now=400) == [(10, A)]
    assert macs.lookup(10, A, 400) is None


def test_table_size_limit_evicts_oldest():
    macs = MacTable(max_entries=2)
    macs.learn(10, A, "a1", 1)
    macs.learn(10, B, "a1", 2)
    macs.learn(10, C, "a1", 3)
    assert macs.lookup(10, A, 3) is None and macs.lookup(10, C, 3) == "a1"


@pytest.mark.parametrize("port,expect", [
    (BridgePort("x", 1), "trunk"),
    (BridgePort("x", 1, tag=5), "access"),
    (BridgePort("x", 1, tag=5, trunks=frozenset({6})), "native-untagged"),
    (BridgePort("x", 1, tag=5, vlan_mode="native-tagged"), "native-tagged"),
])
def test_default_vlan_mode(port, expect):
    assert port.mode == expect


def test_full_table_evicts_the_least_recently_seen_and_ages_in_order():
    macs = MacTable(aging_time=300, max_entries=2)
    macs.learn(10, A, "a1", 1)
    macs.learn(10, B, "a1", 2)
    assert macs.learn(10, A, "a1", 3) is False  # refresh: A is now the newest
    macs.learn(10, C, "a2", 4)                   # full: B, the least recently seen, goes
    assert (macs.lookup(10, A, 4), macs.lookup(10, B, 4), macs.lookup(10, C, 4)) == ("a1", None, "a2")
    assert macs.expire(now=303.5) == [(10, A)]   # seen at 3: aged; C (seen at 4) not yet
    assert macs.expire(now=304.5) == [(10, C)]
    assert macs.dump(305) == []
