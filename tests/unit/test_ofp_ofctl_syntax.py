"""ovs-ofctl flow syntax, checked against the real ovs-ofctl: it parses the same
text into OpenFlow without a switch and prints its canonical form, which our
parse + format must reproduce."""
import re
import shutil
import subprocess

import pytest

from vswitch.ofproto.flow_table import FlowTables
from vswitch.ofproto.ofctl_syntax import SyntaxError_, format_flow, format_flow_stats, parse_flow, parse_flows
from vswitch.ofproto.ofp import ApplyActions, GotoTable, Match, Output, SetField
from vswitch.ofproto.ofp.constants import OFPFC_ADD, OFPFF_SEND_FLOW_REM, OFPP_CONTROLLER, OFPP_NORMAL

pytestmark = pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="needs ovs-ofctl")

FLOWS_13 = [
    "priority=100,in_port=1,dl_vlan=10,ip,nw_src=10.0.0.0/24,tcp,tp_dst=80,"
    "actions=output:2,mod_vlan_vid:20,normal,controller:128,goto_table:1",
    "tcp,actions=mod_tp_dst:99,set_queue:3,local,flood,all,controller",
    "ip,actions=set_field:10.0.0.1->ip_src,set_nw_ttl:5,dec_ttl,push_mpls:0x8847",
    "actions=drop",
    "priority=0,actions=NORMAL",
    "dl_vlan=0xffff,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=output:1",
    "icmp,icmp_type=8,nw_dst=10.0.0.0/8,actions=controller:128",
    "priority=5,metadata=0x1/0xff,ipv6,ipv6_dst=::1,"
    "actions=meter:1,clear_actions,write_actions(output:1),write_metadata:0x5/0xff,goto_table:4",
    "arp,arp_op=1,arp_spa=10.0.0.1,arp_tha=00:00:00:00:00:02 actions=group:3",
    "udp6,ipv6_src=2001:db8::/32,udp_dst=53 actions=push_vlan:0x8100,set_field:4196->vlan_vid,pop_vlan",
    "eth_type=0x8847,mpls_label=5,mpls_tc=1 actions=pop_mpls:0x0800,output:in_port",
    "udp,dl_src=00:11:22:33:44:55,tp_src=53 actions=drop",
    "in_port=3,dl_type=0x0800,nw_proto=17,nw_tos=184 actions=set_field:00:00:00:00:00:01->eth_src,4",
]
FLOWS_10 = [
    "in_port=1,actions=mod_vlan_vid:20,mod_vlan_pcp:3,strip_vlan,mod_dl_src:00:00:00:00:00:01,"
    "mod_nw_src:1.2.3.4,mod_nw_tos:184,output:3",
    "tcp,nw_dst=192.168.0.0/16,tp_src=1024 actions=mod_tp_dst:99,enqueue:2:7,LOCAL",
    "priority=7,dl_dst=00:00:00:00:00:09,dl_vlan_pcp=5 actions=output:1,output:2",
]


def ovs_canonical(flow, version):
    """What `ovs-ofctl -O VERSION parse-flow FLOW` prints after 'ADD '."""
    out = subprocess.run(["ovs-ofctl", "-O", version, "parse-flow", flow], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    line = [l for l in out.splitlines() if "FLOW_MOD" in l][0]
    text = line.split(" ADD ", 1)[1]
    return re.sub(r"^table:\d+ ", "", text)


@pytest.mark.parametrize("flow", FLOWS_13)
def test_matches_ovs_ofctl_openflow13(flow):
    assert format_flow(parse_flow(flow)) == ovs_canonical(flow, "OpenFlow13")


@pytest.mark.parametrize("flow", FLOWS_10)
def test_matches_ovs_ofctl_openflow10(flow):
    assert format_flow(parse_flow(flow), version=1) == ovs_canonical(flow, "OpenFlow10")


def test_parse_into_model():
    spec = parse_flow("table=1,cookie=0x1/-1,idle_timeout=10,hard_timeout=20,send_flow_rem,priority=100,"
                      "in_port=1,dl_vlan=10,ip,nw_src=10.0.0.0/24,tcp,tp_dst=80,"
                      "actions=output:2,mod_vlan_vid:20,normal,controller:128,goto_table:2")
    assert (spec.table_id, spec.cookie, spec.cookie_mask, spec.idle_timeout, spec.hard_timeout) == \
        (1, 1, 2**64 - 1, 10, 20)
    assert spec.flags == OFPFF_SEND_FLOW_REM and spec.priority == 100
    assert dict(spec.match) == {"in_port": (1, None), "vlan_vid": (0x100A, None), "eth_type": (0x800, None),
                                "ipv4_src": (0x0A000000, 0xFFFFFF00), "ip_proto": (6, None),
                                "tcp_dst": (80, None)}
    assert spec.instructions == [ApplyActions([Output(2, 0), SetField("vlan_vid", 0x1014),
                                               Output(OFPP_NORMAL, 0), Output(OFPP_CONTROLLER, 128)]),
                                 GotoTable(2)]


def test_timeouts_and_flags_agree_with_ovs_ofctl():
    flow = "table=2,idle_timeout=10,hard_timeout=20,send_flow_rem,priority=9,in_port=1 actions=output:2"
    spec = parse_flow(flow)
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "parse-flow", flow], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    assert f"table:{spec.table_id} " in out and f"idle:{spec.idle_timeout} " in out
    assert f"hard:{spec.hard_timeout} " in out and "send_flow_rem" in out


def test_errors_are_syntax_errors():
    for bad in ("in_port=1", "tp_dst=80,actions=drop", "foo=1,actions=drop", "ip,actions=bogus:1"):
        with pytest.raises(SyntaxError_):
            parse_flow(bad)


def test_dump_flows_line_and_file():
    tables = FlowTables()
    spec = parse_flow("priority=100,in_port=1,idle_timeout=10 actions=output:2")
    tables.flow_mod(spec.flow_mod(OFPFC_ADD), now=10.0)
    rule = tables.rules()[0]
    rule.account(3, 180, now=11.0)
    assert format_flow_stats(rule, now=11.2) == (
        " cookie=0x0, duration=1.200s, table=0, n_packets=3, n_bytes=180, idle_timeout=10, "
        "priority=100,in_port=1 actions=output:2")
    flows = parse_flows("# comment\n\nip actions=drop\narp actions=NORMAL\n")
    assert [f.match for f in flows] == [Match(eth_type=(0x800, None)), Match(eth_type=(0x806, None))]
