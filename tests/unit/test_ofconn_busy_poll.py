"""Busy-polling of a streaming OpenFlow connection (conn/busy_poll.py), with
real sockets and peer processes: a peer that sends flow-mod + barrier per
round trip (as ovs-ofctl add-flows) is read by polling after each reply,
every request still answered in order and applied; a peer that pauses
between requests is never polled for; and polling gives the event loop
back after its per-turn budget, so other connections are answered."""
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

from helpers.reset_socket import reset_connection
from vswitch.ofproto.conn.busy_poll import MAX_WINDOW_S, TURN_BUDGET_S, BusyPoller
from vswitch.ofproto.conn.ofconn import OFConnection
from vswitch.ofproto.ofswitch import OFSwitch

ROUND_TRIPS = 2000
MIN_POLLED = ROUND_TRIPS // 10   # round trips a working poller catches at the least
PAUSED_REQUESTS = 20
PAUSE_S = 0.005            # well above busy_poll.MAX_WINDOW_S
QUEUED_READS = 1000        # reads' worth queued for the budget test
READ_BYTES = 64
WORK_S = 100e-6            # CPU per read in the budget test
SLACK_S = 0.05             # scheduling slack on a shared machine
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A peer process: hello, then n flow-mod + barrier round trips ("stream"),
# or n echo requests `pause` apart ("paused"), or n echo requests after
# sleeping `pause` ("echo"); it checks every reply's xid and prints the
# time it finished (for "echo": when its first reply came back).
PEER = textwrap.dedent("""
    import socket, sys, time
    from vswitch.ofproto.ofp import (ApplyActions, BarrierRequest, EchoRequest, FlowMod, Hello, Match,
                                     Output, decode, encode, split_messages)
    path, mode, n, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(encode(Hello(versions=(4,), version=4)))
    buf = b""
    def wait(xid):
        global buf
        while True:
            raws, buf = split_messages(buf)
            for raw in raws:
                msg = decode(raw)
                assert type(msg).__name__ != "Error", msg
                if msg.xid == xid:
                    buf = b"".join(raws[raws.index(raw) + 1:]) + buf
                    return
            buf += s.recv(65536)
    first = None
    if mode == "echo":
        time.sleep(pause)       # the other peer's stream is under way
    for i in range(1, n + 1):
        if mode == "stream":
            fm = FlowMod(command=0, priority=1 + i % 100, version=4, xid=2 * i,
                         match=Match.exact(eth_type=0x800, ip_proto=6, ipv4_dst=0x0A000000 + i, tcp_dst=80),
                         instructions=[ApplyActions([Output(2)])])
            s.sendall(encode(fm) + encode(BarrierRequest(version=4, xid=2 * i + 1)))
            wait(2 * i + 1)
        else:
            s.sendall(encode(EchoRequest(version=4, xid=i)))
            wait(i)
            first = first or time.monotonic()
            if mode == "paused":
                time.sleep(pause)
    print(first if mode == "echo" else time.monotonic())
""")


class Mgr:
    def __init__(self, switch):
        self.switch, self.clock, self.conns = switch, time.monotonic, []

    def admit(self, conn):
        return True

    def connected(self, conn):
        self.conns.append(conn)

    def disconnected(self, conn):
        """Nothing to forget."""


class Host:
    def flush_bridge(self, name):
        """No datapath."""

    def revalidate_rules(self, name, changes):
        """No megaflows."""

    def megaflows_use_table(self, name, table_id):
        return False


def peer(path, mode, n, pause=0.0):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-c", PEER, path, mode, str(n), str(pause)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def serve(*peers):
    """Runs a server with one OFSwitch until every peer (mode, n, pause) has
    exited -> (switch, its connections in connect order, peers' outputs)."""
    ofs = OFSwitch("br0", Host())
    mgr = Mgr(ofs)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "of.sock")

        async def main():
            loop = asyncio.get_running_loop()
            server = await loop.create_unix_server(lambda: OFConnection(mgr, "test", False), path)
            procs = [peer(path, *spec) for spec in peers]
            outs = []
            for proc in procs:
                while proc.poll() is None:
                    await asyncio.sleep(0.01)
                out, err = proc.communicate()
                assert proc.returncode == 0, err
                outs.append(float(out))
            server.close()
            return outs
        outs = asyncio.run(main())
    return ofs, mgr.conns, outs


def test_streaming_peer_is_read_by_polling_and_every_request_applied():
    ofs, (conn,), _ = serve(("stream", ROUND_TRIPS))
    assert ofs.tables.tables[0].count == ROUND_TRIPS
    # A Python peer on a shared 2-CPU machine sometimes takes longer than
    # the longest window: not every round trip is caught, but many are.
    assert conn._poller.hits >= MIN_POLLED, (conn._poller.hits, conn._poller.polls)


def test_paused_peer_is_never_polled_for():
    _, (conn,), _ = serve(("paused", PAUSED_REQUESTS, PAUSE_S))
    # at most the one window after hello + first request (they come together)
    assert conn._poller.polls <= 1 and conn._poller.hits == 0


class Busy:
    """A connection stand-in whose every read costs WORK_S of CPU."""

    def __init__(self, size):
        self._rbuf, self.reads = memoryview(bytearray(size)), 0

    def data_received(self, data):
        self.reads += 1
        end = time.perf_counter() + WORK_S
        while time.perf_counter() < end:
            pass

    def may_poll(self):
        return True

    def front_ready(self):
        return False      # no OpenFlow front end here: the Python loop polls


def test_polling_gives_the_loop_back_after_its_turn_budget():
    """A peer that always has more queued: run() stops after about
    TURN_BUDGET_S of handling (other connections get their turn), marks the
    connection to be polled again on its next read, and leaves the rest in
    the socket; with nothing queued it returns after one window."""
    a, b = socket.socketpair()
    try:
        b.sendall(bytes(QUEUED_READS * READ_BYTES))
        poller, conn = BusyPoller(a), Busy(READ_BYTES)
        poller.run(conn)
        budget_reads = TURN_BUDGET_S / WORK_S
        assert 1 <= conn.reads <= 2 * budget_reads + 1, conn.reads
        assert poller.yielded and poller.streaming(time.perf_counter())
        assert len(a.recv(QUEUED_READS * READ_BYTES, socket.MSG_DONTWAIT)) > 0   # the rest waits
        while True:                 # drain, then an empty window
            try:
                a.recv(QUEUED_READS * READ_BYTES, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
        t0 = time.perf_counter()
        conn.reads = 0
        poller.run(conn)
        assert conn.reads == 0 and poller.replied_at is None
        assert time.perf_counter() - t0 < MAX_WINDOW_S + SLACK_S
    finally:
        a.close()
        b.close()


def test_streaming_peer_goes_through_the_front_ends_c_loop():
    """The same stream: after the first add (an empty table) and the second
    (it teaches the shape), every add is taken by the C front end — by its
    loop when polled (hits), by its scan otherwise — and each rule is there."""
    ofs, (conn,), _ = serve(("stream", ROUND_TRIPS))
    assert ofs.front.taken == ROUND_TRIPS - 2
    assert conn._poller.hits >= MIN_POLLED, (conn._poller.hits, conn._poller.polls)
    got = sorted(r.match["ipv4_dst"][0] - 0x0A000000 for r in ofs.tables.rules())
    assert got == list(range(1, ROUND_TRIPS + 1))


class Reads(Busy):
    """A connection stand-in that keeps the error a read of its own met."""

    def __init__(self, size):
        super().__init__(size)
        self.error = None

    def read_failed(self, exc):
        self.error = exc


def test_a_reset_the_poller_read_is_kept_for_the_connection():
    """The poller's read takes ECONNRESET from the socket; the transport's
    next read sees only EOF, so the poller hands the error to the connection."""
    with reset_connection() as sock:
        conn = Reads(READ_BYTES)
        BusyPoller(sock).run(conn)
        assert sock.recv(1) == b""
    assert isinstance(conn.error, ConnectionResetError) and conn.reads == 0
