"""Newline-delimited JSON-RPC 2.0 over a unix stream socket (vsctl <-> vswitchd).

One request per line: {"jsonrpc": "2.0", "id": N, "method": M, "params": {...}};
one reply per line with "result" or "error": {"code", "message"}. The server
answers every bad line (not JSON, not a request, failing method) with an error
reply and keeps the connection; only a line longer than MAX_LINE closes it.
Bounded so that one request cannot take the daemon's memory or its loop: a
request line is at most MAX_LINE bytes, JSON nested at most MAX_DEPTH deep, and
a reply over MAX_REPLY bytes is replaced by an error saying so.
A result may hold ChunkedLists (vswitch/chunked_reply.py): each is written
as a JSON array in its place, one chunk per turn of the event loop, so a
dump of any size neither holds the loop nor sits in memory whole; MAX_REPLY
bounds the rest (what a chunked list holds is bounded by its
source: the flow limit for megaflows).  A chunk that fails half way closes
the connection (the client says the daemon closed it without a reply).
The client's timeout is for silence: a reply that keeps arriving is waited for.
The socket file is created with mode 0600 (fchmod before bind: Linux gives the
file the socket inode's mode, so there is no window with wider permissions).
"""
import itertools
import json
import os
import socket
import stat

# The server's modules (asyncio, inspect, chunked_reply) are imported by the
# server functions, not here: vsctl imports this module for the client, and
# asyncio alone was a third of every vsctl call's start-up (~90 ms).

MAX_LINE = 16 * 1024 * 1024  # vsctl add-flows sends a whole file in one request
MAX_REPLY = 8 * 1024 * 1024
MAX_DEPTH = 32
RECV_SIZE = 1024 * 1024  # client reads: a 17 MB dump in a few dozen calls

PARSE_ERROR, INVALID_REQUEST, SERVER_ERROR = -32700, -32600, -32000


class RpcError(Exception):
    """An error reply (client side) or a failure to report (server side)."""

    def __init__(self, message, code=SERVER_ERROR):
        super().__init__(message)
        self.code = code


class DaemonUnreachable(ConnectionError):
    """No daemon is listening on the socket."""


# ---------------------------------------------------------------- server

def _error(request_id, code, message):
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _depth(value):
    """How deeply `value` nests lists and objects (iteratively: no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:
                stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


async def _answer(line, dispatch):
    """One request line -> reply dict (None for a notification without id)."""
    import inspect

    from vswitch import chunked_reply
    try:
        request = json.loads(line)
    except ValueError as exc:
        return _error(None, PARSE_ERROR, f"parse error: {exc}")
    except RecursionError:
        return _error(None, INVALID_REQUEST, f"invalid request: JSON nested deeper than {MAX_DEPTH}")
    if _depth(request) > MAX_DEPTH:
        return _error(request.get("id") if isinstance(request, dict) else None, INVALID_REQUEST,
                      f"invalid request: JSON nested deeper than {MAX_DEPTH}")
    if not isinstance(request, dict) or not isinstance(request.get("method"), str):
        return _error(None, INVALID_REQUEST, "invalid request: expected an object with a string 'method'")
    request_id = request.get("id")
    params = request.get("params", {})
    if not isinstance(params, dict):
        return _error(request_id, INVALID_REQUEST, "invalid request: 'params' must be an object")
    try:
        result = dispatch(request["method"], params)
        if inspect.isawaitable(result):
            result = await result
        reply = {"jsonrpc": "2.0", "id": request_id, "result": result}
        size = len(chunked_reply.dumps_fixed(reply))
        if size > MAX_REPLY:
            reply = _error(request_id, SERVER_ERROR, f"reply of {size} bytes is over the limit of "
                                                     f"{MAX_REPLY}: ask for less (fewer commands or records)")
    except RpcError as exc:
        reply = _error(request_id, exc.code, str(exc))
    except Exception as exc:
        reply = _error(request_id, SERVER_ERROR, str(exc) or type(exc).__name__)
    return reply if "id" in request else None


async def _serve_connection(reader, writer, dispatch):
    import asyncio

    from vswitch import chunked_reply
    try:
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                line = exc.partial          # last line without newline, or EOF
                if not line.strip():
                    break
            except asyncio.LimitOverrunError:
                writer.write(_encode(_error(None, INVALID_REQUEST, f"request longer than {MAX_LINE} bytes")))
                break
            if line.strip():
                reply = await _answer(line, dispatch)
                if reply is not None:
                    await chunked_reply.write_message(writer, reply, end=b"\n")
            if not line.endswith(b"\n"):
                break
    except (ConnectionError, OSError):
        pass                                # the client went away; nothing to answer
    finally:
        writer.close()


def _encode(message):
    return json.dumps(message).encode() + b"\n"


def _bind(path):
    """A listening socket at `path` with mode 0600; replaces a stale socket
    file but refuses to take over one that something still listens on."""
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise FileExistsError(f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(path)
            raise OSError(f"another server is listening on {path}")
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.fchmod(sock.fileno(), 0o600)
        sock.bind(path)
        sock.listen(64)
    except BaseException:
        sock.close()
        raise
    return sock


async def start_server(path, dispatch):
    """Serve `dispatch(method, params)` (sync or async) on unix socket `path`."""
    import asyncio
    sock = _bind(path)
    return await asyncio.start_unix_server(lambda r, w: _serve_connection(r, w, dispatch),
                                           sock=sock, limit=MAX_LINE)


# ---------------------------------------------------------------- client

_ids = itertools.count(1)


def call(path, method, params, timeout=5.0):
    """Send one request and wait for its reply; return the result."""
    request_id = next(_ids)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError, PermissionError, NotADirectoryError) as exc:
            raise DaemonUnreachable(f"cannot connect to vswitchd at {path}: {exc.strerror}") from None
        sock.sendall(_encode({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}))
        reply = _read_reply(sock, path, timeout)
    finally:
        sock.close()
    if reply.get("id") != request_id:
        raise RpcError(f"reply for request {reply.get('id')!r} instead of {request_id}")
    if "error" in reply:
        error = reply["error"] or {}
        raise RpcError(error.get("message", "unknown error"), error.get("code", SERVER_ERROR))
    return reply.get("result")


def _read_reply(sock, path, timeout):
    """One reply line.  `timeout` bounds each wait for more of it: a long
    reply (a chunked dump) is waited for as long as it keeps arriving."""
    sock.settimeout(timeout)
    buffer = bytearray()
    while not buffer.endswith(b"\n"):
        try:
            chunk = sock.recv(RECV_SIZE)
        except socket.timeout:
            raise TimeoutError(f"no reply from vswitchd at {path} within {timeout:g} s") from None
        if not chunk:
            raise DaemonUnreachable(f"vswitchd at {path} closed the connection without replying")
        buffer += chunk
    try:
        return json.loads(buffer)
    except ValueError as exc:
        raise RpcError(f"bad reply from vswitchd at {path}: {exc}") from None
