"""csrc/offload.c through cffi: software checksum completion and GSO
segmentation, the work an afxdp port does before transmit because AF_XDP
frames carry no virtio_net_hdr.  Frames are built with scapy and every output
is decoded and re-checksummed by scapy, an independent implementation."""
import random
import struct

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from vswitch.datapath._datapath import ffi, lib

NEEDS_CSUM = lib.VS_VNET_F_NEEDS_CSUM
CAP = 2048
MAX = 64


def vnet(flags=0, gso_type=0, gso_size=0, csum_start=0, csum_offset=0, hdr_len=0):
    return ffi.new("struct vs_vnet_hdr *", {
        "flags": flags, "gso_type": gso_type, "gso_size": gso_size, "hdr_len": hdr_len,
        "csum_start": csum_start, "csum_offset": csum_offset})


def partial(frame, l4_off, csum_off, proto):
    """What the kernel hands over with CHECKSUM_PARTIAL: the checksum field
    holds the folded (not inverted) pseudo-header sum of the whole L4 length."""
    pkt = Ether(frame)
    ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
    l4len = len(frame) - l4_off
    if ip.version == 4:
        pseudo = bytes(map(int, ip.src.split("."))) + bytes(map(int, ip.dst.split(".")))
        pseudo += struct.pack("!BBH", 0, proto, l4len)
    else:
        import socket
        pseudo = (socket.inet_pton(socket.AF_INET6, ip.src) + socket.inet_pton(socket.AF_INET6, ip.dst)
                  + struct.pack("!IxxxB", l4len, proto))
    s = sum(struct.unpack(f"!{len(pseudo) // 2}H", pseudo))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    b = bytearray(frame)
    b[l4_off + csum_off:l4_off + csum_off + 2] = struct.pack("!H", s)
    return bytes(b)


def segment(frame, hdr, max_segs=MAX, cap=CAP):
    bufs = [ffi.new("uint8_t[]", cap) for _ in range(max_segs)]
    outs = ffi.new("uint8_t *[]", bufs)
    lens = ffi.new("uint32_t[]", max_segs)
    n = lib.vs_offload_segment(frame, len(frame), hdr, outs, cap, lens, max_segs)
    if n < 0:
        return n
    return [bytes(ffi.buffer(bufs[i], lens[i])) for i in range(n)]


def checksums_ok(frame):
    """Scapy recomputes every checksum; they must equal what we wrote."""
    pkt = Ether(frame)
    fresh = pkt.copy()
    for layer in (IP, TCP, UDP):
        if fresh.haslayer(layer):
            del fresh[layer].chksum
    if fresh.haslayer(IP):
        del fresh[IP].len
    if fresh.haslayer(IPv6):
        del fresh[IPv6].plen
    if fresh.haslayer(UDP):
        del fresh[UDP].len
    return bytes(Ether(bytes(fresh))) == frame


def tcp4(payload, flags="PA", vlan=None, seq=1000, ip_id=7):
    l2 = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    if vlan is not None:
        l2 = l2 / Dot1Q(vlan=vlan)
    return bytes(l2 / IP(src="10.0.0.1", dst="10.0.0.2", id=ip_id, flags="DF")
                 / TCP(sport=40000, dport=5001, seq=seq, ack=99, flags=flags, window=502,
                       options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))])
                 / Raw(payload))


def test_tso_ipv4_segments_are_wire_frames_with_fixed_headers():
    payload = bytes(random.Random(1).getrandbits(8) for _ in range(10000))
    frame = tcp4(payload, flags="FPAC")  # FIN, PSH, ACK, CWR
    l4 = 34
    frame = partial(frame, l4, 16, 6)
    hdr = vnet(NEEDS_CSUM, lib.VS_GSO_TCPV4, 1448, l4, 16, hdr_len=len(frame))
    assert lib.vs_offload_nsegs(frame, len(frame), hdr) == 7
    segs = segment(frame, hdr)
    assert len(segs) == 7
    got = b""
    for i, seg in enumerate(segs):
        p = Ether(seg)
        assert checksums_ok(seg), f"segment {i} checksum"
        assert p[IP].len == len(seg) - 14
        assert p[IP].id == 7 + i
        assert p[TCP].seq == 1000 + 1448 * i
        flags = str(p[TCP].flags)
        assert ("F" in flags) == ("P" in flags) == (i == 6)
        assert ("C" in flags) == (i == 0)
        assert "A" in flags
        assert len(seg) <= 14 + 20 + 32 + 1448
        got += bytes(p[TCP].payload)
    assert got == payload


def test_tso_ipv6_and_vlan_tagged():
    payload = bytes(range(256)) * 20
    frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / Dot1Q(vlan=10)
                  / IPv6(src="fd00::1", dst="fd00::2")
                  / TCP(sport=1, dport=2, seq=5, flags="PA") / Raw(payload))
    l4 = 18 + 40
    frame = partial(frame, l4, 16, 6)
    segs = segment(frame, vnet(NEEDS_CSUM, lib.VS_GSO_TCPV6, 1000, l4, 16))
    assert len(segs) == 6
    assert b"".join(bytes(Ether(s)[TCP].payload) for s in segs) == payload
    for i, s in enumerate(segs):
        p = Ether(s)
        assert p[Dot1Q].vlan == 10
        assert p[IPv6].plen == len(s) - l4 + 0 and checksums_ok(s)
        assert p[TCP].seq == 5 + 1000 * i


def test_uso_udp_l4_segments():
    payload = b"x" * 3000 + b"y" * 100
    frame = bytes(Ether() / IP(src="10.1.0.1", dst="10.1.0.2") / UDP(sport=9, dport=10) / Raw(payload))
    frame = partial(frame, 34, 6, 17)
    segs = segment(frame, vnet(NEEDS_CSUM, lib.VS_GSO_UDP_L4, 1400, 34, 6))
    assert [len(Ether(s)[UDP].payload) for s in segs] == [1400, 1400, 300]
    assert all(checksums_ok(s) for s in segs)
    assert b"".join(bytes(Ether(s)[UDP].payload) for s in segs) == payload


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_partial_checksum_completed(proto):
    l4 = IP(src="192.0.2.1", dst="192.0.2.2") / (
        TCP(sport=5, dport=6, flags="A") if proto == "tcp" else UDP(sport=5, dport=6))
    frame = bytes(Ether() / l4 / Raw(b"hello, offload"))
    off = 16 if proto == "tcp" else 6
    frame = partial(frame, 34, off, 6 if proto == "tcp" else 17)
    assert not checksums_ok(frame)
    hdr = vnet(NEEDS_CSUM, 0, 0, 34, off)
    segs = segment(frame, hdr)
    assert len(segs) == 1 and checksums_ok(segs[0])
    buf = bytearray(frame)  # in place, the afxdp tx path's way
    cbuf = ffi.from_buffer(buf)
    assert lib.vs_offload_csum(cbuf, len(buf), hdr) == 0
    assert bytes(buf) == segs[0]


def test_frame_without_offload_copied_unchanged():
    frame = tcp4(b"abc")
    assert segment(frame, vnet()) == [frame]


def test_small_gso_frame_becomes_one_segment():
    frame = partial(tcp4(b"z" * 100), 34, 16, 6)
    segs = segment(frame, vnet(NEEDS_CSUM, lib.VS_GSO_TCPV4, 1448, 34, 16))
    assert len(segs) == 1 and checksums_ok(segs[0])


def test_refusals():
    frame = partial(tcp4(b"q" * 5000), 34, 16, 6)
    tso = dict(flags=NEEDS_CSUM, gso_type=lib.VS_GSO_TCPV4, gso_size=1000, csum_start=34, csum_offset=16)
    assert segment(frame, vnet(**tso), max_segs=3) == lib.VS_OFFLOAD_ENOSPACE
    assert segment(frame, vnet(**tso), cap=500) == lib.VS_OFFLOAD_ENOSPACE
    assert segment(frame, vnet(**{**tso, "gso_size": 0})) == lib.VS_OFFLOAD_EMALFORMED
    assert segment(frame, vnet(**{**tso, "csum_start": 30})) == lib.VS_OFFLOAD_EMALFORMED
    assert segment(frame, vnet(**{**tso, "gso_type": lib.VS_GSO_TCPV6})) == lib.VS_OFFLOAD_EMALFORMED
    assert segment(frame, vnet(**{**tso, "gso_type": lib.VS_GSO_UDP})) == lib.VS_OFFLOAD_EUNSUPPORTED
    assert segment(frame[:40], vnet(**tso)) == lib.VS_OFFLOAD_EMALFORMED
    small = partial(tcp4(b"q" * 10), 34, 16, 6)
    assert segment(small, vnet(NEEDS_CSUM, 0, 0, 34, 60000)) == lib.VS_OFFLOAD_EMALFORMED
    assert segment(small, vnet(NEEDS_CSUM, 0, 0, len(small), 0)) == lib.VS_OFFLOAD_EMALFORMED
    arp = bytes(Ether(type=0x0806) / Raw(b"\0" * 28))
    assert segment(arp, vnet(**tso)) == lib.VS_OFFLOAD_EMALFORMED


def test_fuzz_never_reads_or_writes_out_of_bounds():
    """Random and truncated frames with random headers: every call returns,
    and no segment is longer than its buffer (the buffers are guarded)."""
    rng = random.Random(3)
    base = [partial(tcp4(b"p" * 4000), 34, 16, 6),
            bytes(Ether() / IPv6() / TCP() / Raw(b"w" * 3000))]
    guard = b"\xa5" * 64
    for i in range(3000):
        frame = bytearray(rng.choice(base))
        frame = frame[:rng.randrange(0, len(frame) + 1)]
        for _ in range(rng.randrange(0, 6)):
            if frame:
                frame[rng.randrange(len(frame))] = rng.getrandbits(8)
        hdr = vnet(rng.getrandbits(8), rng.choice([0, 1, 3, 4, 5, 0x81, rng.getrandbits(8)]),
                   rng.choice([0, 1, 100, 1448, rng.getrandbits(16)]),
                   rng.choice([34, 54, rng.getrandbits(16)]), rng.choice([6, 16, rng.getrandbits(16)]))
        cap = rng.choice([64, 1514, CAP])
        bufs = [ffi.new("uint8_t[]", cap + len(guard)) for _ in range(8)]
        for b in bufs:
            ffi.memmove(b + cap, guard, len(guard))
        outs = ffi.new("uint8_t *[]", bufs)
        lens = ffi.new("uint32_t[]", 8)
        n = lib.vs_offload_segment(bytes(frame), len(frame), hdr, outs, cap, lens, 8)
        assert n <= 8
        for b in bufs:
            assert bytes(ffi.buffer(b + cap, len(guard))) == guard, f"overflow at case {i}"
        for k in range(max(n, 0)):
            assert lens[k] <= cap


@pytest.mark.parametrize("l3", ["ipv4", "ipv6"])
def test_rx_partial_checksum_is_completed_and_good_ones_untouched(l3):
    """What a veth peer's CHECKSUM_PARTIAL frame looks like once XDP handed
    it to AF_XDP: the field holds only the pseudo-header sum."""
    ip = IP(src="10.0.0.1", dst="10.0.0.2") if l3 == "ipv4" else IPv6(src="fd00::1", dst="fd00::2")
    l4 = 34 if l3 == "ipv4" else 54
    good = bytes(Ether() / ip / TCP(sport=1, dport=2, flags="A") / Raw(b"data" * 100))
    bad = bytearray(partial(good, l4, 16, 6))
    assert lib.vs_offload_rx_fix_csum(ffi.from_buffer(bad), len(bad)) == 1
    assert bytes(bad) == good
    same = bytearray(good)
    assert lib.vs_offload_rx_fix_csum(ffi.from_buffer(same), len(same)) == 0
    assert bytes(same) == good
    # A corrupted checksum that is not the pseudo-header sum stays corrupted:
    # the receiver must still be able to drop it.
    corrupt = bytearray(good)
    corrupt[l4 + 16] ^= 0x55
    assert lib.vs_offload_rx_fix_csum(ffi.from_buffer(corrupt), len(corrupt)) == 0
    udp = bytearray(partial(bytes(Ether() / ip / UDP(sport=3, dport=4) / Raw(b"u" * 33)), l4, 6, 17))
    assert lib.vs_offload_rx_fix_csum(ffi.from_buffer(udp), len(udp)) == 1
    assert checksums_ok(bytes(udp))


def test_rx_fix_survives_truncation_and_garbage():
    rng = random.Random(5)
    good = partial(bytes(Ether() / IP(src="1.2.3.4", dst="5.6.7.8") / UDP() / Raw(b"x" * 60)), 34, 6, 17)
    for _ in range(2000):
        f = bytearray(good[:rng.randrange(len(good) + 1)])
        for _ in range(rng.randrange(4)):
            if f:
                f[rng.randrange(len(f))] = rng.getrandbits(8)
        lib.vs_offload_rx_fix_csum(ffi.from_buffer(f), len(f))
