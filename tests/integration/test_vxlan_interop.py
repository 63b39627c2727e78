"""VXLAN between real hosts on one underlay: two vswitch hosts (each a
namespace with its own vswitchd, br0 with vxlan ports and a namespace behind
it) and a host running the Linux kernel's vxlan driver (vxlan0 with head-end
replication to both switches, an address on vxlan0 itself), all joined by a
Linux bridge in an underlay namespace.  The VTEP addresses are ordinary
addresses of each host's underlay interface.

Checked: pings in both directions between every pair; near-MTU pings (-s 1400
and the largest, a 1450-byte inner IP packet over the 1500-byte underlay)
with DF; one byte more is dropped and counted (tx_mtu_drops), never cut;
the kernel's vxlan fdb learns the MACs behind each switch's VTEP; tshark
decodes every underlay UDP packet as VXLAN with VNI 100 and only the I flag,
none malformed; TCP both ways with the kernel's VTEP; an unknown VNI is counted; NORMAL learned the far MACs on
the tunnel ports.  Every test runs three times: the switches' vxlan ports
receive through their own UDP socket ("socket"); with options:tc-offload=true
through the kernel's vxlan device (csrc/vxlan_kdev.h), the host's port p1
staying a plain port, so every frame still crosses user space through the
device's punt socket ("tc-offload"); and with p1 a tc port too, so the
kernel tc tier carries established flows from p1 into the tunnel and back
("tc-tier"; the tier joins tc ports only, tc_tier.h)."""
import contextlib
import json
import os
import signal
import subprocess
import time

import pytest

from helpers import netns
from helpers.kernel_tier import SWITCH_OVER_WAIT
from helpers.vswitchd import have, running_vswitchd, wait_for

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces"),
              pytest.mark.skipif(not have("tshark") or not have("tcpdump"), reason="needs tshark")]

VNI = 100
UNDERLAY = {"a": "192.168.100.1", "b": "192.168.100.2", "k": "192.168.100.3"}
INNER = {"a": "10.0.0.1", "b": "10.0.0.2", "k": "10.0.0.3"}


class Underlay:
    def __init__(self, stack):
        self.stack = stack
        self.ns = stack.enter_context(netns.namespace("ul"))
        netns.run(self.ns, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0", check=False)
        netns.run(self.ns, "ip", "link", "add", "ubr", "type", "bridge")
        netns.run(self.ns, "ip", "link", "set", "ubr", "up")

    def attach(self, host_ns, name, ip):
        """A veth from the underlay bridge to host_ns, whose end `ul0` gets ip."""
        netns.run(self.ns, "ip", "link", "add", name, "type", "veth", "peer", "name", "ul0",
                  "netns", host_ns)
        netns.run(self.ns, "ip", "link", "set", name, "master", "ubr", "up")
        netns.run(host_ns, "ip", "addr", "add", f"{ip}/24", "dev", "ul0")
        netns.run(host_ns, "ip", "link", "set", "ul0", "up")


def vswitch_host(stack, ul, tag, workdir, peers, tc_offload="false", tier=False):
    """A vswitch host: namespace `sw`, vswitchd, br0 with vxlan ports to
    `peers` (options:tc-offload as given) and a host namespace behind port
    p1 (with `tier`, an afpacket port with options:tc-offload=true).
    Returns (sw, vs, host ns)."""
    sw = stack.enter_context(netns.namespace("vx" + tag))
    ul.attach(sw, "u" + tag, UNDERLAY[tag])
    os.makedirs(workdir, exist_ok=True)
    vs = stack.enter_context(running_vswitchd(sw, workdir))
    vs.vsctl("add-br", "br0")
    for peer in peers:
        vs.vsctl("add-port", "br0", f"vx{peer}", "--", "set", "interface", f"vx{peer}", "type=vxlan",
                 f"options:remote_ip={UNDERLAY[peer]}", f"options:key={VNI}",
                 f"options:tc-offload={tc_offload}")
    host = stack.enter_context(netns.namespace("h" + tag))
    netns.run(sw, "ip", "link", "add", "p1", "type", "veth", "peer", "name", "eth0", "netns", host)
    netns.run(sw, "ip", "link", "set", "p1", "up")
    netns.run(host, "ip", "addr", "add", f"{INNER[tag]}/24", "dev", "eth0")
    netns.run(host, "ip", "link", "set", "eth0", "up")
    if tier:
        vs.vsctl("add-port", "br0", "p1", "--", "set", "interface", "p1", "type=afpacket",
                 "options:tc-offload=true")
    else:
        vs.vsctl("add-port", "br0", "p1")
    return sw, vs, host


def kernel_vxlan_host(stack, ul, peers):
    k = stack.enter_context(netns.namespace("vxk"))
    ul.attach(k, "uk", UNDERLAY["k"])
    netns.run(k, "ip", "link", "add", "vxlan0", "type", "vxlan", "id", str(VNI), "dstport", "4789",
              "local", UNDERLAY["k"], "dev", "ul0")
    for peer in peers:  # head-end replication of floods to each VTEP
        netns.run(k, "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vxlan0",
                  "dst", UNDERLAY[peer])
    netns.run(k, "ip", "addr", "add", f"{INNER['k']}/24", "dev", "vxlan0")
    netns.run(k, "ip", "link", "set", "vxlan0", "up")
    return k


def mac(ns, ifname):
    return netns.run(ns, "cat", f"/sys/class/net/{ifname}/address").stdout.strip()


def ping(ns, dst, *args, count=2):
    return netns.run(ns, "ping", "-c", str(count), "-i", "0.2", "-W", "1", *args, dst,
                     check=False).returncode == 0


@contextlib.contextmanager
def capture(ns, ifname, path):
    proc = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-i", ifname, "-w", path, "-U",
                             "--immediate-mode", "-s", "0", "udp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: os.path.exists(path) and os.path.getsize(path) > 0, what="tcpdump to start")
        yield proc
    finally:
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module", params=[("false", False), ("true", False), ("true", True)],
                ids=["socket", "tc-offload", "tc-tier"])
def net(tmp_path_factory, request):
    base = tmp_path_factory.mktemp("vxlan")
    tc, tier = request.param
    with contextlib.ExitStack() as stack:
        ul = Underlay(stack)
        a = vswitch_host(stack, ul, "a", str(base / "a"), peers=("b", "k"), tc_offload=tc, tier=tier)
        b = vswitch_host(stack, ul, "b", str(base / "b"), peers=("a", "k"), tc_offload=tc, tier=tier)
        k = kernel_vxlan_host(stack, ul, peers=("a", "b"))
        yield {"ul": ul.ns, "a": a, "b": b, "k": k, "dir": base, "tc": tc, "tier": tier}


def test_receive_side_follows_tc_offload(net):
    """With tc-offload the kernel's vxlan device (external mode) holds UDP
    4789 in the switch's namespace and nothing else does; without it there
    is no such device."""
    (sw, vsa, _) = net["a"]
    status = vsa.json("get", "interface", "vxb", "status")
    text = json.dumps(status)
    assert f'"tc_offload": "{net["tc"]}"' in text, text
    links = netns.run(sw, "ip", "-d", "link", "show").stdout
    if net["tc"] == "true":
        assert '"tc_device": "vs_vxlan_4789"' in text, text
        dev = netns.run(sw, "ip", "-d", "link", "show", "vs_vxlan_4789").stdout
        assert "external" in dev and "dstport 4789" in dev, dev
        assert "vs_punt_4789" in links
    else:
        assert "vs_vxlan_4789" not in links and "vs_punt_4789" not in links
    # A port of the same (local_ip, dst_port) that disagrees is refused
    # (EINVAL, step "option tc-offload differs ...") and changes nothing.
    other = "false" if net["tc"] == "true" else "true"
    vsa.vsctl("add-port", "br0", "vxz", "--", "set", "interface", "vxz", "type=vxlan",
              "options:remote_ip=192.168.100.9", f"options:tc-offload={other}")
    try:
        error = wait_for(lambda: vsa.json("get", "interface", "vxz", "error"), what="vxz refused")
        assert "Invalid argument" in json.dumps(error), error
        assert netns.run(sw, "ip", "-d", "link", "show").stdout == links
    finally:
        vsa.vsctl("del-port", "br0", "vxz")


def test_pings_near_mtu_fdb_and_tshark(net):
    (_, vsa, ha), (_, _, hb), k = net["a"], net["b"], net["k"]
    pcap = str(net["dir"] / "underlay.pcap")
    with capture(net["ul"], "ubr", pcap):
        # every pair, both directions
        assert wait_for(lambda: ping(ha, INNER["b"], count=1), timeout=10, what="a -> b")
        assert ping(hb, INNER["a"])
        assert ping(ha, INNER["k"]) and ping(k, INNER["a"])
        assert ping(hb, INNER["k"]) and ping(k, INNER["b"])
        # near-MTU with DF: 1400 bytes, and 1422 (a 1450-byte inner IP packet)
        for size in ("1400", "1422"):
            assert ping(ha, INNER["b"], "-s", size, "-M", "do"), size
            assert ping(hb, INNER["a"], "-s", size, "-M", "do"), size
            assert ping(ha, INNER["k"], "-s", size, "-M", "do"), size
            assert ping(k, INNER["b"], "-s", size, "-M", "do"), size
        # One byte more cannot cross the 1500-byte underlay: dropped, counted.
        before = vsa.statistics("vxb").get("vxlan_tx_mtu_drops", 0)
        assert not ping(ha, INNER["b"], "-s", "1423", "-M", "do", count=1)
        assert vsa.statistics("vxb")["vxlan_tx_mtu_drops"] > before
        status = json.dumps(vsa.json("get", "interface", "vxb", "status"))
        assert '"tunnel_inner_mtu": "1450"' in status and "dropped and counted" in status

    # The kernel's fdb learned each switch's host MAC behind that switch's VTEP.
    fdb = netns.run(k, "bridge", "fdb", "show", "dev", "vxlan0").stdout
    for tag, host in (("a", ha), ("b", hb)):
        line = next((ln for ln in fdb.splitlines() if ln.startswith(mac(host, "eth0"))), "")
        assert f"dst {UNDERLAY[tag]}" in line, fdb

    # NORMAL learned the far MACs on the tunnel ports.
    fdb_a = vsa.vsctl("fdb-show", "br0")
    assert mac(hb, "eth0") in fdb_a and mac(k, "vxlan0") in fdb_a

    # tshark: every UDP packet on the underlay is VXLAN, VNI 100, flags 0x08, not malformed.
    out = subprocess.run(["tshark", "-r", pcap, "-T", "json", "-e", "udp.dstport", "-e", "vxlan.vni",
                          "-e", "vxlan.flags", "-e", "_ws.malformed", "-e", "_ws.expert.severity",
                          "-e", "icmp.type"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    packets = [p["_source"]["layers"] for p in json.loads(out)]
    assert len(packets) > 40
    for p in packets:
        assert p.get("udp.dstport") == ["4789"], p
        assert p.get("vxlan.vni") == [str(VNI)], p
        assert int(p["vxlan.flags"][0], 0) == 0x0800, p
        assert "_ws.malformed" not in p, p
    assert sum("icmp.type" in p for p in packets) > 20


def test_tcp_with_default_offloads_and_inner_mtu_1500(net):
    """TSO super-frames from a veth (offloads on, inner MTU 1500) cross as
    MSS-sized VXLAN datagrams: nothing is cut or dropped for size.  The far
    switch hands them on as TSO frames again (its own coalescing, or the
    kernel's GRO with tc-offload)."""
    (_, vsa, ha), (_, _, hb) = net["a"], net["b"]
    server = subprocess.Popen(["ip", "netns", "exec", hb, "iperf3", "-s", "-1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        out = netns.run(ha, "iperf3", "-c", INNER["b"], "-t", "2", "-J", timeout=30).stdout
    finally:
        server.terminate()
        server.wait(5)
    end = json.loads(out)["end"]
    assert end["sum_received"]["bytes"] > 50 << 20, end["sum_received"]
    st = vsa.statistics("vxb")
    assert st["vxlan_tx_segments"] > 10000 and st["vxlan_tx_offload_drops"] == 0, st
    assert st["vxlan_tx_errors"] == 0, st
    rx = net["b"][1].statistics("vxa")
    if net["tc"] == "true":
        # The kernel's GRO reached the punt socket as TSO frames (vnet
        # header): far fewer, larger frames than datagrams on the wire.
        assert rx["rx_bytes"] / rx["rx_packets"] > 3 * 1500, rx
    else:
        assert rx["vxlan_sock_rx_coalesced"] > 0, rx


def test_tcp_with_a_kernel_vtep_both_ways(net):
    """TCP between a vswitch host and the kernel vxlan host, both directions.
    The kernel's VTEP on this host sends inner TCP with a partial checksum
    (its skb never meets a NIC that would complete it): vswitch must hand
    such frames on as partial (vnet NEEDS_CSUM), not as a bad checksum the
    receiving host drops (the connection never came up before)."""
    (_, _, ha), k = net["a"], net["k"]
    for reverse in ((), ("-R",)):
        server = subprocess.Popen(["ip", "netns", "exec", k, "iperf3", "-s", "-1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.3)
            out = netns.run(ha, "iperf3", "-c", INNER["k"], "-t", "1", "-J", "--connect-timeout", "3000",
                            *reverse, timeout=30, check=False).stdout
        finally:
            server.terminate()
            server.wait(5)
        end = json.loads(out)["end"]
        assert end.get("sum_received", {}).get("bytes", 0) > 1 << 20, (reverse, out[-400:])


@pytest.mark.parametrize("far", ["k", "b"], ids=["kernel-vtep", "vswitch-vtep"])
def test_tcp_without_tso_leaves_in_datagram_trains(net, far):
    """A sender without TSO or checksum offload (tx off, MTU 1450: its
    MSS-sized segments fit the tunnel as they are) through vswitch's
    user-space tunnel to the kernel's VTEP, or to the other vswitch (whose
    UDP_GRO socket takes a train as one datagram): runs of segments leave as
    datagram trains (UDP GSO sends), and the far end receives every
    datagram and its host's TCP takes the data (a bad outer or inner header
    would stall the transfer).  With the tc tier on the host's port the
    kernel carries the established flow instead: no trains expected there."""
    (_, vsa, ha) = net["a"]
    far_ns = net["k"] if far == "k" else net["b"][2]
    netns.run(ha, "ethtool", "-K", "eth0", "tx", "off")
    netns.run(ha, "ip", "link", "set", "eth0", "mtu", "1450")
    before = vsa.statistics("vx" + far)
    server = subprocess.Popen(["ip", "netns", "exec", far_ns, "iperf3", "-s", "-1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        out = netns.run(ha, "iperf3", "-c", INNER[far], "-t", "2", "-J", "--connect-timeout", "3000",
                        timeout=30, check=False).stdout
    finally:
        server.terminate()
        server.wait(5)
        netns.run(ha, "ip", "link", "set", "eth0", "mtu", "1500")
        netns.run(ha, "ethtool", "-K", "eth0", "tx", "on")
    end = json.loads(out)["end"]
    assert end.get("sum_received", {}).get("bytes", 0) > 20 << 20, out[-400:]
    st = vsa.statistics("vx" + far)
    delta = {key: st.get(key, 0) - before.get(key, 0) for key in st}
    assert delta["vxlan_tx_errors"] == delta["vxlan_tx_train_errors"] == 0, delta
    assert delta["vxlan_tx_mtu_drops"] == 0, delta
    if not net["tier"]:
        # Trains of several segments each carried most of the data.
        assert delta["vxlan_tx_trains"] > 0, delta
        assert delta["vxlan_tx_train_frames"] >= 2 * delta["vxlan_tx_trains"], delta
        assert delta["vxlan_tx_train_frames"] > delta["tx_packets"] / 2, delta


def test_unknown_vni_is_dropped_and_counted(net):
    (_, vsa, _), k = net["a"], net["k"]
    netns.run(k, "ip", "link", "add", "vxlan9", "type", "vxlan", "id", "999", "dstport", "4789",
              "local", UNDERLAY["k"], "remote", UNDERLAY["a"], "dev", "ul0")
    try:
        netns.run(k, "ip", "addr", "add", "10.9.0.3/24", "dev", "vxlan9")
        netns.run(k, "ip", "link", "set", "vxlan9", "up")
        before = vsa.statistics("vxk")["vxlan_sock_rx_unknown_vni"]
        ping(k, "10.9.0.1", count=1)
        wait_for(lambda: vsa.statistics("vxk")["vxlan_sock_rx_unknown_vni"] > before,
                 what="unknown VNI counted")
    finally:
        netns.run(k, "ip", "link", "del", "vxlan9", check=False)


UDP_FLOWS = 8  # inner flows: with 16 source ports, all 8 on one port has odds 16^-7
FLOW_DATAGRAMS = 3
FIRST_INNER_SPORT = 40001
INNER_DPORT = 5555
LISTENER = """
import collections, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(0.5)
print("ready", flush=True)
got, deadline = collections.Counter(), time.time() + float(sys.argv[3])
while time.time() < deadline and sum(got.values()) < int(sys.argv[4]):
    try:
        data, (_, port) = s.recvfrom(2048)
        got[port] += 1
    except socket.timeout:
        pass
print(dict(got), flush=True)
"""
# The first datagram of every flow, a pause (SWITCH_OVER_WAIT: for the
# flows to reach the kernel tier, where there is one), then the rest.
SENDER = """
import socket, sys, time
socks = []
for i in range(int(sys.argv[3])):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("", int(sys.argv[4]) + i))
    socks.append(s)
for n in range(int(sys.argv[5])):
    if n == 1:
        time.sleep(float(sys.argv[6]))
    for i, s in enumerate(socks):
        s.sendto(b"flow %d" % i, (sys.argv[1], int(sys.argv[2])))
"""
DYNAMIC_PORTS = range(49152, 65536)  # RFC 7348 §5


def outer_ports_by_inner_flow(pcap, src):
    """{(inner source port, inner destination port): {outer source ports}} of
    the VXLAN packets from underlay address src, as tshark decodes them."""
    out = subprocess.run(["tshark", "-r", pcap, "-T", "json", "-e", "ip.src", "-e", "udp.srcport",
                          "-e", "udp.dstport", "-e", "tcp.srcport", "-e", "tcp.dstport",
                          "-e", "vxlan.vni", "-e", "_ws.malformed"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    flows = {}
    for p in (p["_source"]["layers"] for p in json.loads(out)):
        if p["ip.src"][0] != src:
            continue
        assert p.get("vxlan.vni") == [str(VNI)] and "_ws.malformed" not in p, p
        outer_sport, ports = p["udp.srcport"][0], p["udp.dstport"]
        assert ports[0] == "4789", p
        if "tcp.srcport" in p:  # inner TCP
            inner = ("tcp", p["tcp.srcport"][0], p["tcp.dstport"][0])
        elif len(ports) > 1:  # inner UDP
            inner = ("udp", p["udp.srcport"][1], ports[1])
        else:
            inner = ("other",)
        flows.setdefault(inner, set()).add(int(outer_sport))
    return flows


def test_outer_source_port_is_per_inner_flow(net):
    """RFC 7348 §5: the outer UDP source port is a hash of the inner flow,
    from the dynamic range: one port for every packet of a flow (UDP flows
    and a TCP stream of TSO super-frames), different ports across flows; the
    kernel's vxlan peer still decodes and delivers them all (the UDP flows;
    the TCP stream goes to the other vswitch host).  With the tc tier the
    tier sends a flow's later datagrams through the kernel's vxlan device:
    they must keep the port user space sent the first one from."""
    (_, vsa, ha), (_, _, hb), k = net["a"], net["b"], net["k"]
    status = vsa.json("get", "interface", "vxk", "status")
    assert "tunnel_src_ports" in json.dumps(status)
    pcap = str(net["dir"] / "sports.pcap")
    want = UDP_FLOWS * FLOW_DATAGRAMS
    assert wait_for(lambda: ping(ha, INNER["k"], count=1), timeout=10, what="a -> k")
    with capture(net["ul"], "ubr", pcap):
        listener = subprocess.Popen(["ip", "netns", "exec", k, "python3", "-c", LISTENER, INNER["k"],
                                     str(INNER_DPORT), "10", str(want)],
                                    stdout=subprocess.PIPE, text=True)
        try:
            assert listener.stdout.readline().strip() == "ready"
            before = json.loads(vsa.vsctl("--format", "json", "pmd-stats-show"))["packets"]
            netns.run(ha, "python3", "-c", SENDER, INNER["k"], str(INNER_DPORT), str(UDP_FLOWS),
                      str(FIRST_INNER_SPORT), str(FLOW_DATAGRAMS), str(SWITCH_OVER_WAIT))
            received = eval(listener.stdout.readline())  # a dict literal printed by LISTENER
            seen = json.loads(vsa.vsctl("--format", "json", "pmd-stats-show"))["packets"] - before
        finally:
            listener.kill()
            listener.wait(5)
        # TSO super-frames (to the other vswitch host): one UDP GSO send each
        server = subprocess.Popen(["ip", "netns", "exec", hb, "iperf3", "-s", "-1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.3)
            netns.run(ha, "iperf3", "-c", INNER["b"], "-t", "1", "-J", timeout=30)
        finally:
            server.terminate()
            server.wait(5)
    # The kernel peer decapsulated and delivered every datagram of every flow.
    assert received == {FIRST_INNER_SPORT + i: FLOW_DATAGRAMS for i in range(UDP_FLOWS)}, received
    if net["tier"]:  # the tier sent the datagrams after the first of each flow
        assert seen < UDP_FLOWS * FLOW_DATAGRAMS, seen
    flows = outer_ports_by_inner_flow(pcap, UNDERLAY["a"])
    udp = {f: ports for f, ports in flows.items()
           if f[0] == "udp" and f[2] == str(INNER_DPORT)}
    tcp = {f: ports for f, ports in flows.items() if f[0] == "tcp" and f[2] == "5201"}
    assert len(udp) == UDP_FLOWS, flows
    assert tcp, flows  # iperf3's control and data connections
    for f, ports in list(udp.items()) + list(tcp.items()):
        assert len(ports) == 1, (f, ports)  # the same port for all of a flow
        assert ports <= set(DYNAMIC_PORTS), (f, ports)
    assert len(set().union(*udp.values())) > 1, udp  # flows spread over ports
