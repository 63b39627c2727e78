"""Chunked reply values (vswitch/chunked_reply.py): written in place as one
JSON value, one chunk per turn of the event loop, through the vsctl RPC
server (rpc_server.py) past MAX_REPLY, and a chunk that fails half way closes the
connection instead of sending a corrupt reply."""
import asyncio
import json
import os
import time

import pytest

from test_vsctl_rpc import running_server, short_tmpdir
from vswitch import rpc
from vswitch.chunked_reply import ChunkedList, ChunkedText, dumps_fixed, write_message

CHUNKS = 20


@pytest.fixture
def sock_path():
    with short_tmpdir() as tmp:
        yield os.path.join(tmp, "vswitchd.sock")


class Collect:
    """A StreamWriter's write/drain that keeps the bytes."""

    def __init__(self):
        self.data = bytearray()

    def write(self, data):
        self.data += data

    async def drain(self):
        pass


def test_values_are_written_in_place_and_the_loop_turns_between_chunks():
    turns = []

    async def run():
        async def ticker():
            while True:
                turns.append(len(writer.data))
                await asyncio.sleep(0)
        writer = Collect()
        task = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        message = {"a": ChunkedList([[i, i + 100] if i % 3 else [] for i in range(CHUNKS)]),
                   "b": "fixed", "c": [ChunkedText(f"line {i}\n\"quoted\"" for i in range(3)), 1]}
        await write_message(writer, message, end=b"\n")
        task.cancel()
        return bytes(writer.data)
    data = asyncio.run(run())
    assert data.endswith(b"\n")
    assert json.loads(data) == {
        "a": [x for i in range(CHUNKS) if i % 3 for x in (i, i + 100)], "b": "fixed",
        "c": ["".join(f"line {i}\n\"quoted\"" for i in range(3)), 1]}
    # the ticker ran while the list was being written, at growing lengths
    assert len(set(turns)) >= CHUNKS


def test_fixed_size_leaves_chunked_values_out():
    assert dumps_fixed({"a": ChunkedList([[1, 2, 3]]), "b": 1}) == json.dumps({"a": "", "b": 1})


def test_items_and_text_in_process():
    assert ChunkedList([[1], [], [2, 3]]).items() == [1, 2, 3]
    assert ChunkedText(["a", "", "b\n"]).text() == "ab\n"


def chunked(method, params):
    if method == "fail":
        def chunks():
            yield [1]
            raise RuntimeError("datapath went away")
        return {"outputs": [ChunkedList(chunks())]}
    row = "x" * params["row"]
    return {"outputs": [ChunkedList([row] * params["rows"] for _ in range(params["chunks"]))]}


def test_rpc_streams_past_max_reply_and_closes_on_a_failed_chunk(sock_path):
    rows, chunk_count, row = 64, 40, 4096  # 10 MiB > MAX_REPLY
    assert rows * chunk_count * row > rpc.MAX_REPLY
    with running_server(sock_path, chunked):
        result = rpc.call(sock_path, "dump", {"rows": rows, "chunks": chunk_count, "row": row})
        assert result == {"outputs": [["x" * row] * (rows * chunk_count)]}
        with pytest.raises(rpc.DaemonUnreachable, match="closed the connection without replying"):
            rpc.call(sock_path, "fail", {})
        # the server keeps serving
        assert rpc.call(sock_path, "dump", {"rows": 1, "chunks": 2, "row": 1}) == {"outputs": [["x", "x"]]}


SLOW_CHUNKS, SLOW_PAUSE_S = 6, 0.1


def slow_chunks(method, params):
    def chunks():
        for i in range(SLOW_CHUNKS):
            time.sleep(SLOW_PAUSE_S)  # a chunk that takes long to read
            yield [i]
    return {"outputs": [ChunkedList(chunks())]}


def test_rpc_client_timeout_is_for_silence(sock_path):
    with running_server(sock_path, slow_chunks):
        # 0.6 s in all, never 0.3 s of silence
        assert rpc.call(sock_path, "dump", {}, timeout=0.3) == {"outputs": [list(range(SLOW_CHUNKS))]}
        with pytest.raises(TimeoutError, match="no reply from vswitchd"):
            rpc.call(sock_path, "dump", {}, timeout=SLOW_PAUSE_S / 4)
