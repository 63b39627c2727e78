"""The C front end of OpenFlow connections (conn/front.py, csrc/of_front.c):
it takes streamed flow-mod adds of a shape the Python path taught it, and
the result is what the Python path makes — same rules, same replies in the
same order; a message it must not take (bad, or one whose checks depend on
state) still gets the Python path's error and changes nothing; whatever
reads the tables sees the adds; a megaflow on the table, or a slave role,
stops it."""
import asyncio
import gc
import socket
import time

import pytest
from helpers.reset_socket import reset_connection

from vswitch.datapath._datapath import ffi, lib
from vswitch.ofproto.conn.front import SETTLE_DELAY_S
from vswitch.ofproto.conn.ofconn import OFConnection
from vswitch.ofproto.ofp import (ApplyActions, BarrierRequest, FlowMod, Match, Output, decode, encode,
                                 split_messages)
from vswitch.ofproto.ofp import messages as m
from vswitch.ofproto.ofp.constants import (OFPCR_ROLE_SLAVE, OFPFC_ADD, OFPFC_DELETE_STRICT,
                                           OFPFF_CHECK_OVERLAP, OFPFF_SEND_FLOW_REM)
from vswitch.ofproto.ofp.errors import error_name
from vswitch.ofproto.ofswitch import OFSwitch

OF13 = 4
FIRST_PORT = 1000
N_STREAMED = 40
ETH_IP, TCP, UDP = 0x800, 6, 17
QUEUE_S = 0.01             # for bytes sent on a socketpair to be readable


class Host:
    """A Switch stand-in: which tables megaflows looked up, rule changes."""

    def __init__(self):
        self.used_tables, self.changes = set(), []

    def flush_bridge(self, name):
        """Nothing cached here."""

    def revalidate_rules(self, name, changes):
        self.changes += [(rule.seq, added) for rule, added in changes]

    def megaflows_use_table(self, name, table_id):
        return table_id in self.used_tables


class Mgr:
    def __init__(self, switch):
        self.switch, self.clock, self.generation_id = switch, lambda: 5.0, None

    def admit(self, conn):
        return True

    def connected(self, conn):
        """Nothing to announce."""

    def disconnected(self, conn):
        """Nothing to forget."""

    def check_generation(self, generation_id):
        self.generation_id = generation_id

    def demote_others(self, conn):
        """One connection only."""


class Transport:
    def __init__(self):
        self.data = b""

    def write(self, data):
        self.data += data

    def get_extra_info(self, name, default=None):
        return default

    def get_write_buffer_size(self):
        return 0                                     # write() takes everything at once

    def pause_reading(self):
        """Every read here is under the budget."""

    def resume_reading(self):
        """Likewise."""

    def close(self):
        """Nothing to close."""


def add(port, xid, priority=10, table_id=0, flags=0, ip_proto=TCP, command=OFPFC_ADD, cookie=0,
        idle=0, hard=0):
    match = Match.exact(eth_type=ETH_IP, ip_proto=ip_proto, ipv4_dst=0x0A000000 + port, tcp_dst=port)
    return encode(FlowMod(command=command, table_id=table_id, priority=priority, flags=flags, match=match,
                          cookie=cookie, idle_timeout=idle, hard_timeout=hard,
                          instructions=[ApplyActions([Output(2)])], version=OF13, xid=xid))


def barrier(xid):
    return encode(BarrierRequest(version=OF13, xid=xid))


def replies(transport):
    out = []
    for raw in split_messages(transport.data)[0]:
        msg = decode(raw)
        kind = type(msg).__name__
        out.append((error_name(OF13, msg.type, msg.code), msg.xid) if kind == "Error" else (kind, msg.xid))
    transport.data = b""
    return out


def rules(tables):
    return [(r.priority, dict(r.match), r.cookie, r.idle_timeout, r.hard_timeout, r.flags,
             [(type(i).__name__, [(type(a).__name__, vars(a)) for a in i.actions]) for i in r.instructions],
             r.created) for r in sorted(tables.rules(), key=lambda r: r.seq)]


def run(coro):
    return asyncio.run(coro())


def session(host=None):
    """-> (OFSwitch, connection, transport) with the hello exchanged; call
    from inside a running loop."""
    host = host or Host()
    ofs = OFSwitch("br0", host)
    transport = Transport()
    conn = OFConnection(Mgr(ofs), "test", False)
    conn.connection_made(transport)
    conn.data_received(encode(m.Hello(versions=(OF13,), version=OF13)))
    transport.data = b""
    return ofs, conn, transport


def stream(conn, n, start=0, **kw):
    """n adds, each with its barrier in its own read (as ovs-ofctl sends)."""
    for i in range(start, start + n):
        conn.data_received(add(FIRST_PORT + i, xid=2 * i + 1, priority=10 + i % 7, cookie=i,
                               flags=OFPFF_SEND_FLOW_REM if i % 2 else 0, idle=i % 3, hard=i % 5, **kw)
                           + barrier(2 * i + 2))


def test_streamed_adds_are_taken_and_equal_the_python_paths():
    async def body():
        ofs, conn, transport = session()
        stream(conn, N_STREAMED)
        taken = ofs.front.taken
        got = replies(transport)
        ours = rules(ofs.tables)
        # the same messages, each handled by OFSwitch alone (no front end)
        ref = OFSwitch("br0", Host())
        for i in range(N_STREAMED):
            ref.flow_mod(decode(add(FIRST_PORT + i, xid=1, priority=10 + i % 7, cookie=i,
                                    flags=OFPFF_SEND_FLOW_REM if i % 2 else 0, idle=i % 3, hard=i % 5)), 5.0)
        return taken, got, ours, rules(ref.tables)
    taken, got, ours, ref = run(body)
    # the first add goes into an empty table, the second teaches the shape
    assert taken == N_STREAMED - 2
    assert got == [("BarrierReply", 2 * i + 2) for i in range(N_STREAMED)]
    assert ours == ref and len(ours) == N_STREAMED


def test_replacing_an_identical_rule_keeps_one():
    async def body():
        ofs, conn, transport = session()
        stream(conn, 10)
        taken = ofs.front.taken
        stream(conn, 10)            # the same ten again: each replaces its twin
        return ofs.front.taken - taken, len(list(ofs.tables.rules()))
    assert run(body) == (10, 10)


@pytest.mark.parametrize("bad, error", [
    (dict(ip_proto=UDP), ("BAD_MATCH", "BAD_PREREQ")),       # tcp_dst needs ip_proto 6
    (dict(table_id=0xFF), ("FLOW_MOD_FAILED", "BAD_TABLE_ID")),
    (dict(table_id=254), ("FLOW_MOD_FAILED", "BAD_TABLE_ID")),
])
def test_a_bad_add_of_a_taught_shape_gets_its_error_and_changes_nothing(bad, error):
    async def body():
        ofs, conn, transport = session()
        stream(conn, 5)
        replies(transport)
        before = rules(ofs.tables)
        conn.data_received(add(FIRST_PORT + 100, xid=77, **bad) + barrier(78))
        return replies(transport), before, rules(ofs.tables)
    got, before, after = run(body)
    assert got == [(error, 77), ("BarrierReply", 78)]
    assert after == before


def test_check_overlap_goes_through_the_python_path():
    async def body():
        ofs, conn, transport = session()
        stream(conn, 5)
        replies(transport)
        taken = ofs.front.taken
        # rule 0's priority (10), a wider match: a packet can match both
        wide = FlowMod(command=OFPFC_ADD, priority=10, flags=OFPFF_CHECK_OVERLAP,
                       match=Match.exact(eth_type=ETH_IP, ip_proto=TCP, ipv4_dst=0x0A000000 + FIRST_PORT),
                       instructions=[ApplyActions([Output(2)])], version=OF13, xid=55)
        conn.data_received(encode(wide) + barrier(56))
        return ofs.front.taken - taken, replies(transport)
    assert run(body) == (0, [(("FLOW_MOD_FAILED", "OVERLAP"), 55), ("BarrierReply", 56)])


def test_a_delete_in_the_same_read_sees_the_taken_adds():
    async def body():
        ofs, conn, transport = session()
        stream(conn, 5)
        taken = ofs.front.taken
        read = b"".join(add(FIRST_PORT + i, xid=100 + i) for i in range(10, 14))
        read += add(FIRST_PORT + 12, xid=200, command=OFPFC_DELETE_STRICT) + barrier(201)
        conn.data_received(read)
        ports = sorted(r.match["tcp_dst"][0] for r in ofs.tables.rules())
        return ofs.front.taken - taken, ports, replies(transport)[-1]
    taken, ports, last = run(body)
    assert taken == 4
    assert ports == [FIRST_PORT + i for i in (0, 1, 2, 3, 4, 10, 11, 13)]
    assert last == ("BarrierReply", 201)


def test_readers_of_the_tables_see_waiting_adds():
    async def body():
        ofs, conn, transport = session()
        stream(conn, 10)
        waiting = ofs.front.n_pending
        peek = ofs._tables.tables[0].count          # without applying
        seen = ofs.tables.tables[0].count           # a reader: applied first
        return waiting, peek, seen, ofs.front.n_pending
    waiting, peek, seen, after = run(body)
    assert waiting == 8 and peek == 2
    assert (seen, after) == (10, 0)


def test_waiting_adds_are_applied_soon_without_a_reader():
    async def body():
        ofs, conn, transport = session()
        stream(conn, 10)
        waiting = ofs.front.n_pending
        await asyncio.sleep(SETTLE_DELAY_S * 5)
        return waiting, ofs.front.n_pending, ofs._tables.tables[0].count
    assert run(body) == (8, 0, 10)


def test_a_megaflow_on_the_table_stops_the_front_end():
    async def body():
        host = Host()
        ofs, conn, transport = session(host)
        stream(conn, 5)
        ofs.tables                         # an upcall's view: applies, disables the front end
        host.used_tables.add(0)            # ... and its megaflow now depends on table 0
        taken = ofs.front.taken
        conn.data_received(add(FIRST_PORT + 50, xid=9) + barrier(10))
        # applied before the reply (not deferred: host.changes has it), not taken
        return ofs.front.taken - taken, ofs.front.active(), host.changes[-1][1], len(list(ofs._tables.rules()))
    assert run(body) == (0, False, True, 6)


def test_a_slave_connection_gets_is_slave():
    async def body():
        ofs, conn, transport = session()
        stream(conn, 5)
        conn.data_received(encode(m.RoleRequest(OFPCR_ROLE_SLAVE, 1, version=OF13, xid=30)))
        replies(transport)
        active = ofs.front.active()     # (reading `tables` would have stopped it)     # it would take the add: the role stops it
        conn.data_received(add(FIRST_PORT + 60, xid=31) + barrier(32))
        return active, replies(transport), len(list(ofs.tables.rules()))
    active, got, n_rules = run(body)
    assert active
    assert got == [(("BAD_REQUEST", "IS_SLAVE"), 31), ("BarrierReply", 32)]
    assert n_rules == 5


def test_the_c_loop_answers_takes_and_hands_back_the_rest():
    """vs_of_front_pump on a socket: the adds and barriers queued are
    answered in order and become records; an echo request (not its to
    take) comes back as the rest, with everything after it unread by C."""
    a, b = socket.socketpair()
    try:
        async def body():
            ofs, conn, transport = session()
            stream(conn, 2)                          # teaches the shape, enables table 0
            front = ofs.front
            queued = b"".join(add(FIRST_PORT + i, xid=10 + i) + barrier(100 + i) for i in range(2, 8))
            echo = encode(m.EchoRequest(version=OF13, xid=500))
            b.sendall(queued + echo + barrier(501))
            rbuf = bytearray(65536)
            time.sleep(QUEUE_S)                      # all of it in the socket
            reason, unsent, rest, reads, gap, err = front.pump(a.fileno(), ffi.from_buffer("uint8_t[]", rbuf),
                                                               0.001, 0.01, 5.0)
            b.settimeout(1)
            answered = b.recv(65536)
            return reason, unsent, rest, err, front.n_pending, answered, echo + barrier(501)
        reason, unsent, rest, err, pending, answered, tail = run(body)
    finally:
        a.close()
        b.close()
    assert reason == lib.VS_OF_FRONT_PUMP_REST and unsent is None and err == 0
    assert rest == tail
    assert pending == 6
    assert [(type(decode(r)).__name__, decode(r).xid) for r in split_messages(answered)[0]] == \
        [("BarrierReply", 100 + i) for i in range(2, 8)]


def test_applied_rules_are_frozen_until_the_next_run():
    """The bulk apply keeps the cycle collector off the new rules while
    adds stream in; OFSwitch.run hands them back to it."""
    async def body():
        ofs, conn, transport = session()
        ofs.run(time.monotonic())                   # whatever an earlier apply froze is thawed
        stream(conn, 10)
        before = gc.get_freeze_count()
        count = ofs.tables.tables[0].count          # a reader: applied first
        frozen = gc.get_freeze_count()
        ofs.run(time.monotonic())
        return before, count, frozen, gc.get_freeze_count()
    before, count, frozen, after = run(body)
    assert before == 0 and count == 10
    assert frozen > 0
    assert after == 0


def test_the_c_loop_reports_a_reset_it_read():
    """A reset peer: the C loop's read takes ECONNRESET from the socket (the
    transport then sees only EOF), so it hands the errno back and the
    connection keeps it as the reason it ended."""
    with reset_connection() as sock:
        async def body():
            ofs, conn, transport = session()
            stream(conn, 2)                          # teaches the shape, enables table 0
            assert conn.front_ready()
            return conn.front_pump(sock.fileno(), 0.001, 0.01), conn.error
        (reason, reads, gap), error = run(body)
        assert sock.recv(1) == b""                   # what the transport's read sees next
    assert reason == lib.VS_OF_FRONT_PUMP_CLOSED and reads == 0
    assert isinstance(error, ConnectionResetError)
