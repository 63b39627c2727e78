"""Transmit coalescing (csrc/tcp_coalesce.h) end to end: a real vswitchd in
a namespace, hosts in their own namespaces, a real TCP transfer whose
sender hands the switch MSS-sized segments (its offloads off, or native XDP
on the switch's end turning its TSO off).  The output port must send runs
of them as TSO frames: the receiver's own capture (tcpdump, which sees the
skb as it arrives, before any segmentation could happen) shows frames
longer than the link's MTU, the port counts coalesced frames of several
segments each and no refused send, and the data arrives intact (socat
with a digest compare)."""

import re
import subprocess

import pytest

from helpers import netns, traffic
from helpers.topology import Topology, switch_with_bridge
from helpers.vswitchd import wait_for

pytestmark = pytest.mark.timeout(180)

LINK_MTU = 1500
STATS_WAIT = 15  # the Interface statistics are refreshed every few seconds
TRANSFER = 16 << 20
CAPTURED = 400  # frames tcpdump looks at


class Net(Topology):
    ping_wait = 2


@pytest.fixture
def net(tmp_path):
    with switch_with_bridge(tmp_path, Net) as n:
        yield n


def _transfer_captured(net, src, dst, port, tmp_path):
    """Runs the transfer src -> dst while tcpdump in dst's namespace reads
    the first CAPTURED data frames; returns their lengths."""
    ns, ifname, ip = net.hosts[dst]
    errors = tmp_path / f"tcpdump-{port}.err"
    with open(errors, "w") as err:
        capture = subprocess.Popen(
            ["ip", "netns", "exec", ns, "tcpdump", "-l", "-nn", "-c", str(CAPTURED), "-i",
             ifname, "tcp", "dst", "port", str(port)], stdout=subprocess.PIPE, stderr=err,
            text=True)
    try:
        # tcpdump says so on stderr once its socket listens.
        wait_for(lambda: "listening" in errors.read_text(), timeout=10, what="tcpdump listening")
        traffic.tcp_transfer(net.hosts[src][0], ns, ip, TRANSFER, port, what=f"{src}->{dst}")
        out, _ = capture.communicate(timeout=30)
    finally:
        if capture.poll() is None:
            capture.kill()
            capture.wait()
    return [int(m) for m in re.findall(r"length (\d+)", out)]


def _assert_coalesced(net, out_port, prefix, lengths):
    assert lengths and max(lengths) > LINK_MTU, lengths[:40]
    key = f"{prefix}_tx_coalesced_frames"
    wait_for(lambda: net.vs.statistics(out_port).get(key, 0) > 0, timeout=STATS_WAIT,
             what=f"coalesced frames in {out_port}'s counters")
    c = net.vs.statistics(out_port)
    assert c[f"{prefix}_tx_coalesced"] >= 2 * c[key], c
    assert c[f"{prefix}_tx_coalesce_errors"] == 0, c


# (output port type, the sender's tx checksumming): afxdp to afxdp with it
# on (partial checksums the switch completes on receive) and off; afpacket
# to afpacket and afpacket to a switch-owned tap (a container's interface)
# with it off, so that the sender does no TSO.
CASES = [("afxdp", "on"), ("afxdp", "off"), ("afpacket", "off"), ("tap", "off")]


@pytest.mark.parametrize("output,tx_csum", CASES)
def test_output_coalesces(net, tmp_path, output, tx_csum):
    sender_cols = ["type=afxdp"] if output == "afxdp" else []
    net.veth_host("s1", "10.10.0.1", *sender_cols)
    if output == "tap":
        net.tap_host("r2", "10.10.0.2")
    else:
        net.veth_host("r2", "10.10.0.2", *sender_cols)
    netns.run(net.hosts["s1"][0], "ethtool", "-K", "eth0", "tx", tx_csum)
    assert net.ping("s1", "r2")
    _assert_coalesced(net, "r2", output, _transfer_captured(net, "s1", "r2", 5313, tmp_path))
