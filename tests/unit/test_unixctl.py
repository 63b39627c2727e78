"""vswitch.appctl.protocol: OVS's unixctl protocol over a real unix socket.

The server runs on its own event loop in a thread with a small command
table; clients are raw sockets (framing, malformed input), OVS's own Python
client (ovs.unixctl.client, an independent implementation) and, when
installed, the real ovs-appctl."""
import asyncio
import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time

import pytest

from vswitch.appctl.protocol import (MAX_DEPTH, JsonStream, ProtocolError, Reply, UnixctlError,
                                     UnixctlServer, reply_message)


@contextlib.contextmanager
def short_tmpdir():
    with tempfile.TemporaryDirectory(prefix="unixctl-", dir="/tmp") as path:
        yield path


@contextlib.contextmanager
def running(server, path):
    """server.start(path) on its own loop in a thread; closed on exit."""
    loop = asyncio.new_event_loop()
    started, state = threading.Event(), {}

    def serve():
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start(path))
        except BaseException as exc:
            state["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(server.close())
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    if "error" in state:
        thread.join()
        raise state["error"]
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        assert not thread.is_alive()


def make_server(events=None):
    events = events if events is not None else []
    server = UnixctlServer("testd (vswitch) 9.9")
    server.register("echo", "[word...]", 0, 3, lambda args: " ".join(args))
    server.register("fdb/show", "bridge", 1, 1, lambda args: f" port  VLAN  MAC                Age\n")

    def fail(args):
        raise UnixctlError("no such bridge")

    def crash(args):
        raise ZeroDivisionError("division by zero")

    async def slow(args):
        await asyncio.sleep(float(args[0]))
        return "slept"

    server.register("fail", "", 0, 0, fail)
    server.register("crash", "", 0, 0, crash)
    server.register("slow", "secs", 1, 1, slow)
    server.register("bye", "", 0, 0, lambda args: Reply("bye", then=lambda: events.append("after")))
    server.register("empty", "", 0, 0, lambda args: None)
    return server


@pytest.fixture
def ctl():
    with short_tmpdir() as tmp:
        path = os.path.join(tmp, "vswitchd.ctl")
        with running(make_server(), path):
            yield path


class Raw:
    """A raw client: sends bytes, reads back-to-back JSON replies."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(5)
        self.sock.connect(path)
        self.stream = JsonStream()
        self.pending = []

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else json.dumps(data).encode())

    def recv(self):
        while not self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None  # closed
            self.pending += [json.loads(v) for v in self.stream.feed(chunk)]
        return self.pending.pop(0)

    def call(self, method, *params, id_=1):
        self.send({"id": id_, "method": method, "params": list(params)})
        return self.recv()

    def closed(self):
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            return False

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------- framing

def test_stream_cuts_back_to_back_objects_and_waits_for_the_rest():
    s = JsonStream()
    assert s.feed(b'{"a": 1}{"b": [2, {"c": 3}]}  \n{"d"') == [b'{"a": 1}', b'{"b": [2, {"c": 3}]}']
    assert s.feed(b': "}{\\"]"') == []
    assert s.feed(b"}") == [b'{"d": "}{\\"]"}']
    # One byte at a time, an escaped quote split from its backslash included.
    text = b'{"id":0,"method":"x","params":["a\\"b}", "[{"]}'
    out = []
    for i in range(len(text)):
        out += s.feed(text[i:i + 1])
    assert out == [text] and json.loads(out[0])["params"] == ['a"b}', "[{"]


def test_stream_refuses_what_is_not_an_object_too_deep_or_too_long():
    with pytest.raises(ProtocolError, match="must be a JSON object"):
        JsonStream().feed(b"  42")
    with pytest.raises(ProtocolError, match="nested deeper"):
        JsonStream().feed(b"[" * (MAX_DEPTH + 1))
    JsonStream().feed(b"[" * MAX_DEPTH)  # at the limit: still waiting for the rest
    with pytest.raises(ProtocolError, match="longer than 100 bytes"):
        JsonStream(max_size=100).feed(b'{"x": "' + b"a" * 200)


def test_reply_bodies_end_with_a_newline_as_ovs():
    assert reply_message(3, "text") == {"id": 3, "result": "text\n", "error": None}
    assert reply_message(3, "two\nlines\n") == {"id": 3, "result": "two\nlines\n", "error": None}
    assert reply_message("x", "") == {"id": "x", "result": "", "error": None}
    assert reply_message(4, "bad", error=True) == {"id": 4, "result": None, "error": "bad\n"}


# ---------------------------------------------------------------- requests over a socket

def test_replies_are_json_rpc_1_0_with_the_request_id(ctl):
    c = Raw(ctl)
    assert c.call("echo", "a", "b", id_=7) == {"id": 7, "result": "a b\n", "error": None}
    assert c.call("echo", id_="s") == {"id": "s", "result": "", "error": None}
    assert c.call("empty", id_=8) == {"id": 8, "result": "", "error": None}
    assert c.call("version") == {"id": 1, "result": "testd (vswitch) 9.9\n", "error": None}
    # Pipelined requests in one write, answered in order.
    c.send(b'{"id":1,"method":"echo","params":["x"]}{"id":2,"method":"echo","params":["y"]}')
    assert [c.recv()["result"], c.recv()["result"]] == ["x\n", "y\n"]
    c.close()


def test_ovs_error_texts_and_the_connection_stays_usable(ctl):
    c = Raw(ctl)
    cases = [
        (("foo",), '"foo" is not a valid command (use "list-commands" to see a list of valid commands)\n'),
        (("fdb/show",), '"fdb/show" command requires at least 1 arguments\n'),
        (("fdb/show", "a", "b"), '"fdb/show" command takes at most 1 arguments\n'),
        (("echo", "a", 2), '"echo" command has non-string argument\n'),
        (("fail",), "no such bridge\n"),
        (("crash",), "crash: internal error: division by zero\n"),
    ]
    for i, ((method, *params), error) in enumerate(cases):
        assert c.call(method, *params, id_=i) == {"id": i, "result": None, "error": error}
    assert c.call("echo", "still", "here")["result"] == "still here\n"
    c.close()


def test_list_commands_is_ovs_layout(ctl):
    text = Raw(ctl).call("list-commands")["result"]
    assert text.startswith("The available commands are:\n")
    lines = text.splitlines()[1:]
    assert lines == sorted(lines)
    assert "  echo                    [word...]" in lines
    assert "  list-commands           " in lines  # usage "" keeps its trailing space, as OVS
    assert "  fdb/show                bridge" in lines


def test_bad_requests_with_an_id_get_an_error_and_the_connection_stays(ctl):
    c = Raw(ctl)
    c.send({"id": 5, "method": 3, "params": []})
    assert c.recv() == {"id": 5, "result": None, "error": 'invalid JSON-RPC request: "method" must be a string\n'}
    c.send({"id": 6, "method": "echo", "params": {"a": 1}})
    assert c.recv()["error"] == 'invalid JSON-RPC request: "params" must be JSON array\n'
    assert c.call("echo", "ok")["result"] == "ok\n"
    c.close()


@pytest.mark.parametrize("garbage", [
    b"this is not json",
    b'{"id": 1, "method": "echo", params: []}',
    b'{"method": "echo", "params": []}',                 # a notification (no id)
    b'{"id": null, "method": "echo", "params": []}',     # a notification
    b'{"id": null, "result": "x", "error": null}',       # a reply, to a server
    b"[" * (MAX_DEPTH + 1),
    b'"just a string"',
])
def test_what_is_not_a_request_closes_only_that_connection(ctl, garbage):
    other = Raw(ctl)
    bad = Raw(ctl)
    bad.send(garbage)
    assert bad.closed()
    assert other.call("echo", "alive")["result"] == "alive\n"
    assert Raw(ctl).call("echo", "new")["result"] == "new\n"


def test_a_slow_or_stuck_client_blocks_nobody(ctl):
    stuck = Raw(ctl)
    stuck.send(b'{"id": 1, "method": "echo", "params": ["never fini')  # never completed
    waiting = Raw(ctl)
    waiting.send({"id": 1, "method": "slow", "params": ["1.0"]})     # a command that takes a while
    start = time.monotonic()
    assert Raw(ctl).call("echo", "fast")["result"] == "fast\n"
    assert time.monotonic() - start < 0.8
    assert waiting.recv()["result"] == "slept\n"
    stuck.close()


def test_then_runs_after_the_reply_was_sent():
    events = []
    with short_tmpdir() as tmp:
        path = os.path.join(tmp, "x.ctl")
        with running(make_server(events), path):
            c = Raw(path)
            assert c.call("bye")["result"] == "bye\n"
            deadline = time.monotonic() + 5
            while not events and time.monotonic() < deadline:
                time.sleep(0.01)
            assert events == ["after"]


def test_ovs_python_client_talks_to_it(ctl):
    from ovs.unixctl.client import UnixctlClient
    error, client = UnixctlClient.create(ctl)
    assert error == 0
    try:
        assert client.transact("echo", ["a", "b"]) == (0, None, "a b\n")
        assert client.transact("fdb/show", []) == (
            0, '"fdb/show" command requires at least 1 arguments\n', None)
        assert client.transact("version", []) == (0, None, "testd (vswitch) 9.9\n")
    finally:
        client.close()


@pytest.mark.skipif(not shutil.which("ovs-appctl"), reason="ovs-appctl is not installed")
def test_real_ovs_appctl_talks_to_it(ctl):
    def appctl(*args):
        return subprocess.run(["ovs-appctl", "-t", ctl, "--timeout=5", *args],
                              capture_output=True, text=True, timeout=10)
    ok = appctl("echo", "hello", "world")
    assert (ok.returncode, ok.stdout) == (0, "hello world\n")
    bad = appctl("nope")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith('"nope" is not a valid command (use "list-commands"')
    assert "server returned an error" in bad.stderr


# ---------------------------------------------------------------- the socket file

def test_socket_is_0600_stale_replaced_live_refused_unlinked_on_close():
    with short_tmpdir() as tmp:
        path = os.path.join(tmp, "vswitchd.ctl")
        with socket.socket(socket.AF_UNIX) as dead:  # a stale socket file: nobody listens
            dead.bind(path)
        with running(make_server(), path):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            assert Raw(path).call("echo", "x")["result"] == "x\n"
            with pytest.raises(OSError, match="another server is listening"):
                with running(make_server(), path):
                    pass
            assert Raw(path).call("echo", "y")["result"] == "y\n"  # the live one untouched
        assert not os.path.exists(path)
        with open(path, "w") as f:
            f.write("not a socket")
        with pytest.raises(FileExistsError, match="is not a socket"):
            with running(make_server(), path):
                pass
        assert open(path).read() == "not a socket"


def test_close_ends_open_connections():
    with short_tmpdir() as tmp:
        path = os.path.join(tmp, "vswitchd.ctl")
        with running(make_server(), path):
            c = Raw(path)
            assert c.call("echo", "x")["result"] == "x\n"
        assert c.recv() is None
