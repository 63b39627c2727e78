"""Mirrors in the running switch, checked on the wire: SPAN to an analyser
port and RSPAN over a trunk to a private Open vSwitch that delivers the RSPAN
VLAN to an analyser.  The analyser gets every frame the selected port sent
and received, byte for byte, and nothing else."""
import contextlib
import time

import pytest
from helpers import netns
from helpers.ovs_peer import OvsPeer, skip_unless_available
from helpers.rawsock import RawPort
from helpers.topology import switch_with_bridge
from helpers.vswitchd import wait_for

pytestmark = pytest.mark.timeout(120)
RSPAN_VLAN = 999


def frames(src, dst, tag, n):
    """n distinct UDP-like frames (Ethertype 0x88b5, the local experimental one)."""
    s, d = (bytes.fromhex(m.replace(":", "")) for m in (src, dst))
    return [(d + s + b"\x88\xb5" + f"{tag}-{i:04d}".encode()).ljust(60, b"\0") for i in range(n)]


def host_port(topo, name):
    ns, ifname, _ = topo.hosts[name]
    return RawPort(ns, ifname)


def exchange(topo):
    """p1 and p2 trade frames, p3 sends to p2; returns (mirrored, not mirrored)."""
    mac1, mac2, mac3 = topo.mac("p1"), topo.mac("p2"), topo.mac("p3")
    with contextlib.ExitStack() as stack:
        s1, s2, s3 = (stack.enter_context(contextlib.closing(host_port(topo, p))) for p in ("p1", "p2", "p3"))
        # Teach the switch where each MAC is, then the measured traffic.
        for sock, src in ((s1, mac1), (s2, mac2), (s3, mac3)):
            sock.send(frames(src, "ff:ff:ff:ff:ff:ff", "hello", 1)[0])
        time.sleep(0.3)
        sent1, sent2, sent3 = frames(mac1, mac2, "a", 20), frames(mac2, mac1, "b", 20), frames(mac3, mac2, "c", 10)
        for a, b, c in zip(sent1, sent2, sent3 + [None] * 10):
            s1.send(a)
            s2.send(b)
            if c:
                s3.send(c)
    return sent1 + sent2, sent3


def captured_exchange(topo, analyser, settle):
    """exchange() while `analyser` listens (closed after): (mirrored, not
    mirrored, the test frames the analyser got)."""
    try:
        analyser.recv_all()  # whatever came before
        mirrored, other = exchange(topo)
        time.sleep(settle)
        got = [f for f in analyser.recv_all() if f[12:14] == b"\x88\xb5" and b"hello" not in f]
    finally:
        analyser.close()
    return mirrored, other, got


def test_span_copies_every_frame_of_the_port_byte_for_byte(tmp_path):
    with switch_with_bridge(tmp_path) as topo:
        for i, name in enumerate(("p1", "p2", "p3", "an"), 1):
            topo.veth_host(name, f"10.3.0.{i}")
        vs = topo.vs
        vs.vsctl("--", "--id=@p", "get", "Port", "p1", "--", "--id=@o", "get", "Port", "an",
                 "--", "--id=@m", "create", "Mirror", "name=m0", "select_src_port=@p", "select_dst_port=@p",
                 "output_port=@o", "--", "set", "Bridge", "br0", "mirrors=@m")
        mirrored, other, got = captured_exchange(topo, host_port(topo, "an"), settle=0.5)
        assert sorted(got) == sorted(mirrored)  # every frame, once, unchanged
        assert not set(got) & set(other)
        stats = vs.vsctl("get", "Mirror", "m0", "statistics")
        assert "tx_packets" in stats
        # snaplen: the same copies, each cut to 20 bytes (the originals whole)
        vs.vsctl("set", "Mirror", "m0", "snaplen=20")
        mirrored, other, got = captured_exchange(topo, host_port(topo, "an"), settle=0.5)
        assert sorted(got) == sorted(f[:20] for f in mirrored)


def test_rspan_over_a_trunk_to_open_vswitch(tmp_path):
    skip_unless_available()
    with switch_with_bridge(tmp_path) as topo, netns.namespace("rs") as on, OvsPeer(on) as ovs, \
            netns.namespace("ra") as an_ns:
        for i, name in enumerate(("p1", "p2", "p3"), 1):
            topo.veth_host(name, f"10.3.1.{i}")
        trunk, otrunk = netns.veth_pair(topo.sw, on, "rt")
        oan, an = netns.veth_pair(on, an_ns, "ra")
        for ns, ifname in ((topo.sw, trunk), (on, otrunk), (on, oan), (an_ns, an)):
            netns.run(ns, "ip", "link", "set", ifname, "up")
        ovs.add_bridge("br0", f"flood_vlans={RSPAN_VLAN}")
        ovs.vsctl("add-port", "br0", otrunk, "--", "add-port", "br0", oan, f"tag={RSPAN_VLAN}")
        vs = topo.vs
        vs.vsctl("add-port", "br0", trunk)
        vs.vsctl("set", "Bridge", "br0", f"flood_vlans={RSPAN_VLAN}")
        vs.vsctl("--", "--id=@p", "get", "Port", "p1",
                 "--", "--id=@m", "create", "Mirror", "name=rspan", "select_src_port=@p", "select_dst_port=@p",
                 f"output_vlan={RSPAN_VLAN}", "--", "set", "Bridge", "br0", "mirrors=@m")
        wait_for(lambda: "error" not in vs.vsctl("get", "interface", trunk, "status"), what="trunk open")
        mirrored, other, got = captured_exchange(topo, RawPort(an_ns, an), settle=1.0)
        # OVS's access port took the RSPAN tag off: the frames as they were.
        assert sorted(got) == sorted(mirrored)
        assert not set(got) & set(other)
