"""The OVSDB JSON-RPC server (RFC 7047 section 4) on the daemon's event loop.

Listens on `punix:PATH` (mode 0600, as RUNDIR/vswitchd.sock) and `ptcp:PORT[:IP]`
(127.0.0.1 unless an address is given).  Messages are JSON objects one after
another on the stream, as ovsdb-server's; a connection whose bytes are not
JSON, or not JSON-RPC, is closed.  Bounded per connection: a message of at
most MAX_MESSAGE bytes nested at most MAX_DEPTH deep, at most
BUDGET messages handled per event-loop turn (the rest wait for the next turn
with reading paused), and at most MAX_BACKLOG bytes of replies and updates
waiting to be sent: a client that stops reading is disconnected, never
waited for.  At most MAX_CONNECTIONS connections in all; more are closed
at once.

Methods: list_dbs, get_schema, transact, cancel, monitor, monitor_cond,
monitor_cond_since, monitor_cond_change, monitor_cancel, lock, steal,
unlock, echo, set_db_change_aware.  The `_Server` database is not served:
OVS's clients ask for it first, get "unknown database", and go on with
Open_vSwitch (as with an ovsdb-server from before it existed).
"""
import asyncio
import collections
import errno
import ipaddress
import json
import logging
import os
import re

from vswitch import rpc_server
from vswitch.ovsdb import model
from vswitch.ovsdb.monitor import ZERO_TXN, Monitor, parse_requests
from vswitch.ovsdb.transact import WaitBlocked
from vswitch.ovsdb.types import OvsdbError, syntax_error

log = logging.getLogger("vswitch.ovsdb")

MAX_MESSAGE = 16 * 1024 * 1024
MAX_DEPTH = 128
MAX_BACKLOG = 8 * 1024 * 1024  # bytes of replies and updates a client may leave unread
BUDGET = 64
MAX_CONNECTIONS = 1024
DEFAULT_PTCP_PORT = 6640

_STRUCT = re.compile(rb'[{}\[\]"]')
_IN_STRING = re.compile(rb'["\\]')
_SPACE = b" \t\r\n"


class FramingError(ValueError):
    pass


class Splitter:
    """Cuts a byte stream into complete top-level JSON texts, without
    parsing them (strings and escapes are followed, nesting is counted)."""

    def __init__(self, max_message=MAX_MESSAGE, max_depth=MAX_DEPTH):
        self.buf = bytearray()
        self.pos = 0                # where scanning resumes
        self.start = None           # offset of the current message, if inside one
        self.depth = 0
        self.in_string = False
        self.max_message, self.max_depth = max_message, max_depth

    def feed(self, data):
        self.buf += data
        out = []
        buf = self.buf
        while True:
            if self.start is None:
                pos = self.pos
                while pos < len(buf) and buf[pos] in _SPACE:
                    pos += 1
                if pos >= len(buf):
                    self.pos = pos
                    break
                if buf[pos] not in b"{[":
                    raise FramingError(f"JSON-RPC message must start with '{{', not {bytes(buf[pos:pos + 1])!r}")
                self.start, self.pos, self.depth = pos, pos, 0
            done = self._scan()
            if done is None:
                if len(buf) - self.start > self.max_message:
                    raise FramingError(f"message longer than {self.max_message} bytes")
                break
            out.append(bytes(buf[self.start:done]))
            self.start, self.pos = None, done
        # Drop what has been handed out.
        cut = self.start if self.start is not None else self.pos
        if cut:
            del buf[:cut]
            self.pos -= cut
            if self.start is not None:
                self.start = 0
        return out

    def _scan(self):
        buf = self.buf
        while True:
            if self.in_string:
                m = _IN_STRING.search(buf, self.pos)
                if m is None:
                    self.pos = len(buf)
                    return None
                if buf[m.start()] == 0x5C:          # backslash: skip the escaped byte
                    if m.end() >= len(buf):
                        self.pos = m.start()
                        return None
                    self.pos = m.end() + 1
                    continue
                self.in_string = False
                self.pos = m.end()
                continue
            m = _STRUCT.search(buf, self.pos)
            if m is None:
                self.pos = len(buf)
                return None
            ch = buf[m.start()]
            self.pos = m.end()
            if ch == 0x22:
                self.in_string = True
            elif ch in b"{[":
                self.depth += 1
                if self.depth > self.max_depth:
                    raise FramingError(f"JSON nested deeper than {self.max_depth}")
            else:
                self.depth -= 1
                if self.depth == 0:
                    return self.pos
                if self.depth < 0:
                    raise FramingError("unbalanced JSON")


# ---------------------------------------------------------------- remotes

def parse_remote(text, rundir=None):
    """`punix:PATH` or `ptcp:[PORT][:IP]` -> ("unix", path) or ("tcp", host, port)."""
    method, sep, rest = text.partition(":")
    if method == "punix" and rest:
        return ("unix", os.path.abspath(rest))
    if method == "ptcp" and sep:
        port, _, host = rest.partition(":")
        host = host.strip("[]") or "127.0.0.1"
        try:
            port = int(port) if port else DEFAULT_PTCP_PORT
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{text}: expected ptcp:[PORT][:IP]") from None
        if not 0 <= port < 65536:
            raise ValueError(f"{text}: port {port} is out of range")
        return ("tcp", host, port)
    raise ValueError(f"{text}: an OVSDB remote is punix:PATH or ptcp:[PORT][:IP]")


# ---------------------------------------------------------------- connections

class Connection(asyncio.Protocol):
    def __init__(self, server):
        self.server = server
        self.transport = None
        self.splitter = Splitter(server.max_message)
        self.pending = collections.deque()  # messages received, not yet handled
        self.monitors = {}          # json.dumps(monid) -> Monitor
        self.locks = set()          # held
        self.waiting_locks = set()  # asked for, not held yet
        self.parked = {}            # json.dumps(request id) -> ParkedTxn
        self.closed = False
        self.paused = False
        self.peer = "?"

    # ------------------------------------------------------------ transport

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "unix"
        if len(self.server.connections) >= self.server.max_connections:
            self.closed = True
            log.warning("OVSDB connection from %s refused: %d connections already", self.peer,
                        len(self.server.connections))
            transport.abort()
            return
        self.server.connections.add(self)

    def connection_lost(self, exc):
        self._teardown()

    def data_received(self, data):
        if self.closed:
            return
        try:
            self.pending.extend(self.splitter.feed(data))
        except FramingError as exc:
            self.close(f"bad JSON-RPC framing: {exc}")
            return
        self._work()

    def _work(self):
        handled = 0
        while self.pending and not self.closed:
            if handled == self.server.budget:
                if not self.paused:
                    self.transport.pause_reading()
                    self.paused = True
                asyncio.get_running_loop().call_soon(self._work)
                return
            self.handle_bytes(self.pending.popleft())
            handled += 1
        if self.paused and not self.closed:
            self.paused = False
            self.transport.resume_reading()

    def send(self, message):
        """Queues `message`; a client that let more than max_backlog bytes
        pile up is not reading and is dropped (one message, however large
        - a big initial monitor reply - may always go out)."""
        if self.closed:
            return
        backlog = self.transport.get_write_buffer_size()
        if backlog > self.server.max_backlog:
            self.close(f"{backlog} bytes waiting to be sent: the client is not reading")
            return
        self.transport.write(json.dumps(message, separators=(",", ":")).encode())

    def notify(self, method, params):
        self.send({"id": None, "method": method, "params": params})

    def reply(self, request_id, result):
        self.send({"id": request_id, "result": result, "error": None})

    def error(self, request_id, error):
        self.send({"id": request_id, "result": None, "error": error})

    def close(self, reason=None):
        if self.closed:
            return
        if reason:
            log.warning("OVSDB connection from %s closed: %s", self.peer, reason)
        self._teardown()
        self.transport.abort()

    def _teardown(self):
        if self.closed:
            return
        self.closed = True
        self.pending.clear()
        self.server.connections.discard(self)
        for monitor in self.monitors.values():
            self.server.db.remove_monitor(monitor)
        self.monitors.clear()
        for parked in self.parked.values():
            parked.cancel_timer()
        self.server.parked = [p for p in self.server.parked if p.conn is not self]
        self.parked.clear()
        for name in list(self.locks | self.waiting_locks):
            self.server.release_lock(self, name)

    # ------------------------------------------------------------ messages

    def handle_bytes(self, text):
        try:
            message = json.loads(text)
        except (ValueError, RecursionError) as exc:
            self.close(f"malformed JSON: {exc}")
            return
        if not isinstance(message, dict):
            self.close("a JSON-RPC message must be an object")
            return
        method = message.get("method")
        if method is None and ("result" in message or "error" in message):
            return                  # a reply (to nothing we sent): ignored
        if not isinstance(method, str) or "params" not in message or not isinstance(message["params"], list):
            self.close('a JSON-RPC request needs a string "method" and an array "params"')
            return
        request_id = message.get("id")
        handler = METHODS.get(method)
        if handler is None:
            if request_id is not None:
                self.error(request_id, {"error": "unknown method", "details": f"unknown method {method}"})
            return
        try:
            handler(self, request_id, message["params"])
        except OvsdbError as exc:
            if request_id is not None:
                self.error(request_id, exc.to_json())
        except Exception:
            log.exception("OVSDB %s from %s failed", method, self.peer)
            if request_id is not None:
                self.error(request_id, {"error": "internal error", "details": f"{method} failed; see the log"})


def _db_name(params, method):
    if not params or not isinstance(params[0], str):
        raise syntax_error(f"{method} request params must begin with <db-name>", params)
    if params[0] != model.DB_NAME:
        raise OvsdbError("unknown database", f"{method} request specifies unknown database {params[0]}", params)


def m_list_dbs(conn, request_id, params):
    conn.reply(request_id, [model.DB_NAME])


def m_get_schema(conn, request_id, params):
    _db_name(params, "get_schema")
    conn.reply(request_id, model.SCHEMA)


def m_echo(conn, request_id, params):
    conn.reply(request_id, params)


def m_set_db_change_aware(conn, request_id, params):
    conn.reply(request_id, {})


def m_transact(conn, request_id, params):
    _db_name(params, "transact")
    conn.server.run_transaction(conn, request_id, params[1:], can_block=True)


def m_cancel(conn, request_id, params):
    parked = conn.parked.get(json.dumps(params[0])) if params else None
    if parked is not None:
        conn.server._unpark(parked)
        conn.error(parked.request_id, {"error": "canceled"})


def _monitor(version):
    def handler(conn, request_id, params):
        name = {1: "monitor", 2: "monitor_cond", 3: "monitor_cond_since"}[version]
        _db_name(params, name)
        if len(params) < 3:
            raise syntax_error(f"{name} needs <db-name>, <json-value> and <monitor-requests>", params)
        key = json.dumps(params[1], sort_keys=True)
        if key in conn.monitors:
            raise OvsdbError("syntax error", "duplicate monitor ID", params[1])
        monitor = Monitor(conn, params[1], version, parse_requests(params[2], version))
        conn.monitors[key] = monitor
        initial = conn.server.db.add_monitor(monitor)
        # Only a transaction's id of the current contents would let a client
        # skip the initial contents: there is no history, so never "found".
        conn.reply(request_id, [False, ZERO_TXN, initial] if version == 3 else initial)
    return handler


def m_monitor_cond_change(conn, request_id, params):
    if len(params) < 3:
        raise syntax_error("monitor_cond_change needs <json-value>, <json-value> and <monitor-cond-update>",
                           params)
    old_key, new_key = json.dumps(params[0], sort_keys=True), json.dumps(params[1], sort_keys=True)
    monitor = conn.monitors.get(old_key)
    if monitor is None:
        raise OvsdbError("unknown monitor", "unknown monitor", params[0])
    if new_key != old_key and new_key in conn.monitors:
        raise OvsdbError("syntax error", "duplicate monitor ID", params[1])
    updates = monitor.change_conditions(params[2], conn.server.db.rows)
    del conn.monitors[old_key]
    monitor.monid = params[1]
    conn.monitors[new_key] = monitor
    if updates:         # before the reply, as ovsdb-server
        conn.notify(*monitor.notification(updates))
    conn.reply(request_id, {})


def m_monitor_cancel(conn, request_id, params):
    key = json.dumps(params[0], sort_keys=True) if params else None
    monitor = conn.monitors.pop(key, None)
    if monitor is None:
        raise OvsdbError("unknown monitor", "unknown monitor", params)
    conn.server.db.remove_monitor(monitor)
    conn.reply(request_id, {})


def _lock_name(params, method):
    if len(params) != 1 or not isinstance(params[0], str) or not params[0]:
        raise syntax_error(f"{method} request params must be [<lock-id>]", params)
    return params[0]


def m_lock(conn, request_id, params):
    name = _lock_name(params, "lock")
    if name in conn.locks or name in conn.waiting_locks:
        raise syntax_error('must issue "unlock" before new "lock"', params)
    conn.reply(request_id, {"locked": conn.server.take_lock(conn, name, steal=False)})


def m_steal(conn, request_id, params):
    name = _lock_name(params, "steal")
    if name in conn.locks:
        raise syntax_error('must issue "unlock" before new "steal"', params)
    conn.server.take_lock(conn, name, steal=True)
    conn.reply(request_id, {"locked": True})


def m_unlock(conn, request_id, params):
    name = _lock_name(params, "unlock")
    if name not in conn.locks and name not in conn.waiting_locks:
        raise syntax_error('unlock: "unlock" without "lock" or "steal"', params)
    conn.server.release_lock(conn, name)
    conn.reply(request_id, {})


METHODS = {
    "list_dbs": m_list_dbs, "get_schema": m_get_schema, "echo": m_echo, "transact": m_transact,
    "cancel": m_cancel, "monitor": _monitor(1), "monitor_cond": _monitor(2),
    "monitor_cond_since": _monitor(3), "monitor_cond_change": m_monitor_cond_change,
    "monitor_cancel": m_monitor_cancel, "lock": m_lock, "steal": m_steal, "unlock": m_unlock,
    "set_db_change_aware": m_set_db_change_aware,
}


class ParkedTxn:
    """A transaction whose "wait" is not satisfied yet: run again after each
    change until it passes, its timeout fires, or the client cancels it."""

    def __init__(self, conn, request_id, ops):
        self.conn, self.request_id, self.ops = conn, request_id, ops
        self.timer = None

    def cancel_timer(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


# ---------------------------------------------------------------- the server

class OvsdbServer:
    def __init__(self, db, max_backlog=MAX_BACKLOG, max_message=MAX_MESSAGE, budget=BUDGET,
                 max_connections=MAX_CONNECTIONS):
        self.db = db
        self.max_backlog, self.max_message, self.budget = max_backlog, max_message, budget
        self.max_connections = max_connections
        self.connections = set()
        self.listeners = []         # (asyncio server, unix path or None)
        self.locks = {}             # name -> [owner conn, waiting conns...]
        self.parked = []
        self._retry_scheduled = False
        db.on_change.append(self._schedule_retry)

    async def listen(self, remote):
        """Starts listening on a parsed remote (parse_remote)."""
        loop = asyncio.get_running_loop()
        if remote[0] == "unix":
            path = remote[1]
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            sock = rpc_server.bind_socket(path)
            server = await loop.create_unix_server(lambda: Connection(self), sock=sock)
            self.listeners.append((server, path))
        else:
            server = await loop.create_server(lambda: Connection(self), remote[1], remote[2],
                                              reuse_address=True)
            self.listeners.append((server, None))
        return server

    def bound_ports(self):
        return [s.sockets[0].getsockname()[1] for s, path in self.listeners if path is None and s.sockets]

    async def close(self):
        for server, _ in self.listeners:
            server.close()
        for conn in list(self.connections):
            conn.close()
        for server, path in self.listeners:
            await server.wait_closed()
            if path is not None:
                try:
                    os.unlink(path)
                except OSError as exc:
                    if exc.errno != errno.ENOENT:
                        log.warning("cannot remove %s: %s", path, exc)
        self.listeners.clear()

    # ------------------------------------------------------------ transactions

    def run_transaction(self, conn, request_id, ops, can_block=True, parked=None):
        """Runs a transaction and replies; a blocked "wait" parks it (a
        `parked` one stays parked, with its first deadline)."""
        try:
            results = self.db.transact(ops, locks=conn.locks, can_block=can_block)
        except WaitBlocked as blocked:
            if parked is None:
                parked = ParkedTxn(conn, request_id, ops)
                conn.parked[json.dumps(request_id)] = parked
                self.parked.append(parked)
                if blocked.timeout is not None:
                    parked.timer = asyncio.get_running_loop().call_later(
                        max(blocked.timeout, 0) / 1000.0, self._expire, parked)
            return
        if parked is not None:
            self._unpark(parked)
        if request_id is not None:
            conn.reply(request_id, results)

    def _expire(self, parked):
        parked.timer = None
        self._unpark(parked)
        if not parked.conn.closed:
            self.run_transaction(parked.conn, parked.request_id, parked.ops, can_block=False)

    def _unpark(self, parked):
        parked.cancel_timer()
        if parked in self.parked:
            self.parked.remove(parked)
        if parked.conn.parked.get(json.dumps(parked.request_id)) is parked:
            del parked.conn.parked[json.dumps(parked.request_id)]

    def _schedule_retry(self):
        if self.parked and not self._retry_scheduled:
            self._retry_scheduled = True
            asyncio.get_running_loop().call_soon(self._retry)

    def _retry(self):
        self._retry_scheduled = False
        for parked in list(self.parked):
            if parked in self.parked and not parked.conn.closed:
                self.run_transaction(parked.conn, parked.request_id, parked.ops, parked=parked)

    # ------------------------------------------------------------ locks

    def take_lock(self, conn, name, steal):
        queue = self.locks.setdefault(name, [])
        if steal:
            if queue and queue[0] is not conn:
                victim = queue.pop(0)
                victim.locks.discard(name)
                victim.notify("stolen", [name])
            if conn in queue:
                queue.remove(conn)
            queue.insert(0, conn)
            conn.waiting_locks.discard(name)
            conn.locks.add(name)
            return True
        queue.append(conn)
        if queue[0] is conn:
            conn.locks.add(name)
            return True
        conn.waiting_locks.add(name)
        return False

    def release_lock(self, conn, name):
        queue = self.locks.get(name, [])
        was_owner = bool(queue) and queue[0] is conn
        if conn in queue:
            queue.remove(conn)
        conn.locks.discard(name)
        conn.waiting_locks.discard(name)
        if was_owner and queue:
            owner = queue[0]
            owner.waiting_locks.discard(name)
            owner.locks.add(name)
            owner.notify("locked", [name])
        if not queue:
            self.locks.pop(name, None)

