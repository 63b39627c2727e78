"""ipv6_exthdr flags from scapy-built frames, and a table matching them."""
import dataclasses

from scapy.layers.inet import TCP
from scapy.layers.inet6 import (IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                                IPv6ExtHdrRouting)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import Dot1Q, Ether

from vswitch.datapath import dpif
from vswitch.ofproto import pipeline
from vswitch.ofproto.ipv6_exthdr import exthdr_flags
from vswitch.ofproto.ofp import Match
from vswitch.ofproto.ofctl_syntax import parse_flow
from vswitch.ofproto.ofp.constants import OFPFC_ADD
from test_openflow_pipeline import bridge

IP6 = IPv6(src="10::10", dst="20::20")


def flags(*ext):
    frame = Ether() / IP6
    for e in ext:
        frame = frame / e
    return exthdr_flags(bytes(frame / TCP()), 14)


def test_flags_of_each_header_repeats_and_order():
    assert flags() == 0
    assert flags(IPv6ExtHdrHopByHop(), AH(nh=6)) == 64 | 4          # the suite's ipv6_exthdr=68
    assert flags(IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt(), IPv6ExtHdrRouting(),
                 IPv6ExtHdrFragment()) == 64 | 8 | 32 | 16
    assert flags(IPv6ExtHdrFragment(), IPv6ExtHdrHopByHop()) == 16 | 64 | 256   # hop not first
    assert flags(IPv6ExtHdrRouting(), IPv6ExtHdrRouting()) == 32 | 128         # routing twice
    assert flags(IPv6ExtHdrDestOpt(), IPv6ExtHdrRouting(), IPv6ExtHdrDestOpt()) == 8 | 32
    assert exthdr_flags(bytes(Ether() / IPv6(nh=59)), 14) == 1                  # no next header


def test_table_on_ipv6_exthdr_reads_the_frame_and_is_slow_path():
    br = bridge()
    fm = parse_flow("ipv6,actions=output:2").flow_mod(OFPFC_ADD)
    br.tables.flow_mod(dataclasses.replace(fm, match=Match({**fm.match, "ipv6_exthdr": (64, 0x1F0)})), 0)
    for l2, ext, want in ((Ether(), [IPv6ExtHdrHopByHop(), AH(nh=6)], [("output", 2)]),
                          (Ether() / Dot1Q(vlan=3), [IPv6ExtHdrHopByHop()], [("output", 2)]),
                          (Ether(), [], [])):
        frame = l2 / IP6
        for e in ext:
            frame = frame / e
        frame = bytes(frame / TCP())
        key = dpif.parse_frame(frame, 1)
        key.pop("tcp_flags")
        r = pipeline.xlate(br, key, 0, len(frame), frame)
        assert r.actions == want and r.slow_path
