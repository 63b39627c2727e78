"""vswitch.rpc and rpc_server over real unix sockets: an asyncio server in a thread, the
blocking client, and raw sockets for the malformed-input cases."""
import asyncio
import contextlib
import json
import os
import socket
import stat
import tempfile
import threading

import pytest

from vswitch import rpc, rpc_server


@contextlib.contextmanager
def short_tmpdir():
    """A temp dir under /tmp: unix socket paths must stay under 108 bytes."""
    with tempfile.TemporaryDirectory(prefix="vsctl-", dir="/tmp") as path:
        yield path


@contextlib.contextmanager
def running_server(path, dispatch):
    """rpc_server.start_server(path, dispatch) on its own event loop in a thread."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state = {}

    def serve():
        asyncio.set_event_loop(loop)
        try:
            state["server"] = loop.run_until_complete(rpc_server.start_server(path, dispatch))
        except BaseException as exc:        # reported to the test thread below
            state["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()
        state["server"].close()
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10), "rpc server did not start"
    if "error" in state:
        thread.join()
        raise state["error"]
    try:
        yield state["server"]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        assert not thread.is_alive()


def echo(method, params):
    if method == "fail":
        raise rpc.RpcError(f"refused: {params.get('why')}")
    if method == "crash":
        raise ValueError("bad value")
    if method == "unserialisable":
        return {"x": object()}
    return {"method": method, "params": params}


async def slow(method, params):
    await asyncio.sleep(params.get("seconds", 0))
    return "done"


@pytest.fixture
def sock_path():
    with short_tmpdir() as tmp:
        yield os.path.join(tmp, "vswitchd.sock")


def raw_exchange(conn, line):
    """Send one raw line on an open connection and read one reply line."""
    conn.sendall(line)
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = conn.recv(65536)
        assert chunk, "server closed the connection"
        reply += chunk
    return json.loads(reply)


def test_round_trip_and_socket_mode(sock_path):
    with running_server(sock_path, echo):
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o600
        params = {"commands": [["add-br", "br0"]], "n": 1}
        assert rpc.call(sock_path, "transact", params) == {"method": "transact", "params": params}


def test_async_dispatch(sock_path):
    with running_server(sock_path, slow):
        assert rpc.call(sock_path, "wait", {"seconds": 0.01}) == "done"


def test_errors_become_error_replies_and_server_keeps_serving(sock_path):
    with running_server(sock_path, echo):
        with pytest.raises(rpc.RpcError, match="^refused: because$"):
            rpc.call(sock_path, "fail", {"why": "because"})
        with pytest.raises(rpc.RpcError, match="^bad value$"):
            rpc.call(sock_path, "crash", {})
        with pytest.raises(rpc.RpcError, match="not JSON serializable"):
            rpc.call(sock_path, "unserialisable", {})
        assert rpc.call(sock_path, "ping", {})["method"] == "ping"


def test_bad_lines_get_error_replies_on_the_same_connection(sock_path):
    with running_server(sock_path, echo), socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(10)
        conn.connect(sock_path)
        reply = raw_exchange(conn, b"this is not json\n")
        assert reply["id"] is None and reply["error"]["code"] == rpc.PARSE_ERROR
        reply = raw_exchange(conn, b"\xff\xfe\n")
        assert reply["error"]["code"] == rpc.PARSE_ERROR
        reply = raw_exchange(conn, b"[1, 2]\n")
        assert reply["error"]["code"] == rpc.INVALID_REQUEST
        reply = raw_exchange(conn, b'{"id": 7, "method": "m", "params": [1]}\n')
        assert (reply["id"], reply["error"]["code"]) == (7, rpc.INVALID_REQUEST)
        reply = raw_exchange(conn, b'{"jsonrpc": "2.0", "id": 8, "method": "still-here", "params": {}}\n')
        assert reply == {"jsonrpc": "2.0", "id": 8, "result": {"method": "still-here", "params": {}}}


def test_missing_or_dead_socket_is_daemon_unreachable(sock_path):
    with pytest.raises(rpc.DaemonUnreachable, match=f"^cannot connect to vswitchd at {sock_path}: "):
        rpc.call(sock_path, "ping", {})
    with socket.socket(socket.AF_UNIX) as dead:      # a socket file nobody listens on
        dead.bind(sock_path)
    with pytest.raises(rpc.DaemonUnreachable, match="Connection refused"):
        rpc.call(sock_path, "ping", {})
    assert issubclass(rpc.DaemonUnreachable, ConnectionError)


def test_stale_socket_is_replaced_but_a_live_one_is_not(sock_path):
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(sock_path)
    with running_server(sock_path, echo):
        assert rpc.call(sock_path, "ping", {})["method"] == "ping"
        with pytest.raises(OSError, match="another server is listening"):
            with running_server(sock_path, echo):
                pass
        assert rpc.call(sock_path, "ping", {})["method"] == "ping"


def test_client_times_out(sock_path):
    with running_server(sock_path, slow):
        with pytest.raises(TimeoutError, match="no reply from vswitchd"):
            rpc.call(sock_path, "wait", {"seconds": 30}, timeout=0.2)
        assert rpc.call(sock_path, "wait", {}) == "done"


def big(method, params):
    return "x" * params.get("size", 0)


def test_deep_nesting_and_huge_replies_get_errors_and_the_server_keeps_serving(sock_path):
    with running_server(sock_path, big), socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(10)
        conn.connect(sock_path)
        deep = b'{"id": 1, "method": "m", "params": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}\n"
        reply = raw_exchange(conn, deep)
        assert reply["error"]["code"] == rpc.INVALID_REQUEST and "nested deeper" in reply["error"]["message"]
        reply = raw_exchange(conn, b'{"id": 2, "method": "m", "params": {"a": ' + b"[" * 40 + b"]" * 40 + b"}}\n")
        assert "nested deeper than 32" in reply["error"]["message"] and reply["id"] == 2
        reply = raw_exchange(conn, json.dumps({"id": 3, "method": "m",
                                               "params": {"size": rpc.MAX_REPLY + 1}}).encode() + b"\n")
        assert reply["id"] == 3 and "over the limit" in reply["error"]["message"]
        reply = raw_exchange(conn, json.dumps({"id": 4, "method": "m", "params": {"size": 10}}).encode() + b"\n")
        assert reply["result"] == "x" * 10
