"""The kernel tc tier (csrc/tc_tier.h, csrc/bpf/tc_tier.bpf.c) on real veths:
two hosts in their own namespaces, a datapath with two afpacket ports
(option tc-offload=true) in a third.  The hosts keep the kernel's default
offloads (partial checksums, TSO): the tier moves the skb as it is.

What is checked: established UDP flows are forwarded by the kernel (an
exact entry appears, the poll thread sees only the first packets), every
datagram arrives exactly once — the port's packet socket sees each frame
before tc ingress does, and its socket filter must keep the ones the tier
forwards out of user space, also while the flow switches over — the
megaflow's and the ports' counters include what the kernel forwarded (equal
to the sending host's own transmit counter), deleting or changing the
megaflow takes its exact flows out of the kernel at once, richer actions and
mixed pairs (a tc-tier port with a plain one) stay in user space, a bad
option value is refused.  Then through vswitchd: NORMAL between two afpacket
ports with tc-offload=true carries a 64 MiB TCP transfer intact while the
poll thread sees a small share of it, and the port counters count every
frame."""
import json
import socket
import struct

import pytest

from helpers import kernel_tier, netns, traffic
from helpers.kernel_tier import (IN_PORT_ONLY, tier_datapath,
                                 tx_packets as _tx_packets, userspace_packets as _userspace_packets)
from helpers.topology import Topology, switch_with_bridge
from helpers.vswitchd import wait_for
from vswitch.datapath import dpif

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not dpif.tc_tier_available(),
                                 reason="built without clang/libbpf: no tc tier")]

UDP_PORT = 40124
DATAGRAMS = 3000
TIER = {"tc-offload": "true"}
FIRST = 5
INDEX = struct.Struct("!I")  # each datagram starts with its sequence number
PAYLOAD = "struct.pack('!I', i) * 8"
ETH_P_IP = 0x0800
ETH_P_ALL = 0x0003
ETH_P_8021Q = 0x8100
IP_DF = 0x4000
IP_TTL = 64
TEST_VID = 5
VLAN_MARK = 1 << 20  # the tagged frames' sequence numbers start here
UDP_DPORT_AT = 14 + 20 + 2  # in an untagged IPv4 frame without options
UDP_PAYLOAD_AT = 14 + 20 + 8


@pytest.fixture
def tier():
    with tier_datapath("t", "10.79.0", UDP_PORT, "afpacket", TIER, spare=True) as setting:
        yield setting


def _received(sink):
    """The sequence numbers of the datagrams that arrived, in order."""
    got = []
    try:
        while True:
            got.append(INDEX.unpack_from(sink.recv(2048))[0])
    except socket.timeout:
        return got


def _count(sink):
    return len(_received(sink))


def test_established_flow_forwarded_by_kernel_counted_and_delivered_once(tier):
    hosts, dp, sink = tier
    assert dp.port_type_status(1).get("tc_offload") == "true"
    assert dp.port_type_status(1).get("tc_redirect") == "peer"  # a veth: into its peer
    dp.flow_put({"in_port": 1}, IN_PORT_ONLY, [("output", 2)])
    before = dpif.xdp_offload_counts()
    sent_before = _tx_packets(hosts.a, hosts.a0)
    hosts.blast(DATAGRAMS, PAYLOAD, first=FIRST)
    got = _received(sink)
    assert sorted(got) == list(range(DATAGRAMS))  # each one, once
    counts = dpif.xdp_offload_counts()
    assert counts["live"] - before["live"] == 1, counts
    # Only the packets that reached the socket before the entry existed.
    assert _userspace_packets(dp) <= FIRST
    sent = _tx_packets(hosts.a, hosts.a0) - sent_before
    assert sent == DATAGRAMS
    kernel_tier.check_counted_and_removed(hosts, dp, sink, _count, sent)


def test_nothing_delivered_twice_while_the_flow_switches_over(tier):
    """Back to back, without a pause: frames are in flight between the
    packet socket's tap and tc ingress while the entry appears.  The socket
    filter's verdict decides for both, so none arrives twice."""
    hosts, dp, sink = tier
    dp.flow_put({"in_port": 1}, IN_PORT_ONLY, [("output", 2)])
    for round_ in range(3):
        hosts.blast(DATAGRAMS, PAYLOAD, sport=7000 + round_, start=round_ * DATAGRAMS)
        got = _received(sink)
        assert len(got) == len(set(got)), "a datagram arrived twice"
        assert sorted(got) == list(range(round_ * DATAGRAMS, (round_ + 1) * DATAGRAMS))
    assert dpif.xdp_offload_counts()["live"] >= 3
    assert _userspace_packets(dp) < 3 * DATAGRAMS // 2  # the kernel carried most


def test_changed_actions_take_the_flow_out_of_the_kernel(tier):
    kernel_tier.check_changed_actions_take_the_flow_out(*tier, _count, PAYLOAD)


def test_richer_actions_stay_in_user_space(tier):
    kernel_tier.check_richer_actions_stay_in_user_space(*tier, _count, PAYLOAD)


def test_output_to_a_plain_port_stays_in_user_space(tier):
    """A tc-tier port and a plain one: the kernel has nowhere to send, the
    datapath forwards every datagram itself."""
    hosts, dp, _ = tier
    dp.add_port(3, "afpacket", hosts.pc, {})
    assert dp.port_type_status(3).get("tc_offload") == "false"
    dp.flow_put({"in_port": 1}, IN_PORT_ONLY, [("output", 3)])
    with netns.entered(hosts.b):
        cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    try:
        cap.bind((hosts.c0, ETH_P_IP))
        cap.settimeout(0.5)
        hosts.blast(100, PAYLOAD, sport=7100)
        seen = set()
        try:
            while True:
                frame = cap.recv(2048)
                if frame[UDP_DPORT_AT:UDP_DPORT_AT + 2] == struct.pack("!H", UDP_PORT):
                    seen.add(INDEX.unpack_from(frame, UDP_PAYLOAD_AT)[0])
        except socket.timeout:
            pass
    finally:
        cap.close()
    assert seen == set(range(100))
    assert dpif.xdp_offload_counts()["live"] == 0
    assert _userspace_packets(dp) >= 100


def _udp_frame(hosts, sport, payload, vid):
    """An 802.1Q-tagged (VLAN vid) UDP frame a -> b with the headers the
    hosts' own datagrams have (TTL 64, DF): untagged, it would be their flow."""
    ip_len = 20 + 8 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 0, IP_DF, IP_TTL, 17, 0,
                     socket.inet_aton(hosts.ip_a), socket.inet_aton(hosts.ip_b))
    udp = struct.pack("!HHHH", sport, UDP_PORT, 8 + len(payload), 0)
    eth = bytes.fromhex(kernel_tier.mac(hosts.b, hosts.b0).replace(":", "")) + \
        bytes.fromhex(kernel_tier.mac(hosts.a, hosts.a0).replace(":", ""))
    return eth + struct.pack("!HH", ETH_P_8021Q, vid) + struct.pack("!H", ETH_P_IP) + ip + udp + payload


def test_vlan_tagged_frames_stay_in_user_space(tier):
    """The kernel keeps a received 802.1Q tag in skb metadata, out of the
    bytes the programs parse: a tagged frame whose untagged headers are an
    offloaded flow's must still go to user space (its datapath key has the
    VLAN), and arrive there once."""
    hosts, dp, sink = tier
    dp.flow_put({"in_port": 1}, IN_PORT_ONLY, [("output", 2)])
    hosts.blast(50, PAYLOAD, sport=7200, first=FIRST)
    assert _count(sink) == 50 and dpif.xdp_offload_counts()["live"] == 1
    before = _userspace_packets(dp)
    tagged = 40
    with netns.entered(hosts.b):
        cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    with netns.entered(hosts.a):
        tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    try:
        cap.bind((hosts.b0, ETH_P_ALL))
        cap.settimeout(0.5)
        tx.bind((hosts.a0, 0))
        for i in range(tagged):
            tx.send(_udp_frame(hosts, 7200, INDEX.pack(VLAN_MARK + i) * 8, TEST_VID))
        seen = []
        try:
            while True:
                frame = cap.recv(2048)
                if frame[UDP_DPORT_AT:UDP_DPORT_AT + 2] == struct.pack("!H", UDP_PORT):
                    seen.append(INDEX.unpack_from(frame, UDP_PAYLOAD_AT)[0] - VLAN_MARK)
        except socket.timeout:
            pass
    finally:
        cap.close()
        tx.close()
    assert sorted(seen) == list(range(tagged))  # each once (the tag is in aux data)
    assert _userspace_packets(dp) - before == tagged  # none by the kernel


def test_bad_option_value_is_refused_and_changes_nothing(tier):
    hosts, dp, _ = tier
    with pytest.raises(dpif.PortOpenError) as exc:
        dp.add_port(3, "afpacket", hosts.pc, {"tc-offload": "yes"})
    assert "tc-offload" in str(exc.value)
    assert dp.port_driver(3) is None  # no such port
    assert dpif.xdp_offload_counts()["live"] == 0


def _rx_packets(net, port):
    return int(net.vs.vsctl("get", "interface", port, "statistics:rx_packets"))


def test_vswitchd_normal_bridge_offloads_tcp(tmp_path):
    with switch_with_bridge(tmp_path, Topology) as net:
        hosts = []
        for port, ip in (("t1", "10.80.0.1"), ("t2", "10.80.0.2")):
            hosts.append(net.veth_host(port, ip, "type=afpacket", "options:tc-offload=true"))
        for port in ("t1", "t2"):
            assert net.vs.vsctl("get", "interface", port, "status:tc_offload").strip() == '"true"'
        assert net.ping("t1", "t2")
        # The hosts keep their default offloads: TSO super-frames and partial
        # checksums, which the tier moves as they are.
        assert traffic.offloads_on(hosts[0], "eth0")
        before = json.loads(net.vs.vsctl("--format", "json", "pmd-stats-show"))
        sent_before = _tx_packets(hosts[0], "eth0")
        size = 64 << 20
        traffic.tcp_transfer(hosts[0], hosts[1], "10.80.0.2", size=size)
        after = json.loads(net.vs.vsctl("--format", "json", "pmd-stats-show"))
        assert after["xdp_tier"]["added"] > before["xdp_tier"]["added"], after["xdp_tier"]
        sent = _tx_packets(hosts[0], "eth0") - sent_before
        seen = after["packets"] - before["packets"]
        assert seen < sent // 4, (seen, sent)
        # The kernel's share reaches the port counters with the revalidator's
        # next dump: every frame the sender's eth0 ever sent, counted once.
        total = _tx_packets(hosts[0], "eth0")
        wait_for(lambda: _rx_packets(net, "t1") >= total, timeout=10,
                 what="t1 rx_packets to include the kernel-forwarded frames")
        assert _rx_packets(net, "t1") <= _tx_packets(hosts[0], "eth0")
