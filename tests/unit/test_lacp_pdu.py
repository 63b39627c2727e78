"""LACPDU codec, checked against scapy's independent LACP dissector."""
import pytest
from scapy.contrib.lacp import LACP
from scapy.contrib.slowprot import SlowProtocol
from scapy.layers.l2 import Ether

from vswitch.lacp import pdu as P
from vswitch.proto import MalformedFrame

ACTOR = P.PortInfo(32768, bytes.fromhex("02aabbccdd01"), 17, 128, 3,
                   P.ACTIVITY | P.TIMEOUT | P.AGGREGATION | P.SYNCHRONIZATION)
PARTNER = P.PortInfo(65534, bytes.fromhex("02aabbccdd02"), 5, 65535, 9,
                     P.AGGREGATION | P.COLLECTING | P.DISTRIBUTING | P.EXPIRED)
SRC = bytes.fromhex("02000000beef")


def test_encode_is_read_back_by_scapy():
    frame = P.encode(P.Lacpdu(ACTOR, PARTNER, collector_max_delay=7), SRC)
    pkt = Ether(frame)
    assert len(frame) == 14 + P.PDU_LEN
    assert pkt.dst == "01:80:c2:00:00:02" and pkt.type == 0x8809
    lacp = pkt[LACP]
    assert (lacp.version, lacp.actor_type, lacp.actor_length) == (1, 1, 20)
    assert (lacp.partner_type, lacp.partner_length) == (2, 20)
    assert (lacp.collector_type, lacp.collector_length) == (3, 16)
    assert lacp.collector_max_delay == 7
    for side, info in (("actor", ACTOR), ("partner", PARTNER)):
        assert getattr(lacp, f"{side}_system") == P.mac_text(info.system)
        assert getattr(lacp, f"{side}_system_priority") == info.system_priority
        assert getattr(lacp, f"{side}_key") == info.key
        assert getattr(lacp, f"{side}_port_priority") == info.port_priority
        assert getattr(lacp, f"{side}_port_number") == info.port
        assert getattr(lacp, f"{side}_state") == info.state
    assert lacp.terminator_type == 0 and lacp.terminator_length == 0


def scapy_lacpdu(**fields) -> bytes:
    base = dict(actor_system_priority=7, actor_system="02:11:22:33:44:55",
                actor_key=300, actor_port_priority=1, actor_port_number=42,
                actor_state=0x3d, partner_system_priority=9,
                partner_system="02:66:77:88:99:aa", partner_key=12,
                partner_port_priority=2, partner_port_number=4, partner_state=0x07)
    base.update(fields)
    return bytes(Ether(src="02:11:22:33:44:55", dst="01:80:c2:00:00:02")
                 / SlowProtocol() / LACP(**base))


def test_decode_scapy_built_pdu():
    pdu = P.decode(scapy_lacpdu())
    assert pdu.actor == P.PortInfo(7, bytes.fromhex("021122334455"), 300, 1, 42, 0x3d)
    assert pdu.partner == P.PortInfo(9, bytes.fromhex("026677889 9aa".replace(" ", "")),
                                     12, 2, 4, 0x07)
    assert P.state_words(pdu.actor.state) == [
        "activity", "aggregation", "synchronized", "collecting", "distributing"]


def test_round_trip_own_encoding():
    frame = P.encode(P.Lacpdu(ACTOR, PARTNER), SRC)
    assert P.decode(frame) == P.Lacpdu(ACTOR, PARTNER)
    assert P.is_lacp(frame)


def test_newer_version_is_accepted_by_position():
    assert P.decode(scapy_lacpdu(version=2)).version == 2


GOOD = scapy_lacpdu()


@pytest.mark.parametrize("frame,reason", [
    (GOOD[:12] + b"\x08\x00" + GOOD[14:], "not-slow-protocols"),
    (GOOD[:14] + b"\x02" + GOOD[15:], "not-lacp-subtype"),
    (GOOD[:70], "short-pdu"),
    (b"\x01\x80\xc2\x00\x00\x03" + GOOD[6:], "bad-destination"),
    (GOOD[:15] + b"\x00" + GOOD[16:], "bad-version"),
    (GOOD[:16] + b"\x01\x13" + GOOD[18:], "bad-actor-tlv"),
    (GOOD[:36] + b"\x09\x14" + GOOD[38:], "bad-partner-tlv"),
    (GOOD[:56] + b"\x03\x11" + GOOD[58:], "bad-collector-tlv"),
    (scapy_lacpdu(actor_system="00:00:00:00:00:00"), "null-actor-system"),
])
def test_malformed_pdus_name_their_reason(frame, reason):
    with pytest.raises(MalformedFrame) as e:
        P.decode(frame)
    assert e.value.reason == reason
