"""xlate of the OF1.3 header-stack actions (vswitch/ofproto/xlate_encap.py):
PBB push/pop and pbb_isid, VLAN stacking with 802.1ad, copy_ttl_in/out, SCTP
set-field.  Checks the datapath actions, the megaflow mask and whether the
flow can be cached (slow_path), on real FlowTables; frames from scapy."""
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from vswitch.datapath import dpif
from vswitch.ofproto import pipeline
from vswitch.ofproto.ofctl_syntax import format_action, parse_flow
from test_openflow_pipeline import KEY, bridge

ADDRS = dict(src="12:11:11:11:11:11", dst="22:22:22:22:22:22")
INNER = Ether(**ADDRS) / IP(src="192.168.10.10", dst="192.168.20.20", ttl=64) / TCP(sport=11111, dport=2222)


def pbb_frame(isid=100, inner=INNER):
    return bytes(Ether(type=0x88E7, **ADDRS) / Raw(isid.to_bytes(4, "big")) / inner)


def xlate_frame(br, frame):
    key = dpif.parse_frame(frame, 1)
    key.pop("tcp_flags")
    return pipeline.xlate(br, key, 0, len(frame), frame)


def test_push_pbb_then_pop_pbb_is_cached_and_restores_the_state():
    br = bridge("table=0,ip,actions=push_pbb:0x88e7,goto_table:1",
                "table=1,dl_type=0x88e7,pbb_isid=0,actions=pop_pbb,goto_table:2",
                "table=2,ip,nw_src=10.0.0.1,actions=output:2")
    r = pipeline.xlate(br, KEY, 0)
    assert r.actions == [("push_pbb", 0x88E7), ("pop_pbb", 0), ("output", 2)]
    assert not r.slow_path      # nothing read came from the frame
    assert r.mask["nw_src"] == 0xFFFFFFFF


def test_pbb_isid_match_with_mask_reads_the_key_and_is_cached():
    br = bridge("dl_type=0x88e7,pbb_isid=96/0xf0,actions=output:2")
    r = xlate_frame(br, pbb_frame(isid=100))
    assert r.actions == [("output", 2)] and not r.slow_path
    assert r.mask["pbb_isid"] == 0xF0 and r.mask["dl_type"] == 0xFFFF
    assert xlate_frame(br, pbb_frame(isid=0x200)).actions == []


def test_pop_pbb_then_output_is_cached_but_matching_the_inner_frame_is_not():
    r = xlate_frame(bridge("dl_type=0x88e7,actions=pop_pbb,output:2"), pbb_frame())
    assert r.actions == [("pop_pbb", 0), ("output", 2)] and not r.slow_path
    br = bridge("table=0,dl_type=0x88e7,actions=pop_pbb,goto_table:1",
                "table=1,ip,nw_src=192.168.10.10,actions=output:2")
    r = xlate_frame(br, pbb_frame())
    assert r.actions == [("pop_pbb", 0), ("output", 2)]
    assert r.slow_path      # decided on the customer frame, which the megaflow cannot hold
    r = xlate_frame(br, pbb_frame(inner=Ether(**ADDRS) / IP(src="10.9.9.9") / TCP()))
    assert r.actions == [("pop_pbb", 0)]


def test_set_field_pbb_isid_only_on_pbb_frames():
    br = bridge("actions=set_field:203->pbb_isid,output:2")
    assert xlate_frame(br, pbb_frame()).actions == [("set_pbb_isid", 203), ("output", 2)]
    assert pipeline.xlate(br, KEY, 0).actions == [("output", 2)]


def test_push_vlan_8021ad_stacks_on_a_tag_and_pop_brings_it_back():
    br = bridge("actions=push_vlan:0x88a8,output:2,pop_vlan,output:3")
    r = pipeline.xlate(br, dict(KEY, vlan_tci=0x1000 | (3 << 13) | 100), 0)
    assert r.actions == [("push_vlan", 0x88A8 << 16 | (3 << 13) | 100), ("output", 2),
                         ("pop_vlan", 0), ("output", 3)]
    assert not r.slow_path
    r = pipeline.xlate(bridge("actions=push_vlan:0x8100,output:2"), KEY, 0)
    assert r.actions == [("push_vlan", 0), ("output", 2)]


def test_pop_vlan_of_a_double_tagged_frame_reads_the_inner_tag_from_the_frame():
    frame = bytes(Ether(type=0x88A8, **ADDRS) / Dot1AD(vlan=10, type=0x8100) / Dot1Q(vlan=100)
                  / IP(src="192.168.10.10") / TCP())
    br = bridge("table=0,actions=pop_vlan,goto_table:1", "table=1,dl_vlan=100,ip,actions=output:2")
    r = xlate_frame(br, frame)
    assert r.actions == [("pop_vlan", 0), ("output", 2)] and r.slow_path


def test_copy_ttl_out_and_in_between_mpls_and_ip():
    frame = bytes(Ether(type=0x8847, **ADDRS) / MPLS(label=100, cos=3, ttl=64, s=1)
                  / IP(ttl=32) / TCP())
    r = xlate_frame(bridge("mpls,actions=copy_ttl_out,output:2"), frame)
    assert r.actions == [("set_mpls_lse", (100 << 12) | (3 << 9) | 0x100 | 32), ("output", 2)]
    r = xlate_frame(bridge("mpls,actions=copy_ttl_in,output:2"), frame)
    assert r.actions == [("set_inner_ttl", 64), ("output", 2)]
    assert pipeline.xlate(bridge("actions=copy_ttl_in,output:2"), KEY, 0).actions == [("output", 2)]


def test_set_field_sctp_ports_only_on_sctp():
    br = bridge("actions=set_field:12345->sctp_src,set_field:6789->sctp_dst,output:2")
    r = pipeline.xlate(br, dict(KEY, nw_proto=132), 0)
    assert r.actions == [("set_tp_src", 12345), ("set_tp_dst", 6789), ("output", 2)]
    assert pipeline.xlate(br, KEY, 0).actions == [("output", 2)]   # TCP: skipped


def test_action_set_orders_pops_before_pushes_and_copy_ttl_out_after_them():
    spec = parse_flow("actions=write_actions(copy_ttl_out,push_pbb:0x88e7,pop_vlan,copy_ttl_in,output:2)")
    order = [type(a).__name__ for a in sorted(spec.instructions[0].actions,
                                              key=lambda a: pipeline.SET_ORDER.index(type(a)))]
    assert order == ["CopyTtlIn", "PopVlan", "PushPbb", "CopyTtlOut", "Output"]
    assert [format_action(a) for a in spec.instructions[0].actions] == \
        ["copy_ttl_out", "push_pbb:0x88e7", "pop_vlan", "copy_ttl_in", "output:2"]


def test_port_mod_config_blocks_receive_forward_flood_and_packet_in():
    from vswitch.ofproto.ofp.constants import (OFPPC_NO_FWD, OFPPC_NO_PACKET_IN, OFPPC_NO_RECV,
                                               OFPPC_PORT_DOWN)
    br = bridge("priority=5,tcp,actions=output:2,output:3", "priority=4,udp,actions=flood",
                "priority=3,icmp,actions=controller")
    br.port_config = {2: OFPPC_NO_FWD, 3: OFPPC_PORT_DOWN}
    assert pipeline.xlate(br, KEY, 0).actions == []
    assert pipeline.xlate(br, dict(KEY, nw_proto=17), 0).actions == [("output", 1023)]
    br.port_config = {1: OFPPC_NO_PACKET_IN}
    assert pipeline.xlate(br, dict(KEY, nw_proto=1), 0).actions == []
    assert br.cookies == []
    br.port_config = {1: OFPPC_NO_RECV}
    r = pipeline.xlate(br, KEY, 0)
    assert r.actions == [] and r.mask["in_port"] and not r.slow_path   # cached drop for port 1
    br.port_config = {}
    assert pipeline.xlate(br, KEY, 0).actions == [("output", 2), ("output", 3)]


def test_metered_flow_is_cached_with_a_datapath_meter_configured_from_the_entry():
    from vswitch.datapath import dp_meters
    from vswitch.ofproto.meter_sync import DatapathMeters
    from vswitch.ofproto.ofp import MeterBand, MeterMod
    from vswitch.ofproto.ofp.constants import OFPMC_ADD, OFPMC_DELETE, OFPMC_MODIFY, OFPMF_PKTPS
    from vswitch.ofproto.ofp.constants import OFPFC_ADD
    br = bridge()
    sync = DatapathMeters()
    br.dp_meter = lambda mid: sync.dp_id("br0", br.meters, mid)
    br.meters.meter_mod(MeterMod(OFPMC_ADD, OFPMF_PKTPS, 7, [MeterBand(2, 100, 0, 1)]), 0)
    br.tables.flow_mod(parse_flow("actions=meter:7,output:2").flow_mod(OFPFC_ADD), 0)
    r = pipeline.xlate(br, KEY, 0, 64)
    (name, dp_id), out = r.actions
    assert name == "meter" and out == ("output", 2) and not r.slow_path
    assert dp_meters.stats(dp_id) == (0, 0, [(0, 0)])           # configured, one band
    assert pipeline.xlate(br, KEY, 0, 64).actions[0] == ("meter", dp_id)   # same entry: kept
    br.meters.meter_mod(MeterMod(OFPMC_MODIFY, OFPMF_PKTPS, 7, [MeterBand(1, 5, 0, 0),
                                                                MeterBand(1, 50, 0, 0)]), 0)
    assert pipeline.xlate(br, KEY, 0, 64).actions[0] == ("meter", dp_id)
    assert dp_meters.stats(dp_id)[2] == [(0, 0), (0, 0)]        # reconfigured: two bands
    entry = br.meters.meters[7]
    assert sync.stats("br0", entry) == (0, 0, [(0, 0), (0, 0)])
    br.meters.meter_mod(MeterMod(OFPMC_DELETE, 0, 7, []), 0)
    sync.release_deleted("br0", br.meters)
    assert dp_meters.stats(dp_id) is None and sync.stats("br0", entry) is None
