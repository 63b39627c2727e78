"""OpenFlow on the wire against a running vswitchd: raw and malformed
messages, barrier ordering, idle timeout with flow-removed, roles.  Requests
are built and replies decoded by os-ken's OpenFlow library (an independent
implementation); the broken ones are raw bytes."""
import socket
import struct
import time

import pytest
from os_ken.ofproto import ofproto_parser, ofproto_v1_0, ofproto_v1_0_parser, ofproto_v1_3
from os_ken.ofproto import ofproto_v1_3_parser as p13

from helpers import netns
from helpers.topology import switch_with_bridge

pytestmark = pytest.mark.timeout(60)
OFP = ofproto_v1_3


class DP:
    """What os-ken's encoders and decoders need of a datapath."""

    def __init__(self, version):
        self.ofproto = ofproto_v1_3 if version == 4 else ofproto_v1_0
        self.ofproto_parser = p13 if version == 4 else ofproto_v1_0_parser


class Client:
    def __init__(self, ns, path, version=4, hello=None):
        with netns.entered(ns):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(path)
        self.sock.settimeout(5)
        self.dp, self.buf, self.xid = DP(version), b"", 100
        self.send_raw(hello or struct.pack("!BBHI", version, 0, 8, 1))
        self.hello = self.recv_raw()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, msg):
        self.xid += 1
        msg.set_xid(self.xid)
        msg.serialize()
        self.send_raw(bytes(msg.buf))
        return self.xid

    def recv_raw(self):
        while len(self.buf) < 8 or len(self.buf) < struct.unpack_from("!H", self.buf, 2)[0]:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the switch")
            self.buf += data
        n = struct.unpack_from("!H", self.buf, 2)[0]
        raw, self.buf = self.buf[:n], self.buf[n:]
        return raw

    def recv(self, want=None, timeout=5.0):
        """Next message (of class `want`, skipping others) decoded by os-ken."""
        deadline = time.monotonic() + timeout
        while True:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            raw = self.recv_raw()
            version, mtype, length, xid = struct.unpack_from("!BBHI", raw)
            msg = ofproto_parser.msg(self.dp, version, mtype, length, xid, raw)
            if want is None or isinstance(msg, want):
                return msg

    def echo_ok(self):
        xid = self.send(self.dp.ofproto_parser.OFPEchoRequest(self.dp, data=b"ping"))
        reply = self.recv(self.dp.ofproto_parser.OFPEchoReply)
        return reply.xid == xid and reply.data == b"ping"

    def error_for(self, raw):
        self.send_raw(raw)
        err = self.recv(self.dp.ofproto_parser.OFPErrorMsg)
        return err.type, err.code


@pytest.fixture
def switch(tmp_path):
    with switch_with_bridge(tmp_path) as t:
        t.vs.mgmt = f"{t.vs.rundir}/br0.mgmt"
        yield t.sw, t.vs


def flow_mod(dp, **kw):
    kw.setdefault("match", p13.OFPMatch())
    return p13.OFPFlowMod(dp, **kw)


def test_malformed_and_unsupported_messages_get_the_spec_errors(switch):
    sw, vs = switch
    c = Client(sw, vs.mgmt)
    assert struct.unpack_from("!BB", c.hello) == (4, OFP.OFPT_HELLO)
    cases = [
        # unknown message type
        (struct.pack("!BBHI", 4, 99, 8, 7), (OFP.OFPET_BAD_REQUEST, OFP.OFPBRC_BAD_TYPE)),
        # a version other than the negotiated one
        (struct.pack("!BBHI", 1, 2, 8, 8), (OFP.OFPET_BAD_REQUEST, OFP.OFPBRC_BAD_VERSION)),
        # features request with a body it must not have
        (struct.pack("!BBHI", 4, 5, 12, 9) + b"\0" * 4, (OFP.OFPET_BAD_REQUEST, OFP.OFPBRC_BAD_LEN)),
        # multipart of an unknown type
        (struct.pack("!BBHIHH4x", 4, 18, 16, 10, 77, 0), (OFP.OFPET_BAD_REQUEST, OFP.OFPBRC_BAD_MULTIPART)),
        # experimenter message nobody implements
        (struct.pack("!BBHIII", 4, 4, 16, 11, 0xABCDEF, 1), (OFP.OFPET_BAD_REQUEST, OFP.OFPBRC_BAD_EXPERIMENTER)),
        # a switch-to-controller message sent to the switch
        (struct.pack("!BBHI", 4, 21, 8, 12), (OFP.OFPET_BAD_REQUEST, OFP.OFPBRC_BAD_TYPE)),
    ]
    for raw, expected in cases:
        assert c.error_for(raw) == expected, raw.hex()
        assert c.echo_ok(), f"connection dead after {raw.hex()}"

    dp = c.dp
    bad = [
        (flow_mod(dp, table_id=3, instructions=[p13.OFPInstructionGotoTable(1)]),
         (OFP.OFPET_BAD_INSTRUCTION, OFP.OFPBIC_BAD_TABLE_ID)),
        (flow_mod(dp, instructions=[p13.OFPInstructionActions(OFP.OFPIT_APPLY_ACTIONS, [
            p13.OFPActionExperimenterUnknown(0x2320, data=b"\0" * 6)])]),
         (OFP.OFPET_BAD_ACTION, OFP.OFPBAC_BAD_EXPERIMENTER)),
        (flow_mod(dp, instructions=[p13.OFPInstructionActions(OFP.OFPIT_APPLY_ACTIONS, [
            p13.OFPActionGroup(42)])]), (OFP.OFPET_BAD_ACTION, OFP.OFPBAC_BAD_OUT_GROUP)),
        (flow_mod(dp, match=p13.OFPMatch(tcp_dst=80)), (OFP.OFPET_BAD_MATCH, OFP.OFPBMC_BAD_PREREQ)),
        (p13.OFPGroupMod(dp, OFP.OFPGC_MODIFY, OFP.OFPGT_ALL, 5, []),
         (OFP.OFPET_GROUP_MOD_FAILED, OFP.OFPGMFC_UNKNOWN_GROUP)),
        (p13.OFPMeterMod(dp, OFP.OFPMC_ADD, OFP.OFPMF_KBPS, 1, []),
         (OFP.OFPET_METER_MOD_FAILED, OFP.OFPMMFC_BAD_BAND)),
        (p13.OFPPacketOut(dp, buffer_id=77, in_port=OFP.OFPP_CONTROLLER, actions=[], data=None),
         (OFP.OFPET_BAD_REQUEST, OFP.OFPBRC_BUFFER_UNKNOWN)),
    ]
    for msg, expected in bad:
        xid = c.send(msg)
        err = c.recv(p13.OFPErrorMsg)
        assert (err.type, err.code, err.xid) == (*expected, xid), type(msg).__name__
        assert c.echo_ok()
    # a length below the header size cannot be framed: error, then close
    c.send_raw(struct.pack("!BBHI", 4, 2, 4, 13))
    err = c.recv(p13.OFPErrorMsg)
    assert (err.type, err.code) == (OFP.OFPET_BAD_REQUEST, OFP.OFPBRC_BAD_LEN)
    with pytest.raises((ConnectionError, OSError)):
        c.recv()


def test_version_negotiation_and_openflow10(switch):
    sw, vs = switch
    c10 = Client(sw, vs.mgmt, version=1)
    assert c10.echo_ok()
    err = c10.error_for(struct.pack("!BBHII", 1, 4, 12, 5, 0x2320))   # Nicira vendor message
    assert err == (ofproto_v1_0.OFPET_BAD_REQUEST, ofproto_v1_0.OFPBRC_BAD_VENDOR)
    assert c10.echo_ok()
    # OpenFlow 1.3 only: a 1.0-only peer is refused with HELLO_FAILED
    vs.vsctl("set", "bridge", "br0", "protocols=OpenFlow13")
    c = Client(sw, vs.mgmt, version=1)
    assert struct.unpack_from("!BB", c.hello) == (4, 0)   # our hello offers 1.3 only
    raw = c.recv_raw()
    version, mtype = struct.unpack_from("!BB", raw)
    assert (version, mtype) == (1, ofproto_v1_0.OFPT_ERROR)
    assert struct.unpack_from("!HH", raw, 8) == (ofproto_v1_0.OFPET_HELLO_FAILED,
                                                 ofproto_v1_0.OFPHFC_INCOMPATIBLE)
    with pytest.raises((ConnectionError, OSError)):
        c.recv_raw()


def test_barrier_ordering_idle_timeout_and_flow_removed(switch):
    sw, vs = switch
    c = Client(sw, vs.mgmt)
    dp = c.dp
    # a service connection gets flow-removed only after asking for it
    c.send(p13.OFPSetAsync(dp, [0, 0], [0, 0], [1 << OFP.OFPRR_IDLE_TIMEOUT | 1 << OFP.OFPRR_DELETE, 0]))
    c.send(flow_mod(dp, cookie=0x77, priority=5, idle_timeout=1, flags=OFP.OFPFF_SEND_FLOW_REM,
                    match=p13.OFPMatch(in_port=1),
                    instructions=[p13.OFPInstructionActions(OFP.OFPIT_APPLY_ACTIONS,
                                                            [p13.OFPActionOutput(2)])]))
    barrier = c.send(p13.OFPBarrierRequest(dp))
    stats = c.send(p13.OFPFlowStatsRequest(dp))
    first = c.recv((p13.OFPBarrierReply, p13.OFPFlowStatsReply))
    assert isinstance(first, p13.OFPBarrierReply) and first.xid == barrier
    reply = c.recv(p13.OFPFlowStatsReply)
    assert reply.xid == stats and [s.cookie for s in reply.body] == [0x77]
    started = time.monotonic()
    removed = c.recv(p13.OFPFlowRemoved, timeout=6)
    assert removed.cookie == 0x77 and removed.reason == OFP.OFPRR_IDLE_TIMEOUT
    assert removed.match["in_port"] == 1 and 0.5 < time.monotonic() - started + 1 < 4
    c.send(p13.OFPFlowStatsRequest(dp))
    assert c.recv(p13.OFPFlowStatsReply).body == []


def test_roles_master_slave_and_stale_generation(switch):
    sw, vs = switch
    a, b = Client(sw, vs.mgmt), Client(sw, vs.mgmt)
    a.send(p13.OFPRoleRequest(a.dp, OFP.OFPCR_ROLE_MASTER, 10))
    assert a.recv(p13.OFPRoleReply).role == OFP.OFPCR_ROLE_MASTER
    b.send(p13.OFPRoleRequest(b.dp, OFP.OFPCR_ROLE_MASTER, 11))
    assert b.recv(p13.OFPRoleReply).role == OFP.OFPCR_ROLE_MASTER
    a.send(p13.OFPRoleRequest(a.dp, OFP.OFPCR_ROLE_NOCHANGE, 0))
    assert a.recv(p13.OFPRoleReply).role == OFP.OFPCR_ROLE_SLAVE   # demoted by b
    xid = a.send(flow_mod(a.dp))
    err = a.recv(p13.OFPErrorMsg)
    assert (err.type, err.code, err.xid) == (OFP.OFPET_BAD_REQUEST, OFP.OFPBRC_IS_SLAVE, xid)
    a.send(p13.OFPRoleRequest(a.dp, OFP.OFPCR_ROLE_MASTER, 9))   # older generation
    err = a.recv(p13.OFPErrorMsg)
    assert (err.type, err.code) == (OFP.OFPET_ROLE_REQUEST_FAILED, OFP.OFPRRFC_STALE)
    assert a.echo_ok() and b.echo_ok()
