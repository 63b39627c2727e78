"""Ping through vswitchd while its megaflows are dumped (issue 14: "ping p99
unchanged while vsctl dumps 100k megaflows"), for one or more trees, run by
run interleaved.

Setup (root): namespaces SW, A and B; veths A–SW and B–SW whose SW ends are
ports of bridge br0 of a real vswitchd (default port type and settings, the
tree under test on PYTHONPATH, --max-idle raised so the megaflows stay
without traffic).  A sends FLOWS frames from its own MAC to FLOWS distinct
unknown destination MACs: NORMAL floods each and installs one megaflow per
destination (tests/helpers/megaflow_fill.py), repeated until the switch
holds them all (appctl memory/show "udpif keys").  Then, for each mode,
ping A → B PING_COUNT times every PING_INTERVAL s while:

  idle    nothing else runs,
  vsctl   `vsctl dpctl-dump-flows` runs back to back,
  appctl  `ovs-appctl dpctl/dump-flows` runs back to back.

With --ovs, a private Open vSwitch (userspace datapath, the same max-idle)
takes its turn too, in the idle and appctl modes.  Reports ping's p50/p99,
each dump's wall time and line count (every dump must list all FLOWS
megaflows), the daemon's CPU (its revalidator
alone reads all megaflows every second), how long a tiny request
(`ovs-appctl version`, every PROBE_PAUSE_S) waits for the event loop, and
the load average.

    sudo python bench/dump_ping.py [--base /tmp/base-tree] [--nice -10] [--ovs] [--reps 3]
                                   [--flows 100000] [--modes idle,vsctl,appctl]

The base tree needs --max-idle (bench/ only measures what it can hold)."""
import argparse
import dataclasses
import functools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TREE, "tests"))

from run import percentile  # noqa: E402  (bench/run.py's nearest rank, as every ping row takes it)

FLOWS = 100_000
PING_COUNT = 2000
PING_INTERVAL = "0.005"  # s: 10 s of pings per mode, a few whole dumps
ADDR_A, ADDR_B = "10.78.0.1", "10.78.0.2"
MAX_IDLE_MS = 3_600_000  # megaflows stay an hour without traffic
DUMP_TIMEOUT_S = 120
PROBE_PAUSE_S = 0.2  # between two `ovs-appctl version` probes of the event loop
MODES = ("idle", "vsctl", "appctl")


def ping(ns):
    proc = subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", str(PING_COUNT), "-i", PING_INTERVAL,
                           "-W", "1", ADDR_B], capture_output=True, text=True, timeout=PING_COUNT + 60)
    rtts = sorted(float(m) for m in re.findall(r"time=([\d.]+) ms", proc.stdout))
    if not rtts:
        return {"error": "no replies"}
    return {"p50_ms": percentile(rtts, 0.5), "p99_ms": percentile(rtts, 0.99), "max_ms": rtts[-1],
            "loss_pct": 100.0 * (PING_COUNT - len(rtts)) / PING_COUNT}


@dataclasses.dataclass
class Target:
    """A running switch: its unixctl socket, daemon pid (the process whose
    CPU is read), and vsctl's argv (None: no vsctl, as for OVS)."""
    ctl: str
    pid: int
    vsctl: list | None = None

    def dump_command(self, mode):
        if mode == "vsctl":
            return [*self.vsctl, "--timeout", str(DUMP_TIMEOUT_S), "dpctl-dump-flows"]
        return ["ovs-appctl", "-t", self.ctl, f"--timeout={DUMP_TIMEOUT_S}", "dpctl/dump-flows"]


def dumping(argv, stop, out):
    """Back-to-back dumps until stop: out gets (seconds, lines, error)."""
    while not stop.is_set():
        t0 = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=DUMP_TIMEOUT_S + 10)
        out.append((time.monotonic() - t0, proc.stdout.count("\n"),
                    None if proc.returncode == 0 else proc.stderr.strip()[-200:]))


def probing(ctl, stop, out):
    """`ovs-appctl version` every PROBE_PAUSE_S until stop: out gets its
    wall times, how long the daemon's event loop made a tiny request wait."""
    while not stop.wait(PROBE_PAUSE_S):
        t0 = time.monotonic()
        subprocess.run(["ovs-appctl", "-t", ctl, "version"], capture_output=True, timeout=DUMP_TIMEOUT_S)
        out.append(time.monotonic() - t0)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def one_mode(mode, target, ns_a):
    stop, dumps, probes = threading.Event(), [], []
    threads = [threading.Thread(target=probing, args=(target.ctl, stop, probes), daemon=True)]
    if mode != "idle":
        threads.append(threading.Thread(target=dumping, args=(target.dump_command(mode), stop, dumps),
                                        daemon=True))
    for t in threads:
        t.start()
    load, cpu0, t0 = loadavg(), cpu_seconds(target.pid), time.monotonic()
    result = ping(ns_a)
    result["daemon_cpu_pct"] = round(100 * (cpu_seconds(target.pid) - cpu0) / (time.monotonic() - t0), 1)
    stop.set()
    for t in threads:
        t.join()
    result["load"] = load
    if probes:
        result["probe_p50_ms"] = round(1000 * statistics.median(probes), 1)
        result["probe_max_ms"] = round(1000 * max(probes), 1)
    if dumps:
        ok = [d for d in dumps if d[2] is None]
        result["dumps"] = len(dumps)
        result["dump_s"] = round(statistics.median(d[0] for d in dumps), 3)
        result["dump_lines"] = sorted({d[1] for d in ok})
        result["dump_errors"] = sorted({re.sub(r"\d+", "N", d[2]) for d in dumps if d[2] is not None})
    return result


def hosts(sw, ns_a, ns_b):
    """Veths A–SW and B–SW, addressed: (A's end, SW's ends)."""
    from helpers import netns

    a_host, a_sw = netns.veth_pair(ns_a, sw, prefix="dpa")
    b_host, b_sw = netns.veth_pair(ns_b, sw, prefix="dpb")
    netns.run(ns_a, "ip", "addr", "add", f"{ADDR_A}/24", "dev", a_host)
    netns.run(ns_b, "ip", "addr", "add", f"{ADDR_B}/24", "dev", b_host)
    return a_host, (a_sw, b_sw)


def measure(name, target, ns_a, a_host, flows, modes):
    from helpers import megaflow_fill, netns

    netns.run(ns_a, "ping", "-c", "3", "-i", "0.2", ADDR_B)
    t0 = time.monotonic()
    have = megaflow_fill.fill(ns_a, a_host, target.ctl, flows)
    print(f"# {name}: {have} megaflows in {time.monotonic() - t0:.1f} s", flush=True)
    return {mode: one_mode(mode, target, ns_a) for mode in modes if mode != "vsctl" or target.vsctl}


def one_tree(name, tree, daemon_args, flows, workdir, modes):
    from helpers import netns
    from helpers.vswitchd import VSCTL, VSwitchd

    os.environ["PYTHONPATH"] = f"{tree}:{os.path.join(TREE, 'tests')}"
    with netns.namespace("dp-sw") as sw, netns.namespace("dp-a") as ns_a, \
            netns.namespace("dp-b") as ns_b:
        vs = VSwitchd(sw, tempfile.mkdtemp(dir=workdir, prefix=name))
        vs.start("--max-idle", str(MAX_IDLE_MS), *daemon_args)
        try:
            vs.vsctl("add-br", "br0")
            a_host, sw_ends = hosts(sw, ns_a, ns_b)
            vs.vsctl("add-port", "br0", sw_ends[0], "--", "add-port", "br0", sw_ends[1])
            target = Target(os.path.join(vs.rundir, "vswitchd.ctl"), vs.pid,
                            ["ip", "netns", "exec", sw, *VSCTL, "--rundir", vs.rundir])
            return measure(name, target, ns_a, a_host, flows, modes)
        finally:
            vs.stop()


def one_ovs(flows, modes):
    """The same with a private Open vSwitch (userspace datapath, NORMAL,
    other_config:max-idle as ours): ovs-appctl dpctl/dump-flows only."""
    from helpers import netns
    from helpers.ovs_peer import OvsPeer

    with netns.namespace("dp-sw") as sw, netns.namespace("dp-a") as ns_a, \
            netns.namespace("dp-b") as ns_b, OvsPeer(sw, timeout=DUMP_TIMEOUT_S) as ovs:
        ovs.vsctl("set", "Open_vSwitch", ".", f"other_config:max-idle={MAX_IDLE_MS}")
        ovs.add_bridge("br0")
        a_host, sw_ends = hosts(sw, ns_a, ns_b)
        for port in sw_ends:
            ovs.vsctl("add-port", "br0", port)
        target = Target(ovs._ctl("ovs-vswitchd"), ovs._pid("ovs-vswitchd"))
        return measure("ovs", target, ns_a, a_host, flows, modes)


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", help="a tree to compare against (built, with --max-idle)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--flows", type=int, default=FLOWS)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--ovs", action="store_true", help="also a private Open vSwitch (appctl dumps)")
    ap.add_argument("--nice", type=int, action="append", default=[],
                    help="also run this tree with --pmd-nice N (repeatable)")
    args = ap.parse_args()
    modes = args.modes.split(",")
    trees = ([("base", args.base, [])] if args.base else []) + [("this", TREE, [])]
    trees += [(f"this_nice{n}", TREE, ["--pmd-nice", str(n)]) for n in args.nice]
    results = {}
    with tempfile.TemporaryDirectory(prefix="dump-ping-") as workdir:
        for rep in range(args.reps):
            runs = [(name, functools.partial(one_tree, name, tree, daemon_args, args.flows, workdir, modes))
                    for name, tree, daemon_args in trees]
            if args.ovs:
                runs.append(("ovs", functools.partial(one_ovs, args.flows, modes)))
            for name, run in runs:
                for mode, r in run().items():
                    results.setdefault((name, mode), []).append(r)
                    print(f"rep {rep} {name} {mode}: {json.dumps(r)}", flush=True)
    summary = {"flows": args.flows, "reps": args.reps, "ping": f"{PING_COUNT} x {PING_INTERVAL} s"}
    for (name, mode), runs in results.items():
        ok = [r for r in runs if "error" not in r]
        keys = ("p50_ms", "p99_ms", "load", "daemon_cpu_pct", "probe_p50_ms", "probe_max_ms")
        row = {k: round(statistics.median(r[k] for r in ok), 3) for k in keys} if ok else {}
        if ok and "dump_s" in ok[0]:
            row["dump_s"] = round(statistics.median(r["dump_s"] for r in ok), 3)
            row["dump_lines"] = sorted({n for r in ok for n in r["dump_lines"]})
            row["dump_errors"] = sorted({e for r in ok for e in r["dump_errors"]})
        summary[f"{name}/{mode}"] = row or "failed"
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
