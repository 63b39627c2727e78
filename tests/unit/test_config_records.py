"""create/destroy/find, --id=@name references and the Mirror, NetFlow, sFlow
and IPFIX tables on plain config dicts: shapes, garbage collection, weak
references, and one test per error (each leaves the config unchanged)."""
import json
import re

import pytest
from test_config_commands import chain, fails, out, run

from vswitch.config.commands import CommandError, execute
from vswitch.config.render import render
from vswitch.config.schema import empty_config

U = "11111111-1111-1111-1111-111111111111"


@pytest.fixture
def config():
    config, _ = run(empty_config(), "add-br br0 -- add-port br0 p1 -- add-port br0 p2 -- add-br br1 "
                                    "-- add-port br1 p3")
    return config


def uuid_of(config, table, name):
    return next(u for u, row in config[table].items() if row.get("name") == name)


def with_mirror(config, extra=""):
    config, outputs = run(config, "--id=@p1 get Port p1 -- --id=@p2 get Port p2 -- --id=@m create Mirror "
                                  f"name=m0 select_src_port=@p1,@p2 output_port=@p2 {extra} "
                                  "-- add Bridge br0 mirrors @m")
    return config, outputs[2]


def test_mirror_row_shape(config):
    config, uuid = with_mirror(config, "select_vlan=10,20 external_ids:a=b")
    p1, p2 = uuid_of(config, "Port", "p1"), uuid_of(config, "Port", "p2")
    assert config["Mirror"] == {uuid: {
        "name": "m0", "select_all": False, "select_src_port": sorted([p1, p2]), "select_dst_port": [],
        "select_vlan": [10, 20], "output_port": p2, "output_vlan": None, "snaplen": None,
        "external_ids": {"a": "b"}}}
    bridge = config["Bridge"][uuid_of(config, "Bridge", "br0")]
    assert bridge["mirrors"] == [uuid] and bridge["netflow"] is None and bridge["flood_vlans"] == []


def test_netflow_sflow_ipfix_row_shapes(config):
    config, outputs = run(config, '--id=@n create NetFlow targets=\\"192.0.2.1:2055\\" -- set Bridge br0 netflow=@n '
                                  '-- --id=@s create sFlow targets=\\"192.0.2.2:6343\\" sampling=64 agent=p1 '
                                  '-- set Bridge br0 sflow=@s -- --id=@i create IPFIX sampling=10 '
                                  '-- set Bridge br1 ipfix=@i -- set Bridge br1 flood_vlans=1,2')
    n, s, i = outputs[0], outputs[2], outputs[4]
    assert config["NetFlow"] == {n: {"targets": ["192.0.2.1:2055"], "active_timeout": 0, "engine_type": None,
                                     "engine_id": None, "add_id_to_interface": False, "external_ids": {}}}
    assert config["sFlow"] == {s: {"agent": "p1", "targets": ["192.0.2.2:6343"], "sampling": 64,
                                   "polling": None, "header": None, "external_ids": {}}}
    assert config["IPFIX"] == {i: {"targets": [], "sampling": 10, "obs_domain_id": None, "obs_point_id": None,
                                   "cache_active_timeout": None, "cache_max_flows": None, "other_config": {},
                                   "external_ids": {}}}
    br0, br1 = (config["Bridge"][uuid_of(config, "Bridge", b)] for b in ("br0", "br1"))
    assert (br0["netflow"], br0["sflow"], br1["ipfix"], br1["flood_vlans"]) == (n, s, i, [1, 2])
    assert out(config, "get NetFlow br0 targets") == [["192.0.2.1:2055"]]   # by its bridge's name


def test_unreferenced_rows_are_collected_at_commit(config):
    config, outputs = run(config, "create Mirror name=lost -- --id=@n create NetFlow targets=\\\"1.2.3.4:5\\\"")
    assert config["Mirror"] == config["NetFlow"] == {}
    config, _ = with_mirror(config)
    config, _ = run(config, "clear Bridge br0 mirrors")
    assert config["Mirror"] == {}


def test_weak_port_references_follow_del_port_and_del_br(config):
    config, uuid = with_mirror(config)
    config, _ = run(config, "del-port p2")
    mirror = config["Mirror"][uuid]
    assert mirror["select_src_port"] == [uuid_of(config, "Port", "p1")] and mirror["output_port"] is None
    config, _ = run(config, "del-br br0")
    assert config["Mirror"] == {}


def test_destroy_keeps_referenced_rows_and_removes_others(config):
    config, uuid = with_mirror(config)
    config, _ = run(config, "destroy Mirror m0")
    assert uuid in config["Mirror"]
    config, outputs = run(config, "--id=@x create Mirror name=x -- destroy Mirror x -- --columns=name find Mirror")
    assert outputs[-1] == [{"name": "m0"}]
    # destroyed, then referenced: the reference dangles
    fails_ = "--id=@x create Mirror name=x -- destroy Mirror x -- add Bridge br0 mirrors @x"
    with pytest.raises(CommandError, match="referential integrity violation"):
        run(config, fails_)


def test_forward_reference_and_find(config):
    config, outputs = run(config, "add Bridge br1 mirrors @m -- --id=@m create Mirror name=m1 select_all=true")
    assert config["Bridge"][uuid_of(config, "Bridge", "br1")]["mirrors"] == [outputs[1]]
    assert out(config, "--columns=name find Mirror select_all=true") == [{"name": "m1"}]
    assert out(config, "--columns=name find Mirror select_all!=true") == []
    assert out(config, "--columns=name find Port name!=p1 name!=br0 name!=br1") == [{"name": "p2"}, {"name": "p3"}]


def test_mirror_statistics_come_from_the_runtime(config):
    config, _ = with_mirror(config)

    class Runtime:
        def feature_column(self, table, column, name):
            assert (table, column, name) == ("Mirror", "statistics", "m0")
            return {"tx_packets": 3, "tx_bytes": 180}
    assert out(config, "get Mirror m0 statistics", Runtime()) == [{"tx_packets": 3, "tx_bytes": 180}]
    assert render("get", [{"tx_packets": 3, "tx_bytes": 180}]) == "{tx_bytes=180, tx_packets=3}"
    fails(config, "set Mirror m0 statistics:tx_packets=1", "cannot modify read-only column statistics in table Mirror")


def test_json_output_of_create_and_find(config):
    config, outputs = run(config, "--id=@m create Mirror name=m9 -- add Bridge br0 mirrors @m "
                                  "-- --columns=_uuid,name find Mirror name=m9")
    assert json.loads(json.dumps(outputs)) == [outputs[0], None, [{"_uuid": outputs[0], "name": "m9"}]]


M = "--id=@m create Mirror name=x {} -- add Bridge br0 mirrors @m"
FT = "--id=@f create Flow_Table name=acl {} -- set Bridge br0 flow_tables:0=@f"


@pytest.mark.parametrize("text, message", [
    ("add Bridge br0 mirrors @x", 'row id "@x" is referenced but never created (e.g. with "-- --id=@x create ...")'),
    ("set Bridge br0 netflow=br0", '"br0" is not a valid UUID'),
    ("set Mirror m0 output_port=@p -- --id=@p get Port p1",
     'row id "@p" specified on "get" command was used before it was defined'),
    (f"add Bridge br0 mirrors {U}", None),
    ("--id=m create Mirror name=a", 'row id "m" does not begin with "@"'),
    ("--id=@m create Mirror name=a -- --id=@m create Mirror name=b -- add Bridge br0 mirrors @m",
     'row id "@m" may only be specified on one --id option'),
    ("create Flow a=1", 'unknown table "Flow" (tables: Bridge, Port, Interface, Mirror, NetFlow, sFlow, IPFIX, Flow_Table, SSL)'),
    ("create Mirror colour=1", 'Mirror does not contain a column whose name matches "colour"'),
    ("create Bridge name=b", "create: rows of table Bridge are made by add-br, add-port, add-bond and set-ssl"),
    ("find Mirror colour=1", 'Mirror does not contain a column whose name matches "colour"'),
    ("find Port tag<=1", "tag<=1: only = and != are supported"),
    ("find Port tag", 'tag: argument does not end in "=" followed by a value.'),
    ("find Port tag:x=1", "cannot specify key to check for non-map column tag"),
    ("destroy Mirror m9", 'no row "m9" in table Mirror'),
    ("destroy Mirror", "either --all or records argument should be specified"),
    ("--all destroy Mirror m0", "--all and records argument should not be specified together"),
    (M.format("select_vlan=4096"), "x: invalid select VLAN 4096 (must be 0..4095)"),
    (M.format("output_vlan=0"), "x: invalid output VLAN 0 (must be 1..4095)"),
    (M.format("snaplen=13"), "x: invalid snaplen 13 (must be 14..65535)"),
    ("--id=@p get Port p1 -- " + M.format("output_port=@p output_vlan=5"),
     "x: a mirror has output_port or output_vlan, not both"),
    ("set Bridge br0 flood_vlans=1,4096", "br0: invalid flood VLAN 4096 (must be 0..4095)"),
    ("--id=@n create NetFlow targets=1.2.3.4 -- set Bridge br0 netflow=@n",
     'NetFlow {u}: invalid target "1.2.3.4" (must be IP:PORT, e.g. 192.0.2.1:2055 or [2001:db8::1]:2055)'),
    ("--id=@n create NetFlow active_timeout=5 -- set Bridge br0 netflow=@n", "NetFlow {u}: at least 1 target required"),
    ("--id=@n create NetFlow targets=\\\"1.2.3.4:5\\\" engine_id=256 -- set Bridge br0 netflow=@n",
     "NetFlow {u}: invalid engine_id 256 (must be 0..255)"),
    ("--id=@s create sFlow targets=\\\"1.2.3.4:6343\\\" sampling=0 -- set Bridge br0 sflow=@s",
     "sFlow {u}: invalid sampling 0 (must be 1..4294967295)"),
    ("--id=@s create sFlow targets=\\\"1.2.3.4:99999\\\" -- set Bridge br0 sflow=@s",
     'sFlow {u}: invalid target "1.2.3.4:99999" (must be IP:PORT, e.g. 192.0.2.1:2055 or [2001:db8::1]:2055)'),
    ("--id=@i create IPFIX sampling=0 -- set Bridge br0 ipfix=@i", "IPFIX {u}: invalid sampling 0 (must be 1..4294967295)"),
    ("--id=@i create IPFIX cache_active_timeout=4201 -- set Bridge br0 ipfix=@i",
     "IPFIX {u}: invalid cache_active_timeout 4201 (must be 0..4200)"),
    ("--id=@i create IPFIX other_config:colour=red -- set Bridge br0 ipfix=@i",
     "IPFIX {u}: unknown key other_config:colour (this switch uses only: enable-input-sampling)"),
    ("--id=@s create sFlow targets=\\\"1.2.3.4:6343\\\" header=300 -- set Bridge br0 sflow=@s",
     "sFlow {u}: invalid header 300 (must be 14..256)"),
    ("--id=@n create NetFlow targets=\\\"1.2.3.4:5\\\" -- set Bridge br0 netflow=@n -- add Bridge br0 netflow @x "
     "-- --id=@x create NetFlow targets=\\\"1.2.3.4:6\\\"",
     '"add" operation would put 2 values in column netflow of table Bridge but the maximum number is 1'),
    (FT.format("flow_limit=-1"), "acl: invalid flow_limit -1 (must be 0..9223372036854775807)"),
    (FT.format("overflow_policy=bogus"), 'acl: invalid overflow_policy "bogus" (must be one of: "refuse", "evict")'),
    (FT.format("groups=g"), "acl: column groups is not supported by this switch (only [] is accepted)"),
    (FT.format("prefixes=ip_dst"), "acl: column prefixes is not supported by this switch (only [] is accepted)"),
    ("--id=@f create Flow_Table name=acl -- set Bridge br0 flow_tables:254=@f",
     "br0: invalid flow_tables key '254' (must be an integer 0..253)"),
    ("--id=@f create Flow_Table name=acl -- set Bridge br0 flow_tables:x=@f",
     "br0: invalid flow_tables key 'x' (must be an integer 0..253)"),
    ("--id=@f create Flow_Table name=acl -- set Bridge br0 'flow_tables={0=@f, 1=nope}'", '"nope" is not a valid UUID'),
])
def test_errors_name_what_was_wrong_and_change_nothing(config, text, message):
    config, _ = with_mirror(config)
    before = json.dumps(config, sort_keys=True)
    with pytest.raises(CommandError) as info:
        execute(config, chain(text))
    got = str(info.value)
    if message is None:    # an integrity error names the two rows' uuids
        assert re.fullmatch(r'transaction error: \{"details":"Table Bridge column mirrors row \S+ references '
                            rf'nonexistent row {U} in table Mirror.","error":"referential integrity violation"\}}', got)
    else:
        assert re.sub(r"[0-9a-f-]{36}", "{u}", got) == message
    assert json.dumps(config, sort_keys=True) == before


def test_mirrors_with_the_same_name_must_be_named_by_uuid(config):
    config, _ = with_mirror(config)
    config, _ = with_mirror(config)
    fails(config, "get Mirror m0 name", 'multiple rows in Mirror match "m0"')


def test_unanswered_mirror_statistics_print_as_an_empty_map(config):
    config, _ = with_mirror(config)

    class Runtime:
        def feature_column(self, table, column, name):
            return None
    assert out(config, "get Mirror m0 statistics", Runtime()) == [{}]
    assert render("get", [{}]) == "{}"


def test_flow_table_rows_references_and_collection(config):
    """OVS's commands: create with --id, a map entry by key, list/get as
    ovs-vsctl prints them; a row no flow_tables names goes at commit."""
    config, outputs = run(config, "--id=@ft create Flow_Table name=acl flow_limit=1000 overflow_policy=refuse "
                                  "-- set Bridge br0 flow_tables:0=@ft")
    ft = outputs[0]
    assert config["Flow_Table"] == {ft: {"name": "acl", "flow_limit": 1000, "overflow_policy": "refuse",
                                         "groups": [], "prefixes": [], "external_ids": {}}}
    br0 = uuid_of(config, "Bridge", "br0")
    assert config["Bridge"][br0]["flow_tables"] == {"0": ft}
    config, outputs = run(config, f"add Bridge br0 flow_tables 10={ft} 0={U} "
                                  "-- set Flow_Table acl flow_limit=5 -- get Bridge br0 flow_tables "
                                  "-- list Flow_Table acl")
    assert outputs[2] == [{"0": ft, "10": ft}]          # add keeps an existing key's value
    assert render("get", outputs[2], ["Bridge", "br0", "flow_tables"]) == f"{{0={ft}, 10={ft}}}"
    assert render("get", outputs[2]) == f'{{"0"={ft}, "10"={ft}}}'   # as a string map would print
    assert "flow_limit          : 5" in render("list", outputs[3], ["Flow_Table", "acl"])
    config, _ = run(config, "remove Bridge br0 flow_tables 0 -- clear Flow_Table acl flow_limit")
    assert config["Bridge"][br0]["flow_tables"] == {"10": ft}
    assert config["Flow_Table"][ft]["flow_limit"] is None
    config, _ = run(config, "destroy Flow_Table acl")       # still referenced: stays
    assert ft in config["Flow_Table"]
    config, _ = run(config, "clear Bridge br0 flow_tables")
    assert config["Flow_Table"] == {}
