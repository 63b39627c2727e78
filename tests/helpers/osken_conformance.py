"""Run os-ken's OpenFlow 1.3 switch conformance suite (os_ken/tests/switch/
tester.py with its JSON cases) against vswitch or a private Open vSwitch.

    python3 tests/helpers/osken_conformance.py vswitch|ovs [match action group meter]

(from the repository root: vswitchd runs as `python3 -m vswitch.daemon`).

Layout: namespace "sw" holds the target switch (vswitchd, or OVS with the
netdev datapath) and the os-ken tester; namespace "tst" holds the tester
switch (a private OVS).  Three veth links join target ports 1,2,3 to tester
ports 1,2,3 (tester.py's defaults); a fourth link lets the tester switch reach
the controller on 192.168.77.1:6633.  Prints the tester's per-case results and
the tester's OK/ERROR counts per directory.  Everything is torn down at exit.

Per-case results go to LOGDIR/<kind>-<category>.json ([{file, case, result,
reason}]); results and reasons are summarized in docs/CONFORMANCE.md.
"""
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import netns  # noqa: E402
from helpers.ovs_peer import OvsPeer  # noqa: E402
from helpers.vswitchd import running_vswitchd, wait_for  # noqa: E402

import os_ken  # noqa: E402

SUITE = os.path.join(os.path.dirname(os_ken.__file__), "tests", "switch")
CTL_IP = "192.168.77.1"
# os-ken 4.x defaults to its "native" hub (OS threads), where tester.py cannot
# work: hub.Timeout is never started and cannot interrupt Event.wait(), and
# hub.Event can lose a wake-up, so the first reply it waits for that is late
# or missing hangs it forever.  The eventlet hub (chosen by this environment
# variable before os_ken.lib.hub is imported) gives it its 3 s timeouts.
HUB = "eventlet"


def link(ns_a, a, ns_b, b, ip_a=None, ip_b=None):
    netns.run(ns_a, "ip", "link", "add", a, "type", "veth", "peer", "name", b, "netns", ns_b)
    for ns, name, ip in ((ns_a, a, ip_a), (ns_b, b, ip_b)):
        if ip:
            netns.run(ns, "ip", "addr", "add", f"{ip}/24", "dev", name)
        netns.run(ns, "ip", "link", "set", name, "up")


def ovs_bridge(ovs, name, dpid, ports):
    ovs.vsctl("add-br", name, "--", "set", "bridge", name, "datapath_type=netdev",
              "protocols=OpenFlow13", f"other_config:datapath-id={dpid}", "fail_mode=secure")
    for i, port in enumerate(ports, 1):
        ovs.vsctl("add-port", name, port, "--", "set", "interface", port, f"ofport_request={i}")
    ovs.vsctl("set-controller", name, f"tcp:{CTL_IP}:6633")


def run(target_kind, dirs, workdir, timeout=3600):
    """dirs: category names under of13/ or absolute paths (a directory or one
    JSON file).  Returns {label: [case dicts]} (see parse_cases)."""
    with contextlib.ExitStack() as stack:
        sw = stack.enter_context(netns.namespace("sw"))
        tst = stack.enter_context(netns.namespace("tst"))
        for i in (1, 2, 3):
            link(sw, f"t{i}", tst, f"s{i}")
        link(sw, "ctl0", tst, "ctl1", CTL_IP, "192.168.77.2")
        netns.run(sw, "ip", "link", "set", "lo", "up")
        tester = stack.enter_context(OvsPeer(tst))
        ovs_bridge(tester, "tester", "0000000000000002", ["s1", "s2", "s3"])
        if target_kind == "vswitch":
            vs = stack.enter_context(running_vswitchd(sw, workdir))
            vs.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "protocols=OpenFlow13",
                     "other_config:datapath-id=0000000000000001")
            for i in (1, 2, 3):
                vs.vsctl("add-port", "br0", f"t{i}", "--", "set", "interface", f"t{i}", f"ofport_request={i}")
            vs.vsctl("set-fail-mode", "br0", "secure", "--", "set-controller", "br0", f"tcp:{CTL_IP}:6633")
        else:
            target = stack.enter_context(OvsPeer(sw))
            ovs_bridge(target, "br0", "0000000000000001", ["t1", "t2", "t3"])
        results = {}
        for d in dirs:
            label = os.path.basename(d.rstrip("/")) if os.path.isabs(d) else d
            log_path = os.path.join(workdir, f"{target_kind}-{label}.log")
            with open(log_path, "w") as log:   # written as it runs: `tail -f` shows progress
                try:
                    subprocess.run(
                        ["ip", "netns", "exec", sw, sys.executable,
                         os.path.join(os.path.dirname(__file__), "osken_run.py"),
                         "--ofp-listen-host", CTL_IP,
                         "--test-switch-dir", d if os.path.isabs(d) else os.path.join(SUITE, "of13", d),
                         os.path.join(SUITE, "tester.py")], stdout=log, stderr=subprocess.STDOUT,
                        timeout=timeout, env={**os.environ, "OSKEN_HUB_TYPE": HUB})
                except subprocess.TimeoutExpired:
                    print(f"{target_kind} {label}: stopped after {timeout} s", flush=True)
            with open(log_path) as f:
                cases = parse_cases(f.read())
            with open(os.path.join(workdir, f"{target_kind}-{label}.json"), "w") as f:
                json.dump(cases, f, indent=1)
            ok = sum(c["result"] == "OK" for c in cases)
            results[label] = cases
            print(f"{target_kind} {label}: {ok} OK, {len(cases) - ok} ERROR", flush=True)
        return results


CASE = re.compile(r"^    (\S.*?)\s+(OK|ERROR)$")


def parse_cases(text):
    """The tester's per-case lines: a file's description ("action: 00_OUTPUT")
    on its own line, then "    <case> OK|ERROR", an ERROR followed by its
    reason indented by eight spaces.  Returns [{file, case, result, reason}]."""
    cases, current = [], None
    for line in text.splitlines():
        if line.startswith("--- Test report"):
            break
        m = CASE.match(line)
        if m:
            cases.append({"file": current, "case": m.group(1), "result": m.group(2), "reason": ""})
        elif line.startswith("        ") and cases and cases[-1]["result"] == "ERROR" and not cases[-1]["reason"]:
            cases[-1]["reason"] = line.strip()
        elif re.match(r"^\w[\w-]*: \S", line) and not line.startswith(("dpid=", "loading", "instantiating")):
            current = line.strip()
    return cases


if __name__ == "__main__":
    kind = sys.argv[1]
    dirs = sys.argv[2:] or ["match", "action", "group", "meter"]
    work = tempfile.mkdtemp(prefix=f"conformance-{kind}-")
    print("logs in", work, flush=True)
    run(kind, dirs, work)
