"""Two hosts in namespaces of their own joined by a datapath (ports 1 and 2)
in a third: the setting of the kernel tiers' tests (test_xdp_tier.py for the
XDP tier on afxdp ports, test_tc_tier.py for the tc tier on afpacket ports).

Host a (SUBNET.1) sends UDP datagrams to a socket of host b (SUBNET.2) with
a script run in its namespace; static neighbour entries keep ARP out of the
way, so the only traffic is the test's."""
import contextlib
import socket
import time

from helpers import netns
from vswitch.datapath import dpif

SWITCH_OVER_WAIT = 0.3  # seconds for the first packets to reach the poll thread
IN_FLIGHT_WAIT = 0.2  # seconds for packets on their way to arrive
IN_PORT_ONLY = {"in_port": 0xFFFFFFFF}


def tx_packets(ns, ifname):
    return int(netns.run(ns, "cat", f"/sys/class/net/{ifname}/statistics/tx_packets").stdout)


def mac(ns, dev):
    return netns.run(ns, "cat", f"/sys/class/net/{dev}/address").stdout.strip()


class Hosts:
    """pa/a0 and pb/b0: the switch's and the hosts' ends of the two veths;
    with `spare`, pc/c0 a third veth from the switch to host b."""

    def __init__(self, sw, a, b, prefix, subnet, udp_port, gro=False, spare=False):
        self.sw, self.a, self.b, self.udp_port = sw, a, b, udp_port
        self.ip_a, self.ip_b = f"{subnet}.1", f"{subnet}.2"
        self.pa, self.a0 = netns.veth_pair(sw, a, prefix + "a")
        self.pb, self.b0 = netns.veth_pair(sw, b, prefix + "b")
        if spare:
            self.pc, self.c0 = netns.veth_pair(sw, b, prefix + "c")
        for ns, dev, ip in ((a, self.a0, self.ip_a), (b, self.b0, self.ip_b)):
            netns.run(ns, "ip", "addr", "add", f"{ip}/24", "dev", dev)
            if gro:
                netns.run(ns, "ethtool", "-K", dev, "gro", "on")
        netns.run(a, "ip", "neigh", "add", self.ip_b, "lladdr", mac(b, self.b0), "dev", self.a0)
        netns.run(b, "ip", "neigh", "add", self.ip_a, "lladdr", mac(a, self.a0), "dev", self.b0)

    def blast(self, count, payload, sport=5555, first=0, start=0):
        """Datagrams i = start .. start+count-1 a -> b from one source port,
        each carrying `payload` (a Python expression of i); with `first`,
        that many go ahead, and the rest follow once the first have had time
        to put the flow in the kernel (packets queued for user space
        meanwhile would otherwise make the share the poll thread sees depend
        on the scheduler)."""
        script = ("import socket, struct, time\n"
                  "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                  f"s.bind(('{self.ip_a}', {sport}))\n"
                  f"for i in range({start}, {start + count}):\n"
                  f"    if i == {start + first} and {first}: time.sleep({SWITCH_OVER_WAIT})\n"
                  f"    s.sendto({payload}, ('{self.ip_b}', {self.udp_port}))\n")
        netns.run(self.a, "python3", "-c", script)


@contextlib.contextmanager
def tier_datapath(prefix, subnet, udp_port, driver, options, gro=False, spare=False):
    """Yields (hosts, datapath, sink): the datapath's ports 1 (pa) and 2
    (pb) opened with `driver` and `options`, the sink a UDP socket of host b
    on udp_port (0.5 s timeout)."""
    with netns.namespace(prefix + "s") as sw, netns.namespace(prefix + "a") as a, \
            netns.namespace(prefix + "b") as b:
        hosts = Hosts(sw, a, b, prefix, subnet, udp_port, gro=gro, spare=spare)
        with netns.entered(b):
            sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind((hosts.ip_b, udp_port))
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sink.settimeout(0.5)
        with netns.entered(sw):
            dp = dpif.Datapath()
            try:
                dp.add_port(1, driver, hosts.pa, options)
                dp.add_port(2, driver, hosts.pb, options)
                yield hosts, dp, sink
            finally:
                dp.close()
                sink.close()


def flow(dp, in_port):
    return next(f for f in dp.flow_dump() if f.key["in_port"] == in_port)


def userspace_packets(dp):
    """What the poll threads processed: the packets the kernel did not."""
    return sum(s["packets"] for s in dp.pmd_stats())


# ---- checks both tiers must pass; `received(sink)` counts what arrived ----

def check_counted_and_removed(hosts, dp, sink, received, sent):
    """After `sent` datagrams of the megaflow in_port=1 → output:2, all
    forwarded (most by the kernel): its counters and the ports' include the
    kernel's share, deleting it returns them all and takes the exact entry
    out of the kernel, so the next packets miss."""
    assert flow(dp, 1).packets == sent  # the kernel's share is in the megaflow
    assert dp.port_stats(1)["rx_packets"] == sent and dp.port_stats(2)["tx_packets"] == sent
    live = dpif.xdp_offload_counts()["live"]
    final = dp.flow_del_stats({"in_port": 1}, IN_PORT_ONLY)
    assert final.packets == sent
    assert dpif.xdp_offload_counts()["live"] == live - 1
    hosts.blast(5, "b'x' * 32")  # no megaflow, no exact entry: every packet is a miss now
    assert received(sink) == 0
    assert len(dp.recv_upcalls()) == 5


def check_changed_actions_take_the_flow_out(hosts, dp, sink, received, payload):
    dp.flow_put({"in_port": 1}, IN_PORT_ONLY, [("output", 2)])
    hosts.blast(200, payload)
    assert received(sink) == 200
    assert dpif.xdp_offload_counts()["live"] >= 1
    dp.flow_put({"in_port": 1}, IN_PORT_ONLY, [])  # now: drop
    assert dpif.xdp_offload_counts()["live"] == 0
    hosts.blast(200, payload)
    time.sleep(IN_FLIGHT_WAIT)
    assert received(sink) == 0
    assert flow(dp, 1).packets == 400


def check_richer_actions_stay_in_user_space(hosts, dp, sink, received, payload):
    """A megaflow that does more than one plain output is not offloaded."""
    dp.flow_put({"in_port": 1}, IN_PORT_ONLY, [("push_vlan", 0x1005), ("pop_vlan", 0),
                                               ("output", 2)])
    hosts.blast(300, payload)
    assert received(sink) == 300
    assert dpif.xdp_offload_counts()["live"] == 0
    assert userspace_packets(dp) >= 300
