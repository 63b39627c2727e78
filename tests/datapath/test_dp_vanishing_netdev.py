"""A port whose netdev disappears must not spin its poll thread: the packet
socket's error is read and cleared, a tap that lost its device is marked dead
and left out of poll() (issue: 37,000 poll()s a second, a core at 100 %)."""
import os
import subprocess
import time

import pytest
from helpers import netns

from vswitch.datapath.dpif import Datapath

CLK_TCK = os.sysconf("SC_CLK_TCK")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")


def pmd_cpu_seconds():
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/comm") as f:
            if f.read().strip() == "pmd0":
                with open(f"/proc/self/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / CLK_TCK
    raise AssertionError("no pmd0 thread")


def cpu_share_over(seconds):
    before, t0 = pmd_cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return (pmd_cpu_seconds() - before) / (time.monotonic() - t0)


@pytest.mark.parametrize("kind", ["afpacket", "tap"])
def test_deleted_netdev_leaves_the_poll_thread_idle(kind):
    with netns.namespace("vn") as ns, netns.entered(ns):
        dp = Datapath(upcall_ring_size=16)
        try:
            dp.set_pmds([None])
            if kind == "afpacket":
                subprocess.run(["ip", "link", "add", "vx0", "type", "veth", "peer", "name", "vx1"], check=True)
                subprocess.run(["ip", "link", "set", "vx1", "up"], check=True)
                dp.add_port(1, "afpacket", "vx0")
            else:
                dp.add_port(1, "tap", "vx0")
            assert cpu_share_over(0.5) < 0.05
            subprocess.run(["ip", "link", "del", "vx0"], check=True)
            time.sleep(0.2)
            share = cpu_share_over(1.0)
            stats = dp.port_stats(1)
            assert share < 0.02, (share, stats)
            assert stats["poll_errors"] >= 1
            assert stats["dead"] == (1 if kind == "tap" else 0)
        finally:
            dp.close()
