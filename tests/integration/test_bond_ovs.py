"""Bonds in the running switch against a private Open vSwitch.

Layout: namespace `sw` runs vswitchd with br0 = {p1 (a host's veth), bond0 =
{a1, a2}}; namespace `ovs` runs OVS (userspace datapath) with br0 = {bond0 =
{o1, o2}} and its internal port br0 carrying 10.77.0.2; a1<->o1 and a2<->o2
are veth pairs; the host namespace has 10.77.0.1 behind p1.  Cuts: carrier
(ip link set down on OVS's end) and blackhole qdiscs (links stay up).
"""
import contextlib
import re
import subprocess
import time

import pytest
from helpers import netns
from helpers.ovs_peer import OvsPeer, skip_unless_available
from helpers.vswitchd import running_vswitchd
from helpers.wait import wait_until

FAST_EXPIRY = 3.0
SLACK = 2.0
HOST_IP, OVS_IP = "10.77.0.1", "10.77.0.2"

pytestmark = pytest.mark.timeout(120)


@contextlib.contextmanager
def bond_pair(tmp_path, ours, theirs):
    """ours/theirs: extra add-bond settings for vswitch and OVS; theirs None:
    OVS's ends are two plain ports, the upstream switch that active-backup
    and balance-slb bonds are made for (no coordination with the far end)."""
    skip_unless_available()
    with contextlib.ExitStack() as stack:
        sw = stack.enter_context(netns.namespace("bsw"))
        on = stack.enter_context(netns.namespace("bovs"))
        host = stack.enter_context(netns.namespace("bh"))
        ovs = stack.enter_context(OvsPeer(on))
        a1, o1 = netns.veth_pair(sw, on, "b")
        a2, o2 = netns.veth_pair(sw, on, "b")
        p1, eth = netns.veth_pair(sw, host, "b")
        for ns, ifname in ((sw, a1), (sw, a2), (sw, p1), (on, o1), (on, o2), (host, eth)):
            netns.run(ns, "ip", "link", "set", ifname, "up")
        netns.run(host, "ip", "addr", "add", f"{HOST_IP}/24", "dev", eth)
        # OVS's userspace datapath takes neither partial checksums nor GSO
        # frames from a veth: the endpoints segment and checksum themselves.
        netns.run(host, "ethtool", "-K", eth, "tx", "off", "gso", "off", "tso", "off", check=False)
        # And vswitch would join those segments into TSO frames again on the
        # bond's members (transmit coalescing, README): with TSO off on their
        # netdevs the kernel cuts such frames back to segments, as a user
        # with a peer like this one does (README, "Transmit coalescing").
        for member in (a1, a2):
            netns.run(sw, "ethtool", "-K", member, "tso", "off", check=False)
        ovs.add_bridge("br0")
        if theirs is None:
            ovs.vsctl("add-port", "br0", o1, "--", "add-port", "br0", o2)
        else:
            ovs.vsctl("add-bond", "br0", "bond0", o1, o2, *theirs)
        # The userspace datapath leaves o1/o2 to the kernel as well: only
        # br0 may answer ARP for its address, or replies name o1's MAC.
        netns.run(on, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1")
        netns.run(on, "ip", "addr", "add", f"{OVS_IP}/24", "dev", "br0")
        netns.run(on, "ip", "link", "set", "br0", "up")
        netns.run(on, "ethtool", "-K", "br0", "tx", "off", "gso", "off", "tso", "off", check=False)
        vs = stack.enter_context(running_vswitchd(sw, tmp_path))
        vs.vsctl("add-br", "br0")
        vs.vsctl("add-port", "br0", p1)
        vs.vsctl("add-bond", "br0", "bond0", a1, a2, *ours)
        yield type("Pair", (), dict(sw=sw, on=on, host=host, ovs=ovs, vs=vs, ours=(a1, a2),
                                    theirs=(o1, o2), eth=eth))


def lacp_ready(pair):
    ours = pair.vs.json("lacp-show", "bond0")[0]["members"]
    theirs = pair.ovs.lacp_show("bond0")["members"]
    return (all(m["status"] == "current" and m["attached"] and m["may_enable"] for m in ours.values())
            and all(m["status"] == "current" and m["attached"] and m["may_enable"] for m in theirs.values()))


def bond_enabled(pair):
    return {name: m["enabled"] for name, m in pair.vs.json("bond-show", "bond0")[0]["members"].items()}


def ovs_enabled(pair):
    text = pair.ovs.appctl("bond/show", "bond0")
    return {m: state == "enabled" for m, state in re.findall(r"^member (\S+): (\w+)", text, re.M)}


def ping(pair, count=3, interval="0.2", deadline=None):
    args = ["ping", "-c", str(count), "-i", interval, "-W", "1", OVS_IP]
    if deadline:
        args[1:1] = ["-w", str(deadline)]
    return netns.run(pair.host, *args, check=False)


def tx_packets(pair):
    rows = pair.vs.json("dump-ports", "br0")
    return {r["port"]: r["tx_packets"] for r in rows}


def tcp_spread(pair):
    """8 parallel TCP flows host -> OVS side; returns bond members' tx deltas."""
    server = subprocess.Popen(["ip", "netns", "exec", pair.on, "iperf3", "-s", "-1", "-B", OVS_IP],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        before = tx_packets(pair)
        netns.run(pair.host, "iperf3", "-c", OVS_IP, "-P", "8", "-t", "2", timeout=30)
        after = tx_packets(pair)
    finally:
        server.kill()
        server.wait()
    return {m: after[m] - before[m] for m in pair.ours}


PINGS = 200


def requests_lost_over_cut(pair, cut):
    """A 10 ms ping from the host across a cut made 0.5 s in; returns how many
    echo requests arrived on neither of the partner's links (captured as they
    enter its namespace: what our failover decides, not how fast the partner
    forwards after its own port went down) and the ping's own summary."""
    dumps = [subprocess.Popen(["ip", "netns", "exec", pair.on, "tcpdump", "-nn", "-l", "--immediate-mode",
                               "-Q", "in", "-i", o, "icmp[icmptype] == 8"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for o in pair.theirs]
    try:
        time.sleep(1.0)  # tcpdump listening
        pinger = subprocess.Popen(["ip", "netns", "exec", pair.host, "ping", "-c", str(PINGS), "-i", "0.01",
                                   "-W", "1", OVS_IP], stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        cut()
        out, _ = pinger.communicate(timeout=30)
        time.sleep(0.5)
    finally:
        seen = ""
        for dump in dumps:
            dump.terminate()
            seen += dump.communicate(timeout=10)[0]
    seqs = {int(m) for m in re.findall(r"seq (\d+)", seen)}
    assert seqs, seen
    return PINGS - len(seqs & set(range(1, PINGS + 1))), out.strip().splitlines()[-2:]


@pytest.mark.parametrize("our_mode", ["active", "passive"])
def test_lacp_balance_tcp_bond_with_ovs(tmp_path, our_mode):
    lacp = ["lacp=active", "bond_mode=balance-tcp", "other_config:lacp-time=fast"]
    ours = [f"lacp={our_mode}", "bond_mode=balance-tcp", "other_config:lacp-time=fast"]
    with bond_pair(tmp_path, ours, lacp) as pair:
        start = time.monotonic()
        wait_until(lambda: lacp_ready(pair), 15, interval=0.2, what="LACP current both ways")
        assert time.monotonic() - start < 3 + SLACK
        show = pair.vs.json("lacp-show", "bond0")[0]
        theirs = pair.ovs.lacp_show("bond0")
        for m in show["members"].values():
            assert m["partner"]["sys_id"] == theirs["sys_id"]
            assert {"collecting", "distributing", "synchronized"} <= set(m["actor"]["state"])
        for m in theirs["members"].values():
            assert m["partner sys_id"] == show["sys_id"]
            assert {"collecting", "distributing"} <= set(m["partner state"])
        text = pair.vs.vsctl("lacp-show", "bond0")
        assert f"partner sys_id: {theirs['sys_id']}" in text and "status: " in text
        assert "lacp_status: negotiated" in pair.vs.vsctl("bond-show", "bond0")
        wait_until(lambda: ping(pair).returncode == 0, 10, what="ping across the bond")
        spread = tcp_spread(pair)
        assert all(v > 100 for v in spread.values()), spread

        # Carrier cut of one member: a 10 ms ping loses at most one packet.
        a1, _ = pair.ours
        o1, _ = pair.theirs
        lost, summary = requests_lost_over_cut(pair, lambda: netns.run(pair.on, "ip", "link", "set", o1, "down"))
        assert lost <= 1, (lost, summary)
        wait_until(lambda: bond_enabled(pair)[a1] is False, 3, what="member disabled on carrier loss")
        netns.run(pair.on, "ip", "link", "set", o1, "up")
        wait_until(lambda: lacp_ready(pair), 15, interval=0.2, what="LACP back after carrier")

        # Blackhole: carrier stays, LACPDUs stop; the member leaves on both sides.
        netns.blackhole(pair.sw, a1)
        netns.blackhole(pair.on, o1)
        cut = time.monotonic()
        wait_until(lambda: not bond_enabled(pair)[a1], FAST_EXPIRY + SLACK, interval=0.1,
                   what="our member to leave")
        wait_until(lambda: not ovs_enabled(pair)[o1], FAST_EXPIRY + SLACK, interval=0.1,
                   what="OVS member to leave")
        assert time.monotonic() - cut <= FAST_EXPIRY + SLACK
        assert ping(pair).returncode == 0  # the other member carries everything
        netns.unblackhole(pair.sw, a1)
        netns.unblackhole(pair.on, o1)
        wait_until(lambda: lacp_ready(pair), 15, interval=0.2, what="LACP back after blackhole")
        wait_until(lambda: all(bond_enabled(pair).values()), 5, what="both members enabled")
        spread = tcp_spread(pair)
        assert all(v > 100 for v in spread.values()), spread


@pytest.mark.parametrize("mode", ["active-backup", "balance-slb"])
def test_bond_without_lacp_with_ovs(tmp_path, mode):
    with bond_pair(tmp_path, [f"bond_mode={mode}"], None) as pair:
        wait_until(lambda: all(bond_enabled(pair).values()), 5, what="members enabled")
        wait_until(lambda: ping(pair).returncode == 0, 10, what="ping across the bond")
        show = pair.vs.json("bond-show", "bond0")[0]
        assert show["bond_mode"] == mode and show["lacp_status"] == "off"
        active = show["active_member"]
        other = next(m for m in pair.ours if m != active)
        o_active = pair.theirs[pair.ours.index(active)]
        lost, summary = requests_lost_over_cut(
            pair, lambda: netns.run(pair.on, "ip", "link", "set", o_active, "down"))
        assert lost <= 1, (lost, summary)
        wait_until(lambda: pair.vs.json("bond-show", "bond0")[0]["active_member"] == other, 3,
                   what="active member moves")
        assert ping(pair).returncode == 0
        netns.run(pair.on, "ip", "link", "set", o_active, "up")
        wait_until(lambda: all(bond_enabled(pair).values()), 5, what="members back")
