"""vswitch's OVSDB server without a switch, for unit tests (no root): the
daemon's role is played by ConfigBackend (the config dict, vsctl's command
engine, change_config), the server runs on an asyncio loop in a thread and
listens on a unix socket, so real clients (ovs-vsctl, ovsdb-client, OVS's
Python IDL, raw sockets) talk to it.

    with ovsdb_thread(tmp_path) as srv:
        srv.vsctl(["add-br", "br0"])           # our vsctl, on the loop
        subprocess.run(["ovs-vsctl", f"--db={srv.remote}", "list-br"])

RawClient speaks JSON-RPC on a socket for the protocol tests.
"""
import asyncio
import contextlib
import json
import os
import socket
import threading
import time

from vswitch import ovsdb
from vswitch.config import commands
from vswitch.config.schema import empty_config


class Runtime:
    """Runtime columns as a switch would answer them (or None: unknown).
    Every interface gets an OpenFlow port number, as a switch that opened
    it would give (ovs-vsctl without --no-wait reports one that has none
    as an "Error detected while setting up" it)."""

    def __init__(self, values=None):
        self.values = values or {}      # (method, column or None, row name) -> value
        self.ofports = {}

    def interface_ofport(self, name):
        value = self.values.get(("interface_ofport", None, name))
        return value if value is not None else self.ofports.setdefault(name, len(self.ofports) + 1)

    def interface_status(self, name):
        return self.values.get(("interface_status", None, name))

    def interface_statistics(self, name):
        return self.values.get(("interface_statistics", None, name))

    def netdev_column(self, table, column, name):
        return self.values.get(("netdev_column", column, name))

    def feature_column(self, table, column, name):
        return self.values.get(("feature_column", column, name))


class ConfigBackend:
    """What the daemon gives the OVSDB server: config, runtime, change_config."""

    def __init__(self, runtime=None):
        self.config = ovsdb.with_root(empty_config())
        self.runtime = runtime or Runtime()
        self.db = None
        self.commits = 0

    def change_config(self, config):
        if config == self.config:
            return
        self.config = config
        self.commits += 1
        if self.db is not None:
            self.db.config_changed(config)

    def vsctl(self, *chain):
        """Our vsctl's command chain through the daemon's path -> outputs."""
        config, outputs = commands.execute(self.config, [list(argv) for argv in chain], self.runtime)
        self.change_config(config)
        return outputs


class ServerThread:
    def __init__(self, path, backend, **limits):
        self.path, self.backend, self.limits = path, backend, limits
        self.remote = f"unix:{path}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = None

    def start(self):
        self.thread.start()
        self.server = self.call_async(ovsdb.start(self.backend, [("unix", self.path)], **self.limits))
        self.backend.db = self.server.db
        return self

    def call_async(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, function, *args, timeout=10):
        """function(*args) on the server's loop (one callback: one loop turn)."""
        async def run():
            return function(*args)
        return self.call_async(run(), timeout)

    def vsctl(self, *chain):
        return self.call(self.backend.vsctl, *chain)

    def stop(self):
        if self.server is not None:
            self.call_async(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def ovsdb_thread(tmpdir, runtime=None, **limits):
    srv = ServerThread(os.path.join(str(tmpdir), "db.sock"), ConfigBackend(runtime), **limits).start()
    try:
        yield srv
    finally:
        srv.stop()


class RawClient:
    """JSON-RPC over a unix socket: requests, replies, notifications."""

    def __init__(self, path, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.decoder = json.JSONDecoder()
        self.buf = ""
        self.next_id = 0
        self.notifications = []

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def send(self, message):
        self.send_raw(json.dumps(message))

    def recv(self, timeout=5.0):
        """The next message, or None if the server closed the connection."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.buf.lstrip()
            if text:
                try:
                    message, end = self.decoder.raw_decode(text)
                    self.buf = text[end:]
                    return message
                except ValueError:
                    pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no message")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(1 << 20)
            except ConnectionResetError:
                return None
            if not data:
                return None
            self.buf += data.decode()

    def request(self, method, *params):
        self.next_id += 1
        self.send({"method": method, "params": list(params), "id": self.next_id})
        return self.next_id

    def call(self, method, *params, timeout=5.0):
        """The reply to a new request; notifications meanwhile are kept."""
        request_id = self.request(method, *params)
        return self.reply_to(request_id, timeout)

    def reply_to(self, request_id, timeout=5.0):
        while True:
            message = self.recv(timeout)
            if message is None:
                raise ConnectionError("closed by the server")
            if message.get("id") == request_id and "method" not in message:
                return message
            self.notifications.append(message)

    def notification(self, timeout=5.0):
        if self.notifications:
            return self.notifications.pop(0)
        message = self.recv(timeout)
        if message is not None and message.get("method") is None:
            raise AssertionError(f"expected a notification, got {message}")
        return message

    def closed_by_server(self, timeout=5.0):
        """Whether the server closes the connection (reading what comes first)."""
        try:
            while True:
                if self.recv(timeout) is None:
                    return True
        except (TimeoutError, socket.timeout):
            return False
