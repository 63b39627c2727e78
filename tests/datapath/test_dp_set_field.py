"""Set-field actions in C: scapy-built frames go through the actions, and
scapy checks the fields and recomputes every checksum independently.  Each
test runs twice: through execute() with the rewrites followed by a userspace
action (the rewritten frame comes back through the upcall ring), and through
the poll thread, received on a dummy port and hitting a megaflow whose
rewrites end with an output to another dummy port (no root either way)."""
import ipaddress
import struct
from dataclasses import dataclass

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from vswitch.datapath.dpif import Datapath
from vswitch.datapath.flowkey import mac_int
from helpers.vswitchd import wait_for


@pytest.fixture(scope="module", params=["execute", "dummy"])
def dp(request):
    d = Datapath(upcall_ring_size=64)
    d.via = request.param
    if d.via == "dummy":
        d.add_port(1, "dummy", "in")
        d.add_port(2, "dummy", "out")
    try:
        yield d
    finally:
        d.close()


@dataclass
class Result:
    frame: bytes


def run(dp, frame, actions, vnet=None):
    if dp.via == "dummy":
        dp.flow_flush()
        dp.flow_put({"in_port": 1}, {"in_port": 0xFFFFFFFF}, list(actions) + [("output", 2)])
        dp.dummy_inject(1, [bytes(frame)], vnets=[vnet] if vnet else None)
        sent = wait_for(lambda: dp.dummy_sent(2), what="frame on the dummy port")
        assert len(sent) == 1
        return Result(sent[0])
    dp.recv_upcalls()  # drain anything left over
    dp.execute(0, bytes(frame), list(actions) + [("userspace", 77)], vnet=vnet)
    ups = wait_for(lambda: dp.recv_upcalls(), what="upcall")
    assert len(ups) == 1 and ups[0].cookie == 77
    return ups[0]


def checksums_ok(pkt):
    """Rebuild the packet with checksums recomputed by scapy and compare."""
    fresh = pkt.copy()
    for layer in (IP, TCP, UDP, ICMP):
        if fresh.haslayer(layer):
            del fresh[layer].chksum
    return bytes(Ether(bytes(fresh))) == bytes(pkt)


def ip4(text):
    return int(ipaddress.IPv4Address(text))


BASE = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


@pytest.mark.parametrize("l4", [TCP(sport=1000, dport=80, flags="PA") / b"hello",
                                UDP(sport=53, dport=5353) / b"data!"])
@pytest.mark.parametrize("tagged", [False, True])
def test_ipv4_address_port_ttl_tos_rewrites_keep_checksums_valid(dp, l4, tagged):
    ip = IP(src="10.0.0.1", dst="10.0.0.2", ttl=64, tos=0) / l4
    frame = BASE / Dot1Q(vlan=5) / ip if tagged else BASE / ip
    frame = Ether(bytes(frame))
    up = run(dp, frame, [
        ("set_eth_src", mac_int("0a:0b:0c:0d:0e:0f")),
        ("set_ipv4_src", ip4("192.168.7.7")),
        ("set_ipv4_dst", ip4("172.16.0.9")),
        ("set_ipv4_ttl", 63),
        ("set_ipv4_tos", 0xB8),
        ("set_tp_src", 4242),
        ("set_tp_dst", 8080),
    ])
    out = Ether(up.frame)
    assert out.src == "0a:0b:0c:0d:0e:0f" and out.dst == "02:00:00:00:00:02"
    assert (out[IP].src, out[IP].dst, out[IP].ttl, out[IP].tos) == ("192.168.7.7", "172.16.0.9", 63, 0xB8)
    l4_out = out[TCP] if out.haslayer(TCP) else out[UDP]
    assert (l4_out.sport, l4_out.dport) == (4242, 8080)
    assert bytes(l4_out.payload) == bytes(l4.payload)
    assert checksums_ok(out)


def test_udp_without_checksum_stays_without(dp):
    frame = Ether(bytes(BASE / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2, chksum=0) / b"x"))
    out = Ether(run(dp, frame, [("set_ipv4_dst", ip4("10.9.9.9")), ("set_tp_dst", 99)]).frame)
    assert out[UDP].chksum == 0 and out[UDP].dport == 99
    fresh = out.copy()
    del fresh[IP].chksum  # recompute only the IPv4 header checksum
    assert Ether(bytes(fresh))[IP].chksum == out[IP].chksum


def test_ipv6_address_rewrite_updates_tcp_checksum(dp):
    frame = Ether(bytes(BASE / IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=5, dport=6) / b"v6"))
    out = Ether(run(dp, frame, [("set_ipv6_dst", int(ipaddress.IPv6Address("2001:db8::99")))]).frame)
    assert out[IPv6].dst == "2001:db8::99"
    fresh = out.copy()
    del fresh[TCP].chksum
    assert Ether(bytes(fresh))[TCP].chksum == out[TCP].chksum


def _ones_sum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def test_partial_checksum_frames_get_the_pseudo_header_updated(dp):
    # A frame as a veth with tx checksum offload hands it over: the TCP
    # checksum field holds only the pseudo-header sum, the virtio-net header
    # says where the kernel must finish it.
    frame = bytearray(bytes(BASE / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2) / b"payload"))
    l4 = 14 + 20
    seg_len = len(frame) - l4
    pseudo = _ones_sum(bytes(frame[26:34]) + struct.pack("!HH", 6, seg_len))
    frame[l4 + 16:l4 + 18] = struct.pack("!H", pseudo)
    vnet = struct.pack("<BBHHHH", 1, 0, 0, 0, l4, 16)  # NEEDS_CSUM
    up = run(dp, Ether(bytes(frame)), [("set_ipv4_src", ip4("10.1.1.1")), ("set_tp_dst", 443)], vnet=vnet)
    out = bytearray(up.frame)
    # Finish the checksum the way the kernel will, then let scapy judge it.
    out[l4 + 16:l4 + 18] = struct.pack("!H", 0xFFFF & ~_ones_sum(bytes(out[l4:])))
    pkt = Ether(bytes(out))
    assert pkt[IP].src == "10.1.1.1" and pkt[TCP].dport == 443
    assert checksums_ok(pkt)


def test_edits_on_frames_without_the_header_change_nothing(dp):
    raw = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x0806) / (b"\0" * 28))
    up = run(dp, Ether(raw), [("set_ipv4_src", ip4("1.2.3.4")), ("set_tp_src", 9)])
    assert up.frame == raw
