"""A flow dump is written reply by reply with the event loop running in
between: while the requesting peer does not read, the switch stops encoding
(flow control) and other connections are answered; once it reads, it gets
every entry, REPLY_MORE on all but the last reply, and the message it sent
after the request answered only after the dump (arrival order)."""
import asyncio
import tempfile

from vswitch.ofproto.connmgr import ConnManager
from vswitch.ofproto.ofp import (ApplyActions, FlowMod, Match, Output, decode, encode,
                                 split_messages)
from vswitch.ofproto.ofp import messages as m
from vswitch.ofproto.ofp import multipart as mp
from vswitch.ofproto.ofp.constants import OFPFC_ADD
from vswitch.ofproto.ofswitch import OFSwitch

OF13 = 4
N_RULES = 20000          # ~2 MB of flow stats: far more than the socket buffers hold
ECHO_XID, DUMP_XID, AFTER_XID = 1, 2, 3


class FakeHost:
    def flush_bridge(self, name):
        pass


class Counting(list):
    """The rules a dump selected; counts how many the encoder has taken."""
    taken = 0

    def __iter__(self):
        for rule in list.__iter__(self):
            Counting.taken += 1
            yield rule


async def peer(path):
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(encode(m.Hello(versions=(OF13,), version=OF13)))
    return reader, writer


async def read_until(reader, buf, done):
    """Messages until done(msg) is true -> (messages, leftover bytes)."""
    got = []
    while True:
        raws, buf = split_messages(buf)
        for raw in raws:
            msg = decode(raw)
            got.append(msg)
            if done(msg):
                return got, b"".join(raws[raws.index(raw) + 1:]) + buf
        data = await reader.read(65536)
        assert data, "connection closed"
        buf += data


def test_dump_is_flow_controlled_and_other_connections_run_meanwhile():
    ofs = OFSwitch("br0", FakeHost())
    program = [ApplyActions([Output(2)])]
    for i in range(N_RULES):
        ofs.tables.flow_mod(FlowMod(command=OFPFC_ADD, priority=1 + i % 100, instructions=program,
                                    match=Match.exact(eth_type=0x800, ip_proto=6,
                                                      ipv4_dst=0x0A000000 + i, tcp_dst=1 + i)), 0.0)
    select = ofs.tables.select
    ofs.tables.select = lambda *a, **k: Counting(select(*a, **k))

    async def scenario(rundir):
        mgr = ConnManager(ofs, rundir)
        await asyncio.sleep(0.05)        # the mgmt listener is up
        try:
            (a_reader, a_writer), (b_reader, b_writer) = await peer(mgr.mgmt_path), await peer(mgr.mgmt_path)
            a_writer.write(encode(m.MultipartRequest(mp.OFPMP_FLOW, 0, mp.FlowStatsRequest(),
                                                     version=OF13, xid=DUMP_XID)))
            a_writer.write(encode(m.EchoRequest(version=OF13, xid=AFTER_XID)))
            await asyncio.sleep(0.2)      # A reads nothing: the switch must stop encoding
            b_writer.write(encode(m.EchoRequest(version=OF13, xid=ECHO_XID)))
            got, _ = await asyncio.wait_for(
                read_until(b_reader, b"", lambda msg: isinstance(msg, m.EchoReply)), 5)
            assert got[-1].xid == ECHO_XID
            paused_at = Counting.taken
            assert 0 < paused_at < N_RULES
            got, _ = await asyncio.wait_for(
                read_until(a_reader, b"", lambda msg: isinstance(msg, m.EchoReply)), 30)
            replies = [msg for msg in got if isinstance(msg, m.MultipartReply)]
            assert got[-1].xid == AFTER_XID and got[-2] is replies[-1]
            assert all(r.xid == DUMP_XID for r in replies)
            assert [r.flags for r in replies] == [mp.OFPMPF_REPLY_MORE] * (len(replies) - 1) + [0]
            dumped = [e.match.value("ipv4_dst") for r in replies for e in r.body]
            assert sorted(dumped) == [0x0A000000 + i for i in range(N_RULES)]
            a_writer.close()
            b_writer.close()
            return paused_at
        finally:
            mgr.close()

    with tempfile.TemporaryDirectory() as rundir:
        paused_at = asyncio.run(scenario(rundir))
    assert Counting.taken == N_RULES > paused_at
