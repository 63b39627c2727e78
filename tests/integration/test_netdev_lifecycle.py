"""Ports follow their netdevs (netlink events, no polling): a deleted veth
leaves the daemon idle and its port closed with the reason in `status`; a
veth recreated under the same name (new ifindex) forwards again within a
second with no command; libvirt's one-transaction del-port/add-port reopens;
carrier shows in link_state/link_resets and reaches OpenFlow clients as
PORT_STATUS (ovs-ofctl monitor as the client)."""
import os
import subprocess
import time

import pytest
from helpers import netns
from helpers.topology import switch_with_bridge
from helpers.vswitchd import have, wait_for

pytestmark = pytest.mark.timeout(120)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_share(pid, seconds=1.0):
    before, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - t0)


def recreate_veth(topo, port, mac):
    """A new veth pair under the old names, the host end back in its namespace
    with its old MAC (as a restarted VM keeps its configured MAC)."""
    ns, ifname, ip = topo.hosts[port]
    netns.run(topo.sw, "ip", "link", "add", "name", port, "type", "veth", "peer", "name", ifname,
              "address", mac, "netns", ns)
    netns.run(topo.sw, "ip", "link", "set", port, "up")
    netns.run(ns, "ip", "addr", "add", f"{ip}/24", "dev", ifname)
    netns.run(ns, "ip", "link", "set", ifname, "up")


def test_deleted_veth_idles_and_a_recreated_one_forwards_again(tmp_path):
    with switch_with_bridge(tmp_path) as topo:
        topo.veth_host("p1", "10.5.0.1")
        topo.veth_host("p2", "10.5.0.2")
        assert topo.ping("p1", "p2")
        ofport, mac = topo.vs.vsctl("get", "interface", "p2", "ofport"), topo.mac("p2")
        netns.run(topo.sw, "ip", "link", "del", "p2")
        wait_for(lambda: "went away" in topo.vs.vsctl("get", "interface", "p2", "status"),
                 what="p2's status to report the lost netdev")
        assert 'error: "network device p2 went away"' in topo.vs.vsctl("show")  # as ovs-vsctl show
        assert "went away" in topo.vs.vsctl("get", "interface", "p2", "error")
        assert cpu_share(topo.vs.pid) < 0.02
        recreate_veth(topo, "p2", mac)
        start = time.monotonic()
        wait_for(lambda: topo.ping("p1", "p2", count=1), timeout=5, what="forwarding to the new p2")
        assert time.monotonic() - start < 2.0
        assert topo.vs.vsctl("get", "interface", "p2", "ofport") == ofport  # same number
        assert "error" not in topo.vs.vsctl("get", "interface", "p2", "status")
        assert "went away" not in topo.vs.read_log().split("port reopened")[-1]


def test_libvirt_idiom_reopens_the_port(tmp_path):
    with switch_with_bridge(tmp_path) as topo:
        topo.veth_host("p1", "10.5.1.1")
        topo.veth_host("vnet0", "10.5.1.2")
        assert topo.ping("p1", "vnet0")
        # What libvirt runs when it plugs a (restarted) guest's tap.
        topo.vs.vsctl("--", "--if-exists", "del-port", "br0", "vnet0", "--", "add-port", "br0", "vnet0")
        assert topo.ping("p1", "vnet0")
        assert topo.vs.read_log().count("removed interface vnet0") == 1


def test_carrier_shows_in_link_state_and_reaches_openflow_clients(tmp_path):
    if not have("ovs-ofctl"):
        pytest.skip("ovs-ofctl is not installed")
    with switch_with_bridge(tmp_path) as topo:
        host = topo.veth_host("p1", "10.5.2.1")
        assert topo.vs.vsctl("get", "interface", "p1", "link_state").strip() == "up"
        assert topo.vs.vsctl("get", "interface", "p1", "admin_state").strip() == "up"
        resets = int(topo.vs.vsctl("get", "interface", "p1", "link_resets"))
        mgmt = os.path.join(topo.vs.rundir, "br0.mgmt")
        # A controller connection (the mgmt socket gets no async messages
        # unless asked, as OVS's); stdbuf: ovs-ofctl's piped stdout is
        # block-buffered and lost on SIGTERM.
        topo.vs.vsctl("set-controller", "br0", "ptcp:16653:127.0.0.1")
        wait_for(lambda: netns.run(topo.sw, "ss", "-ltn", check=False).stdout.count(":16653") > 0,
                 what="the controller listener")
        monitor = subprocess.Popen(["ip", "netns", "exec", topo.sw, "stdbuf", "-oL", "ovs-ofctl", "-O", "OpenFlow13",
                                    f"--unixctl={topo.vs.rundir}/ofctl.ctl", "monitor", "tcp:127.0.0.1:16653"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            time.sleep(1.0)
            netns.run(host, "ip", "link", "set", "eth0", "down")  # the peer: p1 loses carrier
            wait_for(lambda: topo.vs.vsctl("get", "interface", "p1", "link_state").strip() == "down",
                     what="link_state down")
            desc = netns.run(topo.sw, "ovs-ofctl", "-O", "OpenFlow13", "dump-ports-desc", f"unix:{mgmt}").stdout
            assert "LINK_DOWN" in desc.split("(p1)")[1].split("\n (")[0]
            netns.run(host, "ip", "link", "set", "eth0", "up")
            wait_for(lambda: topo.vs.vsctl("get", "interface", "p1", "link_state").strip() == "up",
                     what="link_state up")
            time.sleep(0.5)
        finally:
            monitor.terminate()
            out = monitor.communicate(timeout=10)[0]
        assert int(topo.vs.vsctl("get", "interface", "p1", "link_resets")) == resets + 2
        statuses = [line for line in out.splitlines() if "PORT_STATUS" in line]
        assert len(statuses) >= 2, out
        assert "MOD" in out and "LINK_DOWN" in out and "LIVE" in out, out
