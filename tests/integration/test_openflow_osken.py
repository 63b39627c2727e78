"""An os-ken L2 learning switch (tests/helpers/osken_app.py) as the bridge's
controller over TCP inside the switch's namespace; namespaces ping through
the flows it installs; then the controller dies, in both fail modes."""
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from helpers.topology import switch_with_bridge
from helpers.vswitchd import wait_for

pytestmark = pytest.mark.timeout(120)
HELPERS = os.path.join(os.path.dirname(__file__), "..", "helpers")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def osken(ns, port, log_path):
    """The os-ken learning switch listening on 127.0.0.1:port inside `ns`."""
    env = dict(os.environ, OSKEN_APP_LOG=str(log_path))
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, os.path.join(HELPERS, "osken_run.py"),
         "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", str(port),
         os.path.join(HELPERS, "osken_app.py")],
        env=env, stdout=subprocess.DEVNULL, stderr=open(str(log_path) + ".stderr", "w"),
        start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def events(log_path, kind):
    try:
        with open(log_path) as f:
            return [e for e in map(json.loads, f) if e["event"] == kind]
    except FileNotFoundError:
        return []


@pytest.mark.parametrize("fail_mode", ["standalone", "secure"])
def test_osken_learning_switch_then_controller_loss(tmp_path, fail_mode):
    log_path = tmp_path / "osken.jsonl"
    port = free_port()
    with switch_with_bridge(tmp_path) as t:
        stack, sw, vs = t.stack, t.sw, t.vs
        for i in (1, 2, 3):
            t.veth_host(f"p{i}", f"10.0.0.{i}")
        ctl = stack.enter_context(osken(sw, port, log_path))
        # A 1 s inactivity probe: standalone fails open 3 probe intervals after the loss.
        vs.vsctl("set", "bridge", "br0", "other_config:inactivity-probe=1000")
        vs.vsctl("set-fail-mode", "br0", fail_mode, "--", "set-controller", "br0", f"tcp:127.0.0.1:{port}")
        features = wait_for(lambda: events(log_path, "features"), timeout=30, what="os-ken to see the switch")
        assert features[0]["n_tables"] == 254

        assert t.ping("p1", "p2")
        pins = events(log_path, "packet_in")
        assert pins and {p["in_port"] for p in pins} >= {1, 2}
        assert all(p["reason"] == 0 and p["table_id"] == 0 for p in pins)   # table-miss rule
        learned = t.vs.json("dump-flows", "br0")
        assert {(f["priority"], f["match"]) for f in learned} >= {
            (1, f"in_port=1,dl_dst={t.mac('p2')}"), (1, f"in_port=2,dl_dst={t.mac('p1')}")}
        wait_for(lambda: any(f["priority"] == 1 and f["n_packets"] > 0
                             for f in t.vs.json("dump-flows", "br0")), what="learned flows counting")

        os.killpg(ctl.pid, signal.SIGKILL)
        ctl.wait()
        if fail_mode == "standalone":
            # no controller connected: after 3 probe intervals NORMAL takes
            # over (fail-open, as OVS), new destinations work
            lost = time.monotonic()
            assert not t.ping("p1", "p3", count=1)  # not at once
            assert wait_for(lambda: t.ping("p1", "p3", count=1), timeout=20, what="NORMAL after loss")
            assert time.monotonic() - lost >= 2.0
        else:
            # secure: the flows the controller installed keep working, nothing else
            time.sleep(0.5)
            assert t.ping("p1", "p2")
            assert not t.ping("p1", "p3", count=2)
            assert {(f["priority"], f["match"]) for f in t.vs.json("dump-flows", "br0")} >= {
                (1, f"in_port=1,dl_dst={t.mac('p2')}")}
