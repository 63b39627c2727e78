"""A real vswitchd in a namespace, hosts in their own namespaces attached by
veth (afpacket ports) and by a switch-owned tap, real ping and TCP traffic."""
import os
import time

import pytest

from helpers import netns, traffic
from helpers.topology import switch_with_bridge
from helpers.vswitchd import VSWITCHD, wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def topo(tmp_path):
    with switch_with_bridge(tmp_path) as t:
        yield t


def test_ping_and_tcp_through_afpacket_and_tap_ports_with_default_offloads(topo):
    topo.veth_host("p1", "10.0.0.1")
    topo.veth_host("p2", "10.0.0.2")
    topo.tap_host("vm1", "10.0.0.3")
    # The endpoints keep the kernel's defaults: partial checksums and TSO.
    assert traffic.offloads_on(topo.hosts["p1"][0], "eth0")
    assert traffic.offloads_on(topo.hosts["vm1"][0], "vm1")

    assert topo.ping("p1", "p2")
    assert topo.ping("p1", "vm1")
    for src, dst in (("p1", "p2"), ("p2", "vm1"), ("vm1", "p1")):
        traffic.tcp_transfer(topo.hosts[src][0], topo.hosts[dst][0], topo.hosts[dst][2],
                             what=f"{src}->{dst}")

    stats = {row["port"]: row for row in topo.vs.json("dump-ports", "br0")}
    # The transfers went through the fast path: megabytes counted per port.
    assert stats["p1"]["rx_bytes"] > 8 << 20
    assert stats["vm1"]["tx_bytes"] > 8 << 20
    pmd = topo.vs.json("pmd-stats-show")
    assert pmd["emc_hits"] + pmd["megaflow_hits"] > pmd["misses"]
    # One poll thread did all of it, and its stage counters account for its
    # busy cycles: receive + parse/lookup/actions + transmit fit inside them.
    (thread,) = pmd["pmds"]
    assert thread["packets"] == pmd["packets"] > 0
    stages = thread["rx_cycles"] + thread["process_cycles"] + thread["tx_cycles"]
    assert 0 < stages <= thread["busy_cycles"]
    assert thread["cycles_per_packet"] > 0 and thread["tx_cycles_per_packet"] > 0


def test_vlan_access_ports_are_isolated_and_trunk_carries_tags(topo):
    from scapy.layers.l2 import ARP, Dot1Q, Ether

    from helpers.rawsock import RawPort

    topo.veth_host("a10", "10.1.0.1", tag=10)
    topo.veth_host("b10", "10.1.0.2", tag=10)
    topo.veth_host("c20", "10.1.0.3", tag=20)
    trunk_ns = topo.veth_host("trk", "10.9.9.9", trunks="10,20")

    assert topo.ping("a10", "b10")
    assert not topo.ping("a10", "c20", count=2)

    trunk = RawPort(trunk_ns, "eth0")
    c20 = RawPort(topo.hosts["c20"][0], "eth0")
    a10 = RawPort(topo.hosts["a10"][0], "eth0")
    try:
        trunk.recv_all(), c20.recv_all(), a10.recv_all()
        # A broadcast from an access port of VLAN 10 reaches the trunk tagged 10.
        bcast = Ether(src="02:00:00:00:10:01", dst="ff:ff:ff:ff:ff:ff") / ARP(
            psrc="10.1.0.1", pdst="10.1.0.250", hwsrc="02:00:00:00:10:01")
        a10.send(bytes(bcast))
        seen = wait_for(lambda: [Ether(f) for f in trunk.recv_all()
                                 if Ether(f).src == "02:00:00:00:10:01"], what="frame on trunk")
        assert seen[0].haslayer(Dot1Q) and seen[0][Dot1Q].vlan == 10

        # A frame tagged 20 from the trunk reaches VLAN 20's access port
        # untagged, and never VLAN 10's.
        tagged = Ether(src="02:00:00:00:20:99", dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=20) / ARP(
            psrc="10.1.0.99", pdst="10.1.0.3", hwsrc="02:00:00:00:20:99")
        trunk.send(bytes(tagged))
        got = wait_for(lambda: [Ether(f) for f in c20.recv_all()
                                if Ether(f).src == "02:00:00:00:20:99"], what="frame on VLAN 20")
        assert not got[0].haslayer(Dot1Q)
        time.sleep(0.3)
        assert not [f for f in a10.recv_all() if Ether(f).src == "02:00:00:00:20:99"]
    finally:
        trunk.close(), c20.close(), a10.close()

    fdb = topo.vs.json("fdb-show", "br0")
    entry = [e for e in fdb if e["mac"] == topo.mac("a10")]
    assert entry and entry[0]["port"] == "a10" and entry[0]["vlan"] == 10
    assert {e["vlan"] for e in fdb if e["mac"] == "02:00:00:00:20:99"} == {20}


def test_unicast_is_not_flooded_after_learning(topo):
    from scapy.layers.inet import ICMP
    from scapy.layers.l2 import Ether

    from helpers.rawsock import RawPort

    for i, port in enumerate(("u1", "u2", "u3"), 1):
        topo.veth_host(port, f"10.2.0.{i}")
    assert topo.ping("u1", "u2", count=2)  # learns both MACs
    third = RawPort(topo.hosts["u3"][0], "eth0")
    try:
        third.recv_all()
        assert topo.ping("u1", "u2", count=5)
        time.sleep(0.2)
        leaked = [f for f in third.recv_all() if Ether(f).haslayer(ICMP)]
        assert leaked == []
    finally:
        third.close()
    flows = topo.vs.json("dpctl-dump-flows")
    unicast = [f for f in flows if f"dl_dst={topo.mac('u2')}" in f["match"] and f["packets"] > 0]
    assert unicast and all(f["actions"] == "u2" for f in unicast)


def test_ports_added_while_their_link_is_down_lose_nothing(topo):
    # The switch brings the netdevs up itself; binding a packet socket to a
    # device that was down must not leave an error that drops the first frame.
    topo.veth_host("d1", "10.7.0.1", sw_end_up=False)
    topo.veth_host("d2", "10.7.0.2", sw_end_up=False)
    assert topo.ping("d1", "d2", count=2)
    stats = {row["port"]: row for row in topo.vs.json("dump-ports", "br0")}
    assert stats["d1"]["tx_dropped"] == 0 and stats["d2"]["tx_dropped"] == 0
    assert stats["d2"]["tx_packets"] >= 3  # ARP request + 2 echo requests


def test_port_configured_before_its_netdev_exists_joins_when_it_appears(topo):
    topo.veth_host("n1", "10.9.1.1")
    topo.vs.vsctl("add-port", "br0", "n2")  # no such device yet: kept, with an error
    status = topo.vs.json("get", "interface", "n2", "status")[0]
    assert "could not open network device n2" in status.get("error", ""), status
    ns = topo.stack.enter_context(netns.namespace("hn2"))
    netns.run(topo.sw, "ip", "link", "add", "name", "n2", "type", "veth", "peer", "name", "eth0",
              "netns", ns)
    topo._host_up(ns, "eth0", "10.9.1.2")
    topo.hosts["n2"] = (ns, "eth0", "10.9.1.2")
    wait_for(lambda: topo.vs.json("get", "interface", "n2", "status")[0].get("driver_name") == "afpacket",
             what="n2 opened by the revalidator's retry")
    assert topo.ping("n1", "n2")
    assert topo.vs.json("get", "interface", "n2", "statistics")[0]["tx_packets"] > 0


def test_malformed_frames_are_counted_and_dropped(topo):
    from helpers.rawsock import RawPort

    topo.veth_host("m1", "10.3.0.1")
    topo.veth_host("m2", "10.3.0.2")
    sender = RawPort(topo.hosts["m1"][0], "eth0")
    try:
        # Ethernet + IPv4 ethertype + 6 bytes: the IPv4 header is cut short.
        runt = bytes.fromhex("ffffffffffff02000000000108004500001c0000")
        for _ in range(5):
            sender.sock.send(runt)
    finally:
        sender.close()
    wait_for(lambda: topo.vs.json("get", "interface", "m1", "statistics")[0]["rx_dropped"] >= 5,
             what="malformed frames counted")
    assert topo.ping("m1", "m2")  # and the switch keeps forwarding


def test_restart_keeps_configuration(topo, tmp_path):
    topo.veth_host("r1", "10.4.0.1", tag=30)
    topo.veth_host("r2", "10.4.0.2", tag=30)
    topo.vs.vsctl("set", "bridge", "br0", "other_config:mac-aging-time=120")
    assert topo.ping("r1", "r2")
    before = topo.vs.json("show")
    assert topo.vs.stop()
    topo.vs.start()
    assert topo.vs.json("show") == before
    assert topo.vs.vsctl("get", "port", "r1", "tag").strip() == "30"
    assert topo.ping("r1", "r2")


def test_bad_vsctl_commands_change_nothing(topo):
    topo.veth_host("g1", "10.5.0.1")
    before = topo.vs.json("show")
    cases = [
        (["add-port", "br9", "x1"], "no bridge named br9"),
        (["set", "port", "g1", "tag=5000"], "5000"),
        (["set", "port", "g1", "nosuchcolumn=1"], "nosuchcolumn"),
        (["del-port", "br0", "nosuchport"], "nosuchport"),
        (["add-port", "br0", "x2", "--", "set", "port", "x2", "tag=4096"], "4096"),
    ]
    for argv, needle in cases:
        proc = topo.vs.vsctl_proc(*argv)
        assert proc.returncode != 0, argv
        assert needle in proc.stderr, (argv, proc.stderr)
    assert topo.vs.json("show") == before
    assert "x2" not in topo.vs.vsctl("list-ports", "br0").split()


def test_second_daemon_is_refused_and_sigterm_cleans_up(topo, tmp_path):
    topo.tap_host("vmx", "10.6.0.1")
    second = netns.run(topo.sw, *VSWITCHD,
                       "--rundir", topo.vs.rundir, "--db", topo.vs.db, "--detach", check=False)
    assert second.returncode != 0
    assert "another vswitchd" in second.stderr
    # The bridge's internal port is a tap the switch created in its namespace.
    assert netns.run(topo.sw, "ip", "link", "show", "br0", check=False).returncode == 0
    assert topo.vs.stop()
    assert netns.run(topo.sw, "ip", "link", "show", "br0", check=False).returncode != 0
    # The VM's tap (moved into the host namespace) is gone too.
    assert netns.run(topo.hosts["vmx"][0], "ip", "link", "show", "vmx", check=False).returncode != 0
    assert not os.path.exists(os.path.join(topo.vs.rundir, "vswitchd.sock"))
