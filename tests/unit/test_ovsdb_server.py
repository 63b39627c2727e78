"""The OVSDB server's protocol and its bounds: bad input gets an RFC error
object or a closed connection and never stops other clients; a client that
does not read its updates is disconnected; many pipelined requests are
answered a budget per loop turn; locks, waits with timeouts, cancel; the
stream framing; random transactions never make the server fail."""
import json
import random

import pytest

from helpers.ovsdb_server import RawClient, ovsdb_thread
from helpers.wait import wait_until
from vswitch.ovsdb.server import FramingError, Splitter, parse_remote


@pytest.fixture
def srv(tmp_path):
    with ovsdb_thread(tmp_path, max_backlog=256 * 1024, max_message=1 << 20) as srv:
        srv.vsctl(["add-br", "br0"], ["add-port", "br0", "p1"])
        yield srv


def still_serving(srv):
    client = RawClient(srv.path)
    try:
        return client.call("echo", "ok")["result"] == ["ok"]
    finally:
        client.close()


@pytest.mark.parametrize("data", [
    b'{"method": "echo", "params": [1], "id": 1',        # cut short, then garbage
    b'{"method": "echo", "params": [}, "id": 1}',
    b"5 ",
    b'"a string"',
    b"[1, 2]",
    b'{"method": 5, "params": [], "id": 1}',
    b'{"method": "echo", "params": {}, "id": 1}',
    b'{"method": "echo", "id": 1}',
    b"[" * 200 + b"]" * 200,
    b'{"a": "' + b"x" * (2 << 20) + b'"}',
    b"\xff\xfe{}",
    b'{"method": "echo", "params": ["\xff"], "id": 1}',
])
def test_malformed_input_closes_only_that_connection(srv, data):
    client = RawClient(srv.path)
    bystander = RawClient(srv.path)
    bystander.call("monitor", "Open_vSwitch", "m", {"Bridge": {"columns": ["name"]}})
    try:
        try:
            client.send_raw(data)
        except (BrokenPipeError, ConnectionResetError):
            pass                # closed before it had all of it: fine
        if data.startswith(b'{"method": "echo", "params": [1], "id": 1'):
            client.send_raw(b"}}}")
        assert client.closed_by_server()
        assert still_serving(srv)
        srv.vsctl(["add-br", "br1"])
        assert bystander.notification()["method"] == "update"
    finally:
        client.close()
        bystander.close()


def test_bad_requests_get_error_objects_and_the_connection_stays(srv):
    client = RawClient(srv.path)
    assert client.call("nope")["error"]["error"] == "unknown method"
    assert client.call("transact")["error"]["error"] == "syntax error"
    assert client.call("transact", "Open_vSwitch", {"op": "update", "table": "Port", "where": [["name", "==", "p1"]],
                                                      "row": {"tag": "ten"}})["result"][0]["error"] == "syntax error"
    assert client.call("transact", "Open_vSwitch", {"op": "insert", "table": "Port", "row": {"name": "p9",
                       "interfaces": ["uuid", "11111111-2222-3333-4444-555555555555"]}})["result"][1]["error"] \
        == "referential integrity violation"
    assert client.call("lock", 5)["error"]["error"] == "syntax error"
    client.send({"method": "echo", "params": [], "id": None})       # a notification: no reply
    client.send({"result": [], "error": None, "id": 77})            # a stray reply: ignored
    assert client.call("echo", "x")["result"] == ["x"]
    client.close()


def test_a_client_that_does_not_read_its_updates_is_disconnected(srv):
    lazy = RawClient(srv.path)
    lazy.call("monitor", "Open_vSwitch", "m", {"Port": {"columns": ["name", "external_ids"]}})
    reader = RawClient(srv.path)
    reader.call("monitor", "Open_vSwitch", "m", {"Bridge": {"columns": ["name", "external_ids"]}})
    big = "x" * 20000
    for i in range(150):        # 3 MB of updates for `lazy`, which reads none
        srv.vsctl(["set", "Port", "p1", f"external_ids:k={big}{i}"])
    assert len(srv.server.connections) == 1
    srv.vsctl(["set", "Bridge", "br0", "external_ids:x=1"])
    note = reader.notification()
    assert list(note["params"][1]["Bridge"].values())[0]["new"]["external_ids"] == ["map", [["x", "1"]]]
    assert lazy.closed_by_server()
    lazy.close()
    reader.close()


def test_pipelined_requests_are_all_answered(srv):
    client = RawClient(srv.path)
    n = 2000
    client.send_raw(b"".join(json.dumps({"method": "echo", "params": [i], "id": i}).encode() for i in range(n)))
    other = RawClient(srv.path)
    assert other.call("echo", "me")["result"] == ["me"]
    assert [client.recv()["result"] for _ in range(n)] == [[i] for i in range(n)]
    client.close()
    other.close()


def test_locks(srv):
    a, b, c = (RawClient(srv.path) for _ in range(3))
    assert a.call("lock", "L")["result"] == {"locked": True}
    assert b.call("lock", "L")["result"] == {"locked": False}
    assert a.call("lock", "L")["error"]["details"] == 'must issue "unlock" before new "lock"'
    assert b.call("transact", "Open_vSwitch", {"op": "assert", "lock": "L"})["result"][0]["error"] == "not owner"
    assert a.call("transact", "Open_vSwitch", {"op": "assert", "lock": "L"},
                  {"op": "comment", "comment": "mine"})["result"] == [{}, {}]
    assert a.call("unlock", "L")["result"] == {}
    assert b.notification() == {"id": None, "method": "locked", "params": ["L"]}
    assert c.call("steal", "L")["result"] == {"locked": True}
    assert b.notification() == {"id": None, "method": "stolen", "params": ["L"]}
    c.close()                   # a closed owner lets go
    assert b.call("lock", "M")["result"] == {"locked": True}
    assert a.call("lock", "L")["result"] == {"locked": True}
    a.close()
    b.close()


def test_waits_block_until_the_condition_holds_time_out_or_are_canceled(srv):
    client = RawClient(srv.path)
    wait = {"op": "wait", "table": "Port", "where": [["name", "==", "p1"]], "columns": ["tag"], "until": "==",
            "rows": [{"tag": 9}]}
    request_id = client.request("transact", "Open_vSwitch", dict(wait, timeout=10000),
                                {"op": "select", "table": "Port", "where": [["name", "==", "p1"]],
                                 "columns": ["tag"]})
    assert still_serving(srv)
    srv.vsctl(["set", "Port", "p1", "tag=9"])
    assert client.reply_to(request_id)["result"] == [{}, {"rows": [{"tag": 9}]}]
    reply = client.call("transact", "Open_vSwitch", dict(wait, rows=[{"tag": 3}], timeout=100))
    assert reply["result"] == [{"error": "timed out", "details": '"wait" timed out after 100 ms'}]
    request_id = client.request("transact", "Open_vSwitch", dict(wait, rows=[{"tag": 3}]))
    client.send({"method": "cancel", "params": [request_id], "id": None})
    assert client.reply_to(request_id)["error"] == {"error": "canceled"}
    assert srv.server.parked == []
    client.close()


def test_random_transactions_never_fail_the_server(srv):
    """Fuzz: every reply is a result array or an RFC error, never an
    internal error, and the store stays valid."""
    rng = random.Random(7)
    atoms = [0, -1, 5, 4096, 2 ** 70, 1.5, True, "", "p1", "br0", "x", None, [], {}, ["uuid", "zz"],
             ["named-uuid", "n"], ["set", [1, 2]], ["map", [["a", "b"]]], ["uuid", "11111111-2222-3333-4444-555555555555"]]
    tables = ["Bridge", "Port", "Interface", "Mirror", "Open_vSwitch", "QoS", "Controller", "Nope", 5]
    columns = ["name", "tag", "trunks", "ports", "interfaces", "other_config", "external_ids", "bridges", "_uuid",
               "type", "mirrors", "select_all", "nope", 3]
    ops = ["insert", "select", "update", "mutate", "delete", "wait", "commit", "abort", "comment", "assert", "x"]

    def clause():
        return rng.choice([[rng.choice(columns), rng.choice(["==", "!=", "<", "includes", "excludes", "~"]),
                            rng.choice(atoms)], 5, ["x"], True])

    def op():
        o = {"op": rng.choice(ops), "table": rng.choice(tables)}
        for key in rng.sample(["row", "where", "mutations", "columns", "uuid-name", "rows", "until", "timeout",
                               "lock", "comment", "durable", "uuid"], rng.randint(0, 5)):
            o[key] = {"row": lambda: {rng.choice(columns): rng.choice(atoms)} if rng.random() < .9 else 7,
                      "where": lambda: [clause() for _ in range(rng.randint(0, 2))],
                      "mutations": lambda: [[rng.choice(columns), rng.choice(["+=", "/=", "insert", "delete", "x"]),
                                             rng.choice(atoms)]],
                      "columns": lambda: [rng.choice(columns)],
                      "rows": lambda: [{rng.choice(columns): rng.choice(atoms)}],
                      "timeout": lambda: rng.choice([0, 1, -5, "x"]),
                      }.get(key, lambda: rng.choice(atoms))()
        return o

    client = RawClient(srv.path)
    for _ in range(1500):
        message = client.call("transact", "Open_vSwitch", *[op() for _ in range(rng.randint(1, 3))])
        if message["error"] is not None:
            assert message["error"]["error"] != "internal error", message
            continue
        for result in message["result"]:
            if isinstance(result, dict) and "error" in result:
                assert result["error"] != "internal error", message
    from vswitch.config import schema
    schema.validate_config(srv.backend.config)
    assert still_serving(srv)
    client.close()


def test_splitter_cuts_json_texts_anywhere():
    texts = [b'{"a": "}{\\"\\\\", "b": [1, {"c": []}]}', b'[1, "]"]', b'{}', b'{"x": "\\u005d"}']
    stream = b" \n".join(texts)
    for cut in range(len(stream) + 1):
        splitter = Splitter()
        assert splitter.feed(stream[:cut]) + splitter.feed(stream[cut:]) == texts
    one_by_one = Splitter()
    assert [t for i in range(len(stream)) for t in one_by_one.feed(stream[i:i + 1])] == texts
    with pytest.raises(FramingError):
        Splitter(max_depth=3).feed(b"[[[[1]]]]")
    with pytest.raises(FramingError):
        Splitter(max_message=10).feed(b'{"a": "' + b"x" * 20)
    with pytest.raises(FramingError):
        Splitter().feed(b"}")


def test_remotes():
    assert parse_remote("punix:/run/openvswitch/db.sock") == ("unix", "/run/openvswitch/db.sock")
    assert parse_remote("ptcp:6640") == ("tcp", "127.0.0.1", 6640)
    assert parse_remote("ptcp:6641:0.0.0.0") == ("tcp", "0.0.0.0", 6641)
    assert parse_remote("ptcp:") == ("tcp", "127.0.0.1", 6640)
    assert parse_remote("ptcp:6641:[::1]") == ("tcp", "::1", 6641)
    for bad in ("tcp:1.2.3.4:6640", "punix:", "ptcp:x", "ptcp:70000", "ptcp:1:nothost", "unix:/x", "pssl:6640"):
        with pytest.raises(ValueError):
            parse_remote(bad)


def test_connections_past_the_limit_are_closed_at_once(tmp_path):
    with ovsdb_thread(tmp_path, max_connections=3) as srv:
        clients = [RawClient(srv.path) for _ in range(3)]
        assert all(c.call("echo", i)["result"] == [i] for i, c in enumerate(clients))
        extra = RawClient(srv.path)
        assert extra.closed_by_server()
        clients.pop().close()
        wait_until(lambda: len(srv.server.connections) < 3, what="the server to see a client leave")
        assert still_serving(srv)
        for client in [extra, *clients]:
            client.close()
