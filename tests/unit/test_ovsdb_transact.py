"""OVSDB transactions, differential: the same raw RFC 7047 transactions go
to Open vSwitch's own ovsdb-server (its schema, a private instance) and to
vswitch's OVSDB server (tests/helpers/ovsdb_server.py: the server and the
config commit path, without a switch); results, errors and the rows left
behind must be the same.  Rows are inserted with fixed uuids (OVS's "uuid"
member) so the two databases agree on every uuid; uuids a server makes up
are numbered in order of appearance before comparing.  Then vswitch's own
refusals: what the switch does not implement is a constraint violation
naming the column, and what vsctl's checks refuse is refused here too."""
import json
import re

import pytest

from helpers.ovsdb_server import RawClient, ovsdb_thread
from test_vsctl_ovs_parity import ovsdb  # noqa: F401  (a private ovsdb-server: the fixture)

B0, P0, I0 = "b0000000-0000-4000-8000-000000000000", "b0000000-0000-4000-8000-000000000001", \
    "b0000000-0000-4000-8000-000000000002"
P1, I1 = "b0000000-0000-4000-8000-000000000003", "b0000000-0000-4000-8000-000000000004"
P2, I2 = "b0000000-0000-4000-8000-000000000005", "b0000000-0000-4000-8000-000000000006"
M0 = "b0000000-0000-4000-8000-000000000007"
F0 = "b0000000-0000-4000-8000-000000000008"
FIXED = {B0, P0, I0, P1, I1, P2, I2, M0, F0}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def uuid_ref(u):
    return ["uuid", u]


def where_uuid(u):
    return [["_uuid", "==", uuid_ref(u)]]


SETUP = [
    {"op": "insert", "table": "Bridge", "uuid": B0, "row": {"name": "br0", "ports": ["set", [uuid_ref(P0), uuid_ref(P1)]]}},
    {"op": "insert", "table": "Port", "uuid": P0, "row": {"name": "br0", "interfaces": uuid_ref(I0)}},
    {"op": "insert", "table": "Interface", "uuid": I0, "row": {"name": "br0", "type": "internal"}},
    {"op": "insert", "table": "Port", "uuid": P1,
     "row": {"name": "p1", "tag": 5, "trunks": ["set", [1, 2]], "interfaces": uuid_ref(I1),
             "other_config": ["map", [["lacp-time", "fast"]]]}},
    {"op": "insert", "table": "Interface", "uuid": I1, "row": {"name": "p1"}},
]


class Both:
    """Our server and OVS's, set up alike (the same Open_vSwitch row uuid)."""

    def __init__(self, theirs_path, ours_srv):
        self.ours_srv = ours_srv
        self.root = next(iter(ours_srv.backend.config["Open_vSwitch"]))
        self.theirs = RawClient(theirs_path)
        self.ours = RawClient(ours_srv.path)
        # Empty OVS's database: without its root row, everything is garbage.
        self.theirs.call("transact", "Open_vSwitch", {"op": "delete", "table": "Open_vSwitch", "where": []})
        bridges = {"bridges": uuid_ref(B0)}
        setup_theirs = [{"op": "insert", "table": "Open_vSwitch", "uuid": self.root, "row": bridges}, *SETUP]
        setup_ours = [{"op": "update", "table": "Open_vSwitch", "where": [], "row": bridges}, *SETUP]
        for client, ops in ((self.theirs, setup_theirs), (self.ours, setup_ours)):
            result = client.call("transact", "Open_vSwitch", *ops)["result"]
            assert all("error" not in r for r in result), result

    def transact(self, *ops):
        """(their reply, our reply) without the ids."""
        return tuple({key: reply[key] for key in ("result", "error")}
                     for reply in (self.theirs.call("transact", "Open_vSwitch", *ops),
                                   self.ours.call("transact", "Open_vSwitch", *ops)))

    def close(self):
        self.theirs.close()
        self.ours.close()


def normalized(message):
    """uuids the servers made up -> <1>, <2>... in order of appearance."""
    text = json.dumps(message, sort_keys=True)
    labels = {}

    def label(m):
        u = m.group(0)
        if u in FIXED:
            return u
        return labels.setdefault(u, f"<{len(labels) + 1}>")
    return json.loads(UUID.sub(label, text))


@pytest.fixture
def both(ovsdb, tmp_path):  # noqa: F811
    with ovsdb_thread(tmp_path) as srv:
        both = Both(ovsdb["db"].removeprefix("unix:"), srv)
        FIXED.add(both.root)        # the same uuid on both sides: kept as it is
        yield both
        both.close()


def select_all(table, *columns):
    return {"op": "select", "table": table, "where": [], "columns": list(columns)}


def rows_sorted(result):
    """A select result with its rows sorted (servers may order rows differently)."""
    return sorted(json.dumps(row, sort_keys=True) for row in result["rows"])


# Each case: a transaction; the replies (uuids normalized) must be equal.
CASES = {
    "select": [{"op": "select", "table": "Port", "where": [["name", "==", "p1"]],
                "columns": ["name", "tag", "trunks", "other_config", "interfaces", "_uuid"]}],
    "select by uuid": [{"op": "select", "table": "Interface", "where": where_uuid(I1), "columns": ["name", "type"]}],
    "select includes": [{"op": "select", "table": "Port", "where": [["trunks", "includes", ["set", [2]]]],
                         "columns": ["name"]}],
    "select excludes": [{"op": "select", "table": "Port", "where": [["trunks", "excludes", 2], ["name", "!=", "x"]],
                         "columns": ["name"]}],
    "select <": [{"op": "select", "table": "Port", "where": [["tag", "<", 6], ["tag", ">=", 5]], "columns": ["name"]}],
    "unknown table": [{"op": "select", "table": "Nope", "where": []}],
    "unknown column": [{"op": "select", "table": "Port", "where": [["nope", "==", 1]]}],
    "wrong type": [{"op": "select", "table": "Port", "where": [["tag", "==", "x"]]}],
    "< on a set": [{"op": "select", "table": "Port", "where": [["trunks", "<", 1]]}],
    "too many members": [{"op": "select", "table": "Port", "where": [["tag", "==", ["set", [1, 2]]]]}],
    "bad uuid": [{"op": "update", "table": "Port", "where": [["_uuid", "==", ["uuid", "nothex"]]], "row": {"tag": 1}}],
    "immutable": [{"op": "update", "table": "Port", "where": [], "row": {"name": "x"}}],
    "out of range": [{"op": "update", "table": "Port", "where": where_uuid(P1), "row": {"tag": 5000}}],
    "enum": [{"op": "update", "table": "Bridge", "where": [], "row": {"fail_mode": "open"}}],
    "unknown row column": [{"op": "update", "table": "Port", "where": [], "row": {"nope": 1}}],
    "missing reference": [{"op": "insert", "table": "Port", "row": {"name": "zz"}}],
    "dangling named-uuid": [{"op": "mutate", "table": "Bridge", "where": [],
                             "mutations": [["mirrors", "insert", ["named-uuid", "nope"]]]}],
    "duplicate uuid-name": [{"op": "insert", "table": "Interface", "uuid-name": "a", "row": {"name": "zz"}},
                            {"op": "insert", "table": "Interface", "uuid-name": "a", "row": {"name": "zy"}}],
    "still referenced": [{"op": "delete", "table": "Interface", "where": where_uuid(I1)}],
    "abort": [{"op": "comment", "comment": "x"}, {"op": "abort"}, {"op": "comment", "comment": "y"}],
    "unknown op": [{"op": "comment", "comment": "x"}, {"op": "bogus"}],
    "missing member": [{"op": "comment"}, {"op": "comment", "comment": "y"}],
    "not an object": [5],
    "assert": [{"op": "assert", "lock": "l"}],
    "wait fails": [{"op": "wait", "table": "Port", "where": where_uuid(P1), "columns": ["tag"], "until": "==",
                    "rows": [{"tag": 1}], "timeout": 0}],
    "wait passes": [{"op": "wait", "table": "Port", "where": where_uuid(P1), "columns": ["tag", "name"],
                     "until": "==", "rows": [{"tag": 5, "name": "p1"}], "timeout": 0},
                    {"op": "wait", "table": "Port", "where": [], "columns": ["name"], "until": "!=",
                     "rows": [], "timeout": 0}],
    "division by zero": [{"op": "mutate", "table": "Port", "where": where_uuid(P1), "mutations": [["tag", "/=", 0]]}],
    "mutate out of range": [{"op": "mutate", "table": "Port", "where": where_uuid(P1),
                             "mutations": [["tag", "+=", 5000]]}],
    "mutate immutable": [{"op": "mutate", "table": "Port", "where": [], "mutations": [["name", "+=", 1]]}],
    "mutate": [{"op": "mutate", "table": "Port", "where": where_uuid(P1),
                "mutations": [["tag", "*=", 3], ["trunks", "insert", ["set", [7, 1]]], ["trunks", "delete", 2],
                              ["other_config", "insert", ["map", [["lacp-time", "slow"], ["bond-primary", "e1"]]]],
                              ["external_ids", "insert", ["map", [["a", "1"], ["b", "2"]]]],
                              ["external_ids", "delete", ["set", ["a"]]]]},
               select_all("Port", "name", "tag", "trunks", "other_config", "external_ids")],
    "mutate map delete pairs": [{"op": "mutate", "table": "Port", "where": [],
                                 "mutations": [["other_config", "delete", ["map", [["lacp-time", "fast"]]]]]},
                                select_all("Port", "name", "other_config")],
    "second root": [{"op": "insert", "table": "Open_vSwitch", "row": {}}],
    "duplicate index": [{"op": "insert", "table": "Bridge", "uuid-name": "x", "row": {"name": "br0"}},
                        {"op": "mutate", "table": "Open_vSwitch", "where": [],
                         "mutations": [["bridges", "insert", ["named-uuid", "x"]]]}],
    "nonexistent bridge": [{"op": "mutate", "table": "Open_vSwitch", "where": [],
                            "mutations": [["bridges", "insert", uuid_ref(M0)]]}],
    "garbage collected": [{"op": "insert", "table": "Mirror", "uuid": M0, "row": {"name": "m"}},
                          select_all("Mirror", "name")],
    "add a port": [{"op": "insert", "table": "Port", "uuid": P2, "row": {"name": "p2", "interfaces": uuid_ref(I2)}},
                   {"op": "insert", "table": "Interface", "uuid": I2, "row": {"name": "p2", "ofport_request": 7}},
                   {"op": "mutate", "table": "Bridge", "where": where_uuid(B0),
                    "mutations": [["ports", "insert", uuid_ref(P2)]]},
                   select_all("Interface", "name", "ofport_request"), {"op": "commit", "durable": False}],
    "remove a port": [{"op": "mutate", "table": "Bridge", "where": [], "mutations": [["ports", "delete", uuid_ref(P1)]]},
                      select_all("Port", "name"), select_all("Interface", "name")],
    "weak reference": [{"op": "insert", "table": "Mirror", "uuid": M0,
                        "row": {"name": "m", "select_src_port": uuid_ref(P1), "output_port": uuid_ref(P0)}},
                       {"op": "mutate", "table": "Bridge", "where": [], "mutations": [["mirrors", "insert", uuid_ref(M0)]]},
                       {"op": "mutate", "table": "Bridge", "where": [], "mutations": [["ports", "delete", uuid_ref(P1)]]},
                       select_all("Mirror", "name", "select_src_port", "output_port")],
    "flow table": [{"op": "insert", "table": "Flow_Table", "uuid": F0,
                    "row": {"name": "acl", "flow_limit": 1000, "overflow_policy": "refuse"}},
                   {"op": "mutate", "table": "Bridge", "where": [],
                    "mutations": [["flow_tables", "insert", ["map", [[0, uuid_ref(F0)]]]]]},
                   select_all("Flow_Table", "name", "flow_limit", "overflow_policy", "groups", "prefixes"),
                   select_all("Bridge", "flow_tables")],
    "flow table collected": [{"op": "insert", "table": "Flow_Table", "uuid": F0, "row": {"name": "acl"}},
                             select_all("Flow_Table", "name")],
    "flow table bad policy": [{"op": "insert", "table": "Flow_Table", "row": {"overflow_policy": "bogus"}}],
    "flow table negative limit": [{"op": "insert", "table": "Flow_Table", "row": {"flow_limit": -1}}],
    "delete a bridge": [{"op": "update", "table": "Open_vSwitch", "where": [], "row": {"bridges": ["set", []]}},
                        select_all("Bridge", "name"), select_all("Port", "name"), select_all("Interface", "name")],
}


@pytest.mark.parametrize("name", CASES)
def test_transaction_gets_the_same_reply(both, name):
    theirs, ours = both.transact(*CASES[name])
    assert normalized(ours) == normalized(theirs), name


@pytest.mark.parametrize("name", ["mutate", "add a port", "remove a port", "weak reference", "delete a bridge",
                                  "flow table"])
def test_state_after_a_change_is_the_same(both, name):
    both.transact(*CASES[name])
    for table, columns in (("Bridge", ["name", "ports", "mirrors"]), ("Port", ["name", "tag", "trunks", "interfaces"]),
                           ("Interface", ["name", "type", "ofport_request"]), ("Mirror", ["name", "select_src_port"]),
                           ("Flow_Table", ["name", "flow_limit", "overflow_policy"]), ("Bridge", ["flow_tables"]),
                           ("Open_vSwitch", ["bridges"])):
        theirs, ours = both.transact({"op": "select", "table": table, "where": [], "columns": ["_uuid", *columns]})
        assert rows_sorted(ours["result"][0]) == rows_sorted(theirs["result"][0]), table


def test_errors_outside_transactions_are_the_same(both):
    for method, params in (("get_schema", ["Nope"]), ("transact", []), ("transact", ["Nope", {"op": "comment"}]),
                           ("monitor_cancel", ["zz"]), ("unlock", ["l2"])):
        theirs, ours = (c.call(method, *params) for c in (both.theirs, both.ours))
        assert theirs.get("result") is None and ours.get("result") is None
        error_of = (lambda e: e if isinstance(e, str) else e["error"])
        assert error_of(ours["error"]) == error_of(theirs["error"]), method
    assert both.ours.call("echo", 1, "a")["result"] == both.theirs.call("echo", 1, "a")["result"] == [1, "a"]
    assert both.ours.call("list_dbs")["result"] == ["Open_vSwitch"]
    assert "Open_vSwitch" in both.theirs.call("list_dbs")["result"]


# ---------------------------------------------------------------- vswitch's refusals

def ours_only(both, *ops):
    return both.ours.call("transact", "Open_vSwitch", *ops)["result"]


@pytest.mark.parametrize("table, row, column", [
    ("Bridge", {"stp_enable": True}, "stp_enable"),
    ("Bridge", {"datapath_type": "system"}, "datapath_type"),
    ("Port", {"qos": uuid_ref(M0)}, "qos"),
    ("Interface", {"mtu_request": 9000}, "mtu_request"),
    ("Interface", {"ofport": 5}, "ofport"),
    ("Interface", {"link_state": "down"}, "link_state"),
    ("Open_vSwitch", {"ovs_version": "2.17"}, "ovs_version"),
    ("Open_vSwitch", {"other_config": ["map", [["dpdk-init", "true"]]]}, "other_config"),
])
def test_columns_the_switch_does_not_act_on_are_refused_by_name(both, table, row, column):
    before = json.dumps(both.ours_srv.backend.config, sort_keys=True)
    result = ours_only(both, {"op": "update", "table": table, "where": [], "row": row})
    assert result[0]["error"] == "constraint violation"
    assert f"{table} column {column}" in result[0]["details"]
    assert json.dumps(both.ours_srv.backend.config, sort_keys=True) == before


def test_default_values_and_what_the_switch_states_are_accepted(both):
    # An IDL that writes every column of a new row writes these defaults.
    result = ours_only(both, {"op": "update", "table": "Bridge", "where": [],
                              "row": {"stp_enable": False, "datapath_type": "netdev", "auto_attach": ["set", []]}},
                       {"op": "update", "table": "Bridge", "where": [], "row": {"datapath_type": ""}},
                       select_all("Bridge", "datapath_type"))
    assert result == [{"count": 1}, {"count": 1}, {"rows": [{"datapath_type": "netdev"}]}]


def test_flow_table_columns_the_switch_does_not_act_on_are_refused_by_name(both):
    before = json.dumps(both.ours_srv.backend.config, sort_keys=True)
    for column, value in (("groups", "g"), ("prefixes", "ip_dst")):
        result = ours_only(both, {"op": "insert", "table": "Flow_Table", "uuid-name": "ft",
                                  "row": {"name": "acl", column: value}},
                           {"op": "mutate", "table": "Bridge", "where": [],
                            "mutations": [["flow_tables", "insert", ["map", [[0, ["named-uuid", "ft"]]]]]]})
        assert result[-1]["error"] == "constraint violation", result
        assert f"column {column} is not supported" in result[-1]["details"]
    assert json.dumps(both.ours_srv.backend.config, sort_keys=True) == before


def test_tables_the_switch_does_not_implement_refuse_inserts(both):
    result = ours_only(both, {"op": "insert", "table": "QoS", "row": {"type": "linux-htb"}})
    assert result[0] == {"error": "constraint violation",
                         "details": "vswitch does not implement table QoS: it stays empty"}
    assert ours_only(both, select_all("QoS", "type")) == [{"rows": []}]


@pytest.mark.parametrize("ops, words", [
    ([{"op": "update", "table": "Interface", "where": where_uuid(I1), "row": {"type": "gre"}}],
     ['invalid type "gre"']),
    ([{"op": "mutate", "table": "Port", "where": where_uuid(P1),
       "mutations": [["other_config", "insert", ["map", [["colour", "red"]]]]]}], ["unknown key other_config:colour"]),
    ([{"op": "update", "table": "Interface", "where": where_uuid(I1), "row": {"name": "x"}}], ["immutable"]),
    ([{"op": "insert", "table": "Port", "uuid": P2, "row": {"name": "p2", "interfaces": uuid_ref(I1)}},
      {"op": "mutate", "table": "Bridge", "where": [], "mutations": [["ports", "insert", uuid_ref(P2)]]}],
     ["Interface p1 is in two Port rows"]),
    ([{"op": "delete", "table": "Open_vSwitch", "where": []}], ["exactly one row"]),
    ([{"op": "insert", "table": "SSL", "uuid-name": "s", "row": {"private_key": "/nope/key.pem",
                                                                  "certificate": "/nope/cert.pem",
                                                                  "ca_cert": "/nope/ca.pem"}},
      {"op": "update", "table": "Open_vSwitch", "where": [], "row": {"ssl": ["named-uuid", "s"]}}], ["/nope/key.pem"]),
])
def test_what_vsctl_refuses_ovsdb_refuses(both, ops, words):
    before = json.dumps(both.ours_srv.backend.config, sort_keys=True)
    result = ours_only(both, *ops)
    error = result[-1]
    assert error["error"] == "constraint violation", result
    for word in words:
        assert word in error["details"]
    assert json.dumps(both.ours_srv.backend.config, sort_keys=True) == before


def test_one_store_for_vsctl_and_ovsdb(both):
    """vsctl's commands and OVSDB transactions change one config, each in
    one commit, and each sees the other's rows."""
    srv = both.ours_srv
    commits = srv.backend.commits
    assert ours_only(both, {"op": "mutate", "table": "Open_vSwitch", "where": [],
                            "mutations": [["next_cfg", "+=", 1]]},
                     {"op": "update", "table": "Port", "where": where_uuid(P1), "row": {"tag": 9}},
                     {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg"]}
                     )[2] == {"rows": [{"next_cfg": 1}]}
    assert srv.backend.commits == commits + 1
    assert srv.vsctl(["get", "Port", "p1", "tag"], ["list-ports", "br0"]) == [[9], ["p1"]]
    srv.vsctl(["add-port", "br0", "p3", "tag=3"], ["set-controller", "br0", "tcp:127.0.0.1:6653"])
    assert srv.backend.commits == commits + 2
    rows = ours_only(both, {"op": "select", "table": "Port", "where": [["name", "==", "p3"]], "columns": ["tag"]},
                     {"op": "select", "table": "Controller", "where": [], "columns": ["target", "_uuid"]},
                     {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg", "cur_cfg"]})
    assert rows[0] == {"rows": [{"tag": 3}]}
    assert [r["target"] for r in rows[1]["rows"]] == ["tcp:127.0.0.1:6653"]
    assert rows[2] == {"rows": [{"next_cfg": 1, "cur_cfg": 1}]}
    # The Controller row keeps its uuid; an OVSDB write of it reaches vsctl.
    controller = rows[1]["rows"][0]["_uuid"]
    assert ours_only(both, {"op": "update", "table": "Controller", "where": [["_uuid", "==", controller]],
                            "row": {"target": "ptcp:6654"}}) == [{"count": 1}]
    assert srv.vsctl(["get-controller", "br0"]) == [["ptcp:6654"]]
    again = ours_only(both, {"op": "select", "table": "Controller", "where": [], "columns": ["_uuid"]})
    assert again == [{"rows": [{"_uuid": controller}]}]


def test_runtime_columns_are_read_from_the_switch(tmp_path):
    from helpers.ovsdb_server import Runtime
    runtime = Runtime({("interface_ofport", None, "p1"): 3, ("netdev_column", "link_state", "p1"): "up",
                       ("interface_statistics", None, "p1"): {"rx_packets": 10, "tx_packets": 4}})
    with ovsdb_thread(tmp_path, runtime=runtime) as srv:
        srv.vsctl(["add-br", "br0"], ["add-port", "br0", "p1"])
        client = RawClient(srv.path)
        reply = client.call("transact", "Open_vSwitch", {
            "op": "select", "table": "Interface", "where": [["name", "==", "p1"]],
            "columns": ["ofport", "link_state", "statistics", "admin_state"]})
        assert reply["result"] == [{"rows": [{"ofport": 3, "link_state": "up", "admin_state": ["set", []],
                                              "statistics": ["map", [["rx_packets", 10], ["tx_packets", 4]]]}]}]
        client.close()
