"""CFM in the running switch against a private Open vSwitch.

Layout: namespace `sw` runs vswitchd with br0 = {c (cfm_mpid=7, 100 ms),
p1, p2}; namespace `ovs` runs OVS (userspace datapath) with br0 = {o
(cfm_mpid=1, 100 ms)}; c<->o is a veth pair.  p1/p2 lead to two host
namespaces (10.78.0.1 / 10.78.0.2) used only to load the switch with a ping
flood while the CCM timing is captured on o.  Cuts are blackhole qdiscs on
both veth ends (links stay up, only the frames vanish).

Both sides are asked what they see: ours through `vsctl get interface` and
`vsctl --format json cfm-show`, OVS through `ovs-appctl cfm/show`.
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

INTERVAL = 0.1
OVS_MPID, OUR_MPID = 1, 7
SLACK = 2.0                 # a loaded 2-core CI box
H1_IP, H2_IP = "10.78.0.1", "10.78.0.2"

pytestmark = pytest.mark.timeout(90)


@contextlib.contextmanager
def cfm_pair(tmp_path, ours=(), theirs=(), hosts=False):
    """ours/theirs: extra `set Interface` settings for our c and OVS's o."""
    skip_unless_available()
    with contextlib.ExitStack() as stack:
        sw = stack.enter_context(netns.namespace("csw"))
        on = stack.enter_context(netns.namespace("covs"))
        ovs = stack.enter_context(OvsPeer(on))
        c, o = netns.veth_pair(sw, on, "c")
        ovs.add_bridge("br0")
        ovs.vsctl("add-port", "br0", o, "--", "set", "Interface", o,
                  f"cfm_mpid={OVS_MPID}", f"other_config:cfm_interval={int(INTERVAL * 1000)}",
                  *theirs)
        pair = dict(sw=sw, on=on, ovs=ovs, c=c, o=o)
        if hosts:
            h1 = stack.enter_context(netns.namespace("ch1"))
            h2 = stack.enter_context(netns.namespace("ch2"))
            p1, e1 = netns.veth_pair(sw, h1, "c")
            p2, e2 = netns.veth_pair(sw, h2, "c")
            netns.run(h1, "ip", "addr", "add", f"{H1_IP}/24", "dev", e1)
            netns.run(h2, "ip", "addr", "add", f"{H2_IP}/24", "dev", e2)
            pair.update(h1=h1, h2=h2, p1=p1, p2=p2)
        vs = stack.enter_context(running_vswitchd(sw, tmp_path))
        vs.vsctl("add-br", "br0")
        vs.vsctl("add-port", "br0", c, "--", "set", "Interface", c,
                 f"cfm_mpid={OUR_MPID}", f"other_config:cfm_interval={int(INTERVAL * 1000)}",
                 *ours)
        if hosts:
            vs.vsctl("add-port", "br0", pair["p1"])
            vs.vsctl("add-port", "br0", pair["p2"])
        pair["vs"] = vs
        yield type("Pair", (), pair)


def ours(pair):
    return pair.vs.json("cfm-show", pair.c)[0]["interfaces"][pair.c]


def our_column(pair, column):
    return pair.vs.vsctl("get", "interface", pair.c, column).strip()


def healthy_both_ways(pair, timeout=10):
    wait_until(lambda: ours(pair)["fault"] == []
               and ours(pair)["remote_mpids"] == [OVS_MPID]
               and pair.ovs.cfm_show(pair.o)["fault"] == []
               and pair.ovs.cfm_show(pair.o)["remote_mpids"] == [OUR_MPID],
               timeout, interval=0.1, what="no fault on either side")


def test_cfm_switch_and_ovs_see_each_other_without_fault(tmp_path):
    with cfm_pair(tmp_path) as pair:
        start = time.monotonic()
        healthy_both_ways(pair)
        took = time.monotonic() - start
        # Both start sending at once; 3.5 intervals (+ slack) is enough for
        # both fault checks to have passed with the other MEP heard.
        assert took <= 3.5 * INTERVAL + SLACK, took
        # ... and it stays clean (no spurious fault over several intervals).
        for _ in range(5):
            time.sleep(3.5 * INTERVAL / 2)
            assert ours(pair)["fault"] == []
            assert pair.ovs.cfm_show(pair.o)["fault"] == []
        show = ours(pair)
        assert show["mpid"] == OUR_MPID and show["interval_ms"] == INTERVAL * 1000
        assert show["remote_mpids"] == [OVS_MPID]
        assert show["remote_meps"][str(OVS_MPID)]["state"] == "ok"
        assert our_column(pair, "cfm_remote_mpids") == f"[{OVS_MPID}]"
        assert our_column(pair, "cfm_fault") == "false"
        assert our_column(pair, "cfm_fault_status") == "[]"
        text = pair.vs.vsctl("cfm-show", pair.c)
        assert f"---- {pair.c} ----" in text and f"MPID {OUR_MPID}:" in text
        assert f"Remote MPID {OVS_MPID}" in text
        theirs = pair.ovs.cfm_show(pair.o)
        assert theirs["mpid"] == OVS_MPID and theirs["remote_mpids"] == [OUR_MPID]


def test_cfm_switch_cut_gives_recv_fault_and_recovers(tmp_path):
    with cfm_pair(tmp_path) as pair:
        healthy_both_ways(pair)
        netns.blackhole(pair.sw, pair.c)
        netns.blackhole(pair.on, pair.o)
        cut = time.monotonic()
        wait_until(lambda: "recv" in ours(pair)["fault"],
                   3.5 * INTERVAL + SLACK, interval=0.02, what="our recv fault")
        ours_at = time.monotonic() - cut
        wait_until(lambda: {"recv", "rdi"} & set(pair.ovs.cfm_show(pair.o)["fault"]),
                   7 * INTERVAL + SLACK, interval=0.02, what="OVS recv/rdi fault")
        assert ours_at <= 3.5 * INTERVAL + SLACK, ours_at
        assert ours(pair)["remote_mpids"] == []
        assert "recv" in our_column(pair, "cfm_fault_status")
        assert our_column(pair, "cfm_fault") == "true"
        assert our_column(pair, "cfm_remote_mpids") == "[]"
        assert pair.ovs.cfm_show(pair.o)["remote_mpids"] == []

        netns.unblackhole(pair.sw, pair.c)
        netns.unblackhole(pair.on, pair.o)
        healthy_both_ways(pair, timeout=7 * INTERVAL + SLACK + 3)
        assert our_column(pair, "cfm_fault") == "false"
        assert our_column(pair, "cfm_fault_status") == "[]"
        assert our_column(pair, "cfm_remote_mpids") == f"[{OVS_MPID}]"


def test_cfm_switch_maid_mismatch_is_a_fault_on_both_sides(tmp_path):
    with cfm_pair(tmp_path, ours=("other_config:cfm_ma_name=other",)) as pair:
        wait_until(lambda: "maid" in ours(pair)["fault"]
                   and "maid" in pair.ovs.cfm_show(pair.o)["fault"],
                   7 * INTERVAL + SLACK, interval=0.05, what="maid fault on both sides")
        assert "maid" in our_column(pair, "cfm_fault_status")
        assert our_column(pair, "cfm_fault") == "true"
        assert ours(pair)["remote_mpids"] == []
        assert "other" in ours(pair)["maid"]


def capture_ccm_times(pair, seconds):
    """Receive timestamps (epoch, kernel) of CCMs arriving at o from us while
    the switch forwards a ping flood h1 -> h2; returns (times, t0, t1, ping)."""
    tcpdump = subprocess.Popen(
        ["ip", "netns", "exec", pair.on, "tcpdump", "-i", pair.o, "-Q", "in", "-n", "-l", "-tt",
         "--immediate-mode", "-p", "ether", "proto", "0x8902"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    flood = None
    try:
        # tcpdump announces itself on stderr once the capture is attached.
        seen = ""
        while "listening on" not in seen:
            line = tcpdump.stderr.readline()
            assert line, f"tcpdump exited: {seen}"
            seen += line
        flood = subprocess.Popen(["ip", "netns", "exec", pair.h1, "ping", "-f", "-q",
                                  "-w", str(int(seconds + 1.5)), H2_IP],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.5)                       # flood under way before the window opens
        t0 = time.time()
        time.sleep(seconds)
        t1 = time.time()
        ping_out, _ = flood.communicate(timeout=30)
    finally:
        if flood and flood.poll() is None:
            flood.kill()
            flood.wait()
        tcpdump.terminate()
        out, _ = tcpdump.communicate(timeout=10)
    times = [float(m.group(1)) for m in re.finditer(r"^(\d+\.\d+) ", out, re.M)]
    return [t for t in times if t0 <= t <= t1], t0, t1, ping_out


def test_cfm_switch_ccms_leave_on_time_under_forwarding_load(tmp_path):
    with cfm_pair(tmp_path, hosts=True) as pair:
        healthy_both_ways(pair)
        wait_until(lambda: netns.run(pair.h1, "ping", "-c", "1", "-W", "1", H2_IP,
                                     check=False).returncode == 0,
                   10, what="ping h1 -> h2 through the switch")
        times, t0, t1, ping_out = capture_ccm_times(pair, 2.0)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", ping_out)
        assert m and int(m.group(2)) >= 500, ping_out      # the switch really was busy
        expected = (t1 - t0) / INTERVAL
        assert len(times) >= 0.8 * expected, (len(times), expected, times)
        edges = [t0] + times + [t1]
        gaps = [b - a for a, b in zip(edges, edges[1:])]
        print(f"CCMs {len(times)}/{expected:.1f}, max gap {max(gaps) * 1000:.0f} ms, {m.group(0)}")
        assert max(gaps) <= 0.35, (max(gaps), gaps)
        # Nor did the load make either side lose the other.
        assert ours(pair)["fault"] == []
        assert pair.ovs.cfm_show(pair.o)["fault"] == []
