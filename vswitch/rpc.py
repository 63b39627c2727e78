"""Newline-delimited JSON-RPC 2.0 over a unix stream socket (vsctl <-> vswitchd):
the protocol's bounds and errors, and the client.  The server is
vswitch/rpc_server.py (asyncio, which vsctl, a new process per call, does
not import).

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
The server's socket file is created with mode 0600 (rpc_server.bind_socket).
"""
import itertools
import json
import socket

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


def encode_message(message):
    """One message as its line on the wire."""
    return json.dumps(message).encode() + b"\n"


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
        sock.sendall(encode_message({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}))
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
