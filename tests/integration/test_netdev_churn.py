"""1,000 create/delete cycles of a port's veth: the port follows every time
and the daemon leaks no descriptor, thread or memory, and logs no traceback."""
import os

import pytest
from helpers import netns
from helpers.topology import switch_with_bridge
from helpers.vswitchd import wait_for
from pyroute2 import NetNS

pytestmark = pytest.mark.timeout(300)
CYCLES = 1000


def footprint(pid):
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = len(os.listdir(f"/proc/{pid}/task"))
    with open(f"/proc/{pid}/status") as f:
        rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return fds, threads, rss_kb


def test_thousand_veth_cycles_leak_nothing(tmp_path):
    with switch_with_bridge(tmp_path) as topo:
        vs, sw = topo.vs, topo.sw
        netns.run(sw, "ip", "link", "add", "churn0", "type", "veth", "peer", "name", "churn1")
        vs.vsctl("add-port", "br0", "churn0")
        wait_for(lambda: "error" not in vs.vsctl("get", "interface", "churn0", "status"), what="port open")
        netns.run(sw, "ip", "link", "del", "churn0")
        wait_for(lambda: "went away" in vs.vsctl("get", "interface", "churn0", "status"), what="port closed")
        before = footprint(vs.pid)
        ipr = NetNS(sw)
        try:
            for i in range(CYCLES):
                ipr.link("add", ifname="churn0", kind="veth", peer="churn1")
                if i % 100 == 99:  # now and then, let the daemon catch up and check it followed
                    wait_for(lambda: "error" not in vs.vsctl("get", "interface", "churn0", "status"),
                             what=f"port reopened in cycle {i}")
                ipr.link("del", ifname="churn0")
        finally:
            ipr.close()
        wait_for(lambda: "went away" in vs.vsctl("get", "interface", "churn0", "status"), what="port closed")
        after = footprint(vs.pid)
        assert after[0] <= before[0], f"descriptors {before[0]} -> {after[0]}"
        assert after[1] == before[1], f"threads {before[1]} -> {after[1]}"
        assert after[2] - before[2] < 8 * 1024, f"RSS {before[2]} -> {after[2]} kB"
        log = vs.read_log()
        assert "Traceback" not in log
        assert log.count("port reopened") >= CYCLES // 100
