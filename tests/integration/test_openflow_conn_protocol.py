"""The OpenFlow connection as an asyncio Protocol (conn/ofconn.py), against a
running vswitchd: a burst much larger than one read's budget is handled in
order across loop turns (a malformed message inside it gets its error, the
barrier reply comes after every earlier reply and every rule is in the
table), and a peer that stops reading its replies pauses the connection's
reading without losing or reordering anything, while vsctl keeps answering.
Requests and replies are built and decoded by os-ken's library."""
import socket
import struct
import threading
import time

import pytest
from os_ken.ofproto import ofproto_v1_3_parser as p13

from helpers.topology import switch_with_bridge
from test_openflow_protocol import Client

pytestmark = pytest.mark.timeout(120)

N_BURST = 3000            # flow-mods in one write: several READ_CHUNKs
BAD_AT = N_BURST // 2     # where the malformed message sits in the burst
ECHO_DATA = bytes(60000)  # a big echo: its replies fill the socket quickly
N_ECHOES = 200            # ~12 MB of replies the peer does not read at first
OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY, OFPT_FLOW_MOD, OFPT_BARRIER_REQUEST = 2, 3, 14, 20


@pytest.fixture
def switch(tmp_path):
    with switch_with_bridge(tmp_path) as t:
        yield t.sw, t.vs


def _flow_mod(c, i):
    match = p13.OFPMatch(eth_type=0x0800, ip_proto=6, ipv4_dst=0x0A000000 + i, tcp_dst=1 + i)
    inst = [p13.OFPInstructionActions(c.dp.ofproto.OFPIT_APPLY_ACTIONS, [p13.OFPActionOutput(2)])]
    msg = p13.OFPFlowMod(c.dp, priority=1 + i % 100, match=match, instructions=inst)
    c.xid += 1
    msg.set_xid(c.xid)
    msg.serialize()
    return bytes(msg.buf)


def _bad_flow_mod(xid):
    """tcp_dst without its prerequisites: BAD_MATCH/BAD_PREREQ."""
    oxm = struct.pack("!HBBH", 0x8000, 14 << 1, 2, 80)
    match = struct.pack("!HH", 1, 4 + len(oxm)) + oxm + bytes(2)
    body = struct.pack("!QQBBHHHIIIH2x", 0, 0, 0, 0, 0, 0, 1, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0) + match
    return struct.pack("!BBHI", 4, OFPT_FLOW_MOD, 8 + len(body), xid) + body



def test_burst_over_the_budget_keeps_order_errors_and_every_rule(switch):
    sw, vs = switch
    c = Client(sw, f"{vs.rundir}/br0.mgmt")
    burst = []
    bad_xid = None
    for i in range(N_BURST):
        if i == BAD_AT:
            c.xid += 1
            bad_xid = c.xid
            burst.append(_bad_flow_mod(bad_xid))
        burst.append(_flow_mod(c, i))
    c.xid += 1
    barrier_xid = c.xid
    burst.append(struct.pack("!BBHI", 4, OFPT_BARRIER_REQUEST, 8, barrier_xid))
    data = b"".join(burst)
    assert len(data) > 4 * 65536
    c.send_raw(data)
    first = c.recv(timeout=60)
    assert isinstance(first, p13.OFPErrorMsg) and first.xid == bad_xid
    assert (first.type, first.code) == (c.dp.ofproto.OFPET_BAD_MATCH, c.dp.ofproto.OFPBMC_BAD_PREREQ)
    second = c.recv(timeout=60)
    assert isinstance(second, p13.OFPBarrierReply) and second.xid == barrier_xid
    # every good rule is in table 0 (the connection stayed up: ask on it)
    c.send(p13.OFPAggregateStatsRequest(c.dp, 0, 0, c.dp.ofproto.OFPP_ANY, c.dp.ofproto.OFPG_ANY,
                                        0, 0, p13.OFPMatch()))
    agg = c.recv(p13.OFPAggregateStatsReply)
    assert agg.body.flow_count == N_BURST


def test_a_peer_that_does_not_read_pauses_its_connection_only(switch):
    sw, vs = switch
    c = Client(sw, f"{vs.rundir}/br0.mgmt")
    c.sock.setblocking(False)
    sent, xids = 0, []
    deadline = time.monotonic() + 30
    pending = b""
    # Write echoes until our own socket buffer is full too: the switch has
    # stopped reading (its replies are not being read).
    while len(xids) < N_ECHOES and time.monotonic() < deadline:
        if not pending:
            c.xid += 1
            pending = struct.pack("!BBHI", 4, OFPT_ECHO_REQUEST, 8 + len(ECHO_DATA), c.xid) + ECHO_DATA
            xids.append(c.xid)
        try:
            n = c.sock.send(pending)
            pending = pending[n:]
            sent += n
        except BlockingIOError:
            break
    assert pending or len(xids) == N_ECHOES
    assert sent < N_ECHOES * len(ECHO_DATA)        # blocked: the switch paused reading
    assert vs.vsctl("show")                          # the daemon answers others meanwhile
    c.sock.setblocking(True)
    c.sock.settimeout(30)
    # The rest of the last echo goes out while we read: the switch reads
    # again only once its replies drain.
    sender = threading.Thread(target=c.send_raw, args=(pending,), daemon=True)
    sender.start()
    for xid in xids:
        reply = c.recv(p13.OFPEchoReply, timeout=30)
        assert reply.xid == xid and reply.data == ECHO_DATA
    sender.join(timeout=30)
    assert c.echo_ok()


PROBE_MS = 1000           # the bridge's inactivity probe for this test
PROBE_S = PROBE_MS / 1000


def _read_message(conn, buf, timeout):
    """-> (raw message or None if the switch closed, rest of buf)."""
    conn.settimeout(timeout)
    while len(buf) < 8 or len(buf) < struct.unpack_from("!H", buf, 2)[0]:
        data = conn.recv(65536)
        if not data:
            return None, buf
        buf += data
    n = struct.unpack_from("!H", buf, 2)[0]
    return buf[:n], buf[n:]


def test_inactivity_probe_echoes_then_drops_a_silent_controller(switch, tmp_path):
    """A controller (the switch dials our unix socket) that says nothing after
    the hello gets an echo request after one probe interval and is dropped
    after a second; one that answers the echoes stays connected."""
    sw, vs = switch
    path = str(tmp_path / "ctl.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(4)
    vs.vsctl("set", "bridge", "br0", f"other_config:inactivity-probe={PROBE_MS}")
    vs.vsctl("set-controller", "br0", f"unix:{path}")
    listener.settimeout(15)
    try:
        conn, _ = listener.accept()
        conn.sendall(struct.pack("!BBHI", 4, 0, 8, 1))
        hello, buf = _read_message(conn, b"", 5)
        assert hello[1] == 0                                   # its hello
        start = time.monotonic()
        while True:                                            # features etc. are not sent unasked
            echo, buf = _read_message(conn, buf, 4 * PROBE_S)
            assert echo is not None
            if echo[1] == OFPT_ECHO_REQUEST:
                break
        probed_after = time.monotonic() - start
        assert 0.5 * PROBE_S <= probed_after <= 3 * PROBE_S, probed_after
        gone, buf = _read_message(conn, buf, 4 * PROBE_S)      # no answer: dropped
        dropped_after = time.monotonic() - start
        assert gone is None and 1.5 * PROBE_S <= dropped_after <= 5 * PROBE_S, dropped_after
        conn.close()

        # It dials again (backoff); this time we answer every echo.
        conn, _ = listener.accept()
        conn.sendall(struct.pack("!BBHI", 4, 0, 8, 1))
        hello, buf = _read_message(conn, b"", 5)
        assert hello[1] == 0
        echoes, deadline = 0, time.monotonic() + 4 * PROBE_S
        while time.monotonic() < deadline:
            msg, buf = _read_message(conn, buf, 4 * PROBE_S)
            assert msg is not None, "dropped although it answered"
            if msg[1] == OFPT_ECHO_REQUEST:
                echoes += 1
                conn.sendall(msg[:1] + bytes([OFPT_ECHO_REPLY]) + msg[2:])
        assert echoes >= 2
        conn.close()
    finally:
        listener.close()
