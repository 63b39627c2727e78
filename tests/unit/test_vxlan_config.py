"""vxlan interfaces in the configuration: OVS's options accepted, each bad
value refused by name with nothing changed; NORMAL's split horizon between
tunnel ports; the SET_TUNNEL datapath action's encoding."""
import copy

import pytest

from test_config_commands import run
from vswitch.config.schema import empty_config
from vswitch.datapath.flowkey import mac_int
from vswitch.ofproto.mac_learning import MacTable
from vswitch.ofproto.normal import BridgePort, xlate


@pytest.fixture
def config():
    return run(empty_config(), "add-br br0")[0]


ADD = "add-port br0 vx1 -- set interface vx1 type=vxlan "


@pytest.mark.parametrize("options", [
    "options:remote_ip=192.0.2.2 options:key=100",
    "options:remote_ip=192.0.2.2",
    "options:remote_ip=192.0.2.2 options:key=16777215 options:dst_port=8472 "
    "options:local_ip=192.0.2.1 options:tos=inherit options:ttl=10",
    "options:remote_ip=flow options:key=flow",
    "options:remote_ip=flow options:key=5",
])
def test_ovs_options_are_accepted(config, options):
    new = run(config, ADD + options)[0]
    row = next(r for r in new["Interface"].values() if r["name"] == "vx1")
    assert row["type"] == "vxlan" and row["options"]["remote_ip"] in ("192.0.2.2", "flow")


@pytest.mark.parametrize("options, bad", [
    ("options:remote_ip=192.0.2", 'options:remote_ip "192.0.2"'),
    ("options:remote_ip=0.0.0.0", 'options:remote_ip "0.0.0.0"'),
    ("options:remote_ip=239.1.1.1", 'options:remote_ip "239.1.1.1"'),
    ("options:remote_ip=192.0.2.2 options:key=16777216", 'options:key "16777216"'),
    ("options:remote_ip=192.0.2.2 options:key=-1", 'options:key "-1"'),
    ("options:remote_ip=192.0.2.2 options:key=0x10", 'options:key "0x10"'),
    ("options:remote_ip=192.0.2.2 options:dst_port=0", 'options:dst_port "0"'),
    ("options:remote_ip=192.0.2.2 options:dst_port=65536", 'options:dst_port "65536"'),
    ("options:remote_ip=192.0.2.2 options:local_ip=flow", 'options:local_ip "flow"'),
    ("options:remote_ip=192.0.2.2 options:tos=256", 'options:tos "256"'),
    ("options:remote_ip=192.0.2.2 options:ttl=0", 'options:ttl "0"'),
    ("options:remote_ip=192.0.2.2 options:csum=true", "unknown key options:csum"),
    ("options:key=5", "missing options:remote_ip"),
])
def test_bad_values_are_refused_by_name(config, options, bad):
    before = copy.deepcopy(config)
    with pytest.raises(Exception) as info:
        run(config, ADD + options)
    assert bad in str(info.value)
    assert config == before


def test_xlate_split_horizon_between_tunnels():
    ports = {p.ofport: p for p in (BridgePort("p1", 1), BridgePort("vx1", 2, tunnel=True),
                                   BridgePort("vx2", 3, tunnel=True))}
    a, b = mac_int("02:00:00:00:00:0a"), mac_int("ff:ff:ff:ff:ff:ff")
    key = {"in_port": 2, "dl_src": a, "dl_dst": b, "dl_type": 0x0806}
    macs = MacTable()
    # From a tunnel: flooded to the local port only, and `a` is learned on vx1.
    assert xlate(ports, macs, key, now=0).actions == [("output", 1)]
    # From a local port: to both tunnels; unicast to a MAC behind a tunnel: there.
    r = xlate(ports, macs, dict(key, in_port=1, dl_src=mac_int("02:00:00:00:00:0b")), now=1)
    assert r.actions == [("output", 2), ("output", 3)]
    r = xlate(ports, macs, dict(key, in_port=3, dl_src=mac_int("02:00:00:00:00:0c"), dl_dst=a), now=2)
    assert r.actions == [("output", 2)]


def test_set_tunnel_action_round_trips():
    from vswitch.datapath.dpif import decode_actions, encode_actions, format_actions
    actions = [("set_tunnel", (0x1234, 0xC0000202, 0)), ("output", 3)]
    words, n = encode_actions(actions)
    assert decode_actions(words, n) == actions
    assert format_actions(actions) == "set_tunnel(tun_id=0x1234,dst=192.0.2.2),3"


def test_openflow_tunnel_fields_match_and_set():
    """tun_id/tun_src/tun_dst match the key's tunnel metadata (and are in the
    megaflow mask); set_field on them commits one set_tunnel before output."""
    from test_openflow_pipeline import KEY, bridge
    from vswitch.ofproto import pipeline
    from vswitch.ofproto.ofctl_syntax import format_actions, format_match, parse_flow

    spec = parse_flow("tun_id=0x64,tun_src=192.0.2.2,tun_dst=192.0.2.1,"
                      "actions=set_field:192.0.2.9->tun_dst,set_field:7->tun_id,output:2")
    assert format_match(spec.match) == "tun_id=0x64,tun_src=192.0.2.2,tun_dst=192.0.2.1"
    assert format_actions(spec.instructions) == \
        "set_field:192.0.2.9->tun_dst,set_field:7->tun_id,output:2"
    br = bridge("priority=10,tun_id=100,tun_src=192.0.2.2,actions=output:2",
                "priority=5,in_port=1,actions=set_field:192.0.2.9->tun_dst,set_field:7->tun_id,"
                "output:3,set_field:192.0.2.10->tun_dst,output:3")
    key = dict(KEY, tun_id=100, tun_src=0xC0000202, tun_dst=0xC0000201)
    r = pipeline.xlate(br, key, 0)
    assert r.actions == [("output", 2)]
    assert r.mask["tun_id"] == (1 << 64) - 1 and r.mask["tun_src"] == 0xFFFFFFFF
    r = pipeline.xlate(br, dict(key, tun_id=5), 0)
    # tun_src is the packet's own: read, so in the mask
    assert r.actions == [("set_tunnel", (7, 0xC0000209, 0xC0000202)), ("output", 3),
                         ("set_tunnel", (7, 0xC000020A, 0xC0000202)), ("output", 3)]
    assert r.mask["tun_src"] == 0xFFFFFFFF
