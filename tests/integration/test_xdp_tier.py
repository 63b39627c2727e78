"""The kernel XDP tier (csrc/xdp_tier.h, xdp_offload.h) on real veths:
two hosts in their own namespaces, a datapath with two afxdp ports
(options xdp-offload=true, native XDP) in a third.  The hosts' ends have GRO
on, so that a veth accepts the frames the tier redirects to its peer.

What is checked: established UDP flows are forwarded by the kernel (exact
entries appear, the poll thread sees only the first packets), every datagram
arrives, the megaflow's and the ports' counters include what the kernel
forwarded (equal to the sending host's own transmit counter), and deleting
or changing the megaflow takes its exact flows out of the kernel at once: the
next packets miss (upcall) or follow the new actions (dropped).  Then the same through vswitchd: NORMAL
between two afxdp ports with xdp-offload=true carries TCP intact while the
poll thread sees a small share of it (the senders' partial checksums are
completed by the tier's program), and the port counters still count every
frame."""
import json
import socket

import pytest

from helpers import kernel_tier, netns, traffic
from helpers.kernel_tier import IN_PORT_ONLY, tier_datapath, tx_packets as _tx_packets
from helpers.topology import Topology, switch_with_bridge
from helpers.vswitchd import wait_for
from vswitch.datapath import dpif

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not dpif.xdp_tier_available(),
                                 reason="built without clang/libbpf: no XDP tier")]

UDP_PORT = 40123
DATAGRAMS = 3000
TIER = {"xdp-mode": "native", "xdp-offload": "true"}
FIRST = 5
PAYLOAD = "bytes([i % 251]) * 32"


@pytest.fixture
def tier():
    # The hosts' ends get GRO, so that a veth accepts the frames the tier
    # redirects to its peer.
    with tier_datapath("x", "10.77.0", UDP_PORT, "afxdp", TIER, gro=True) as setting:
        yield setting


def _drain(sink):
    n = 0
    try:
        while True:
            sink.recv(2048)
            n += 1
    except socket.timeout:
        return n


def test_established_flow_forwarded_by_kernel_and_counted(tier):
    hosts, dp, sink = tier
    dp.flow_put({"in_port": 1}, IN_PORT_ONLY, [("output", 2)])
    before = dpif.xdp_offload_counts()
    sent_before = _tx_packets(hosts.a, hosts.a0)
    hosts.blast(DATAGRAMS, PAYLOAD, first=FIRST)
    assert _drain(sink) == DATAGRAMS
    counts = dpif.xdp_offload_counts()
    assert counts["live"] - before["live"] == 1, counts
    userspace = sum(s["packets"] for s in dp.pmd_stats())
    # Only the packets that reached the socket before the entry existed.
    assert userspace <= FIRST, userspace
    sent = _tx_packets(hosts.a, hosts.a0) - sent_before
    assert sent == DATAGRAMS
    kernel_tier.check_counted_and_removed(hosts, dp, sink, _drain, sent)


def test_partial_checksums_completed_in_the_kernel(tier):
    """The sender's veth hands over CHECKSUM_PARTIAL datagrams (tx
    checksumming on, its default): the program completes each checksum, or
    the receiving socket would drop the datagram.  Payload sizes vary so
    that the sum covers odd tails and several chunks."""
    hosts, dp, sink = tier
    assert "tx-checksumming: on" in netns.run(hosts.a, "ethtool", "-k", hosts.a0).stdout
    dp.flow_put({"in_port": 1}, IN_PORT_ONLY, [("output", 2)])
    hosts.blast(2000, "bytes([i % 251]) * (1 + i * 7 % 1470)", sport=6000, first=FIRST)
    got = []
    try:
        while True:
            got.append(sink.recv(2048))
    except socket.timeout:
        pass
    # At the switch-over the first datagrams, still queued for user space,
    # may arrive after ones the kernel forwarded: compare as a set.
    sent = {bytes([i % 251]) * (1 + i * 7 % 1470) for i in range(2000)}
    assert len(got) == 2000 and set(got) == sent
    assert sum(s["packets"] for s in dp.pmd_stats()) <= FIRST  # the kernel did the rest


def test_changed_actions_take_the_flow_out_of_the_kernel(tier):
    kernel_tier.check_changed_actions_take_the_flow_out(*tier, _drain, PAYLOAD)


def test_richer_actions_stay_in_user_space(tier):
    kernel_tier.check_richer_actions_stay_in_user_space(*tier, _drain, PAYLOAD)


def _rx_packets(net, port):
    return int(net.vs.vsctl("get", "interface", port, "statistics:rx_packets"))


def test_vswitchd_normal_bridge_offloads_tcp(tmp_path):
    with switch_with_bridge(tmp_path, Topology) as net:
        hosts = []
        for port, ip in (("x1", "10.78.0.1"), ("x2", "10.78.0.2")):
            ns = net.veth_host(port, ip, "type=afxdp", "options:xdp-mode=native",
                               "options:xdp-offload=true")
            netns.run(ns, "ethtool", "-K", "eth0", "gro", "on")
            hosts.append(ns)
        for port in ("x1", "x2"):
            assert net.vs.vsctl("get", "interface", port, "status:xdp_offload").strip() == '"true"'
        assert net.ping("x1", "x2")
        # The hosts keep their default offloads: partial checksums, which the
        # tier's program completes (a wrong one would stall the transfer).
        assert "tx-checksumming: on" in netns.run(hosts[0], "ethtool", "-k", "eth0").stdout
        before = json.loads(net.vs.vsctl("--format", "json", "pmd-stats-show"))
        sent_before = _tx_packets(hosts[0], "eth0")
        size = 64 << 20
        traffic.tcp_transfer(hosts[0], hosts[1], "10.78.0.2", size=size)
        after = json.loads(net.vs.vsctl("--format", "json", "pmd-stats-show"))
        assert after["xdp_tier"]["added"] > before["xdp_tier"]["added"], after["xdp_tier"]
        # 64 MiB is ~45,000 full-size segments one way plus their ACKs.
        frames = size // 1448
        seen = after["packets"] - before["packets"]
        assert seen < frames // 4, (seen, frames)
        # The kernel's share reaches the port counters with the revalidator's
        # next dump: every frame the sender's eth0 sent, counted once.
        sent = _tx_packets(hosts[0], "eth0")
        wait_for(lambda: _rx_packets(net, "x1") >= sent - sent_before, timeout=10,
                 what="x1 rx_packets to include the kernel-forwarded frames")
        assert _rx_packets(net, "x1") <= sent
