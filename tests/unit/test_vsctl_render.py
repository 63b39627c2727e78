"""Text renderings (vswitch.config.render) of command outputs."""
import pytest

from vswitch import __version__
from vswitch.config.commands import execute
from vswitch.config.render import format_value, render
from vswitch.config.schema import empty_config


@pytest.mark.parametrize("value, text", [
    (None, "[]"), (True, "true"), (7, "7"), ("br0", "br0"), ("native-untagged", "native-untagged"),
    ("60", '"60"'), ("", '""'), ("true", '"true"'), ("a b", '"a b"'), ("tcp:1.2.3.4:6653", '"tcp:1.2.3.4:6653"'),
    ("0b9c7d3e-6f0a-4c1e-9a55-1f2e3d4c5b6a", "0b9c7d3e-6f0a-4c1e-9a55-1f2e3d4c5b6a"),
    ([10, 20], "[10, 20]"), ([], "[]"), ({"b": "2", "a": "x y"}, '{a="x y", b="2"}'), ({}, "{}"),
])
def test_format_value_like_ovs_vsctl(value, text):
    assert format_value(value) == text


def test_show_text():
    # As ovs-vsctl show: a port shows only tag and trunks, then its interfaces
    # (a bond's several); vlan_mode, bond_mode and lacp are not shown.
    config, _ = execute(empty_config(), [
        ["add-br", "br0"], ["set-controller", "br0", "tcp:127.0.0.1:6653"], ["set-fail-mode", "br0", "secure"],
        ["add-bond", "br0", "bond0", "e1", "e2", "bond_mode=active-backup", "lacp=active"],
        ["add-port", "br0", "vx0", "trunks=10,20", "vlan_mode=trunk"],
        ["set", "Interface", "vx0", "type=afxdp", "options:xdp-mode=native"]])
    _, (show,) = execute(config, [["show"]])
    assert render("show", show).splitlines() == [
        "    Bridge br0",
        '        Controller "tcp:127.0.0.1:6653"',
        "        fail_mode: secure",
        "        Port bond0",
        "            Interface e1",
        "            Interface e2",
        "        Port br0",
        "            Interface br0",
        "                type: internal",
        "        Port vx0",
        "            trunks: [10, 20]",
        "            Interface vx0",
        "                type: afxdp",
        '                options: {xdp-mode=native}',
        f'    vswitch_version: "{__version__}"',
    ]


def test_list_records():
    records = [{"_uuid": "0b9c7d3e-6f0a-4c1e-9a55-1f2e3d4c5b6a", "name": "p1", "tag": 10, "trunks": []},
               {"_uuid": "1b9c7d3e-6f0a-4c1e-9a55-1f2e3d4c5b6a", "name": "p2", "tag": None, "trunks": [3]}]
    assert render("list", records) == (
        "_uuid               : 0b9c7d3e-6f0a-4c1e-9a55-1f2e3d4c5b6a\n"
        "name                : p1\n"
        "tag                 : 10\n"
        "trunks              : []\n"
        "\n"
        "_uuid               : 1b9c7d3e-6f0a-4c1e-9a55-1f2e3d4c5b6a\n"
        "name                : p2\n"
        "tag                 : []\n"
        "trunks              : [3]")


def test_fdb_like_ovs_appctl_fdb_show():
    entries = [{"port": "p1", "vlan": 10, "mac": "50:54:00:00:00:01", "age": 3},
               {"port": "uplink", "vlan": 4095, "mac": "50:54:00:00:00:02", "age": 299}]
    assert render("fdb-show", entries).splitlines() == [
        " port  VLAN  MAC                Age",
        "   p1    10  50:54:00:00:00:01    3",
        "uplink  4095  50:54:00:00:00:02  299",
    ]


def test_dump_ports_and_flows():
    ports = [{"port": "p1", "ofport": 1, "rx_packets": 5, "rx_bytes": 500, "rx_dropped": 0,
              "tx_packets": 6, "tx_bytes": 600, "tx_dropped": 2}]
    assert render("dump-ports", ports).splitlines() == [
        "port statistics: 1 ports",
        "  port  1 (p1): rx pkts=5, bytes=500, drop=0",
        "                tx pkts=6, bytes=600, drop=2",
    ]
    flows = [{"match": "in_port(1),eth_type(0x0806)", "actions": "2", "packets": 3, "bytes": 180, "used": 1.25},
             {"match": "in_port(2)", "actions": "drop", "packets": 0, "bytes": 0, "used": None}]
    assert render("dpctl-dump-flows", flows).splitlines() == [
        "in_port(1),eth_type(0x0806), packets:3, bytes:180, used:1.250s, actions:2",
        "in_port(2), packets:0, bytes:0, used:never, actions:drop",
    ]
    of_flows = [{"table": 0, "n_packets": 4, "priority": 10, "match": "in_port=1", "actions": "NORMAL"}]
    assert render("dump-flows", of_flows) == " table=0, n_packets=4, priority=10 in_port=1 actions=NORMAL"


def test_generic_and_empty_outputs():
    assert render("list-br", ["br0", "br1"]) == "br0\nbr1"
    assert render("port-to-br", "br0") == "br0"
    assert render("add-br", None) == ""
    assert render("br-exists", False) == ""
    assert render("pmd-stats-show", {"pmd 0": {"packets": 3, "cores": [1, 2]}}) == (
        "pmd 0:\n  packets: 3\n  cores:\n    1\n    2")
