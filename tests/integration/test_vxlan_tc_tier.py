"""The tc tier through a VXLAN tunnel (csrc/vxlan_kdev.h): a datapath in
namespace `sw` with port 1 an afpacket veth to host a and port 2 a vxlan
port to a kernel VTEP (host k, the Linux vxlan driver), both with
options:tc-offload=true, joined by flows in_port=1 -> 2 and 2 -> 1.

An iperf3 TCP transfer host a -> host k and back (-R): established flows go
veth -> kernel vxlan device (the tc program sets the tunnel) and kernel
vxlan device -> veth (its program looks the decapsulated frame up), so the
poll thread sees only a small share of the frames, and the ports' counters
(the kernel's share harvested in) equal what the hosts' veth sent and
received.  Closing the port removes the kernel devices it made."""
import contextlib
import json
import subprocess
import time

import pytest

from helpers import netns
from helpers.kernel_tier import IN_PORT_ONLY, userspace_packets
from vswitch.datapath import dpif

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not dpif.tc_tier_available(),
                                 reason="built without clang/libbpf: no tc tier")]

VNI = 77
UL_SW, UL_K = "192.168.210.1", "192.168.210.2"
IN_A, IN_K = "10.0.77.1", "10.0.77.2"
INNER_MTU = 1450  # 1500-byte underlay minus VXLAN's 50
FULL_MTU = 1500  # an Ethernet host's default
BIG_UNDERLAY_MTU = 9000  # lets k's vxlan0 take FULL_MTU frames
TIER = {"tc-offload": "true"}
USERSPACE_SHARE = 0.05  # at most this share of the frames reaches the poll thread
SECONDS = "2"
PER_PORT = {"tc-device": "per-port"}
PLAIN_DEV = f"vxq4789_{VNI:x}"  # vxlan_kdev.c: PLAIN_PREFIX, dst_port, VNI in hex
STALE_PLAIN = "vxq4789_5"


def veth_stat(ns, dev, name):
    return int(netns.run(ns, "cat", f"/sys/class/net/{dev}/statistics/{name}").stdout)


@contextlib.contextmanager
def tunnel(stale=False, vx_options=None):
    """`stale`: the kernel devices a killed daemon would leave behind are
    there before the port opens; `vx_options`: more options of port 2."""
    with netns.namespace("vts") as sw, netns.namespace("vta") as a, \
            netns.namespace("vtk") as k:
        ul_sw, ul_k = netns.veth_pair(sw, k, "vtu")
        netns.run(sw, "ip", "addr", "add", f"{UL_SW}/24", "dev", ul_sw)
        netns.run(k, "ip", "addr", "add", f"{UL_K}/24", "dev", ul_k)
        netns.run(k, "ip", "link", "add", "vxlan0", "type", "vxlan", "id", str(VNI), "dstport",
                  "4789", "local", UL_K, "remote", UL_SW, "dev", ul_k)
        netns.run(k, "ip", "addr", "add", f"{IN_K}/24", "dev", "vxlan0")
        netns.run(k, "ip", "link", "set", "vxlan0", "up")
        pa, a0 = netns.veth_pair(sw, a, "vtp")
        netns.run(a, "ip", "link", "set", a0, "mtu", str(INNER_MTU))
        netns.run(a, "ip", "addr", "add", f"{IN_A}/24", "dev", a0)
        if stale == "per-port":  # a killed daemon's plain device of another VNI
            netns.run(sw, "ip", "link", "add", STALE_PLAIN, "type", "vxlan", "id", "5",
                      "remote", UL_K, "dstport", "4789")
            netns.run(sw, "ip", "link", "set", STALE_PLAIN, "up")
        elif stale:
            netns.run(sw, "ip", "link", "add", "vs_vxlan_4789", "type", "vxlan", "external",
                      "dstport", "4789")
            netns.run(sw, "ip", "link", "add", "vs_punt_4789", "type", "ifb")
        with netns.entered(sw):  # the kernel vxlan device is made where the port opens
            dp = dpif.Datapath()
            try:
                dp.add_port(1, "afpacket", pa, TIER)
                dp.add_port(2, "vxlan", "vxk", dict(TIER, remote_ip=UL_K, key=str(VNI),
                                                    **(vx_options or {})))
                dp.flow_put({"in_port": 1}, IN_PORT_ONLY, [("output", 2)])
                dp.flow_put({"in_port": 2}, IN_PORT_ONLY, [("output", 1)])
                yield sw, a, a0, k, dp
            finally:
                dp.close()


def iperf(a, k, *args):
    server = subprocess.Popen(["ip", "netns", "exec", k, "iperf3", "-s", "-1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        out = netns.run(a, "iperf3", "-c", IN_K, "-t", SECONDS, "-J", "--connect-timeout", "3000",
                        *args, timeout=30, check=False).stdout
    finally:
        server.terminate()
        server.wait(5)
    return json.loads(out)["end"]


def test_tcp_through_the_tunnel_stays_in_the_kernel():
    with tunnel() as (sw, a, a0, k, dp):
        status = dp.port_type_status(2)
        assert status["tc_offload"] == "true" and status["tc_device"] == "vs_vxlan_4789", status
        for reverse in ((), ("-R",)):
            end = iperf(a, k, *reverse)
            assert end["sum_received"]["bytes"] > 20 << 20, (reverse, end["sum_received"])
        assert dpif.xdp_offload_counts()["live"] >= 2  # both directions in the kernel
        time.sleep(0.2)
        sent, received = veth_stat(a, a0, "tx_packets"), veth_stat(a, a0, "rx_packets")
        dp.flow_dump()  # harvests the kernel's share into the flows and ports
        p1, p2 = dp.port_stats(1), dp.port_stats(2)
        # Every frame host a sent went in at port 1 and out of the tunnel,
        # every frame it received came in through the tunnel, counted once.
        assert p1["rx_packets"] == sent == p2["tx_packets"], (sent, p1, p2)
        assert p2["rx_packets"] == received == p1["tx_packets"], (received, p1, p2)
        total = p1["rx_packets"] + p2["rx_packets"]
        assert userspace_packets(dp) <= USERSPACE_SHARE * total, (userspace_packets(dp), total)
        # The last port of the kernel device takes it and the punt link along.
        live = dpif.xdp_offload_counts()["live"]
        dp.flow_del_stats({"in_port": 2}, IN_PORT_ONLY)
        assert dpif.xdp_offload_counts()["live"] < live
        dp.del_port(2)
        links = netns.run(sw, "ip", "link", "show").stdout
        assert "vs_vxlan_4789" not in links and "vs_punt_4789" not in links, links


def test_stale_devices_are_replaced_and_the_kernel_sends_with_df(tmp_path):
    """A port opens over the devices a killed daemon left (as OVS reuses its
    vxlan_sys_PORT), and the outer packets the kernel sends for the tier
    carry DF, as user space's do: never fragmented."""
    with tunnel(stale=True) as (sw, a, a0, k, dp):
        assert dp.port_type_status(2)["tc_device"] == "vs_vxlan_4789"
        pcap = tmp_path / "underlay.pcap"
        ul_k = next(line.split(":")[1].strip().split("@")[0]
                    for line in netns.run(k, "ip", "-o", "link", "show").stdout.splitlines()
                    if "vtu" in line)
        dump = subprocess.Popen(["ip", "netns", "exec", k, "tcpdump", "-i", ul_k, "-s", "96",
                                 "-w", str(pcap), "-U", f"udp dst port 4789 and src host {UL_SW}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            end = iperf(a, k)
            time.sleep(0.2)
        finally:
            dump.terminate()
            dump.wait(5)
        assert end["sum_received"]["bytes"] > 20 << 20, end["sum_received"]
        assert dpif.xdp_offload_counts()["live"] >= 1

        def count(expr):
            out = subprocess.run(["tcpdump", "-r", str(pcap), "-nn", expr], capture_output=True,
                                 text=True, check=True).stdout
            return len(out.splitlines())
        total, without_df = count("udp"), count("udp and ip[6] & 0x40 == 0")
        assert total > 1000 and without_df == 0, (total, without_df)


def carries_tcp_in_the_kernel(a, a0, k, dp):
    """iperf3 both ways; every frame counted once on each port, nearly all
    forwarded by the kernel."""
    for reverse in ((), ("-R",)):
        end = iperf(a, k, *reverse)
        assert end["sum_received"]["bytes"] > 20 << 20, (reverse, end["sum_received"])
    time.sleep(0.2)
    sent, received = veth_stat(a, a0, "tx_packets"), veth_stat(a, a0, "rx_packets")
    dp.flow_dump()
    p1, p2 = dp.port_stats(1), dp.port_stats(2)
    assert p1["rx_packets"] == sent == p2["tx_packets"], (sent, p1, p2)
    assert p2["rx_packets"] == received == p1["tx_packets"], (received, p1, p2)
    total = p1["rx_packets"] + p2["rx_packets"]
    assert userspace_packets(dp) <= USERSPACE_SHARE * total, (userspace_packets(dp), total)


@pytest.mark.parametrize("stale", [False, "per-port"], ids=["fresh", "stale-plain-device"])
def test_per_port_device_is_plain_and_carries_tcp(stale):
    """tc-device=per-port: port 2 gets a plain kernel vxlan device of its own
    (id, remote, dstport; not external) and no shared one; a killed daemon's
    plain device of another VNI on the port is removed first; TCP both ways
    through it stays in the kernel; closing the port removes it."""
    with tunnel(stale=stale, vx_options=PER_PORT) as (sw, a, a0, k, dp):
        assert dp.port_type_status(2)["tc_device"] == PLAIN_DEV
        dev = netns.run(sw, "ip", "-d", "link", "show", PLAIN_DEV).stdout
        assert f"vxlan id {VNI} remote {UL_K}" in dev and "dstport 4789" in dev, dev
        assert "external" not in dev, dev
        links = netns.run(sw, "ip", "link", "show").stdout
        assert "vs_vxlan_4789" not in links and STALE_PLAIN not in links, links
        carries_tcp_in_the_kernel(a, a0, k, dp)
        rx_plain = veth_stat(sw, PLAIN_DEV, "rx_packets")
        assert rx_plain > 1000, rx_plain  # the kernel received through the plain device
        dp.del_port(2)
        links = netns.run(sw, "ip", "link", "show").stdout
        assert PLAIN_DEV not in links and "vs_punt_4789" not in links, links


def test_a_port_without_plain_device_moves_all_to_the_shared_one():
    """A flow-based port on the same dst_port (the kernel shares a UDP port
    only among devices of one kind) moves port 2 to the external device,
    where its traffic still passes, both ways."""
    with tunnel(vx_options=PER_PORT) as (sw, a, a0, k, dp):
        assert dp.port_type_status(2)["tc_device"] == PLAIN_DEV
        dp.add_port(3, "vxlan", "vxf", dict(TIER, remote_ip="flow", key="flow"))
        assert dp.port_type_status(2)["tc_device"] == "vs_vxlan_4789"
        assert dp.port_type_status(3)["tc_device"] == "vs_vxlan_4789"
        links = netns.run(sw, "ip", "link", "show").stdout
        assert PLAIN_DEV not in links, links
        dev = netns.run(sw, "ip", "-d", "link", "show", "vs_vxlan_4789").stdout
        assert "external" in dev, dev
        carries_tcp_in_the_kernel(a, a0, k, dp)


def test_same_vni_other_remote_goes_shared():
    """The kernel refuses two plain devices with one VNI on one port: a
    second per-port port of VNI 77 (another remote) moves both to the
    shared device rather than failing."""
    with tunnel(vx_options=PER_PORT) as (sw, a, a0, k, dp):
        dp.add_port(3, "vxlan", "vxo", dict(TIER, **PER_PORT, remote_ip="192.168.210.9",
                                            key=str(VNI)))
        assert dp.port_type_status(2)["tc_device"] == "vs_vxlan_4789"
        assert dp.port_type_status(3)["tc_device"] == "vs_vxlan_4789"
        carries_tcp_in_the_kernel(a, a0, k, dp)


def test_per_port_device_follows_a_route_change():
    """The plain device caches its route (dst_cache): after the route to
    the far VTEP moves to another link, its traffic goes there."""
    with tunnel(vx_options=PER_PORT) as (sw, a, a0, k, dp):
        end = iperf(a, k)
        assert end["sum_received"]["bytes"] > 20 << 20, end["sum_received"]
        alt_sw, alt_k = netns.veth_pair(sw, k, "vtr")
        netns.run(sw, "ip", "addr", "add", "192.168.211.1/24", "dev", alt_sw)
        netns.run(k, "ip", "addr", "add", "192.168.211.2/24", "dev", alt_k)
        netns.run(sw, "ip", "route", "add", f"{UL_K}/32", "via", "192.168.211.2", "dev", alt_sw)
        before = veth_stat(sw, alt_sw, "tx_packets")
        end = iperf(a, k)
        assert end["sum_received"]["bytes"] > 20 << 20, end["sum_received"]
        moved = veth_stat(sw, alt_sw, "tx_packets") - before
        assert moved > 1000, moved


def test_per_port_unknown_vni_is_dropped_and_counted():
    """The kernel drops a VNI no plain device has before any program of
    ours: the drop counter still counts it (one per ARP request the far
    VTEP sends on VNI 999), and nothing reaches host a."""
    with tunnel(vx_options=PER_PORT) as (sw, a, a0, k, dp):
        assert dp.port_type_status(2)["tc_device"] == PLAIN_DEV
        netns.run(k, "ip", "link", "add", "vxlan9", "type", "vxlan", "id", "999", "dstport", "4789",
                  "local", UL_K, "remote", UL_SW)
        netns.run(k, "ip", "addr", "add", "10.9.0.3/24", "dev", "vxlan9")
        netns.run(k, "ip", "link", "set", "vxlan9", "up")
        before = dp.port_type_stats(2)["sock_rx_unknown_vni"]
        rx_a = veth_stat(a, a0, "rx_packets")
        netns.run(k, "ping", "-c", "3", "-W", "1", "10.9.0.1", check=False)  # ARP, unanswered
        after = dp.port_type_stats(2)["sock_rx_unknown_vni"]
        assert after > before, (before, after)
        assert veth_stat(a, a0, "rx_packets") == rx_a


def test_frames_over_the_tunnel_mtu_are_left_to_user_space():
    """Host a at MTU 1500 and a far host k whose vxlan0 takes 1500-byte
    frames (its underlay is larger): TCP a -> k sends segments whose outer
    packets would be 1550 bytes.  The kernel device sends with DF, so the
    tier must not take them (they died there: TCP stalled after its first
    window); user space segments them to the tunnel's inner MTU instead."""
    with tunnel() as (sw, a, a0, k, dp):
        ul_k = next(line.split(":")[1].strip().split("@")[0]
                    for line in netns.run(k, "ip", "-o", "link", "show").stdout.splitlines()
                    if "vtu" in line)
        netns.run(k, "ip", "link", "set", ul_k, "mtu", str(BIG_UNDERLAY_MTU))
        netns.run(k, "ip", "link", "set", "vxlan0", "mtu", str(FULL_MTU))
        netns.run(a, "ip", "link", "set", a0, "mtu", str(FULL_MTU))
        assert dp.port_type_status(2)["tunnel_inner_mtu"] == str(INNER_MTU)
        before = dp.port_type_stats(2)
        end = iperf(a, k)
        assert end["sum_received"]["bytes"] > 20 << 20, end["sum_received"]
        after = dp.port_type_stats(2)
        assert after["tx_resegmented"] > before["tx_resegmented"], after
        assert after["tx_mtu_drops"] == before["tx_mtu_drops"], after
        fails = netns.run(sw, "nstat", "-az", "IpFragFails").stdout.split()
        assert fails[fails.index("IpFragFails") + 1] == "0", fails  # none left the kernel device
