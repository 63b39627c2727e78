"""Bad input gets a clear error that names the bad token, and nothing is
stored that the switch will not act on: ovs-ofctl flow syntax (every field
checked against its width, every prefix and mask form), port names resolved
through the bridge's OpenFlow ports.  Where ovs-ofctl refuses the same text
too, the message is ovs-ofctl's, checked against the real tool.  And the
configuration: OpenFlow versions the codec speaks, other_config keys the
switch reads, Interface options the interface's type uses."""
import copy
import shlex
import shutil
import subprocess

import pytest

from vswitch.cli.vsctl import split_commands
from vswitch.config.commands import CommandError, execute
from vswitch.config.schema import empty_config
from vswitch.ofproto import ofctl_runtime
from vswitch.ofproto.ofctl_syntax import SyntaxError_, format_flow, parse_flow
from vswitch.ofproto.ofp import Enqueue, Output
from vswitch.ofproto.ofp.constants import OFPP_CONTROLLER, OFPP_LOCAL
from vswitch.ofproto.ofswitch import OFSwitch

HAVE_OFCTL = shutil.which("ovs-ofctl") is not None

# (flow, our error): ovs-ofctl refuses these with the same message
OVS_REFUSES = [
    ("dl_src=1:2:3,actions=drop", "1:2:3: invalid Ethernet address"),
    ("dl_src=01:02:03:04:05:06/1:2:3,actions=drop", "01:02:03:04:05:06/1:2:3: invalid Ethernet address"),
    ("arp,arp_sha=1:2:3:4:5,actions=drop", "1:2:3:4:5: invalid Ethernet address"),
    ("ip,nw_dst=10.0.0.0/33,actions=drop",
     "10.0.0.0/33: IPv4 network prefix bits not between 0 and 32, inclusive"),
    ("ip,nw_src=10.0.0.0/-1,actions=drop",
     "10.0.0.0/-1: IPv4 network prefix bits not between 0 and 32, inclusive"),
    ("ip,nw_dst=10.0.0,actions=drop", "10.0.0: invalid IP address"),
    ("ip,nw_dst=10.0.0.0/abc,actions=drop", "10.0.0.0/abc: invalid IP address"),
    ("ip,nw_dst=10.0.0.0/,actions=drop", "10.0.0.0/: invalid IP address"),
    ("ip,nw_dst=/24,actions=drop", "/24: invalid IP address"),
    ("arp,arp_tpa=10.0.0.0/40,actions=drop",
     "10.0.0.0/40: IPv4 network prefix bits not between 0 and 32, inclusive"),
    ("ipv6,ipv6_src=::1/129,actions=drop",
     "::1/129: IPv6 network prefix bits not between 0 and 128, inclusive"),
    ("ipv6,ipv6_dst=zz::1,actions=drop", "zz::1: invalid IPv6 address"),
    ("tcp,tp_dst=65536,actions=drop", "65536: value too large for 2-byte field tcp_dst"),
    ("udp,udp_src=70000,actions=drop", "70000: value too large for 2-byte field udp_src"),
    ("tcp,tp_dst=abc,actions=drop", "abc: bad syntax for tcp_dst value"),
    ("ip,nw_tos=256,actions=drop", "256: value too large for 1-byte field nw_tos"),
    ("ip,nw_proto=256,actions=drop", "256: value too large for 1-byte field nw_proto"),
    ("icmp,icmp_type=256,actions=drop", "256: value too large for 1-byte field icmp_type"),
    ("eth_type=0x10000,actions=drop", "0x10000: value too large for 2-byte field eth_type"),
    ("metadata=0x10000000000000000,actions=drop",
     "0x10000000000000000: value too large for 8-byte field metadata"),
    ("priority=65536,actions=drop", 'invalid priority "65536"'),
    ("priority=-1,actions=drop", 'invalid priority "-1"'),
    ("table=256,actions=drop", 'unknown table "256"'),
    ("idle_timeout=65536,actions=drop", 'invalid idle_timeout "65536"'),
    ("hard_timeout=x,actions=drop", 'invalid hard_timeout "x"'),
    ("cookie=0x10000000000000000,actions=drop", "invalid numeric format 0x10000000000000000"),
    ("foo=1,actions=drop", "unknown keyword foo"),
    ("in_port=vm1,actions=drop", "vm1: invalid or unknown port for in_port"),
    ("actions=output:vm1", "vm1: output to unknown port"),
    ("actions=vm1", "unknown action vm1"),
    ("actions=foo", "unknown action foo"),
    ("actions=mod_vlan_vid:4096", "4096: not a valid VLAN VID"),
    ("actions=mod_vlan_pcp:8", "8: not a valid VLAN PCP"),
    ("actions=mod_dl_src:1:2:3", "invalid mac address 1:2:3"),
    ("actions=mod_nw_src:10.0.0.256", "10.0.0.256: could not convert to IP address"),
    ("actions=mod_nw_tos:3", "3: not a valid TOS"),
    ("actions=mod_nw_tos:256", 'invalid TOS "256"'),
    ("tcp,actions=mod_tp_dst:65536", 'invalid destination port "65536"'),
    ("tcp,actions=mod_tp_src:x", 'invalid source port "x"'),
    ("actions=mod_nw_ttl:256", 'invalid TTL "256"'),
    ("actions=set_mpls_label:1048576", "1048576: not a valid MPLS label"),
    ("actions=set_mpls_tc:8", "8: not a valid MPLS TC"),
    ("actions=set_mpls_ttl:256", 'invalid MPLS TTL "256"'),
    ("actions=push_vlan:0x0800", "0x0800: not a valid VLAN ethertype"),
    ("actions=push_vlan:0x10000", 'invalid ethertype "0x10000"'),
    ("actions=goto_table:256", 'unknown table "256"'),
    ("actions=group:x", "invalid numeric format x"),
    ("actions=meter:x", "invalid numeric format x"),
    ("actions=controller:70000", 'invalid max_len "70000"'),
    ("actions=set_field:1:2:3->eth_src", "1:2:3: invalid Ethernet address"),
    ("actions=set_field:8->vlan_pcp", "8 is not a valid value for field vlan_pcp (must be 0..7)"),
    ("tcp,actions=set_field:65536->tcp_dst", "65536: value too large for 2-byte field tcp_dst"),
    ("actions=enqueue:1", '"enqueue" syntax is "enqueue:PORT:QUEUE" or "enqueue(PORT,QUEUE)"'),
]

# ovs-ofctl keeps only the low bits of these (dl_vlan=4096 becomes dl_vlan=0):
# we refuse them, so that a flow matches what the operator wrote.
WE_REFUSE = [
    ("dl_vlan=4096,actions=drop", "4096: value out of range for dl_vlan (must be 0..4095, or 0xffff for no VLAN)"),
    ("dl_vlan=-1,actions=drop", "-1: value too large for 2-byte field dl_vlan"),
    ("dl_vlan_pcp=8,actions=drop", "8: value out of range for dl_vlan_pcp (must be 0..7)"),
    ("vlan_pcp=9,actions=drop", "9: value out of range for vlan_pcp (must be 0..7)"),
    ("ip,ip_dscp=64,actions=drop", "64: value out of range for ip_dscp (must be 0..63)"),
    ("ip,nw_ecn=4,actions=drop", "4: value out of range for nw_ecn (must be 0..3)"),
    ("ip,nw_tos=3,actions=drop", "3: not a valid TOS for nw_tos (its low 2 bits are ECN: use a multiple of 4, "
                                 "or ip_dscp and nw_ecn)"),
    ("mpls,mpls_label=1048576,actions=drop", "1048576: value out of range for mpls_label (must be 0..1048575)"),
    ("mpls,mpls_tc=8,actions=drop", "8: value out of range for mpls_tc (must be 0..7)"),
    ("mpls,mpls_bos=2,actions=drop", "2: value out of range for mpls_bos (must be 0..1)"),
    ("ipv6,ipv6_label=0x100000,actions=drop", "0x100000: value out of range for ipv6_label (must be 0..1048575)"),
    ("in_port=70000,actions=drop", "70000: invalid or unknown port for in_port (port numbers are 0..65535)"),
    ("actions=output:70000", "70000: output to unknown port (port numbers are 0..65535)"),
    ("actions=goto_table:255", 'unknown table "255"'),
    ("actions=goto_table", "goto_table: missing argument (syntax: goto_table:VALUE)"),
    ("actions=set_field:100->vlan_vid", "100 is not a valid value for field vlan_vid (set_field takes 0x1000|VID, "
                                        "e.g. 4196 for VLAN 100; or use mod_vlan_vid:100)"),
    ("actions=set_field:0xaabbccddeeff->eth_src", "0xaabbccddeeff: invalid Ethernet address"),
    ("ip,nw_dst=10.0.0.256,actions=drop", "10.0.0.256: invalid IP address"),
    ("in_port,actions=drop", "field in_port missing value"),
]

NO_SWITCH_HINT = " (a port name needs the bridge's ports: use the OpenFlow port number)"


def _error(flow, **kw):
    with pytest.raises(SyntaxError_) as info:
        parse_flow(flow, **kw)
    return str(info.value)


@pytest.mark.parametrize("flow,message", OVS_REFUSES + WE_REFUSE)
def test_bad_flow_text_is_refused_naming_the_token(flow, message):
    # without a switch, a port name also says why it cannot be resolved
    expected = message + NO_SWITCH_HINT if message.startswith("vm1: ") else message
    assert _error(flow) == expected
    # with a switch that has no such port: ovs-ofctl's words exactly
    assert _error(flow, port_map={"p1": 1}) == message


@pytest.mark.skipif(not HAVE_OFCTL, reason="needs ovs-ofctl")
@pytest.mark.parametrize("flow,message", OVS_REFUSES)
def test_ovs_ofctl_refuses_the_same_text_with_the_same_words(flow, message):
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "parse-flow", flow], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode != 0
    ovs_words = out.stderr.strip().splitlines()[-1].removeprefix("ovs-ofctl: ")
    # ours may add a hint after ovs-ofctl's words ("(must be 0..7)")
    assert message.startswith(ovs_words)


@pytest.mark.parametrize("flow,canonical", [
    ("ip,nw_dst=10.1.2.3/0,actions=drop", "ip actions=drop"),
    ("ip,nw_dst=10.1.2.3/32,actions=drop", "ip,nw_dst=10.1.2.3 actions=drop"),
    ("ip,nw_dst=10.1.2.3/8,actions=drop", "ip,nw_dst=10.0.0.0/8 actions=drop"),
    ("ip,nw_dst=10.1.2.3/255.255.0.0,actions=drop", "ip,nw_dst=10.1.0.0/16 actions=drop"),
    ("ip,nw_dst=10.1.2.3/255.0.255.0,actions=drop", "ip,nw_dst=10.0.2.0/255.0.255.0 actions=drop"),
    ("ipv6,ipv6_src=2001:db8::1/0,actions=drop", "ipv6 actions=drop"),
    ("ipv6,ipv6_src=2001:db8::1/128,actions=drop", "ipv6,ipv6_src=2001:db8::1 actions=drop"),
    ("ipv6,ipv6_src=2001:db8::1/ffff::,actions=drop", "ipv6,ipv6_src=2001::/16 actions=drop"),
    ("ipv6,ipv6_src=::1/ff00:ff::,actions=drop", "ipv6,ipv6_src=::/ff00:ff:: actions=drop"),
    ("dl_src=1:2:3:4:5:6,actions=drop", "dl_src=01:02:03:04:05:06 actions=drop"),
    ("dl_vlan=4095,dl_vlan_pcp=7,actions=drop", "dl_vlan=4095,dl_vlan_pcp=7 actions=drop"),
    ("dl_vlan=0xffff,actions=drop", "vlan_tci=0x0000/0x1fff actions=drop"),
    ("tcp,tp_dst=65535,actions=drop", "tcp,tp_dst=65535 actions=drop"),
    ("ip,ip_dscp=63,nw_ecn=3,actions=drop", "ip,nw_tos=252,nw_ecn=3 actions=drop"),
    ("priority=65535,idle_timeout=65535,actions=drop", "priority=65535 actions=drop"),
    ("in_port=65533,actions=drop", "in_port=CONTROLLER actions=drop"),   # an OF1.0 reserved number
    ("in_port=local,actions=output:0xfffffffe", "in_port=LOCAL actions=LOCAL"),
])
def test_every_limit_itself_is_accepted(flow, canonical):
    assert format_flow(parse_flow(flow)) == canonical


def test_port_names_resolve_through_the_port_map():
    ports = {"vm1": 5, "vm2": 6}
    spec = parse_flow("in_port=vm1,out_port=vm2,actions=output:vm2,vm1,enqueue:vm2:3,LOCAL,controller",
                      port_map=ports)
    assert spec.match.value("in_port") == 5 and spec.out_port == 6
    assert spec.instructions[0].actions[:4] == [Output(6, 0), Output(5, 0), Enqueue(6, 3), Output(OFPP_LOCAL, 0)]
    assert spec.instructions[0].actions[4].port == OFPP_CONTROLLER
    # reserved names and numbers win over port names, as in ovs-ofctl
    assert parse_flow("in_port=local,actions=drop", port_map={"local": 9}).match.value("in_port") == OFPP_LOCAL
    assert parse_flow("in_port=7,actions=drop", port_map={"7": 9}).match.value("in_port") == 7


# --- the vsctl flow commands on a live OFSwitch ------------------------------

class FakeHost:
    def flush_bridge(self, name):
        pass


def _ofs():
    ofs = OFSwitch("br0", FakeHost())
    ofs.sync_ports({1: ("vm1", 1), 2: ("vm2", 2)})
    return ofs


def test_flow_commands_take_port_names():
    ofs = _ofs()
    ofctl_runtime.add_flows(ofs, ["in_port=vm1,actions=output:vm2", "priority=5,in_port=vm2,actions=vm1"], 0)
    assert sorted(r["text"].split(", ")[-1] for r in ofctl_runtime.dump_flows(ofs, None, 0)) == [
        "in_port=1 actions=output:2", "priority=5,in_port=2 actions=output:1"]
    assert len(ofctl_runtime.dump_flows(ofs, "in_port=vm2", 0)) == 1
    assert len(ofctl_runtime.dump_flows(ofs, "out_port=vm1", 0)) == 1
    ofctl_runtime.mod_flows(ofs, "in_port=vm1,actions=drop", False, 0)
    assert ofctl_runtime.dump_flows(ofs, "in_port=vm1", 0)[0]["actions"] == "drop"
    ofctl_runtime.del_flows(ofs, "in_port=vm1", False, 0)
    assert [r["match"] for r in ofctl_runtime.dump_flows(ofs, None, 0)] == ["in_port=2"]
    assert ofctl_runtime.parse_flow_on(ofs, "in_port=vm2", False).match.value("in_port") == 2


@pytest.mark.parametrize("call,message", [
    (lambda ofs: ofctl_runtime.add_flows(ofs, ["in_port=vm9,actions=drop"], 0),
     "vm9: invalid or unknown port for in_port"),
    (lambda ofs: ofctl_runtime.add_flows(ofs, ["in_port=vm1,actions=drop", "actions=output:vm9"], 0),
     "vm9: output to unknown port"),
    (lambda ofs: ofctl_runtime.add_flows(ofs, ["actions=vm9"], 0), "unknown action vm9"),
    (lambda ofs: ofctl_runtime.mod_flows(ofs, "in_port=vm9,actions=drop", False, 0),
     "vm9: invalid or unknown port for in_port"),
    (lambda ofs: ofctl_runtime.del_flows(ofs, "out_port=vm9", False, 0),
     "vm9: invalid or unknown port for out_port"),
    (lambda ofs: ofctl_runtime.dump_flows(ofs, "in_port=vm9", 0), "vm9: invalid or unknown port for in_port"),
    (lambda ofs: ofctl_runtime.add_flows(ofs, ["ip,nw_dst=10.0.0.0/33,actions=drop"], 0),
     "10.0.0.0/33: IPv4 network prefix bits not between 0 and 32, inclusive"),
    (lambda ofs: ofctl_runtime.add_group(ofs, "group_id=1,type=ff,bucket=watch_port:vm9,output:vm1", 0),
     "vm9: invalid or unknown port for watch_port"),
    (lambda ofs: ofctl_runtime.add_group(ofs, "group_id=1,type=all,bucket=output:vm9", 0),
     "vm9: output to unknown port"),
    (lambda ofs: ofctl_runtime.add_group(ofs, "group_id=x,type=all,bucket=output:1", 0),
     'invalid group_id "x"'),
    (lambda ofs: ofctl_runtime.add_meter(ofs, "meter=1,kbps,band=type=drop,rate=x", 0), 'invalid rate "x"'),
])
def test_flow_commands_refuse_bad_input_and_change_nothing(call, message):
    ofs = _ofs()
    ofctl_runtime.add_flows(ofs, ["priority=1,actions=drop"], 0)
    before = [r["text"] for r in ofctl_runtime.dump_flows(ofs, None, 0)]
    with pytest.raises(ValueError) as info:
        call(ofs)
    assert str(info.value) == message
    assert [r["text"] for r in ofctl_runtime.dump_flows(ofs, None, 0)] == before
    assert not ofs.groups.groups and not ofs.meters.meters


def test_groups_take_port_names():
    ofs = _ofs()
    ofctl_runtime.add_group(ofs, "group_id=1,type=ff,bucket=watch_port:vm2,output:vm2,bucket=watch_port:vm1,vm1", 0)
    buckets = ofs.groups.groups[1].buckets
    assert [(b.watch_port, b.actions) for b in buckets] == [(2, [Output(2, 0)]), (1, [Output(1, 0)])]


# --- configuration: only what the switch acts on is stored ---------------------

def _run(config, text):
    return execute(config, split_commands(shlex.split(text)))[0]


@pytest.fixture
def cfg():
    return _run(empty_config(), "add-br br0 -- add-port br0 p1 -- add-port br0 x1 -- set Interface x1 type=afxdp")


def _fails(config, text, message):
    before = copy.deepcopy(config)
    with pytest.raises(CommandError) as info:
        _run(config, text)
    assert str(info.value) == message
    assert config == before


BRIDGE_KEYS = "datapath-id, hwaddr, inactivity-probe, mac-aging-time, mac-table-size"
PORT_KEYS = ("bond-detect-mode, bond-hash-basis, bond-miimon-interval, bond-primary, bond-rebalance-interval, "
             "lacp-fallback-ab, lacp-system-id, lacp-system-priority, lacp-time")
IFACE_KEYS = ("cfm_ccm_pcp, cfm_ccm_vlan, cfm_demand, cfm_extended, cfm_interval, cfm_ma_name, cfm_md_level, "
              "cfm_md_name, cfm_opstate, lacp-aggregation-key, lacp-port-id, lacp-port-priority")


@pytest.mark.parametrize("text,message", [
    ("set Bridge br0 protocols=OpenFlow14",
     'br0: invalid protocol "OpenFlow14" (must be one of: "OpenFlow10", "OpenFlow13")'),
    ("set Bridge br0 protocols=OpenFlow10,OpenFlow15",
     'br0: invalid protocol "OpenFlow15" (must be one of: "OpenFlow10", "OpenFlow13")'),
    ("add Bridge br0 protocols OpenFlow11",
     'br0: invalid protocol "OpenFlow11" (must be one of: "OpenFlow10", "OpenFlow13")'),
    ("set Bridge br0 other_config:flow-eviction-threshold=10",
     f"br0: unknown key other_config:flow-eviction-threshold (this switch uses only: {BRIDGE_KEYS})"),
    ("set Bridge br0 other_config:mac-aging-time=60 other_config:mac-agin-time=60",
     f"br0: unknown key other_config:mac-agin-time (this switch uses only: {BRIDGE_KEYS})"),
    ("set Bridge br0 other_config:datapath-id=0x12", 'br0: invalid other_config:datapath-id "0x12" '
                                                     '(must be exactly 16 hex digits)'),
    ("set Bridge br0 other_config:inactivity-probe=0", 'br0: invalid other_config:inactivity-probe "0" '
                                                       '(must be an integer number of milliseconds 1000..2147483647)'),
    ("set Port p1 other_config:priority-tags=true",
     f"p1: unknown key other_config:priority-tags (this switch uses only: {PORT_KEYS})"),
    ("add-bond br0 bond0 e1 e2 other_config:bond_primary=e1",
     f"bond0: unknown key other_config:bond_primary (this switch uses only: {PORT_KEYS})"),
    ("set Interface p1 other_config:enable-vlan-splinters=true",
     f"p1: unknown key other_config:enable-vlan-splinters (this switch uses only: {IFACE_KEYS})"),
    ("set Interface p1 type=gre options:remote_ip=10.0.0.2",
     'p1: invalid type "gre" (must be one of: "", "system", "afpacket", "tap", "internal", "afxdp", "dummy", '
     '"vxlan")'),
    ("set Interface p1 options:remote_ip=10.0.0.2",
     'p1: unknown key options:remote_ip (interface type "system" uses only: tc-offload)'),
    ("set Interface p1 type=tap options:queues=2",
     'p1: unknown key options:queues (interface type "tap" takes no options)'),
    ("set Interface p1 options:xdp-mode=native",
     'p1: unknown key options:xdp-mode (interface type "system" uses only: tc-offload)'),
    ("set Interface x1 options:xdp-mode=native-with-zerocopy",
     'x1: invalid options:xdp-mode "native-with-zerocopy" (must be best-effort, native or generic)'),
    ("set Interface x1 options:n_rxq=2", 'x1: unknown key options:n_rxq (interface type "afxdp" uses only: xdp-mode, xdp-offload)'),
    ("set Interface x1 options:xdp-mode=native -- set Interface x1 type=tap",
     'x1: unknown key options:xdp-mode (interface type "tap" takes no options)'),
    ("set Interface p1 options:tc-offload=yes",
     'p1: invalid options:tc-offload "yes" (must be true or false)'),
    ("set Interface p1 type=vxlan options:remote_ip=10.0.0.2 options:tc-offload=on",
     'p1: invalid options:tc-offload "on" (must be true or false)'),
    ("set Interface p1 type=vxlan options:remote_ip=10.0.0.2 options:tc-device=plain",
     'p1: invalid options:tc-device "plain" (must be shared or per-port)'),
    ("set Interface p1 ofport_request=0", "p1: invalid ofport_request 0 (must be 1..65279)"),
    ("set Interface p1 ofport_request=65280", "p1: invalid ofport_request 65280 (must be 1..65279)"),
])
def test_configuration_the_switch_would_not_act_on_is_refused(cfg, text, message):
    _fails(cfg, text, message)


def test_what_the_switch_acts_on_is_accepted(cfg):
    config = _run(cfg, "set Bridge br0 protocols=OpenFlow10,OpenFlow13 other_config:datapath-id=00000000000000ab "
                       "other_config:inactivity-probe=10000 'external_ids:anything goes=yes' "
                       "-- set Interface x1 options:xdp-mode=generic -- set Interface p1 ofport_request=65279 "
                       "-- set Port p1 other_config:lacp-time=fast external_ids:vm=web1 "
                       "-- set Interface p1 other_config:cfm_interval=100 external_ids:iface-id=abc")
    br = next(r for r in config["Bridge"].values() if r["name"] == "br0")
    assert br["protocols"] == ["OpenFlow10", "OpenFlow13"] and br["external_ids"] == {"anything goes": "yes"}
    iface = {r["name"]: r for r in config["Interface"].values()}
    assert iface["x1"]["options"] == {"xdp-mode": "generic"} and iface["p1"]["ofport_request"] == 65279
    # clearing the type's options and then changing the type is fine
    _run(config, "clear Interface x1 options -- set Interface x1 type=tap")
