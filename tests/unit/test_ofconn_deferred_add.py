"""An add applied just after the barrier reply is written (ofswitch.py's
note): the reply leaves before the table work, the rule is in the table
before the read's callback returns, nothing else ever sees the table
without it, and an add that could change a megaflow, the pipeline choice,
or that fails, is never deferred (errors still precede the barrier reply,
and change nothing)."""
import asyncio

from vswitch.ofproto.conn.ofconn import OFConnection
from vswitch.ofproto.ofp import (ApplyActions, BarrierRequest, FlowMod, GotoTable, Group, Match, Output,
                                 decode, encode, split_messages)
from vswitch.ofproto.ofp import messages as m
from vswitch.ofproto.ofp.constants import OFPFC_ADD, OFPFC_DELETE_STRICT, OFPFF_CHECK_OVERLAP
from vswitch.ofproto.ofswitch import OFSwitch

OF13 = 4
FIRST_PORT = 1000


class Host:
    """A Switch stand-in that says whether megaflows looked a table up and
    records the rule changes handed to revalidation."""

    def __init__(self, used_tables=()):
        self.used_tables, self.changes, self.flushes = set(used_tables), [], 0

    def flush_bridge(self, name):
        self.flushes += 1

    def revalidate_rules(self, name, changes):
        self.changes += [(rule.match["tcp_dst"][0], added) for rule, added in changes]

    def megaflows_use_table(self, name, table_id):
        return table_id in self.used_tables


class Mgr:
    def __init__(self, switch):
        self.switch, self.clock = switch, lambda: 0.0

    def admit(self, conn):
        return True

    def connected(self, conn):
        """Nothing to announce."""

    def disconnected(self, conn):
        """Nothing to forget."""


class Transport:
    """Records each write and how many rules table 0 held at that moment."""

    def __init__(self, ofs):
        self.ofs, self.writes = ofs, []

    def write(self, data):
        # peeks (OFSwitch._tables): reading `tables` would apply what waits
        self.writes.append((data, self.ofs._tables.tables[0].count))

    def get_extra_info(self, name, default=None):
        return default

    def pause_reading(self):
        """Not reached: every read is under the budget."""

    def resume_reading(self):
        """Not reached either."""

    def close(self):
        """Nothing to close."""


def add(port, table_id=0, flags=0, instructions=None, command=OFPFC_ADD, xid=1):
    match = Match.exact(eth_type=0x800, ip_proto=6, tcp_dst=port)
    return encode(FlowMod(command=command, table_id=table_id, priority=10, flags=flags, match=match,
                          instructions=instructions or [ApplyActions([Output(2)])],
                          version=OF13, xid=xid))


def barrier(xid=99):
    return encode(BarrierRequest(version=OF13, xid=xid))


def connect(host):
    ofs = OFSwitch("br0", host)
    transport = Transport(ofs)

    async def made():
        conn = OFConnection(Mgr(ofs), "test", False)
        conn.connection_made(transport)
        conn.data_received(encode(m.Hello(versions=(OF13,), version=OF13)))
        return conn
    conn = asyncio.run(made())
    transport.writes.clear()      # the hello
    return ofs, conn, transport


def replies(transport):
    return [(type(decode(raw)).__name__, count) for data, count in transport.writes
            for raw in split_messages(data)[0]]


def ports(ofs):
    return sorted(r.match["tcp_dst"][0] for r in ofs.tables.tables[0])


def test_add_is_applied_right_after_the_barrier_reply():
    host = Host()
    ofs, conn, transport = connect(host)
    conn.data_received(add(FIRST_PORT) + barrier())        # empty table: applied before the reply
    conn.data_received(add(FIRST_PORT + 1) + barrier())    # deferred past it
    assert replies(transport) == [("BarrierReply", 1), ("BarrierReply", 1)]
    assert ports(ofs) == [FIRST_PORT, FIRST_PORT + 1]
    # the first add switched the pipeline to the tables (a flush); the
    # deferred one went through revalidation once applied
    assert (host.flushes, host.changes) == (1, [(FIRST_PORT + 1, True)])


def test_next_message_of_the_same_read_sees_the_deferred_add():
    """A strict delete right behind the add (one read) finds it."""
    ofs, conn, transport = connect(Host())
    conn.data_received(add(FIRST_PORT) + barrier())
    conn.data_received(add(FIRST_PORT + 1) + add(FIRST_PORT + 1, command=OFPFC_DELETE_STRICT) + barrier())
    assert ports(ofs) == [FIRST_PORT]
    assert replies(transport) == [("BarrierReply", 1), ("BarrierReply", 1)]


def test_not_deferred_when_a_megaflow_used_the_table():
    ofs, conn, transport = connect(Host(used_tables={0}))
    conn.data_received(add(FIRST_PORT) + barrier())
    conn.data_received(add(FIRST_PORT + 1) + barrier())
    assert replies(transport) == [("BarrierReply", 1), ("BarrierReply", 2)]


def test_not_deferred_with_check_overlap():
    ofs, conn, transport = connect(Host())
    conn.data_received(add(FIRST_PORT) + barrier())
    conn.data_received(add(FIRST_PORT + 1, flags=OFPFF_CHECK_OVERLAP) + barrier())
    assert replies(transport) == [("BarrierReply", 1), ("BarrierReply", 2)]


def test_bad_adds_get_their_error_before_the_barrier_reply_and_change_nothing():
    """goto a lower table and an unknown group: errors from the checks the
    deferral runs first; the table and revalidation are untouched."""
    host = Host()
    ofs, conn, transport = connect(host)
    conn.data_received(add(FIRST_PORT) + barrier())
    transport.writes.clear()
    bad_goto = add(FIRST_PORT + 1, table_id=0, instructions=[GotoTable(0)], xid=7)
    bad_group = add(FIRST_PORT + 2, instructions=[ApplyActions([Group(42)])], xid=8)
    conn.data_received(bad_goto + bad_group + barrier())
    got = [decode(raw) for data, _ in transport.writes for raw in split_messages(data)[0]]
    assert [type(msg).__name__ for msg in got] == ["Error", "Error", "BarrierReply"]
    assert [msg.xid for msg in got] == [7, 8, 99]
    assert ports(ofs) == [FIRST_PORT]
    assert (host.flushes, host.changes) == (1, [])


def test_direct_callers_never_defer():
    """flow_mod() without defer (ofctl_runtime) applies at once."""
    ofs = OFSwitch("br0", Host())
    for port in (FIRST_PORT, FIRST_PORT + 1):
        ofs.flow_mod(decode(add(port)), 0.0)
        assert port in ports(ofs)
