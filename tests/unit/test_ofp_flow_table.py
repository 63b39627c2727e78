"""The flow/group/meter table model with a fake clock (time is a parameter)."""
import pytest

from vswitch.ofproto import ofp
from vswitch.ofproto.flow_table import FlowTables, GroupTable, MeterTable
from vswitch.ofproto.ofp import (ApplyActions, Bucket, FlowMod, GotoTable, Group, GroupMod, Match,
                                 Meter, MeterBand, MeterMod, Output)
from vswitch.ofproto.ofp.constants import (
    OFPFC_ADD, OFPFC_DELETE, OFPFC_DELETE_STRICT, OFPFC_MODIFY, OFPFC_MODIFY_STRICT,
    OFPFF_CHECK_OVERLAP, OFPFF_RESET_COUNTS, OFPFF_SEND_FLOW_REM, OFPG_ALL, OFPGC_ADD, OFPGC_DELETE,
    OFPGC_MODIFY, OFPGT_ALL, OFPGT_FF, OFPGT_INDIRECT, OFPGT_SELECT, OFPMC_ADD, OFPMC_DELETE,
    OFPMF_BURST, OFPMF_KBPS, OFPMF_PKTPS, OFPRR_DELETE, OFPRR_GROUP_DELETE, OFPRR_HARD_TIMEOUT,
    OFPRR_IDLE_TIMEOUT, OFPTT_ALL)


def m(**fields):
    return Match({k: v if isinstance(v, tuple) else (v, None) for k, v in fields.items()})


def out(port):
    return [ApplyActions([Output(port)])]


def add(tables, match, priority=100, port=1, now=0.0, **kw):
    kw.setdefault("instructions", out(port))
    return tables.flow_mod(FlowMod(command=OFPFC_ADD, match=match, priority=priority, **kw), now)


IP = dict(eth_type=0x800)
PKT = {"in_port": 1, "eth_type": 0x800, "ipv4_src": 0x0A000005, "ip_proto": 6, "tcp_dst": 80,
       "eth_dst": 0x020000000002}


def err(excinfo):
    return excinfo.value.type, excinfo.value.code


def test_lookup_priority_and_megaflow_mask():
    t = FlowTables()
    add(t, m(in_port=1), priority=10, port=2)
    add(t, m(**IP, ipv4_src=(0x0A000000, 0xFFFFFF00)), priority=100, port=3)
    add(t, m(**IP, ip_proto=6, tcp_dst=22), priority=200, port=4)
    add(t, m(eth_dst=0x020000000009), priority=5, port=9)
    rule, mask = t.lookup(0, PKT)
    assert rule.priority == 100 and rule.instructions == out(3)
    # examined: the tcp_dst=22 rule (higher) and the winner; not the lower ones
    assert mask == {"eth_type": 0xFFFF, "ip_proto": 0xFF, "tcp_dst": 0xFFFF, "ipv4_src": 0xFFFFFF00}
    rule, mask = t.lookup(0, dict(PKT, tcp_dst=22))
    assert rule.priority == 200
    rule, mask = t.lookup(0, {"in_port": 7, "eth_type": 0x806, "eth_dst": 1})
    # staged lookup: the IP rules miss on eth_type, so ip_proto/tcp_dst/ipv4_src stay out of the mask
    assert rule is None and mask == {"eth_type": 0xFFFF, "in_port": 0xFFFFFFFF, "eth_dst": 2**48 - 1}
    assert (t.counters[0].lookup_count, t.counters[0].matched_count) == (3, 2)


def test_add_identical_replaces_keeping_counters_unless_reset():
    t = FlowTables()
    add(t, m(in_port=1), port=2)
    t.lookup(0, PKT)[0].account(3, 180, now=1.0)
    add(t, m(in_port=1), port=5, now=2.0)
    [rule] = t.rules()
    assert rule.instructions == out(5) and (rule.packet_count, rule.byte_count) == (3, 180)
    add(t, m(in_port=1), port=6, flags=OFPFF_RESET_COUNTS)
    assert t.rules()[0].packet_count == 0


def test_check_overlap():
    t = FlowTables()
    add(t, m(**IP, ipv4_src=(0x0A000000, 0xFF000000)), priority=50)
    with pytest.raises(ofp.OFPError) as e:
        add(t, m(**IP, ip_proto=6), priority=50, flags=OFPFF_CHECK_OVERLAP)
    assert err(e) == ("FLOW_MOD_FAILED", "OVERLAP")
    add(t, m(**IP, ipv4_src=(0x0B000000, 0xFF000000)), priority=50, flags=OFPFF_CHECK_OVERLAP)  # disjoint
    add(t, m(**IP, ip_proto=6), priority=51, flags=OFPFF_CHECK_OVERLAP)                        # other priority
    assert len(t.rules()) == 3


def test_modify_loose_strict_and_cookie_mask():
    t = FlowTables()
    add(t, m(in_port=1), priority=10, cookie=0x11)
    add(t, m(in_port=1, eth_type=0x800), priority=20, cookie=0x12)
    add(t, m(in_port=2), priority=10, cookie=0x21)
    t.flow_mod(FlowMod(command=OFPFC_MODIFY, match=m(in_port=1), instructions=out(7),
                       cookie=0x10, cookie_mask=0xF0), 0)
    assert [r.instructions == out(7) for r in t.rules()] == [True, True, False]
    assert [r.cookie for r in t.rules()] == [0x12, 0x11, 0x21]   # masked modify keeps cookies
    t.flow_mod(FlowMod(command=OFPFC_MODIFY_STRICT, match=m(in_port=1), priority=10,
                       instructions=out(8)), 0)
    assert [r.instructions for r in t.rules()][1] == out(8)
    assert [r.instructions for r in t.rules()][0] == out(7)


def test_modify_of10_adds_when_nothing_matches_of13_does_not():
    t = FlowTables()
    t.flow_mod(FlowMod(command=OFPFC_MODIFY, match=m(in_port=3), instructions=out(1)), 0)
    assert t.rules() == []
    t.flow_mod(FlowMod(command=OFPFC_MODIFY, match=m(in_port=3), instructions=out(1), version=1), 0)
    assert len(t.rules()) == 1


def test_delete_filters_and_strictness():
    t = FlowTables()
    add(t, m(in_port=1), priority=10, port=2, flags=OFPFF_SEND_FLOW_REM)
    add(t, m(in_port=1, eth_type=0x800), priority=20, port=3)
    add(t, m(in_port=2), priority=10, port=2, table_id=1)
    removed = t.flow_mod(FlowMod(command=OFPFC_DELETE, table_id=OFPTT_ALL, match=m(), out_port=2), 0)
    assert sorted((r.table_id, r.priority) for r, _ in removed) == [(0, 10), (1, 10)]
    assert all(reason == OFPRR_DELETE for _, reason in removed)
    assert [r.send_flow_removed for r, _ in removed].count(True) == 1
    assert [r.priority for r in t.rules()] == [20]
    # strict delete needs the exact match and priority
    assert t.flow_mod(FlowMod(command=OFPFC_DELETE_STRICT, match=m(in_port=1), priority=20), 0) == []
    assert len(t.flow_mod(FlowMod(command=OFPFC_DELETE_STRICT, match=m(in_port=1, eth_type=0x800),
                                  priority=20), 0)) == 1


def test_timeouts_with_fake_clock():
    t = FlowTables()
    add(t, m(in_port=1), priority=1, idle_timeout=10, now=100.0)
    add(t, m(in_port=2), priority=2, hard_timeout=30, now=100.0)
    assert t.next_expiry() == 110.0
    t.lookup(0, {"in_port": 1})[0].account(1, 60, now=105.0)   # traffic keeps it alive
    assert t.expire(112.0) == []
    [(rule, reason)] = t.expire(115.0)
    assert (rule.match, reason) == (m(in_port=1), OFPRR_IDLE_TIMEOUT)
    assert rule.duration(115.5) == (15, 500_000_000)
    [(rule, reason)] = t.expire(130.0)
    assert (rule.match, reason) == (m(in_port=2), OFPRR_HARD_TIMEOUT)
    assert t.rules() == [] and t.next_expiry() is None


def test_goto_must_go_forward_and_table_bounds():
    t = FlowTables(n_tables=4)
    with pytest.raises(ofp.OFPError) as e:
        add(t, m(), table_id=2, instructions=[GotoTable(1)])
    assert err(e) == ("BAD_INSTRUCTION", "BAD_TABLE_ID")
    with pytest.raises(ofp.OFPError) as e:
        add(t, m(), table_id=4)
    assert err(e) == ("FLOW_MOD_FAILED", "BAD_TABLE_ID")
    add(t, m(), table_id=1, instructions=[GotoTable(3)])


def test_select_for_stats():
    t = FlowTables()
    add(t, m(in_port=1), cookie=1, port=2)
    add(t, m(in_port=1, eth_type=0x800), cookie=2, priority=20, port=3, table_id=2)
    assert len(t.select()) == 2
    assert [r.cookie for r in t.select(table_id=2)] == [2]
    assert [r.cookie for r in t.select(out_port=2)] == [1]
    assert [r.cookie for r in t.select(match=m(eth_type=0x800))] == [2]  # loose: in_port-only rule is wider
    assert [r.cookie for r in t.select(cookie=2, cookie_mask=0xFF)] == [2]


def test_groups_types_liveness_and_delete_removes_flows():
    groups = GroupTable()
    t = FlowTables(groups=groups)
    b1, b2 = Bucket(actions=[Output(1)], watch_port=1), Bucket(actions=[Output(2)], watch_port=2)
    groups.group_mod(GroupMod(OFPGC_ADD, OFPGT_FF, 1, [b1, b2]), 0)
    assert groups.buckets_to_run(1, 0, lambda p: True) == [b1]
    assert groups.buckets_to_run(1, 0, lambda p: p != 1) == [b2]
    assert groups.buckets_to_run(1, 0, lambda p: False) == []
    s1, s2 = Bucket(weight=1, actions=[Output(1)]), Bucket(weight=3, actions=[Output(2)])
    groups.group_mod(GroupMod(OFPGC_ADD, OFPGT_SELECT, 2, [s1, s2]), 0)
    picks = [groups.buckets_to_run(2, h, lambda p: True)[0] for h in range(400)]
    assert picks.count(s1) == 100 and picks.count(s2) == 300
    groups.group_mod(GroupMod(OFPGC_ADD, OFPGT_ALL, 3, [b1, b2]), 0)
    assert groups.buckets_to_run(3, 0, lambda p: False) == [b1, b2]
    with pytest.raises(ofp.OFPError) as e:
        groups.group_mod(GroupMod(OFPGC_ADD, OFPGT_ALL, 3, [b1]), 0)
    assert err(e) == ("GROUP_MOD_FAILED", "GROUP_EXISTS")
    with pytest.raises(ofp.OFPError) as e:
        groups.group_mod(GroupMod(OFPGC_MODIFY, OFPGT_ALL, 9, [b1]), 0)
    assert err(e) == ("GROUP_MOD_FAILED", "UNKNOWN_GROUP")
    with pytest.raises(ofp.OFPError) as e:
        groups.group_mod(GroupMod(OFPGC_ADD, OFPGT_INDIRECT, 4, [b1, b2]), 0)
    assert err(e) == ("GROUP_MOD_FAILED", "INVALID_GROUP")
    with pytest.raises(ofp.OFPError) as e:
        groups.group_mod(GroupMod(OFPGC_ADD, OFPGT_FF, 5, [Bucket(actions=[Output(1)])]), 0)
    assert err(e) == ("GROUP_MOD_FAILED", "BAD_WATCH")
    with pytest.raises(ofp.OFPError) as e:
        add(t, m(), instructions=[ApplyActions([Group(77)])])
    assert err(e) == ("BAD_ACTION", "BAD_OUT_GROUP")
    add(t, m(in_port=1), instructions=[ApplyActions([Group(2)])])
    add(t, m(in_port=2), instructions=[ApplyActions([Group(3)])])
    assert [r.uses_group(2) for r in t.select(out_group=2)] == [True]
    removed = groups.group_mod(GroupMod(OFPGC_DELETE, 0, 2), 0, flows=t)
    assert [(r.match, why) for r, why in removed] == [(m(in_port=1), OFPRR_GROUP_DELETE)]
    groups.group_mod(GroupMod(OFPGC_DELETE, 0, OFPG_ALL), 0, flows=t)
    assert groups.groups == {} and t.rules() == []


def test_meter_drop_band_kbps_and_pktps():
    meters = MeterTable()
    t = FlowTables(meters=meters)
    # 8 kbps with a 16 kbit burst: 2000 bytes of burst, then 1000 bytes/s
    meters.meter_mod(MeterMod(OFPMC_ADD, OFPMF_KBPS | OFPMF_BURST, 1, [MeterBand(1, 8, 16)]), 0.0)
    passed = [meters.admit(1, 500, 0.0) for _ in range(6)]
    assert passed == [True, True, True, True, False, False]
    assert meters.admit(1, 500, 0.5)            # half a second refills 500 bytes
    assert not meters.admit(1, 500, 0.5)
    entry = meters.meters[1]
    assert entry.band_counts[0] == [3, 1500] and entry.packet_in_count == 8
    meters.meter_mod(MeterMod(OFPMC_ADD, OFPMF_PKTPS, 2, [MeterBand(1, 10, 0)]), 0.0)
    assert sum(meters.admit(2, 1500, 0.0) for _ in range(15)) == 10
    with pytest.raises(ofp.OFPError) as e:
        meters.meter_mod(MeterMod(OFPMC_ADD, OFPMF_KBPS | OFPMF_PKTPS, 3, [MeterBand(1, 1, 0)]), 0)
    assert err(e) == ("METER_MOD_FAILED", "BAD_FLAGS")
    with pytest.raises(ofp.OFPError) as e:
        meters.meter_mod(MeterMod(OFPMC_ADD, OFPMF_KBPS, 1, [MeterBand(1, 1, 0)]), 0)
    assert err(e) == ("METER_MOD_FAILED", "METER_EXISTS")
    with pytest.raises(ofp.OFPError) as e:
        add(t, m(), instructions=[Meter(9)])
    assert err(e) == ("METER_MOD_FAILED", "UNKNOWN_METER")
    add(t, m(in_port=1), instructions=[Meter(1)] + out(2))
    removed = meters.meter_mod(MeterMod(OFPMC_DELETE, 0, 1), 0, flows=t)
    assert len(removed) == 1 and t.rules() == []
