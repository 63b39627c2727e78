"""The vxlan port type in C (csrc/netdev_vxlan.c), no root: the far VTEP is a
plain UDP socket on 127.0.0.1, the switch's VTEP 127.0.0.2 (local_ip), both
on an unprivileged port.  Encapsulation is checked byte for byte (VXLAN
header, VNI, the inner frame untouched) and by scapy; decapsulation by the
frame that reaches a dummy port and the tunnel metadata in the upcall's key;
then the drops: an unknown VNI, malformed VXLAN headers, a frame too large
for the path (counted, never cut), a remote_ip=flow port without a
destination; the SET_TUNNEL action steering one flow port to two remotes;
a TSO super-frame leaving as MSS-sized VXLAN datagrams; and equal frames of
one flow leaving as datagram trains (one UDP GSO send each)."""
import ipaddress
import socket
import struct

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

from helpers.vswitchd import wait_for
from vswitch.datapath.dpif import Datapath, PortOpenError

FAR, NEAR = "127.0.0.1", "127.0.0.2"
ALL = 0xFFFFFFFF


def ip_int(text):
    return int(ipaddress.IPv4Address(text))


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((NEAR, 0))
        return s.getsockname()[1]


def udp_socket_queue_and_drops(ip, port):
    """(rx_queue bytes, drops) of the UDP socket bound to ip:port, from
    /proc/net/udp (addresses in hex, in the kernel's byte order)."""
    local = f"{struct.unpack('<I', socket.inet_aton(ip))[0]:08X}:{port:04X}"
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == local:
                return int(fields[4].split(":")[1], 16), int(fields[-1])
    raise AssertionError(f"no UDP socket on {ip}:{port}")


@pytest.fixture
def vtep():
    """(dp, far socket, dst_port): dummy port 1, vxlan port 2 (VNI 42 to FAR)."""
    port = free_udp_port()
    far = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    far.bind((FAR, port))
    far.settimeout(2)
    dp = Datapath(upcall_ring_size=64)
    try:
        dp.add_port(1, "dummy", "d1")
        dp.add_port(2, "vxlan", "vx1", {"remote_ip": FAR, "key": "42", "dst_port": str(port),
                                        "local_ip": NEAR, "tos": "0", "ttl": "64"})
        yield dp, far, port
    finally:
        dp.close()
        far.close()


def inner_frame(size=100, dst="02:00:00:00:00:02"):
    pkt = Ether(src="02:00:00:00:00:01", dst=dst) / IP(src="10.0.0.1", dst="10.0.0.2") / \
        UDP(sport=1000, dport=2000)
    return bytes(pkt / (b"x" * max(0, size - len(pkt))))


def vxlan_bytes(vni, frame, flags=0x08):
    return struct.pack("!B3xI", flags, vni << 8) + frame


def test_encap_bytes(vtep):
    dp, far, port = vtep
    dp.flow_put({"in_port": 1}, {"in_port": ALL}, [("output", 2)])
    frame = inner_frame()
    dp.dummy_inject(1, [frame])
    data, (src, sport) = far.recvfrom(65536)
    # The source port: the inner flow's hash into the dynamic range (RFC
    # 7348 §5), the same for every packet of the flow.
    assert src == NEAR and 49152 <= sport <= 65535 and sport != port
    assert data[:8] == bytes([0x08, 0, 0, 0, 0, 0, 42, 0])
    assert data[8:] == frame
    dp.dummy_inject(1, [frame])
    assert far.recvfrom(65536) == (data, (src, sport))
    # The source port's socket only sends: what arrives there is dropped
    # (counted by the kernel), never queued where nothing reads.
    far.sendto(b"stray", (NEAR, sport))
    assert wait_for(lambda: udp_socket_queue_and_drops(NEAR, sport)[1] == 1, what="stray dropped")
    assert udp_socket_queue_and_drops(NEAR, sport)[0] == 0
    assert VXLAN(data).vni == 42 and bytes(VXLAN(data).payload) == frame
    # Counted once send returns, which can be after the far end has it.
    assert wait_for(lambda: dp.port_stats(2)["tx_packets"] == 2, what="tx_packets 2")
    status = dp.port_type_status(2)
    assert status["tunnel_remote_ip"] == FAR and status["tunnel_key"] == "42"


def test_decap_to_port_with_tunnel_metadata(vtep):
    dp, far, port = vtep
    frame = inner_frame()
    far.sendto(vxlan_bytes(42, frame), (NEAR, port))
    ups = wait_for(lambda: dp.recv_upcalls(), what="upcall of the decapsulated frame")
    assert ups[0].frame == frame
    key = ups[0].key
    assert key["in_port"] == 2 and key["tun_id"] == 42
    assert key["tun_src"] == ip_int(FAR) and key["tun_dst"] == ip_int(NEAR)
    # A megaflow on the tunnel metadata forwards the next one to the dummy port.
    dp.flow_put({"in_port": 2, "tun_id": 42, "tun_src": ip_int(FAR)},
                {"in_port": ALL, "tun_id": (1 << 64) - 1, "tun_src": ALL}, [("output", 1)])
    far.sendto(vxlan_bytes(42, frame), (NEAR, port))
    sent = wait_for(lambda: dp.dummy_sent(1), what="decapsulated frame")
    assert sent == [frame]
    assert dp.port_stats(2)["rx_packets"] == 2


def test_unknown_vni_and_malformed_are_dropped_and_counted(vtep):
    dp, far, port = vtep
    frame = inner_frame()
    far.sendto(vxlan_bytes(43, frame), (NEAR, port))           # no port has VNI 43
    far.sendto(vxlan_bytes(42, frame, flags=0x00), (NEAR, port))  # I flag clear
    far.sendto(vxlan_bytes(42, frame, flags=0x88), (NEAR, port))  # reserved flag set
    far.sendto(vxlan_bytes(42, b"\x01" * 10), (NEAR, port))       # inner frame cut
    far.sendto(b"\x08\x00", (NEAR, port))                         # header cut
    wait_for(lambda: dp.port_type_stats(2)["sock_rx_packets"] == 5, what="5 datagrams read")
    stats = dp.port_type_stats(2)
    assert stats["sock_rx_unknown_vni"] == 1 and stats["sock_rx_malformed"] == 4
    assert dp.port_stats(2)["rx_malformed"] == 4
    assert dp.recv_upcalls() == []


def test_too_large_for_the_path_is_dropped_and_counted_not_cut(vtep):
    dp, far, port = vtep
    dp.flow_put({"in_port": 1}, {"in_port": ALL}, [("output", 2)])
    # loopback's MTU is 65536: an inner frame whose datagram exceeds 65535.
    dp.dummy_inject(1, [inner_frame(65500)])
    wait_for(lambda: dp.port_type_stats(2)["tx_mtu_drops"] == 1, what="an MTU drop")
    assert dp.port_stats(2)["tx_dropped"] == 1
    dp.dummy_inject(1, [inner_frame(1400)])
    assert len(far.recvfrom(65536)[0]) == 1408


def test_set_tunnel_steers_a_flow_port(vtep):
    dp, far, port = vtep
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.3", port))
    other.settimeout(2)
    try:
        dp.add_port(3, "vxlan", "vxf", {"remote_ip": "flow", "key": "flow", "dst_port": str(port),
                                        "local_ip": NEAR})
        frame = inner_frame()
        # No destination: dropped and counted.
        dp.flow_put({"in_port": 1}, {"in_port": ALL}, [("output", 3)])
        dp.dummy_inject(1, [frame])
        wait_for(lambda: dp.port_type_stats(3)["tx_no_remote"] == 1, what="a no-remote drop")
        dp.flow_flush()
        dp.flow_put({"in_port": 1}, {"in_port": ALL},
                    [("set_tunnel", (7, ip_int(FAR), 0)), ("output", 3),
                     ("set_tunnel", (9, ip_int("127.0.0.3"), 0)), ("output", 3)])
        dp.dummy_inject(1, [frame])
        a, b = far.recv(65536), other.recv(65536)
        assert a == vxlan_bytes(7, frame) and b == vxlan_bytes(9, frame)
        # Received on the shared socket: the flow port claims VNIs no fixed
        # port has (FAR/42 stays the fixed port's).
        far.sendto(vxlan_bytes(1234, frame), (NEAR, port))
        ups = wait_for(lambda: dp.recv_upcalls(), what="upcall")
        assert ups[0].key["in_port"] == 3 and ups[0].key["tun_id"] == 1234
    finally:
        other.close()


def test_tso_superframe_leaves_as_mss_segments(vtep):
    dp, far, port = vtep
    dp.flow_put({"in_port": 1}, {"in_port": ALL}, [("output", 2)])
    payload = bytes(range(256)) * 100  # 25600 bytes
    pkt = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / \
        IP(src="10.0.0.1", dst="10.0.0.2", id=100) / TCP(sport=5000, dport=80, seq=1000, flags="PA")
    frame = bytearray(bytes(pkt / payload))
    hlen = len(pkt)
    # A partial checksum as the kernel leaves it: the pseudo-header sum.
    ph = struct.pack("!4s4sBBH", socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2"), 0, 6,
                     len(frame) - 34)
    s = sum(struct.unpack("!6H", ph))
    s = (s & 0xFFFF) + (s >> 16)
    frame[34 + 16:34 + 18] = struct.pack("!H", s & 0xFFFF)
    vnet = struct.pack("<BBHHHH", 1, 1, hlen, 1000, 34, 16)  # NEEDS_CSUM, TCPV4
    dp.dummy_inject(1, [bytes(frame)], vnets=[vnet])
    got = []
    while sum(len(d) - 8 - hlen for d in got) < len(payload):
        got.append(far.recv(65536))
    assert len(got) == 26
    data = b""
    for i, d in enumerate(got):
        assert d[:8] == bytes([8, 0, 0, 0, 0, 0, 42, 0])
        inner = Ether(d[8:])
        assert inner[TCP].seq == 1000 + 1000 * i
        chk = inner[TCP].chksum
        del inner[TCP].chksum
        assert Ether(bytes(inner))[TCP].chksum == chk
        data += bytes(inner[TCP].payload)
    assert data == payload
    assert dp.port_type_stats(2)["tx_segments"] == 26


def test_equal_frames_of_a_flow_leave_as_datagram_trains(vtep):
    """Frames of one inner flow next to each other in a batch, all as long
    as the first but the last, go as one UDP GSO send: the far end still
    receives one VXLAN datagram per frame, in order, each byte for byte;
    a frame longer than a shorter one before it starts the next train."""
    dp, far, port = vtep
    dp.flow_put({"in_port": 1}, {"in_port": ALL}, [("output", 2)])
    sizes = [200] * 5 + [120] + [200] * 3
    frames = [bytearray(inner_frame(size)) for size in sizes]
    for i, f in enumerate(frames):
        f[-1] = i  # tell them apart
    assert dp.dummy_inject(1, frames) == len(frames)
    got = [far.recv(65536) for _ in frames]
    assert [d[:8] for d in got] == [bytes([8, 0, 0, 0, 0, 0, 42, 0])] * len(frames)
    assert [d[8:] for d in got] == [bytes(f) for f in frames]
    stats = wait_for(lambda: (s := dp.port_type_stats(2))["tx_train_frames"] == len(frames) and s,
                     what="both trains counted")
    assert stats["tx_trains"] == 2 and stats["tx_train_errors"] == 0, stats
    assert stats["tx_mtu_drops"] == stats["tx_errors"] == 0, stats
    assert dp.port_stats(2)["tx_packets"] == len(frames)


def test_frames_of_alternating_flows_ride_no_train(vtep):
    """Each inner flow leaves from its own source port (a train has one), so
    frames of alternating flows go one by one."""
    dp, far, port = vtep
    dp.flow_put({"in_port": 1}, {"in_port": ALL}, [("output", 2)])
    frames = []
    for i in range(6):
        pkt = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / \
            IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000 + i % 2, dport=2000)
        frames.append(bytes(pkt / (b"y" * 100)))
    sports = set()
    dp.dummy_inject(1, frames)
    for f in frames:
        data, (_, sport) = far.recvfrom(65536)
        sports.add(sport)
    assert len(sports) == 2
    stats = wait_for(lambda: (s := dp.port_type_stats(2)) and dp.port_stats(2)["tx_packets"] == 6
                     and s, what="six sent")
    assert stats["tx_trains"] == stats["tx_train_frames"] == 0, stats


def test_bad_options_name_the_option():
    dp = Datapath()
    try:
        for opts, step in (({"key": "1"}, "option remote_ip"),
                           ({"remote_ip": "1.2.3"}, "option remote_ip"),
                           ({"remote_ip": FAR, "key": "16777216"}, "option key"),
                           ({"remote_ip": FAR, "dst_port": "0"}, "option dst_port"),
                           ({"remote_ip": FAR, "colour": "red"}, "option colour"),
                           ({"remote_ip": FAR, "tc-offload": "on"}, "option tc-offload")):
            with pytest.raises(PortOpenError) as e:
                dp.add_port(5, "vxlan", "bad", opts)
            assert e.value.step == step
    finally:
        dp.close()


def tcp_segment(seq, payload, flags="A"):
    pkt = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / \
        IP(src="10.0.0.1", dst="10.0.0.2", id=seq & 0xFFFF) / \
        TCP(sport=5000, dport=80, seq=seq, ack=7, flags=flags, window=500)
    return bytes(pkt / payload)


UDP_SEGMENT = 103  # the socket option (Linux udp.h)


def send_train(far, port, segs):
    """The VXLAN datagrams of segs as one UDP GSO send on loopback: the
    receiver's UDP GRO hands them over as one datagram train."""
    dgrams = [vxlan_bytes(42, s) for s in segs]
    far.sendmsg([b"".join(dgrams)], [(socket.SOL_UDP, UDP_SEGMENT, struct.pack("=H", len(dgrams[0])))],
                0, (NEAR, port))


def coalesced_frame(dp):
    """The one frame a train became on dummy port 1, and its vnet header's
    (flags, gso_type, gso_size, csum_start, csum_offset)."""
    sent = wait_for(lambda: dp.dummy_sent(1, with_vnet=True), what="coalesced frame")
    assert len(sent) == 1, [len(f) for f, _ in sent]
    frame, vnet = sent[0]
    flags, gso_type, _, gso_size, csum_start, csum_offset = struct.unpack("<BBHHHH", vnet)
    return frame, (flags, gso_type, gso_size, csum_start, csum_offset)


def test_udp_gro_train_is_coalesced_into_one_tso_frame(vtep):
    """A train of VXLAN datagrams the kernel hands over as one (UDP GRO; sent
    here as one UDP_SEGMENT send on loopback) whose inner frames are
    consecutive TCP segments of one flow becomes one TSO frame with its vnet
    header; a segment with a bad checksum is not merged."""
    dp, far, port = vtep
    dp.flow_put({"in_port": 2}, {"in_port": ALL}, [("output", 1)])
    mss = 1000
    data = bytes(range(256)) * 16  # 4096 bytes: 4 full segments + 96
    segs = [tcp_segment(1000 + i, data[i:i + mss]) for i in range(0, len(data), mss)]
    send_train(far, port, segs)
    frame, vnet = coalesced_frame(dp)
    assert vnet == (1, 1, mss, 34, 16)  # NEEDS_CSUM, TCPV4
    inner = Ether(frame)
    assert inner[IP].len == len(frame) - 14 and bytes(inner[TCP].payload) == data
    assert inner[TCP].seq == 1000
    stats = dp.port_type_stats(2)
    assert stats["sock_rx_gro_datagrams"] == 1 and stats["sock_rx_coalesced"] == len(segs)
    # A corrupted segment in the middle ends the merge; it is passed on as it is.
    bad = bytearray(segs[2])
    bad[-1] ^= 0xFF
    send_train(far, port, [segs[0], segs[1], bytes(bad), segs[3]])
    sent = wait_for(lambda: dp.dummy_sent(1, with_vnet=True), what="frames")
    assert [len(f) for f, _ in sent] == [len(segs[0]) + mss, len(segs[2]), len(segs[3])]


def tcp6_segment(seq, payload, flags="A"):
    pkt = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / \
        IPv6(src="fd00::1", dst="fd00::2", fl=7) / \
        TCP(sport=5000, dport=80, seq=seq, ack=7, flags=flags, window=500)
    return bytes(pkt / payload)


def ones_sum(data):
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def test_udp_gro_train_of_ipv6_tcp_is_coalesced(vtep):
    """Inner IPv6 TCP segments are coalesced too: one TSO frame (TCPV6) with
    the payload length of the whole, a partial checksum that is the IPv6
    pseudo-header's sum, and the data in order; a segment of another flow
    (flow label) ends the merge."""
    dp, far, port = vtep
    dp.flow_put({"in_port": 2}, {"in_port": ALL}, [("output", 1)])
    mss = 1000
    data = bytes(range(256)) * 16  # 4 full segments + 96
    segs = [tcp6_segment(5000 + i, data[i:i + mss]) for i in range(0, len(data), mss)]
    send_train(far, port, segs)
    frame, vnet = coalesced_frame(dp)
    assert vnet == (1, 4, mss, 54, 16)  # NEEDS_CSUM, TCPV6
    inner = Ether(frame)
    assert inner[IPv6].plen == len(frame) - 54 and inner[IPv6].fl == 7
    assert bytes(inner[TCP].payload) == data and inner[TCP].seq == 5000
    pseudo = inner[IPv6].src, inner[IPv6].dst
    ph = socket.inet_pton(socket.AF_INET6, pseudo[0]) + socket.inet_pton(socket.AF_INET6, pseudo[1]) + \
        struct.pack("!IxxxB", len(frame) - 54, 6)
    assert inner[TCP].chksum == ones_sum(ph)
    # Completing it the way the kernel would gives a checksum that verifies.
    tcp = bytearray(frame[54:])
    tcp[16:18] = b"\0\0"
    full = 0xFFFF - ones_sum(ph + bytes(tcp) + (b"\0" if len(tcp) % 2 else b""))
    inner[TCP].chksum = full
    del inner[TCP].chksum
    assert Ether(bytes(inner))[TCP].chksum == full
    assert dp.port_type_stats(2)["sock_rx_coalesced"] == len(segs)
    # Another flow label in the middle ends the merge (and the next segment,
    # of the first flow again, does not continue it).
    other = bytearray(segs[2])
    other[14 + 3] = 8  # flow label 8
    send_train(far, port, [segs[0], segs[1], bytes(other), segs[3]])
    sent = wait_for(lambda: dp.dummy_sent(1, with_vnet=True), what="frames")
    assert [len(f) for f, _ in sent] == [len(segs[0]) + mss, len(segs[2]), len(segs[3])]


def test_a_superframe_in_two_trains_is_coalesced_across_them(vtep):
    """One UDP GSO send holds at most 64 KiB, so a sender's super-frame
    arrives as two trains.  Read in one batch, they become one TSO frame
    (across the trains); read apart, two.  Either way the frames carry all
    the data in order, with consecutive sequence numbers and IP lengths
    that match."""
    dp, far, port = vtep
    dp.flow_put({"in_port": 2}, {"in_port": ALL}, [("output", 1)])
    mss = 1000
    data = bytes(range(256)) * 40  # 10 full segments + 240
    segs = [tcp_segment(7000 + i, data[i:i + mss]) for i in range(0, len(data), mss)]
    send_train(far, port, segs[:8])
    send_train(far, port, segs[8:])
    frames = []
    wait_for(lambda: frames.extend(f for f, _ in dp.dummy_sent(1, with_vnet=True)) or
             sum(len(Ether(f)[TCP].payload) for f in frames) >= len(data), what="all the data")
    assert 1 <= len(frames) <= 2, [len(f) for f in frames]
    got, seq = b"", 7000
    for f in frames:
        inner = Ether(f)
        assert inner[TCP].seq == seq and inner[IP].len == len(f) - 14
        got += bytes(inner[TCP].payload)
        seq += len(inner[TCP].payload)
    assert got == data
    assert dp.port_type_stats(2)["sock_rx_coalesced"] == len(segs)  # every segment merged
