"""OF1.3 header-stack actions in C (PBB push/pop, 802.1ad push_vlan, TCI and
I-SID rewrites, copy_ttl_in's inner TTL, SCTP port rewrite with CRC32c):
scapy-built frames go through the datapath (execute() and the poll thread on
dummy ports, the fixture of test_dp_set_field) and the output is compared
byte for byte with the frame scapy builds for the expected result, checksums
recomputed by scapy.  The parser's pbb_isid is checked on the same frames."""
import pytest
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.layers.sctp import SCTP, SCTPChunkData
from scapy.packet import Raw

from vswitch.datapath import dpif
import test_dp_set_field
from test_dp_set_field import run

dp = test_dp_set_field.dp   # the fixture: execute() and the poll thread on dummy ports

ADDRS = dict(src="12:11:11:11:11:11", dst="22:22:22:22:22:22")
PAYLOAD = IP(src="192.168.10.10", dst="192.168.20.20", ttl=64) / TCP(sport=11111, dport=2222) / (b"x" * 20)


def itag(isid):
    """An I-TAG (PCP/DEI/UCA 0) as raw bytes: scapy has no 802.1ah layer."""
    return Raw(isid.to_bytes(4, "big"))


def pbb(inner, isid=0, outer_tag=None):
    """A PBB frame: outer Ethernet (same addresses), optional B-tag, I-TAG, `inner`."""
    if outer_tag is None:
        return Ether(type=0x88E7, **ADDRS) / itag(isid) / inner
    return Ether(type=0x88A8, **ADDRS) / Dot1AD(vlan=outer_tag, type=0x88E7) / itag(isid) / inner


def test_push_pbb_twice_then_pop_pbb_restores_the_frame(dp):
    inner = Ether(**ADDRS) / PAYLOAD
    once = run(dp, inner, [("push_pbb", 0x88E7)])
    assert once.frame == bytes(pbb(inner))
    twice = run(dp, inner, [("push_pbb", 0x88E7), ("push_pbb", 0x88E7)])
    assert twice.frame == bytes(pbb(pbb(inner)))
    popped = run(dp, pbb(pbb(inner)), [("pop_pbb", 0)])
    assert popped.frame == bytes(pbb(inner))


def test_pop_pbb_behind_a_b_tag_leaves_the_customer_frame_and_its_tags(dp):
    inner = Ether(type=0x88A8, **ADDRS) / Dot1AD(vlan=10, type=0x8100) / Dot1Q(vlan=100, prio=3) / PAYLOAD
    out = run(dp, pbb(inner, isid=100, outer_tag=10), [("pop_pbb", 0)])
    assert out.frame == bytes(inner)
    # not a PBB frame: unchanged
    plain = Ether(**ADDRS) / PAYLOAD
    assert run(dp, plain, [("pop_pbb", 0)]).frame == bytes(plain)


def test_set_pbb_isid_rewrites_the_i_tag_only(dp):
    inner = Ether(**ADDRS) / PAYLOAD
    out = run(dp, pbb(inner, isid=100, outer_tag=10), [("set_pbb_isid", 203)])
    assert out.frame == bytes(pbb(inner, isid=203, outer_tag=10))


@pytest.mark.parametrize("outer_tag", [None, 10])
def test_parser_carries_the_i_sid(outer_tag):
    key = dpif.parse_frame(bytes(pbb(Ether(**ADDRS) / PAYLOAD, isid=0xABCDEF, outer_tag=outer_tag)))
    assert key["dl_type"] == 0x88E7 and key["pbb_isid"] == 0xABCDEF
    assert key["nw_src"] == 0 and key["tp_dst"] == 0     # parsing stops at the I-TAG
    assert dpif.parse_frame(bytes(Ether(**ADDRS) / PAYLOAD))["pbb_isid"] == 0
    assert dpif.parse_frame(bytes(Ether(type=0x88E7, **ADDRS) / b"\x00\x00")) is None  # cut I-TAG


def test_push_vlan_8021ad_onto_a_tagged_frame_and_tci_rewrite_keep_tpids(dp):
    tagged = Ether(**ADDRS) / Dot1Q(vlan=100, prio=3) / PAYLOAD
    tci = (3 << 13) | 100
    out = run(dp, tagged, [("push_vlan", 0x88A8 << dpif.PUSH_VLAN_TPID_SHIFT | tci)])
    assert out.frame == bytes(Ether(type=0x88A8, **ADDRS) / Dot1AD(vlan=100, prio=3, type=0x8100)
                              / Dot1Q(vlan=100, prio=3) / PAYLOAD)
    out = run(dp, tagged, [("push_vlan", tci)])          # TPID 0 = 802.1Q, as before
    assert out.frame == bytes(Ether(**ADDRS) / Dot1Q(vlan=100, prio=3) / Dot1Q(vlan=100, prio=3) / PAYLOAD)
    svlan = Ether(type=0x88A8, **ADDRS) / Dot1AD(vlan=10) / PAYLOAD
    out = run(dp, svlan, [("set_vlan_tci", (5 << 13) | 20)])
    assert out.frame == bytes(Ether(type=0x88A8, **ADDRS) / Dot1AD(vlan=20, prio=5) / PAYLOAD)


@pytest.mark.parametrize("ip", [IP(src="10.0.0.1", dst="10.0.0.2", ttl=32),
                                IPv6(src="10::10", dst="20::20", hlim=32)])
def test_inner_ttl_under_the_label_stack(dp, ip):
    frame = Ether(type=0x8847, **ADDRS) / MPLS(label=100, cos=3, ttl=64, s=1) / ip / TCP() / (b"y" * 8)
    out = Ether(run(dp, Ether(bytes(frame)), [("set_inner_ttl", 64)]).frame)
    inner = out[MPLS].payload
    assert (inner.ttl if ip.version == 4 else inner.hlim) == 64
    want = frame.copy()
    if ip.version == 4:
        want[IP].ttl = 64
        del want[IP].chksum
    else:
        want[IPv6].hlim = 64
    assert bytes(out) == bytes(Ether(bytes(want)))


@pytest.mark.parametrize("l3", [IP(src="10.0.0.1", dst="10.0.0.2"), IPv6(src="10::10", dst="20::20")])
@pytest.mark.parametrize("tagged", [False, True])
def test_sctp_port_rewrite_recomputes_crc32c(dp, l3, tagged):
    sctp = SCTP(sport=11111, dport=2222, tag=7) / SCTPChunkData(data=b"payload!")
    frame = Ether(**ADDRS) / Dot1Q(vlan=5) / l3 / sctp if tagged else Ether(**ADDRS) / l3 / sctp
    frame = Ether(bytes(frame))
    out = Ether(run(dp, frame, [("set_tp_src", 12345), ("set_tp_dst", 6789)]).frame)
    assert (out[SCTP].sport, out[SCTP].dport) == (12345, 6789)
    want = frame.copy()
    want[SCTP].sport, want[SCTP].dport = 12345, 6789
    del want[SCTP].chksum
    assert bytes(out) == bytes(Ether(bytes(want)))   # scapy's CRC32c equals ours
