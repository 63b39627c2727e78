"""Megaflow dumps of a real vswitchd holding FLOWS megaflows, through its two
control doors (issue 14): `vsctl dpctl-dump-flows` and `ovs-appctl
dpctl/dump-flows`, both read from the datapath and written chunk by chunk
(vswitch/chunked_reply.py).

- Each dump is complete: one record per megaflow the switch holds (appctl
  memory/show), every field parses, every generated destination appears
  exactly once, and both doors list the same megaflows.  FLOWS is chosen so
  that vsctl's JSON is over rpc.MAX_REPLY: built whole, as before, it was
  refused ("reply ... is over the limit").
- While a vsctl dump runs, the event loop keeps answering (`ovs-appctl
  version` probes wait less than a quarter of the dump's time: built whole,
  the dump held the loop for nearly all of it, and the test fails on that
  code) and ping through the switch loses nothing.
"""
import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
import time

import pytest

from helpers import megaflow_fill, netns
from helpers.topology import Topology
from helpers.vswitchd import VSCTL, VSwitchd
from vswitch import rpc

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(not shutil.which("ovs-appctl"), reason="ovs-appctl (openvswitch-common) is not installed"),
]

FLOWS = 60_000  # ~10 MB of vsctl JSON, over rpc.MAX_REPLY (8 MiB)
MAX_IDLE_MS = 3_600_000  # the generated megaflows see no traffic afterwards
DUMP_TIMEOUT_S = 120
PROBE_PAUSE_S = 0.05
LOOP_SHARE = 4  # a probe waits less than 1/LOOP_SHARE of the dump's time
PING_COUNT, PING_INTERVAL = 200, "0.01"
RECORD_KEYS = {"match", "actions", "packets", "bytes", "used"}
ODP_LINE = re.compile(r"recirc_id\(0\),in_port\((\d+)\),packet_type\(ns=0,id=0\),eth\(src=([0-9a-f:]+),"
                      r"dst=([0-9a-f:]+)\)(,\S+)?, packets:(\d+), bytes:(\d+), used:(never|[\d.]+s)"
                      r"(, flags:\S+)?, actions:(\S+)")


class Filled:
    def __init__(self, topo, ctl, held):
        self.topo, self.vs, self.ctl, self.held = topo, topo.vs, ctl, held

    def vsctl_dump(self):
        return self.vs.vsctl("--format", "json", "dpctl-dump-flows", timeout=DUMP_TIMEOUT_S)

    def appctl_dump(self):
        proc = subprocess.run(["ovs-appctl", "-t", self.ctl, f"--timeout={DUMP_TIMEOUT_S}", "dpctl/dump-flows"],
                              capture_output=True, text=True, timeout=DUMP_TIMEOUT_S + 10)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    with contextlib.ExitStack() as stack:
        sw = stack.enter_context(netns.namespace("sw"))
        vs = VSwitchd(sw, str(tmp_path_factory.mktemp("dump"))).start("--max-idle", str(MAX_IDLE_MS))
        stack.callback(vs.stop)
        vs.vsctl("add-br", "br0")
        topo = Topology(stack, sw, vs)
        ns_p1 = topo.veth_host("p1", "10.0.0.1")
        topo.veth_host("p2", "10.0.0.2")
        assert topo.ping("p1", "p2")
        ctl = os.path.join(vs.rundir, "vswitchd.ctl")
        held = megaflow_fill.fill(ns_p1, "eth0", ctl, FLOWS)
        assert held >= FLOWS
        yield Filled(topo, ctl, held)


def generated(dsts):
    """The generated destinations among `dsts`, checked to be each there once."""
    ours = [d for d in dsts if d.startswith("02:00:00:")]
    assert len(ours) == len(set(ours)) == FLOWS
    assert set(ours) == {megaflow_fill.dst_mac(i) for i in range(FLOWS)}


def test_vsctl_dump_lists_every_megaflow_once(filled):
    text = filled.vsctl_dump()
    assert len(text) > rpc.MAX_REPLY  # built whole, it was refused
    flows = json.loads(text)
    assert len(flows) == filled.held == megaflow_fill.megaflows(filled.ctl)
    dsts = []
    for f in flows:
        assert set(f) == RECORD_KEYS
        assert isinstance(f["packets"], int) and isinstance(f["bytes"], int) and f["actions"]
        assert f["used"] is None or f["used"] >= 0
        fields = dict(part.split("=", 1) for part in f["match"].split(","))
        assert {"in_port", "dl_src", "dl_dst"} <= set(fields)
        dsts.append(fields["dl_dst"])
    generated(dsts)
    # the table format of the same dump: one line per megaflow
    assert len(filled.vs.vsctl("dpctl-dump-flows", timeout=DUMP_TIMEOUT_S).splitlines()) == len(flows)


def test_appctl_dump_lists_the_same_megaflows(filled):
    lines = filled.appctl_dump().splitlines()
    assert len(lines) == filled.held
    matches = [ODP_LINE.fullmatch(line) for line in lines]
    assert all(matches), next(line for line, m in zip(lines, matches) if not m)
    generated([m[3] for m in matches])
    vsctl_pairs = set()  # vsctl names in_port, appctl numbers it: the MACs say which flow
    for f in json.loads(filled.vsctl_dump()):
        fields = dict(part.split("=", 1) for part in f["match"].split(","))
        vsctl_pairs.add((fields["dl_src"], fields["dl_dst"]))
    assert {(m[2], m[3]) for m in matches} == vsctl_pairs


def test_event_loop_and_ping_keep_going_during_a_dump(filled):
    stop, probes = threading.Event(), []

    def probe():
        while not stop.wait(PROBE_PAUSE_S):
            t0 = time.monotonic()
            subprocess.run(["ovs-appctl", "-t", filled.ctl, "version"], capture_output=True,
                           timeout=DUMP_TIMEOUT_S, check=True)
            probes.append(time.monotonic() - t0)
    ns_p1, _, _ = filled.topo.hosts["p1"]
    pinger = subprocess.Popen(["ip", "netns", "exec", ns_p1, "ping", "-c", str(PING_COUNT), "-i",
                               PING_INTERVAL, "-W", "1", filled.topo.hosts["p2"][2]],
                              stdout=subprocess.PIPE, text=True)
    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    t0 = time.monotonic()
    dump = subprocess.run(["ip", "netns", "exec", filled.vs.ns, *VSCTL, "--rundir", filled.vs.rundir,
                           "--format", "json", "dpctl-dump-flows"],
                          capture_output=True, text=True, timeout=DUMP_TIMEOUT_S)
    dump_s = time.monotonic() - t0
    stop.set()
    prober.join()
    out, _ = pinger.communicate(timeout=PING_COUNT + 30)
    assert dump.returncode == 0, dump.stderr
    assert len(json.loads(dump.stdout)) == filled.held
    assert probes, "no probe ran during the dump"
    assert max(probes) < dump_s / LOOP_SHARE, (max(probes), dump_s)
    replies = len(re.findall(r"time=[\d.]+ ms", out))
    assert replies == PING_COUNT, out[-300:]
