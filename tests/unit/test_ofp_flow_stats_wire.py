"""Flow dumps written by flow_stats_wire: byte-identical to the generic
FlowStatsCodec entry by entry, replies cut at the size limit with REPLY_MORE
on all but the last, and OFSwitch's flow-stats request answered through it
(filters, OF1.0 view, errors) with the entries the tables select."""
import pytest

from vswitch.ofproto import ofctl_runtime
from vswitch.ofproto.ofp import OFPError, decode
from vswitch.ofproto.ofp import messages as m
from vswitch.ofproto.ofp import multipart as mp
from vswitch.ofproto.ofp.flow_stats_wire import FlowStatsWriter, ReplyStream, encode_oxm_match
from vswitch.ofproto.ofp.multipart import FlowStatsCodec, FlowStatsEntry
from vswitch.ofproto.ofp.oxm import encode_match
from vswitch.ofproto.ofswitch import OFSwitch

OF13, OF10 = 4, 1
RULES = [
    "priority=100,tcp,nw_dst=10.0.0.1,tp_dst=80,actions=output:2",
    "priority=90,tcp,nw_dst=10.0.0.2,tp_dst=81,actions=output:2",          # shares the program
    "cookie=0x1234,priority=7,ip,nw_src=10.1.0.0/16,nw_dst=192.168.0.0/24,actions=drop",
    "table=1,priority=5,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,dl_vlan=10,"
    "actions=strip_vlan,output:1",
    "priority=3,udp,tp_src=53,actions=mod_nw_dst:10.9.9.9,output:3",
    "priority=2,arp,arp_tpa=10.0.0.9,arp_op=1,actions=NORMAL",
    "idle_timeout=30,hard_timeout=60,priority=1,in_port=1,actions=goto_table:1",
    "priority=4,ipv6,ipv6_dst=2001:db8::1,actions=output:4",
    "priority=6,metadata=0x5/0xff,eth_dst=02:00:00:00:00:00/ff:ff:00:00:00:00,actions=CONTROLLER:64",
]
OF10_RULES = [r for r in RULES if "ipv6" not in r and "metadata" not in r and "goto" not in r]


class FakeHost:
    def flush_bridge(self, name):
        pass


def switch(lines, now=1.0):
    ofs = OFSwitch("br0", FakeHost())
    ofs.sync_ports({1: ("p1", 1), 2: ("p2", 2), 3: ("p3", 3), 4: ("p4", 4)})
    ofctl_runtime.add_flows(ofs, lines, now)
    return ofs


def generic(rule, version, now):
    sec, nsec = rule.duration(now)
    entry = FlowStatsEntry(rule.table_id, sec, nsec, rule.priority, rule.idle_timeout,
                           rule.hard_timeout, rule.flags, rule.cookie, rule.packet_count,
                           rule.byte_count, rule.match, rule.instructions)
    return FlowStatsCodec(version).encode(entry)


@pytest.mark.parametrize("version,lines", [(OF13, RULES), (OF10, OF10_RULES)])
def test_entries_are_byte_identical_to_the_generic_codec(version, lines):
    ofs = switch(lines)
    rules = ofs.tables.rules()
    assert len(rules) == len(lines)
    rules[0].account(7, 700, 2.0)
    writer = FlowStatsWriter(version, 3.25)
    for rule in rules:
        assert writer.entry(rule) == generic(rule, version, 3.25), rule.match
    # equal lists are shared: one encoding serves both tcp rules
    assert len(writer._programs) < len(rules)


def test_oxm_match_matches_the_generic_encoder():
    for rule in switch(RULES).tables.rules():
        assert encode_oxm_match(rule.match) == encode_match(rule.match)


def decode_all(messages):
    return [decode(data) for data in messages]


def test_replies_are_cut_at_the_limit_with_reply_more_on_all_but_the_last():
    lines = [f"priority={i % 50},tcp,nw_dst=10.0.{i // 250}.{i % 250},tp_dst={i + 1},actions=output:2"
             for i in range(2000)]
    ofs = switch(lines)
    rules = ofs.tables.select()
    limit = 4096
    replies = decode_all(FlowStatsWriter(OF13, 1.0).replies(rules, xid=77, max_reply=limit))
    assert len(replies) > 2000 * 80 // limit
    assert [r.flags for r in replies] == [mp.OFPMPF_REPLY_MORE] * (len(replies) - 1) + [0]
    assert all(r.xid == 77 and r.version == OF13 and r.type == mp.OFPMP_FLOW for r in replies)
    got = [(e.priority, e.match) for r in replies for e in r.body]
    assert got == [(r.priority, r.match) for r in rules]


def test_an_empty_dump_is_one_empty_reply():
    (reply,) = decode_all(FlowStatsWriter(OF10, 1.0).replies([], xid=5))
    assert (reply.flags, reply.body, reply.xid) == (0, [], 5)


def request(version, **fields):
    return m.MultipartRequest(mp.OFPMP_FLOW, 0, mp.FlowStatsRequest(**fields), version=version, xid=9)


def test_switch_answers_a_flow_request_with_a_stream_of_the_selected_rules():
    ofs = switch(RULES)
    stream = ofs.handle(request(OF13, table_id=1), 2.0)
    assert isinstance(stream, ReplyStream)
    (reply,) = decode_all(stream)
    assert reply.xid == 9
    assert [e.priority for e in reply.body] == [5]
    cookie = decode_all(ofs.handle(request(OF13, cookie=0x1234, cookie_mask=0xFFFF), 2.0))
    assert [e.cookie for r in cookie for e in r.body] == [0x1234]
    port3 = decode_all(ofs.handle(request(OF13, out_port=3), 2.0))
    assert [e.priority for r in port3 for e in r.body] == [3]


def test_an_of10_dump_of_a_rule_of10_cannot_express_is_an_error_before_any_reply():
    ofs = switch(RULES)
    with pytest.raises(OFPError) as err:
        ofs.handle(request(OF10), 2.0)
    assert err.value.type == "BAD_MATCH"
