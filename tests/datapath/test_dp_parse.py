"""The C parser fed scapy-built frames: every key field checked against what
scapy put in the frame."""
import ipaddress

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, Dot1Q, Ether

from vswitch.datapath.dpif import parse_frame
from vswitch.datapath.flowkey import mac_int

SRC, DST = "02:00:00:00:00:01", "02:00:00:00:00:02"


def eth(**kw):
    return Ether(src=SRC, dst=DST, **kw)


def test_untagged_ipv4_tcp():
    f = bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2", tos=0x10, ttl=33) / TCP(sport=1234, dport=80, flags="SA"))
    k = parse_frame(f, in_port=7)
    assert k["in_port"] == 7
    assert k["dl_src"] == mac_int(SRC) and k["dl_dst"] == mac_int(DST)
    assert k["vlan_tci"] == 0 and k["dl_type"] == 0x0800
    assert k["nw_src"] == int(ipaddress.IPv4Address("10.0.0.1"))
    assert k["nw_dst"] == int(ipaddress.IPv4Address("10.0.0.2"))
    assert (k["nw_proto"], k["nw_tos"], k["nw_ttl"]) == (6, 0x10, 33)
    assert (k["tp_src"], k["tp_dst"]) == (1234, 80)
    assert k["tcp_flags"] == 0x12


def test_tagged_ipv4_udp_keeps_vid_and_pcp():
    f = bytes(eth() / Dot1Q(vlan=100, prio=5) / IP(src="1.2.3.4", dst="5.6.7.8") / UDP(sport=53, dport=5353))
    k = parse_frame(f)
    assert k["vlan_tci"] == 0x1000 | (5 << 13) | 100
    assert k["dl_type"] == 0x0800 and k["nw_proto"] == 17
    assert (k["tp_src"], k["tp_dst"]) == (53, 5353)


def test_vlan_zero_tag_is_distinct_from_no_tag():
    assert parse_frame(bytes(eth() / Dot1Q(vlan=0) / IP()))["vlan_tci"] == 0x1000
    assert parse_frame(bytes(eth() / IP()))["vlan_tci"] == 0


def test_icmp_type_and_code():
    k = parse_frame(bytes(eth() / IP() / ICMP(type=3, code=4)))
    assert (k["nw_proto"], k["tp_src"], k["tp_dst"]) == (1, 3, 4)


def test_arp_fields():
    f = bytes(eth(type=0x0806) / ARP(op=2, psrc="192.168.1.1", pdst="192.168.1.2"))
    k = parse_frame(f)
    assert k["dl_type"] == 0x0806 and k["nw_proto"] == 2
    assert k["nw_src"] == int(ipaddress.IPv4Address("192.168.1.1"))
    assert k["nw_dst"] == int(ipaddress.IPv4Address("192.168.1.2"))


def test_ipv6_tcp_and_extension_headers():
    f = bytes(eth() / IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=9) / IPv6ExtHdrHopByHop() / TCP(sport=9, dport=10))
    k = parse_frame(f)
    assert k["dl_type"] == 0x86DD
    assert k["ipv6_src"] == int(ipaddress.IPv6Address("2001:db8::1"))
    assert k["ipv6_dst"] == int(ipaddress.IPv6Address("2001:db8::2"))
    assert (k["nw_proto"], k["nw_ttl"], k["tp_src"], k["tp_dst"]) == (6, 9, 9, 10)


def test_icmpv6():
    k = parse_frame(bytes(eth() / IPv6() / ICMPv6EchoRequest()))
    assert (k["nw_proto"], k["tp_src"], k["tp_dst"]) == (58, 128, 0)


def test_fragments_have_no_ports_after_the_first():
    first = parse_frame(bytes(eth() / IP(flags="MF", frag=0) / UDP(sport=1, dport=2)))
    later = parse_frame(bytes(eth() / IP(frag=10, proto=17) / (b"x" * 8)))
    assert first["nw_frag"] == 1 and first["tp_src"] == 1
    assert later["nw_frag"] == 3 and later["tp_src"] == 0 and later["tp_dst"] == 0
    v6 = parse_frame(bytes(eth() / IPv6() / IPv6ExtHdrFragment(offset=5, nh=17) / (b"y" * 8)))
    assert v6["nw_frag"] == 3 and v6["nw_proto"] == 17


def test_8023_frame_has_no_ethertype():
    k = parse_frame(bytes(Ether(src=SRC, dst=DST, type=60) / (b"\0" * 60)))
    assert k["dl_type"] == 0x05FF


@pytest.mark.parametrize("cut", [0, 6, 13])
def test_runts_are_malformed(cut):
    assert parse_frame(bytes(eth() / IP())[:cut]) is None


@pytest.mark.parametrize("layers,keep", [
    (lambda: eth() / IP() / TCP(), 14 + 10),            # IPv4 header cut
    (lambda: eth() / IP() / TCP(), 14 + 20 + 10),       # TCP header cut
    (lambda: eth() / IP() / UDP(), 14 + 20 + 4),        # UDP header cut
    (lambda: eth() / IPv6() / TCP(), 14 + 30),          # IPv6 header cut
    (lambda: eth() / Dot1Q() / IP(), 16),               # VLAN tag cut
    (lambda: eth(type=0x0806) / ARP(), 14 + 20),        # ARP cut
])
def test_truncated_headers_are_malformed(layers, keep):
    assert parse_frame(bytes(layers())[:keep]) is None


def test_bad_ipv4_ihl_is_malformed():
    f = bytearray(bytes(eth() / IP() / TCP()))
    f[14] = 0x43  # IHL 3 words < 5
    assert parse_frame(bytes(f)) is None
