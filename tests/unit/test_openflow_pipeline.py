"""OpenFlow xlate on flow keys with real FlowTables and a fake clock: datapath
actions, megaflow masks, multi-table semantics, groups, table-miss."""
import pytest

from vswitch.ofproto import pipeline
from vswitch.ofproto.flow_table import FlowTables, GroupTable, MeterTable
from vswitch.ofproto.ofctl_runtime import parse_group
from vswitch.ofproto.ofctl_syntax import parse_flow
from vswitch.ofproto.ofp import OFPError, SetField
from vswitch.ofproto.ofp.constants import OFPFC_ADD, OFPP_LOCAL, OFPR_ACTION, OFPR_INVALID_TTL, OFPR_NO_MATCH

KEY = {"in_port": 1, "vlan_tci": 0, "dl_type": 0x0800, "dl_src": 0x0A, "dl_dst": 0x0B,
       "nw_src": 0x0A000001, "nw_dst": 0x0A000002, "nw_proto": 6, "nw_tos": 0, "nw_ttl": 64,
       "nw_frag": 0, "tp_src": 1234, "tp_dst": 80}


def bridge(*flows, groups=(), miss_to_controller=False):
    g, m = GroupTable(), MeterTable()
    tables = FlowTables(8, g, m)
    for text in groups:
        g.group_mod(parse_group(text), 0)
    for text in flows:
        spec = parse_flow(text)
        pipeline.check_instructions(spec.instructions, 8)
        tables.flow_mod(spec.flow_mod(OFPFC_ADD), 0)
    cookies = []
    br = pipeline.PipelineView(tables, g, m, {1: 1, 2: 2, 3: 3, OFPP_LOCAL: 1023},
                         controller_cookie=lambda *shape: cookies.append(shape) or len(cookies),
                         miss_to_controller=miss_to_controller)
    br.cookies = cookies
    return br


def test_output_and_mask_from_every_rule_considered():
    br = bridge("priority=10,tcp,tp_dst=22,actions=drop", "priority=5,in_port=1,actions=output:2")
    r = pipeline.xlate(br, KEY, 0)
    assert r.actions == [("output", 2)]
    # the higher-priority ssh rule was considered: its fields are in the mask
    assert r.mask["tp_dst"] == 0xFFFF and r.mask["nw_proto"] == 0xFF and r.mask["in_port"]
    assert "nw_src" not in r.mask
    assert [rule.priority for rule in r.rules] == [5]


def test_goto_metadata_action_set_order_and_set_fields():
    br = bridge("table=0,actions=write_metadata:0x5/0xff,write_actions(output:3),goto_table:1",
                "table=1,metadata=0x5/0xff,actions=set_field:10.0.0.9->ip_dst,mod_tp_dst:8080,"
                "dec_ttl,goto_table:2",
                "table=2,actions=clear_actions,write_actions(output:2)")
    r = pipeline.xlate(br, KEY, 0)
    assert r.actions == [("set_ipv4_dst", 0x0A000009), ("set_tp_dst", 8080), ("set_ipv4_ttl", 63),
                         ("output", 2)]
    assert r.mask["nw_ttl"] == 0xFF      # dec_ttl read it
    assert len(r.rules) == 3


def test_output_to_input_port_needs_in_port_and_flood_skips_it():
    r = pipeline.xlate(bridge("actions=output:1"), KEY, 0)
    assert r.actions == []
    r = pipeline.xlate(bridge("actions=in_port,flood"), KEY, 0)
    assert r.actions == [("output", 1), ("output", 2), ("output", 3), ("output", 1023)]


def test_vlan_push_set_and_pop():
    r = pipeline.xlate(bridge("actions=push_vlan:0x8100,set_field:4106->vlan_vid,output:2,strip_vlan,output:3"),
                       KEY, 0)
    # set_field on a tagged packet rewrites the tag's TCI (keeping its TPID)
    assert r.actions == [("push_vlan", 0), ("set_vlan_tci", 10), ("output", 2),
                         ("pop_vlan", 0), ("output", 3)]


def test_group_all_buckets_work_on_copies():
    br = bridge("actions=group:1", groups=["group_id=1,type=all,bucket=mod_dl_dst:00:00:00:00:00:99,"
                                           "output:2,bucket=output:3"])
    r = pipeline.xlate(br, KEY, 0)
    assert r.actions == [("set_eth_dst", 0x99), ("output", 2), ("set_eth_dst", 0x0B), ("output", 3)]
    assert [i for _, i in r.buckets] == [0, 1]


def test_table_miss_per_version_and_controller_reasons():
    assert pipeline.xlate(bridge("priority=9,udp,actions=drop"), KEY, 0).actions == []
    br = bridge("priority=9,udp,actions=drop", miss_to_controller=True)
    assert pipeline.xlate(br, KEY, 0).actions == [("userspace", 1)]
    assert br.cookies[0][0] == OFPR_NO_MATCH
    br = bridge("priority=0,actions=CONTROLLER:64", "priority=1,tcp,actions=CONTROLLER:100")
    pipeline.xlate(br, KEY, 0)
    pipeline.xlate(br, dict(KEY, nw_proto=17), 0)
    assert [(s[0], s[3]) for s in br.cookies] == [(OFPR_ACTION, 100), (OFPR_NO_MATCH, 64)]
    br = bridge("actions=dec_ttl,output:2")
    assert pipeline.xlate(br, dict(KEY, nw_ttl=1), 0).actions == [("userspace", 1)]
    assert br.cookies[0][0] == OFPR_INVALID_TTL


@pytest.mark.parametrize("flow, code", [
    ("actions=output:0", "BAD_OUT_PORT"),
])
def test_unsupported_actions_refused_at_flow_mod(flow, code):
    with pytest.raises(OFPError) as err:
        bridge(flow)
    assert err.value.code == code
    with pytest.raises(OFPError) as err:
        pipeline.check_actions([SetField("mpls_bos", 1)])
    assert err.value.code == "BAD_SET_TYPE"


def test_trace_key_from_ofctl_match():
    spec = parse_flow("in_port=LOCAL,dl_vlan=5,tcp,nw_dst=10.0.0.2,tp_dst=443", actions_required=False)
    key = pipeline.match_to_key(spec.match, {OFPP_LOCAL: 1023})
    assert key["in_port"] == 1023 and key["vlan_tci"] == 0x1005 and key["tp_dst"] == 443
    assert key["nw_dst"] == 0x0A000002 and key["nw_proto"] == 6


@pytest.mark.parametrize("flow, key, action", [
    ("ipv6,actions=dec_ttl,output:2", {"dl_type": 0x86DD, "nw_ttl": 64}, ("set_ipv6_hlimit", 63)),
    ("ipv6,actions=set_field:16->ip_dscp,output:2", {"dl_type": 0x86DD, "nw_tos": 0x21},
     ("set_ipv6_tc", 0x41)),
    ("arp,actions=set_field:2->arp_op,output:2", {"dl_type": 0x0806, "nw_proto": 1}, ("set_arp_op", 2)),
    ("icmp,actions=set_field:0->icmpv4_type,output:2", {"nw_proto": 1, "tp_src": 8}, ("set_icmp_type", 0)),
    ("ipv6,actions=set_field:203->ipv6_flabel,output:2", {"dl_type": 0x86DD}, ("set_ipv6_flabel", 203)),
])
def test_set_fields_beyond_ipv4(flow, key, action):
    """IPv6 TTL/traffic class, ARP and ICMP fields and the flow label become
    datapath set actions (the OF1.3 conformance suite's set_field cases)."""
    r = pipeline.xlate(bridge(flow), dict(KEY, **key), 0)
    assert r.actions[0] == action and r.actions[-1][0] == "output"


def _mpls_frame(lse, inner):
    return bytes(6) + bytes.fromhex("0000000000aa") + b"\x88\x47" + lse.to_bytes(4, "big") + inner


IPV4_TCP = bytes.fromhex("45200028000000004006f9ccc0a80a0ac0a81414") + bytes.fromhex(
    "2b6708ae000000000000000050000000" "00000000")


def test_mpls_labels_from_the_frame_and_pop_uncovers_ipv4():
    """The key stops at the MPLS Ethertype: labels come from the frame, pop_mpls
    exposes the IPv4 header to the next table, and nothing is cached."""
    frame = _mpls_frame(100 << 12 | 3 << 9 | 0x100 | 64, IPV4_TCP)
    key = dict(KEY, dl_type=0x8847, nw_src=0, nw_dst=0, nw_proto=0, tp_src=0, tp_dst=0)
    br = bridge("mpls,mpls_label=100,actions=pop_mpls:0x0800,goto_table:1",
                "table=1,ip,nw_dst=192.168.20.20,ip_dscp=8,tcp,tp_dst=2222,actions=dec_mpls_ttl,output:2")
    r = pipeline.xlate(br, key, 0, len(frame), frame)
    assert r.actions == [("pop_mpls", 0x0800), ("output", 2)] and r.slow_path
    br = bridge("mpls,actions=dec_mpls_ttl,set_field:5->mpls_tc,push_mpls:0x8847,output:2")
    r = pipeline.xlate(br, key, 0, len(frame), frame)
    lse = 100 << 12 | 3 << 9 | 0x100 | 63
    assert r.actions == [("set_mpls_lse", lse), ("set_mpls_lse", lse & ~(7 << 9) | 5 << 9),
                         ("push_mpls", 0x8847), ("set_mpls_lse", (lse & ~(7 << 9) | 5 << 9) & ~0x100),
                         ("output", 2)]
    br = bridge("ip,actions=push_mpls:0x8847,output:2")
    assert pipeline.xlate(br, KEY, 0).actions == [("push_mpls", 0x8847), ("set_mpls_lse", 0x100 | 64),
                                                  ("output", 2)]


def test_fields_outside_the_key_come_from_the_frame_and_stay_slow_path():
    """arp_sha (and the IPv6 label, ND fields) are not in the flow key: read
    from the frame, and a flow decided on them is not cached.  tunnel_id is
    packet state set by one table and matched by the next."""
    arp = bytes(12) + b"\x08\x06" + bytes.fromhex("0001080006040001" "121111111111" "c0a80a0a"
                                                  "000000000000" "c0a81414")
    key = dict(KEY, dl_type=0x0806, nw_proto=1, tp_src=0, tp_dst=0)
    br = bridge("arp,arp_sha=12:11:11:11:11:11,actions=output:2")
    r = pipeline.xlate(br, key, 0, len(arp), arp)
    assert r.actions == [("output", 2)] and r.slow_path
    assert pipeline.xlate(bridge("arp,actions=output:2"), key, 0, len(arp), arp).slow_path is False
    br = bridge("actions=set_field:12345->tunnel_id,goto_table:1", "table=1,tun_id=12345,actions=output:3")
    r = pipeline.xlate(br, KEY, 0)
    # (the tunnel metadata set is committed before the output: vxlan ports use it)
    assert r.actions == [("set_tunnel", (12345, 0, 0)), ("output", 3)] and not r.slow_path


def test_nd_target_and_link_layer_options_are_rewritten():
    ns = (bytes(12) + b"\x86\xdd" + bytes.fromhex("6000000000203aff") + bytes(32)
          + bytes.fromhex("87000000" "00000000") + (0x20 << 120 | 0x20).to_bytes(16, "big")
          + bytes.fromhex("0101" "222222222222"))
    key = dict(KEY, dl_type=0x86DD, nw_proto=58, tp_src=135, tp_dst=0)
    br = bridge("icmp6,icmp_type=135,actions=set_field:::1->ipv6_nd_target,set_field:aa:bb:cc:dd:ee:ff->ipv6_nd_sll,output:2")
    r = pipeline.xlate(br, key, 0, len(ns), ns)
    assert r.actions == [("set_nd_target", 1), ("set_nd_sll", 0xAABBCCDDEEFF), ("output", 2)]
