"""Reply values too big to build in one go: a list read chunk by chunk.

`vsctl dpctl-dump-flows` of 100k megaflows is ~17 MB of JSON and seconds of
Python to produce.  Built at once it would hold the event loop (and with it
upcalls, OpenFlow and every other control client) for all of that, and the
whole text in memory.  A runtime method returns a ChunkedList instead: an
iterable of chunks (lists of JSON values) that is only read when the reply
is written.  vswitch/rpc_server.py writes such a value as one JSON array, one chunk
per turn of the event loop, so the reply's format does not change for the
client and the daemon holds one chunk at a time.  ChunkedText is the same
for one long JSON string (ovs-appctl dpctl/dump-flows: the reply is text).

write_message() writes a message holding either: the rest of the message is
encoded first (chunked values stand in as a random marker string), then
each chunked value is written in its place, one chunk per turn of the event
loop.  A chunk that fails half way cannot become an error reply any more:
ChunkedReplyFailed tells the server to close the connection.

A chunked value is read once.  Code that wants it in process (a test, a
caller that is not a reply) calls items() / text().
"""
import asyncio
import json
import logging
import secrets

log = logging.getLogger("vswitch.chunked_reply")

MARK_BYTES = 16  # random bytes in a message's marker for its chunked values


class ChunkedReplyFailed(ConnectionAbortedError):
    """A chunked value failed after part of its reply was written."""


class Chunked:
    """A value produced in parts: `parts` is read once, while it is written."""

    def __init__(self, parts):
        self._parts = iter(parts)

    def __iter__(self):
        return self._parts


class ChunkedList(Chunked):
    """A JSON array produced chunk by chunk: the parts are lists."""

    def items(self):
        return [item for chunk in self._parts for item in chunk]


class ChunkedText(Chunked):
    """A JSON string produced piece by piece: the parts are str."""

    def text(self):
        return "".join(self._parts)


def dumps_fixed(message, dumps=json.dumps):
    """The message's JSON with every chunked value left empty: its size
    without what the chunks will add."""
    return dumps(message, default=lambda value: _placeholder(value, ""))


def _placeholder(value, mark):
    if isinstance(value, Chunked):
        return mark
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _encoded_pieces(value, dumps):
    """JSON text of a chunked value, piece by piece (bytes)."""
    if isinstance(value, ChunkedText):
        yield b'"'
        for piece in value:
            if piece:
                yield dumps(piece)[1:-1].encode()
        yield b'"'
        return
    yield b"["
    first = True
    for chunk in value:
        if chunk:
            yield (b"" if first else b",") + dumps(chunk)[1:-1].encode()
            first = False
    yield b"]"


async def write_message(writer, message, dumps=json.dumps, end=b""):
    """Writes `message` (then `end`); its chunked values (in the order
    `dumps` meets them) one piece per turn of the event loop."""
    chunked = []
    # A random marker: a NUL is written as \u0000, which no name of ours holds.
    mark = f"\0chunked-{secrets.token_hex(MARK_BYTES)}\0"

    def placeholder(value):
        chunked.append(value)
        return _placeholder(value, mark)
    text = dumps(message, default=placeholder)
    fixed = text.split(dumps(mark)) if chunked else [text]
    if len(fixed) != len(chunked) + 1:
        raise ChunkedReplyFailed("chunked reply marker collided")
    writer.write(fixed[0].encode())
    for value, after in zip(chunked, fixed[1:]):
        try:
            for piece in _encoded_pieces(value, dumps):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0)  # upcalls, OpenFlow, other clients
        except ConnectionError:  # the client went away
            raise
        except Exception:
            log.exception("a chunked reply failed half way; closing its connection")
            raise ChunkedReplyFailed("chunked reply failed") from None
        writer.write(after.encode())
    writer.write(end)
    await writer.drain()
