"""The command engine (vswitch.config.commands) on plain config dicts, with a
stub runtime standing in for the daemon's live state."""
import copy
import shlex

import pytest

from vswitch.config.commands import COMMANDS, CommandError, execute
from vswitch.config.schema import empty_config


class FakeRuntime:
    """Answers the runtime questions with fixed data and records each call."""

    FDB = [{"port": "p1", "vlan": 10, "mac": "50:54:00:00:00:01", "age": 3},
           {"port": "p2", "vlan": 0, "mac": "50:54:00:00:00:02", "age": 17}]
    PORTS = [{"port": "p1", "ofport": 1, "rx_packets": 5, "rx_bytes": 500, "rx_dropped": 0,
              "tx_packets": 6, "tx_bytes": 600, "tx_dropped": 1},
             {"port": "p2", "ofport": 2, "rx_packets": 7, "rx_bytes": 700, "rx_dropped": 2,
              "tx_packets": 8, "tx_bytes": 800, "tx_dropped": 0}]
    DP_FLOWS = [{"match": "in_port(1),eth(dst=ff:ff:ff:ff:ff:ff)", "actions": "2,3",
                 "packets": 4, "bytes": 256, "used": 0.5}]

    def __init__(self):
        self.calls = []

    def _record(self, *call):
        self.calls.append(call)

    def fdb_show(self, br):
        self._record("fdb_show", br)
        return copy.deepcopy(self.FDB)

    def fdb_flush(self, br):
        self._record("fdb_flush", br)

    def dump_ports(self, br):
        self._record("dump_ports", br)
        return copy.deepcopy(self.PORTS)

    def dp_flows(self):
        self._record("dp_flows")
        return copy.deepcopy(self.DP_FLOWS)

    def dump_flows(self, br):
        self._record("dump_flows", br)
        raise NotImplementedError

    def pmd_stats(self):
        self._record("pmd_stats")
        return {"pmd thread 0": {"packets received": 42}}

    def interface_status(self, name):
        self._record("interface_status", name)
        return {"link_state": "up"}

    def interface_statistics(self, name):
        self._record("interface_statistics", name)
        return {"rx_packets": 11, "tx_packets": 12}

    def interface_ofport(self, name):
        self._record("interface_ofport", name)
        return 7


def chain(text):
    """`"add-br br0 -- add-port br0 p1"` -> [["add-br", "br0"], ["add-port", "br0", "p1"]]."""
    commands, current = [], []
    for word in shlex.split(text):
        if word == "--":
            commands.append(current)
            current = []
        else:
            current.append(word)
    return commands + [current]


def run(config, text, runtime=None):
    return execute(config, chain(text), runtime)


def out(config, text, runtime=None):
    """Output of the last command of a chain."""
    return run(config, text, runtime)[1][-1]


def fails(config, text, message, runtime=None):
    before = copy.deepcopy(config)
    with pytest.raises(CommandError) as info:
        run(config, text, runtime)
    assert str(info.value) == message
    assert config == before            # the caller's config is never touched


def port_row(config, name):
    return next(row for row in config["Port"].values() if row["name"] == name)


def iface_row(config, name):
    return next(row for row in config["Interface"].values() if row["name"] == name)


@pytest.fixture
def cfg():
    """br0 with p1 (tag 10) and p2, br1 with p3."""
    config, _ = run(empty_config(), "add-br br0 -- add-port br0 p1 tag=10 -- add-port br0 p2"
                                    " -- add-br br1 -- add-port br1 p3")
    return config


# ---------------------------------------------------------------- bridges

def test_add_br_creates_bridge_with_internal_local_port():
    config, outputs = run(empty_config(), "add-br br0")
    assert outputs == [None]
    (bridge,) = config["Bridge"].values()
    (port_uuid,) = bridge["ports"]
    port = config["Port"][port_uuid]
    assert bridge["name"] == port["name"] == "br0"
    (iface_uuid,) = port["interfaces"]
    assert config["Interface"][iface_uuid]["name"] == "br0"
    assert config["Interface"][iface_uuid]["type"] == "internal"


def test_add_br_twice_fails_and_may_exist_is_a_no_op(cfg):
    fails(cfg, "add-br br0", "cannot create a bridge named br0 because a bridge named br0 already exists")
    assert run(cfg, "--may-exist add-br br0")[0] == cfg


def test_add_br_refuses_a_name_used_by_a_port(cfg):
    fails(cfg, "add-br p3",
          "cannot create a bridge named p3 because a port named p3 already exists on bridge br1")


def test_list_br_and_br_exists(cfg):
    assert out(cfg, "list-br") == ["br0", "br1"]
    assert out(cfg, "br-exists br1") is True
    assert out(cfg, "br-exists br9") is False


def test_del_br_removes_its_ports_and_interfaces(cfg):
    config, _ = run(cfg, "del-br br0")
    assert out(config, "list-br") == ["br1"]
    assert sorted(row["name"] for row in config["Port"].values()) == ["br1", "p3"]
    assert sorted(row["name"] for row in config["Interface"].values()) == ["br1", "p3"]


def test_del_br_missing_and_if_exists(cfg):
    fails(cfg, "del-br br9", "no bridge named br9")
    assert run(cfg, "--if-exists del-br br9")[0] == cfg


# ---------------------------------------------------------------- ports

def test_add_port_sets_port_columns(cfg):
    config, _ = run(cfg, "add-port br1 p4 tag=20 vlan_mode=native-untagged trunks=30,40")
    row = port_row(config, "p4")
    assert (row["tag"], row["vlan_mode"], row["trunks"]) == (20, "native-untagged", [30, 40])
    assert iface_row(config, "p4")["type"] == ""


def test_list_ports_sorted_without_local_port(cfg):
    config, _ = run(cfg, "add-port br0 a0")
    assert out(config, "list-ports br0") == ["a0", "p1", "p2"]
    assert out(config, "list-ifaces br0") == ["a0", "p1", "p2"]


def test_add_port_errors(cfg):
    fails(cfg, "add-port br9 p9", "no bridge named br9")
    fails(cfg, "add-port br0 p1", "cannot create a port named p1 because a port named p1 already exists on bridge br0")
    fails(cfg, "add-port br0 p9 tag=5000", "p9: invalid VLAN tag 5000 (must be 0..4095)")
    fails(cfg, "add-port br0 p9 tag=ten", "p9: invalid VLAN tag 'ten' (must be 0..4095)")
    fails(cfg, "add-port br0 p9 colour=red", 'Port does not contain a column whose name matches "colour"')
    fails(cfg, "--may-exist add-port br0 p3",
          '"--may-exist add-port br0 p3" but p3 is actually attached to bridge br1')


def test_add_port_may_exist_on_same_bridge_is_a_no_op(cfg):
    assert run(cfg, "--may-exist add-port br0 p1")[0] == cfg


def test_add_bond_creates_one_port_with_several_interfaces(cfg):
    config, _ = run(cfg, "add-bond br1 bond0 e1 e2 bond_mode=balance-slb lacp=active")
    row = port_row(config, "bond0")
    assert (row["bond_mode"], row["lacp"]) == ("balance-slb", "active")
    assert out(config, "list-ifaces br1") == ["e1", "e2", "p3"]
    assert out(config, "iface-to-br e2") == "br1"
    fails(cfg, "add-bond br1 bond1 e1 lacp=active",
          "add-bond requires at least 2 interfaces, but only 1 were specified")
    fails(cfg, "add-bond br1 bond1 e1 p1",
          "cannot create an interface named p1 because a port named p1 already exists on bridge br0")


def test_del_port_with_and_without_bridge(cfg):
    config, _ = run(cfg, "del-port br0 p1 -- del-port p3")
    assert out(config, "list-ports br0") == ["p2"]
    assert out(config, "list-ports br1") == []
    assert "p1" not in [row["name"] for row in config["Interface"].values()]


def test_del_port_errors(cfg):
    fails(cfg, "del-port p9", "no port named p9")
    fails(cfg, "del-port br1 p1", "bridge br1 does not have a port p1")
    fails(cfg, "del-port br9 p1", "no bridge named br9")
    fails(cfg, "del-port br0 br0", "cannot delete port br0 because it is the local port for bridge br0 "
                                   "(deleting this port requires deleting the entire bridge)")
    assert run(cfg, "--if-exists del-port p9")[0] == cfg


def test_port_and_iface_to_br(cfg):
    assert out(cfg, "port-to-br p3") == "br1"
    fails(cfg, "port-to-br br0", "no port named br0")     # the local port, as ovs-vsctl
    assert out(cfg, "iface-to-br p1") == "br0"
    fails(cfg, "port-to-br p9", "no port named p9")
    fails(cfg, "iface-to-br p9", "no interface named p9")


def test_show_nests_bridges_ports_interfaces(cfg):
    config, _ = run(cfg, "set Port p2 trunks=[5,6] -- set Interface p2 type=afxdp options:xdp-mode=native")
    show = out(config, "show")
    assert [b["name"] for b in show["bridges"]] == ["br0", "br1"]
    br0 = show["bridges"][0]
    assert [p["name"] for p in br0["ports"]] == ["br0", "p1", "p2"]
    p1, p2 = br0["ports"][1:]
    assert p1["tag"] == 10 and p2["trunks"] == [5, 6]
    assert p2["interfaces"] == [dict(iface_row(config, "p2"))]
    assert p2["interfaces"][0]["options"] == {"xdp-mode": "native"}
    assert br0["ports"][0]["interfaces"][0]["type"] == "internal"


# ---------------------------------------------------------------- set / get / list / clear / add / remove

@pytest.mark.parametrize("setting, column, expected", [
    ("tag=10", "tag", 10),
    ("tag=[]", "tag", None),
    ("trunks=10,20", "trunks", [10, 20]),
    ("'trunks=[30, 20]'", "trunks", [20, 30]),
    ("trunks=[]", "trunks", []),
    ("vlan_mode=native-untagged", "vlan_mode", "native-untagged"),
    ("""'external_ids:note="a b=c"'""", "external_ids", {"note": "a b=c"}),
    ("'external_ids={vm=web1, tier=front}'", "external_ids", {"vm": "web1", "tier": "front"}),
])
def test_set_port_values(cfg, setting, column, expected):
    config, _ = run(cfg, f"set Port p2 {setting}")
    assert port_row(config, "p2")[column] == expected
    assert out(config, f"get port p2 {column}") == [expected]


def test_set_interface_and_bridge_values(cfg):
    config, _ = run(cfg, "set interface p1 type=afxdp options:xdp-mode=generic ofport_request=5 "
                         "mac=02:00:00:00:00:01 -- set BRIDGE br0 other_config:mac-aging-time=60 "
                         "other_config:mac-table-size=2048 protocols=OpenFlow13")
    assert out(config, "get Interface p1 type options:xdp-mode ofport_request mac") == [
        "afxdp", "generic", 5, "02:00:00:00:00:01"]
    assert out(config, "get Bridge br0 other_config protocols") == [
        {"mac-aging-time": "60", "mac-table-size": "2048"}, ["OpenFlow13"]]


def test_records_can_be_named_by_uuid(cfg):
    uuid = next(u for u, row in cfg["Port"].items() if row["name"] == "p2")
    config, _ = run(cfg, f"set Port {uuid} tag=99")
    assert port_row(config, "p2")["tag"] == 99


@pytest.mark.parametrize("text, message", [
    ("set Port p1 tag=4096", "p1: invalid VLAN tag 4096 (must be 0..4095)"),
    ("set Port p1 trunks=1,5000", "p1: invalid trunk VLAN 5000 (must be 0..4095)"),
    ("set Port p1 vlan_mode=hybrid", 'p1: invalid vlan_mode "hybrid" (must be one of: "access", "trunk", '
                                     '"native-tagged", "native-untagged")'),
    ("set Interface p1 type=gre", 'p1: invalid type "gre" (must be one of: "", "system", "afpacket", '
                                  '"tap", "internal", "afxdp", "dummy", "vxlan")'),
    ("set Bridge br0 other_config:mac-aging-time=0",
     'br0: invalid other_config:mac-aging-time "0" (must be a positive integer number of seconds)'),
    ("set Bridge br0 other_config:mac-table-size=lots",
     'br0: invalid other_config:mac-table-size "lots" (must be a positive integer)'),
    ("set Interface p1 ofport_request=70000", "p1: invalid ofport_request 70000 (must be 1..65279)"),
    ("set Interface p1 mac=zz", 'p1: invalid mac "zz" (must be a MAC address xx:xx:xx:xx:xx:xx)'),
    ("set Flow p1 tag=1", 'unknown table "Flow" (tables: Bridge, Port, Interface, Mirror, NetFlow, sFlow, IPFIX, Flow_Table, SSL)'),
    ("set Port p1 colour=red", 'Port does not contain a column whose name matches "colour"'),
    ("set Port p9 tag=1", 'no row "p9" in table Port'),
    ("set Port p1 name=p7", "cannot modify read-only column name in table Port"),
    ("set Port p1 interfaces=[]", "cannot modify read-only column interfaces in table Port"),
    ("set Interface p1 ofport=3", "cannot modify read-only column ofport in table Interface"),
    ("set Port p1 tag:x=1", "cannot specify key to set for non-map column tag"),
    ("set Port p1 tag", 'tag: argument does not end in "=" followed by a value.'),
    ("clear Interface p1 statistics", "cannot modify read-only column statistics in table Interface"),
])
def test_set_errors_say_what_was_wrong(cfg, text, message):
    fails(cfg, text, message)


def test_get_map_key_missing_and_if_exists(cfg):
    fails(cfg, "get Bridge br0 other_config:mac-aging-time",
          'no key "mac-aging-time" in Bridge record "br0" column other_config')
    assert out(cfg, "--if-exists get Bridge br0 other_config:mac-aging-time") == []


def test_list_all_records_or_named_ones(cfg):
    records = out(cfg, "list bridge")
    assert [r["name"] for r in records] == ["br0", "br1"]
    assert all(r["_uuid"] in cfg["Bridge"] for r in records)
    (p1,) = out(cfg, "list Port p1")
    assert (p1["name"], p1["tag"]) == ("p1", 10)
    assert out(cfg, "--columns=name,tag list Port p1 p2") == [{"name": "p1", "tag": 10},
                                                              {"name": "p2", "tag": None}]
    assert out(cfg, "get Port p1 _uuid") == [p1["_uuid"]]
    assert out(cfg, "--columns=_uuid,name list Port p1") == [{"_uuid": p1["_uuid"], "name": "p1"}]
    fails(cfg, "list Port p9", 'no row "p9" in table Port')


def test_runtime_columns_come_from_the_runtime(cfg):
    runtime = FakeRuntime()
    assert out(cfg, "get Interface p2 statistics ofport status:link_state", runtime) == [
        {"rx_packets": 11, "tx_packets": 12}, 7, "up"]
    assert runtime.calls == [("interface_statistics", "p2"), ("interface_ofport", "p2"),
                             ("interface_status", "p2")]
    (record,) = out(cfg, "list Interface p1", runtime)
    assert record["ofport"] == 7 and record["statistics"]["rx_packets"] == 11
    # Without a runtime, list shows only stored columns and get says why it cannot.
    (record,) = out(cfg, "list Interface p1")
    assert "ofport" not in record and record["name"] == "p1"
    fails(cfg, "get Interface p1 ofport", "get: not supported yet")


def test_clear_add_remove(cfg):
    config, _ = run(cfg, "set Port p1 trunks=1,2,3 vlan_mode=trunk external_ids:a=1 external_ids:b=2 "
                         "external_ids:c=3")
    config, _ = run(config, "remove Port p1 trunks 2 -- remove Port p1 external_ids a b=9 c=3 "
                            "-- add Port p1 trunks 7,8 -- add Port p1 external_ids a=5 b=6")
    row = port_row(config, "p1")
    assert row["trunks"] == [1, 3, 7, 8]
    assert row["external_ids"] == {"a": "5", "b": "2"}      # add does not overwrite b; b=9 did not match
    config, _ = run(config, "clear Port p1 trunks vlan_mode external_ids tag")
    row = port_row(config, "p1")
    assert (row["trunks"], row["vlan_mode"], row["external_ids"], row["tag"]) == ([], None, {}, None)
    fails(config, "add Port p1 trunks 9999", "p1: invalid trunk VLAN 9999 (must be 0..4095)")
    fails(config, "clear Port p1 name", "cannot modify read-only column name in table Port")


# ---------------------------------------------------------------- fail mode and controllers

def test_fail_mode(cfg):
    config, _ = run(cfg, "set-fail-mode br0 secure")
    assert out(config, "get-fail-mode br0") == "secure"
    assert out(config, "get-fail-mode br1") is None
    config, _ = run(config, "del-fail-mode br0")
    assert out(config, "get-fail-mode br0") is None
    fails(cfg, "set-fail-mode br0 open", 'fail-mode must be "standalone" or "secure"')
    fails(cfg, "set-fail-mode br9 secure", "no bridge named br9")


def test_controllers(cfg):
    targets = ["tcp:127.0.0.1:6653", "ptcp:6654", "unix:/run/c.sock", "punix:/run/s.sock",
               "ssl:[::1]:6653", "pssl:6655:127.0.0.1", "ptcp:6656:[::1]"]
    config, _ = run(cfg, "set-controller br0 " + " ".join(targets))
    assert out(config, "get-controller br0") == sorted(targets)
    config, _ = run(config, "del-controller br0")
    assert out(config, "get-controller br0") == []
    for bad in ("tcp:host.example:6653", "tcp:1.2.3.4:70000", "http:1.2.3.4", "unix:"):
        fails(cfg, f"set-controller br0 {bad}", f'br0: invalid controller target "{bad}" (must be '
              "tcp:IP[:PORT], ssl:IP[:PORT], ptcp:[PORT][:IP], pssl:[PORT][:IP], unix:PATH or punix:PATH)")


# ---------------------------------------------------------------- live state through the runtime

def test_fdb_show_and_flush(cfg):
    runtime = FakeRuntime()
    assert out(cfg, "fdb-show br0", runtime) == FakeRuntime.FDB
    run(cfg, "fdb-flush br1 -- fdb-flush", runtime)
    assert runtime.calls == [("fdb_show", "br0"), ("fdb_flush", "br1"), ("fdb_flush", None)]
    fails(cfg, "fdb-show br9", "no bridge named br9", runtime)
    fails(cfg, "fdb-flush br9", "no bridge named br9", runtime)
    assert len(runtime.calls) == 3           # unknown bridges never reach the runtime


def test_dump_ports_all_or_one(cfg):
    runtime = FakeRuntime()
    assert out(cfg, "dump-ports br0", runtime) == FakeRuntime.PORTS
    assert out(cfg, "dump-ports br0 p2", runtime) == [FakeRuntime.PORTS[1]]
    fails(cfg, "dump-ports br0 p3", "bridge br0 does not have a port p3", runtime)
    fails(cfg, "dump-ports br0 p9", "no port named p9", runtime)


def test_flow_and_pmd_commands(cfg):
    runtime = FakeRuntime()
    assert out(cfg, "dpctl-dump-flows", runtime) == FakeRuntime.DP_FLOWS
    assert out(cfg, "dump-dp-flows", runtime) == FakeRuntime.DP_FLOWS
    assert out(cfg, "pmd-stats-show", runtime) == {"pmd thread 0": {"packets received": 42}}
    fails(cfg, "dump-flows br0", "dump-flows: not supported yet", runtime)
    assert ("dump_flows", "br0") in runtime.calls


def test_runtime_failures_become_command_errors(cfg):
    class Broken:
        def fdb_show(self, br):
            raise RuntimeError("datapath is gone")
    fails(cfg, "fdb-show br0", "fdb-show: datapath is gone", Broken())
    fails(cfg, "fdb-show br0", "fdb-show: not supported yet", None)


# ---------------------------------------------------------------- chains, parsing, read-only

def test_chain_is_all_or_nothing(cfg):
    fails(cfg, "add-br br2 -- add-port br2 p5 -- add-port br9 p6", "no bridge named br9")
    fails(cfg, "set Port p1 tag=11 -- set Port p2 tag=9999", "p2: invalid VLAN tag 9999 (must be 0..4095)")


def test_chain_gives_one_output_per_command(cfg):
    config, outputs = run(cfg, "add-br br2 -- add-port br2 p5 tag=3 -- list-ports br2 -- get Port p5 tag "
                               "-- br-exists br2")
    assert outputs == [None, None, ["p5"], [3], True]
    assert out(config, "port-to-br p5") == "br2"


@pytest.mark.parametrize("text, message", [
    ("add-bridge br2", "unknown command 'add-bridge'; see vsctl --help"),
    ("add-port br0", "'add-port' command requires at least 2 arguments"),
    ("add-br", "'add-br' command requires at least 1 argument"),
    ("list-br br0", "'list-br' command takes at most 0 arguments"),
    ("del-port a b c", "'del-port' command takes at most 2 arguments"),
    ("--may-exist del-br br0", "'del-br' command has no '--may-exist' option"),
    ("--if-exists add-br br0", "'add-br' command has no '--if-exists' option"),
    ("--columns list Port", "'--columns' option of 'list' requires a value"),
    ("--may-exist", "missing command name (see vsctl --help)"),
])
def test_parse_errors(cfg, text, message):
    fails(cfg, text, message)


def test_parse_errors_are_found_before_anything_runs(cfg):
    runtime = FakeRuntime()
    fails(cfg, "fdb-flush br0 -- list-br extra", "'list-br' command takes at most 0 arguments", runtime)
    assert runtime.calls == []


def test_read_only_commands_do_not_change_config(cfg):
    readers = [name for name, command in COMMANDS.items() if command.read_only]
    assert {"list-br", "show", "get", "list", "fdb-show", "dump-ports"} <= set(readers)
    before = copy.deepcopy(cfg)
    config, _ = run(cfg, "list-br -- show -- list Port -- get Port p1 tag -- list-ports br0 -- br-exists x "
                         "-- get-controller br0 -- get-fail-mode br0 -- fdb-show br0 -- dump-ports br0",
                    FakeRuntime())
    assert config == before


def test_commands_must_be_lists_of_strings():
    with pytest.raises(CommandError, match="list of argument lists"):
        execute(empty_config(), [["add-br", 5]], None)
    with pytest.raises(CommandError, match="list of argument lists"):
        execute(empty_config(), "add-br br0", None)
