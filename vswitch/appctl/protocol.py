"""OVS's unixctl protocol (lib/unixctl.c over lib/jsonrpc.c) as an asyncio server.

Messages are JSON objects written back to back, with no delimiter: JsonStream
finds where each one ends (strings and escapes are skipped, brackets
counted) before it is decoded.  See vswitch/appctl/__init__.py for the
design and the error conventions.
"""
import asyncio
import inspect
import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Callable

from vswitch.chunked_reply import ChunkedText, write_message
from vswitch.rpc_server import bind_socket  # the same stale-socket rules and mode 0600 as vsctl's socket

log = logging.getLogger("vswitch.unixctl")

MAX_MESSAGE = 4 * 1024 * 1024  # bytes in one message
MAX_DEPTH = 64                  # JSON nesting of one message
READ_SIZE = 65536


class ProtocolError(Exception):
    """The byte stream is not JSON-RPC: the connection is closed."""


class UnixctlError(Exception):
    """A command's failure: its text is the error reply."""


@dataclass
class Reply:
    """A command's text, and what to run once the reply has been sent
    (`exit` stops the daemon only after ovs-appctl has its answer)."""
    text: str = ""
    then: Callable | None = None


@dataclass
class Command:
    usage: str
    min_args: int
    max_args: int
    callback: Callable  # callback(args) -> str | Reply | None (or an awaitable of one)


# ---------------------------------------------------------------- framing

_OUTSIDE = re.compile(rb'["{}\[\]]')   # what matters outside a string
_INSIDE = re.compile(rb'["\\]')        # what matters inside one
_NOT_SPACE = re.compile(rb"[^ \t\r\n]")
_OPEN, _CLOSE, _QUOTE, _BACKSLASH = b"{[", b"}]", ord('"'), ord("\\")


class JsonStream:
    """Cuts a byte stream into its top-level JSON objects (or arrays).

    feed(bytes) -> [bytes of each complete value]; raises ProtocolError for
    a value that does not start with { or [, nests deeper than max_depth or
    grows past max_size.  The scan resumes where the last feed stopped, so a
    message arriving a byte at a time costs no rescanning."""

    def __init__(self, max_size=MAX_MESSAGE, max_depth=MAX_DEPTH):
        self.max_size, self.max_depth = max_size, max_depth
        self.buf = bytearray()
        self.pos = 0          # scanned up to here
        self.depth = 0        # 0: between values
        self.in_string = False

    def feed(self, data):
        self.buf += data
        values = []
        buf = self.buf
        while True:
            if self.depth == 0:
                m = _NOT_SPACE.search(buf, self.pos)
                if m is None:
                    buf.clear()
                    self.pos = 0
                    break
                if buf[m.start()] not in _OPEN:
                    raise ProtocolError("syntax error: a JSON-RPC message must be a JSON object")
                del buf[:m.start()]
                self.depth, self.pos = 1, 1
                continue
            if self.in_string:
                m = _INSIDE.search(buf, self.pos)
                if m is None:
                    self.pos = len(buf)
                    break
                if buf[m.start()] == _BACKSLASH:
                    if m.start() + 1 >= len(buf):
                        self.pos = m.start()  # the escaped byte has not arrived yet
                        break
                    self.pos = m.start() + 2
                else:
                    self.in_string, self.pos = False, m.start() + 1
                continue
            m = _OUTSIDE.search(buf, self.pos)
            if m is None:
                self.pos = len(buf)
                break
            c, self.pos = buf[m.start()], m.start() + 1
            if c == _QUOTE:
                self.in_string = True
            elif c in _OPEN:
                self.depth += 1
                if self.depth > self.max_depth:
                    raise ProtocolError(f"message nested deeper than {self.max_depth}")
            else:
                self.depth -= 1
                if self.depth == 0:
                    values.append(bytes(buf[:self.pos]))
                    del buf[:self.pos]
                    self.pos = 0
        if len(buf) > self.max_size:
            raise ProtocolError(f"message longer than {self.max_size} bytes")
        return values


def _compact(value, **kwargs):
    return json.dumps(value, separators=(",", ":"), **kwargs)


def encode(message):
    """A message as OVS writes it: compact JSON, no delimiter."""
    return _compact(message).encode()


def reply_message(request_id, text, error=False):
    """OVS's unixctl_command_reply__: a non-empty body ends with a newline."""
    text = text or ""
    if text and not text.endswith("\n"):
        text += "\n"
    if error:
        return {"id": request_id, "result": None, "error": text}
    return {"id": request_id, "result": text, "error": None}


# ---------------------------------------------------------------- server

class UnixctlServer:
    """A command table served on a unix socket.

    register(name, usage, min_args, max_args, callback); the callback gets
    the arguments (a list of str, the command name not included) and
    returns the reply text (or a Reply, or a ChunkedText whose pieces are
    produced while it is written: each non-empty body ends with a newline,
    as reply_message's), or raises UnixctlError(text)."""

    def __init__(self, version_text):
        self.version_text = version_text
        self.commands = {}
        self.counters = {"unixctl_received": 0, "unixctl_replied": 0}
        self.path = None
        self._server = None
        self._writers = set()
        self._conn_tasks = set()
        self.background_factories = []  # coroutine functions run while serving (coverage's timer)
        self._tasks = []
        self.register("list-commands", "", 0, 0, lambda args: self.list_commands())
        self.register("version", "", 0, 0, lambda args: self.version_text)

    def register(self, name, usage, min_args, max_args, callback):
        self.commands[name] = Command(usage, min_args, max_args, callback)

    def list_commands(self):
        lines = ["The available commands are:"]
        lines += [f"  {name:<23} {self.commands[name].usage}" for name in sorted(self.commands)]
        return "\n".join(lines) + "\n"

    # -- requests ------------------------------------------------------------------
    async def answer(self, message):
        """One decoded message -> (reply message or None, Reply.then or None).
        Raises ProtocolError for a message that is not a request."""
        if not isinstance(message, dict):
            raise ProtocolError("message is not a JSON object")
        request_id = message.get("id")
        if request_id is None:
            # A notification, or a reply: OVS's unixctl closes the connection.
            kind = "reply" if ("result" in message or "error" in message) else "notification"
            raise ProtocolError(f"received unexpected {kind} message")
        method, params = message.get("method"), message.get("params")
        if not isinstance(method, str):
            return reply_message(request_id, "invalid JSON-RPC request: \"method\" must be a string",
                                 error=True), None
        if not isinstance(params, list):
            return reply_message(request_id, "invalid JSON-RPC request: \"params\" must be JSON array",
                                 error=True), None
        self.counters["unixctl_received"] += 1
        command = self.commands.get(method)
        if command is None:
            error = f'"{method}" is not a valid command (use "list-commands" to see a list of valid commands)'
        elif len(params) < command.min_args:
            error = f'"{method}" command requires at least {command.min_args} arguments'
        elif len(params) > command.max_args:
            error = f'"{method}" command takes at most {command.max_args} arguments'
        elif not all(isinstance(p, str) for p in params):
            error = f'"{method}" command has non-string argument'
        else:
            error = None
        if error is not None:
            return reply_message(request_id, error, error=True), None
        try:
            result = command.callback(list(params))
            if inspect.isawaitable(result):
                result = await result
        except UnixctlError as exc:
            return reply_message(request_id, str(exc), error=True), None
        except Exception as exc:  # a bug in one command: say so, keep serving
            log.exception("unixctl command %s failed", method)
            return reply_message(request_id, f"{method}: internal error: {exc or type(exc).__name__}",
                                 error=True), None
        if isinstance(result, Reply):
            return reply_message(request_id, result.text), result.then
        if isinstance(result, ChunkedText):  # written piece by piece (chunked_reply.py)
            return {"id": request_id, "result": result, "error": None}, None
        return reply_message(request_id, result), None

    async def _connection(self, reader, writer):
        self._writers.add(writer)
        self._conn_tasks.add(asyncio.current_task())
        stream = JsonStream()
        try:
            while True:
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                for raw in stream.feed(data):
                    try:
                        message = json.loads(raw)
                    except (ValueError, RecursionError) as exc:
                        raise ProtocolError(f"syntax error: {exc}") from None
                    reply, then = await self.answer(message)
                    try:
                        await write_message(writer, reply, dumps=_compact)
                        self.counters["unixctl_replied"] += 1
                    finally:
                        if then is not None:  # `exit` exits even if its client went away
                            then()
        except ProtocolError as exc:
            log.warning("unixctl: closing a connection: %s", exc)
        except (ConnectionError, OSError):
            pass  # the client went away
        except asyncio.CancelledError:
            pass  # the loop is ending: Python 3.11's stream callback would log it as an error
        finally:
            self._writers.discard(writer)
            self._conn_tasks.discard(asyncio.current_task())
            writer.close()

    # -- lifecycle ------------------------------------------------------------------
    async def start(self, path):
        sock = bind_socket(path)
        self.path = path
        self._server = await asyncio.start_unix_server(self._connection, sock=sock)
        self._tasks = [asyncio.create_task(factory()) for factory in self.background_factories]
        return self

    async def close(self):
        if self._server is None:
            return
        self._server.close()
        for task in self._tasks:
            task.cancel()
        for writer in list(self._writers):
            writer.close()
        if self._conn_tasks:  # they end at once: their transports are closed
            await asyncio.wait(list(self._conn_tasks), timeout=1.0)
        await self._server.wait_closed()
        self._server = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
