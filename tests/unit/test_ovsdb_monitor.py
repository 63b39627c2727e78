"""OVSDB monitors, differential against OVS's own ovsdb-server: monitor
(update), monitor_cond (update2) and monitor_cond_since (update3) get the
same initial contents and the same notifications for the same transactions
(diffs of sets and maps, rows entering and leaving a condition,
monitor_cond_change); then real clients - ovsdb-client and OVS's Python
IDL - see changes made by vswitch's own vsctl, sent in the same event-loop
turn as the change."""
import json
import os
import subprocess
import time
import warnings

import pytest

from helpers.ovsdb_server import RawClient, ovsdb_thread
from test_ovsdb_transact import B0, I2, P1, P2, both, normalized, uuid_ref, where_uuid  # noqa: F401 (both: a fixture)
from test_vsctl_ovs_parity import ovsdb  # noqa: F401

MONITORS = [
    ("monitor", "m1", {"Port": {"columns": ["name", "tag", "trunks", "other_config"]},
                       "Interface": [{"columns": ["name", "type"], "select": {"modify": False}},
                                     {"columns": ["ofport_request"]}]}),
    ("monitor_cond", "m2", {"Port": [{"columns": ["name", "tag", "trunks", "other_config", "external_ids"],
                                      "where": [["tag", "==", 5]]}],
                            "Bridge": [{"columns": ["name", "ports", "fail_mode"]}]}),
    ("monitor_cond_since", "m3", {"Bridge": [{"columns": ["name", "ports"], "where": [True]}],
                                  "Open_vSwitch": [{"columns": ["bridges"]}]}),
]

CHANGES = [
    [{"op": "update", "table": "Port", "where": where_uuid(P1),
      "row": {"trunks": ["set", [2, 3]], "other_config": ["map", [["lacp-time", "slow"], ["bond-primary", "e1"]]]}}],
    [{"op": "update", "table": "Port", "where": where_uuid(P1), "row": {"tag": 7}}],        # leaves m2's condition
    [{"op": "update", "table": "Port", "where": where_uuid(P1), "row": {"tag": 5, "external_ids": ["map", [["a", "b"]]]}}],
    [{"op": "update", "table": "Port", "where": where_uuid(P1), "row": {"tag": ["set", []]}}],
    [{"op": "insert", "table": "Port", "uuid": P2, "row": {"name": "p2", "tag": 5, "interfaces": uuid_ref(I2)}},
     {"op": "insert", "table": "Interface", "uuid": I2, "row": {"name": "p2", "ofport_request": 4}},
     {"op": "mutate", "table": "Bridge", "where": where_uuid(B0), "mutations": [["ports", "insert", uuid_ref(P2)]]}],
    [{"op": "update", "table": "Interface", "where": where_uuid(I2), "row": {"ofport_request": 5}},
     {"op": "update", "table": "Bridge", "where": [], "row": {"fail_mode": "secure"}}],
    [{"op": "mutate", "table": "Bridge", "where": where_uuid(B0), "mutations": [["ports", "delete", uuid_ref(P1)]]}],
    [{"op": "update", "table": "Open_vSwitch", "where": [], "row": {"bridges": ["set", []]}}],
]


def replies_and_notifications(client, method, *params):
    """The reply (without its id) and the notifications sent before it."""
    reply = client.call(method, *params)
    notes, client.notifications = client.notifications, []
    notes = sorted((json.dumps(normalized(n["params"]), sort_keys=True), n["method"]) for n in notes)
    return normalized({k: reply.get(k) for k in ("result", "error")}), notes


def test_monitors_see_the_same_as_with_ovsdb_server(both):  # noqa: F811
    for method, monid, requests in MONITORS:
        theirs = replies_and_notifications(both.theirs, method, "Open_vSwitch", monid, requests,
                                           *(["00000000-0000-0000-0000-000000000000"] if method.endswith("since") else []))
        ours = replies_and_notifications(both.ours, method, "Open_vSwitch", monid, requests,
                                         *(["00000000-0000-0000-0000-000000000000"] if method.endswith("since") else []))
        assert ours == theirs, method
    for i, ops in enumerate(CHANGES):
        if i == 3:      # m2 now watches tag 7 instead of 5
            change = ("monitor_cond_change", "m2", "m2b", {"Port": [{"where": [["tag", "==", 7]]}]})
            assert replies_and_notifications(both.ours, *change) == replies_and_notifications(both.theirs, *change)
        theirs = replies_and_notifications(both.theirs, "transact", "Open_vSwitch", *ops)
        ours = replies_and_notifications(both.ours, "transact", "Open_vSwitch", *ops)
        assert ours == theirs, (i, ops)
    for monid in ("m1", "m2b", "zz"):
        assert (replies_and_notifications(both.ours, "monitor_cancel", monid)[0]["error"] is None) == (monid != "zz")


def test_a_monitor_of_runtime_columns_is_refreshed_not_spammed(tmp_path):
    from helpers.ovsdb_server import Runtime
    runtime = Runtime()
    with ovsdb_thread(tmp_path, runtime=runtime) as srv:
        srv.vsctl(["add-br", "br0"], ["add-port", "br0", "p1"])
        client = RawClient(srv.path)
        initial = client.call("monitor_cond", "Open_vSwitch", "m",
                              {"Interface": [{"columns": ["name", "ofport", "link_state", "statistics"],
                                              "where": [["name", "==", "p1"]]}]})["result"]
        (uuid, row), = initial["Interface"].items()
        assert row == {"initial": {"name": "p1", "ofport": 2}}
        runtime.values.update({("interface_ofport", None, "p1"): 1, ("netdev_column", "link_state", "p1"): "up",
                               ("interface_statistics", None, "p1"): {"rx_packets": 1}})
        srv.call(srv.server.db.refresh)
        note = client.notification()
        assert note["params"] == ["m", {"Interface": {uuid: {"modify": {
            "ofport": 1, "link_state": "up", "statistics": ["map", [["rx_packets", 1]]]}}}}]
        # Nothing changed: nothing sent.  Counters only every 5 s.
        runtime.values[("interface_statistics", None, "p1")] = {"rx_packets": 2}
        srv.call(srv.server.db.refresh)
        runtime.values[("netdev_column", "link_state", "p1")] = "down"
        srv.call(srv.server.db.refresh)
        note = client.notification()
        assert note["params"][1]["Interface"][uuid] == {"modify": {"link_state": "down"}}
        srv.server.db.stats_due = 0
        srv.call(srv.server.db.refresh)
        note = client.notification()
        assert note["params"][1]["Interface"][uuid] == {"modify": {"statistics": ["map", [["rx_packets", 2]]]}}
        client.close()


def test_updates_of_a_vsctl_change_are_sent_in_the_same_loop_turn(tmp_path, monkeypatch):
    from vswitch.ovsdb import server as ovsdb_server
    sent = []
    original = ovsdb_server.Connection.notify

    def counting(self, method, params):
        sent.append(method)
        return original(self, method, params)
    monkeypatch.setattr(ovsdb_server.Connection, "notify", counting)
    with ovsdb_thread(tmp_path) as srv:
        client = RawClient(srv.path)
        client.call("monitor", "Open_vSwitch", None, {"Bridge": {"columns": ["name"]}})

        def change_and_count():
            before = len(sent)
            srv.backend.vsctl(["add-br", "br0"])
            return len(sent) - before
        assert srv.call(change_and_count) == 1      # within the one callback that changed it
        note = client.notification()
        assert list(note["params"][1]["Bridge"].values()) == [{"new": {"name": "br0"}}]
        client.close()


def test_ovsdb_client_monitor_sees_vsctl_changes(tmp_path):
    with ovsdb_thread(tmp_path) as srv:
        srv.vsctl(["add-br", "br0"])
        proc = subprocess.Popen(["stdbuf", "-oL", "ovsdb-client", "monitor", srv.remote, "Open_vSwitch", "Bridge",
                                 "name,fail_mode", "--format=csv"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            lines = [proc.stdout.readline() for _ in range(2)]
            assert lines[1].split(",")[1:] == ["initial", "br0", "[]\n"]
            srv.vsctl(["add-br", "br9"], ["set-fail-mode", "br0", "secure"])
            want = {("insert", "br9", "[]"), ("new", "br0", "secure")}
            got = set()
            deadline = time.monotonic() + 5
            while not want <= got and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if line.count(",") == 3 and not line.startswith("row"):
                    got.add(tuple(line.strip().split(",")[1:]))
            assert want <= got
        finally:
            proc.kill()
            proc.wait()


def test_python_idl_sees_vsctl_changes_and_writes_through(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import ovs.db.idl
        import ovs.poller
    with ovsdb_thread(tmp_path) as srv:
        srv.vsctl(["add-br", "br0"])
        helper = ovs.db.idl.SchemaHelper(location="/usr/share/openvswitch/vswitch.ovsschema")
        helper.register_all()
        idl = ovs.db.idl.Idl(srv.remote, helper)

        def run_until(predicate, timeout=5):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                idl.run()
                if predicate():
                    return True
                poller = ovs.poller.Poller()
                idl.wait(poller)
                poller.timer_wait(50)
                poller.block()
            return False

        def bridges():
            return sorted(row.name for row in idl.tables["Bridge"].rows.values())
        try:
            assert run_until(lambda: bridges() == ["br0"])
            srv.vsctl(["add-br", "br1"], ["add-port", "br1", "p1", "tag=4"])
            assert run_until(lambda: bridges() == ["br0", "br1"])
            ports = {row.name: row.tag for row in idl.tables["Port"].rows.values()}
            assert ports == {"br0": [], "br1": [], "p1": [4]}
            # And the other way: an IDL transaction reaches vsctl.
            txn = ovs.db.idl.Transaction(idl)
            port = next(row for row in idl.tables["Port"].rows.values() if row.name == "p1")
            port.tag = [9]
            port.setkey("external_ids", "owner", "idl")
            assert txn.commit_block() == ovs.db.idl.Transaction.SUCCESS
            assert srv.vsctl(["get", "Port", "p1", "tag", "external_ids"]) == [[9, {"owner": "idl"}]]
            txn = ovs.db.idl.Transaction(idl)
            next(row for row in idl.tables["Bridge"].rows.values() if row.name == "br0").stp_enable = True
            assert txn.commit_block() == ovs.db.idl.Transaction.ERROR
            assert "stp_enable" in txn.get_error()
        finally:
            idl.close()


def test_monitor_errors(tmp_path):
    with ovsdb_thread(tmp_path) as srv:
        client = RawClient(srv.path)
        for params in (["Open_vSwitch", "a", {"Nope": {}}], ["Open_vSwitch", "a", {"Port": {"columns": ["nope"]}}],
                       ["Open_vSwitch", "a", {"Port": {"where": [["tag", "==", 1]]}}], ["Open_vSwitch", "a", 5],
                       ["Nope", "a", {}]):
            reply = client.call("monitor", *params)
            assert reply["error"]["error"] in ("syntax error", "unknown database"), params
        assert client.call("monitor", "Open_vSwitch", "a", {"Port": {}})["error"] is None
        assert client.call("monitor", "Open_vSwitch", "a", {"Port": {}})["error"]["details"] == "duplicate monitor ID"
        assert client.call("monitor_cond_change", "zz", "y", {})["error"]["error"] == "unknown monitor"
        assert client.call("echo", "still here")["result"] == ["still here"]
        client.close()


@pytest.mark.skipif(not os.path.exists("/usr/share/openvswitch/vswitch.ovsschema"), reason="needs OVS's schema")
def test_served_schema_is_ovs_schema_plus_vswitch_statistics(tmp_path):
    with open("/usr/share/openvswitch/vswitch.ovsschema") as f:
        theirs = json.load(f)
    with ovsdb_thread(tmp_path) as srv:
        client = RawClient(srv.path)
        ours = client.call("get_schema", "Open_vSwitch")["result"]
        client.close()
    assert ours["name"] == theirs["name"] and ours["version"] == theirs["version"]
    assert set(ours["tables"]) == set(theirs["tables"])
    for table, schema in theirs["tables"].items():
        extra = set(ours["tables"][table]["columns"]) - set(schema["columns"])
        assert extra == ({"statistics"} if table in ("NetFlow", "sFlow", "IPFIX") else set()), table
        for column, spec in schema["columns"].items():
            assert ours["tables"][table]["columns"][column] == spec, (table, column)
        assert {k: v for k, v in ours["tables"][table].items() if k != "columns"} == \
            {k: v for k, v in schema.items() if k != "columns"}
