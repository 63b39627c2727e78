"""Catch bench/run.py's ping outliers in the act (issue 16): the same ping
(every 2 ms from vma to vmb through the switch, traffic on CPU 0, switch on
CPU 1) repeated on a freshly built configuration, with a scheduler trace of
both CPUs over the same window, and for every echo slower than
--threshold µs what ran on each CPU while it was in flight.

    sudo python bench/ping_outliers.py [--config vswitch-afxdp|ovs-afxdp]
        [--tree TREE] [--loops 5] [--count 500] [--threshold 100]

Per loop: the echoes over the threshold (index, RTT), and for each the
threads that ran on CPU 0 and CPU 1 during its round trip with their time
on the CPU (µs), from `perf record -e sched:sched_switch` (clock
CLOCK_MONOTONIC, matched to ping -D's wall clock through one
time.time()/time.monotonic() pair taken at the start); the switch's poll
thread counters and megaflow count before and after (vswitch).  A run is
printed as one JSON line per loop with the outliers per 1000 echoes.
"""
import argparse
import collections
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run as bench  # noqa: E402

US = 1e6
PING_INTERVAL = "0.002"
PERF_SETTLE = 0.5      # s for perf to attach before the first echo
PERCENTILES = (50, 90, 95, 99)
TOP_THREADS = 6        # threads listed per CPU per outlier
# One perf script line: comm-tid [cpu] secs.usecs: event: fields.
PERF_LINE = re.compile(r"^\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+sched:(\w+):\s+(.*)$")
SWITCH_FIELDS = re.compile(r"prev_comm=(.+?) prev_pid=(\d+) .*?==> "
                           r"next_comm=(.+?) next_pid=(\d+)")
PING_LINE = re.compile(r"^\[([\d.]+)\].*icmp_seq=(\d+).*time=([\d.]+) ms")


def ping_echoes(text):
    """(seq, wall-clock receipt s, rtt µs) per reply of ping -D."""
    return [(int(m.group(2)), float(m.group(1)), float(m.group(3)) * 1000)
            for m in map(PING_LINE.match, text.splitlines()) if m]


def cpu_slices(script_text):
    """Per CPU: [(start s, end s, 'comm/tid')] of what ran, from sched_switch."""
    slices = collections.defaultdict(list)
    current = {}
    for line in script_text.splitlines():
        m = PERF_LINE.match(line)
        if not m or m.group(5) != "sched_switch":
            continue
        cpu, t = int(m.group(3)), float(m.group(4))
        f = SWITCH_FIELDS.search(m.group(6))
        if not f:
            continue
        prev = f"{f.group(1)}/{f.group(2)}"
        start = current.get(cpu, (None, None))
        if start[0] is not None:
            slices[cpu].append((start[0], t, prev))
        current[cpu] = (t, f"{f.group(3)}/{f.group(4)}")
    return slices


def in_window(slices, lo, hi):
    """Time (µs) per thread on the CPU within [lo, hi]."""
    out = collections.Counter()
    for a, b, who in slices:
        if b > lo and a < hi:
            out[who] += (min(b, hi) - max(a, lo)) * US
    return out


def vswitch_state(s):
    if not s.name.startswith("vswitch"):
        return {"dp": bench.ovs_counters(s)}
    pmds = bench.vswitch_counters(s).get("pmds", [])
    flows = s.vsctl("dpctl-dump-flows", record=False)
    return {"pmd": {k: sum(p.get(k, 0) for p in pmds)
                    for k in ("packets", "upcalls", "misses", "sleeps", "emc_hits",
                              "megaflow_hits")},
            "megaflows": len([ln for ln in flows.splitlines() if ln.strip()])}


def one_loop(opts, tmp):
    with contextlib.ExitStack() as stack:
        s = bench.Setup(opts.config, stack, tmp)
        bench.BUILDERS[opts.config](s)
        bench.wait_connected(s)
        data = os.path.join(tmp, "perf.data")
        perf = None if opts.no_trace else subprocess.Popen(["perf", "record", "-q", "-k", "CLOCK_MONOTONIC", "-C", "0,1",
                                 "-e", "sched:sched_switch", "-o", data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(opts.settle)
        before = vswitch_state(s)
        offset = time.time() - time.monotonic()
        load = bench.loadavg()
        proc = bench.sh(s.vma, "ping", "-D", "-c", str(opts.count), "-i", PING_INTERVAL, "-W",
                        "1", bench.IP_B, cpu=bench.TRAFFIC_CPU, check=False,
                        timeout=opts.count * 0.01 + 20)
        after = vswitch_state(s)
        script = ""
        if perf is not None:
            perf.send_signal(subprocess.signal.SIGINT)
            perf.wait(timeout=30)
            script = subprocess.run(["perf", "script", "-i", data, "-F",
                                     "comm,tid,cpu,time,event,trace", "--ns"],
                                    capture_output=True, text=True, timeout=120).stdout
    echoes = ping_echoes(proc.stdout)
    slices = cpu_slices(script)
    bad = []
    for seq, recv, rtt in echoes:
        if rtt <= opts.threshold:
            continue
        hi = recv - offset
        lo = hi - rtt / US
        ran = {f"cpu{c}": dict(in_window(slices[c], lo, hi).most_common(TOP_THREADS))
               for c in (0, 1)}
        bad.append({"seq": seq, "rtt_us": round(rtt, 1), "ran": {
            c: {k: round(v, 1) for k, v in d.items()} for c, d in ran.items()}})
    # Everything but the poll thread and idle that held CPU 1 long enough to
    # delay an echo, in the ping's window (s from its start, thread, µs).
    t0 = (echoes[0][1] - offset) if echoes else 0.0
    t1 = (echoes[-1][1] - offset) if echoes else 0.0
    long_runs = [(round(a - t0, 4), who, round((b - a) * US, 1)) for a, b, who in slices[1]
                 if (b - a) * US > opts.threshold / 2 and t0 <= a <= t1
                 and not who.startswith(("swapper", "pmd"))]
    rtts = sorted(r for _, _, r in echoes)
    pct = {f"p{q}_us": bench.percentile(rtts, q / 100) for q in PERCENTILES} if rtts else {}
    return {"config": opts.config, "load": load, "echoes": len(echoes), **pct,
            "outliers_per_1000": 1000.0 * len(bad) / max(1, len(echoes)),
            "over_50us": sum(r > 50 for r in rtts), "max_us": rtts[-1] if rtts else None,
            "daemon_pids": getattr(s, "pids", None), "before": before, "after": after,
            "outliers": bad, "cpu1_long_runs": long_runs, "t0_monotonic": t0}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="vswitch-afxdp")
    p.add_argument("--tree", default=bench.ROOT, help="tree holding the vswitch package")
    p.add_argument("--loops", type=int, default=5)
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--threshold", type=float, default=100.0, help="µs")
    p.add_argument("--settle", type=float, default=PERF_SETTLE,
                   help="s between the first ping that passes and the run (perf attaching); "
                        "bench/run.py starts its ping at once")
    p.add_argument("--no-trace", action="store_true",
                   help="no perf record (it adds its own latency to every echo)")
    p.add_argument("--vswitch-pmd", choices=("busy", "default"), default="busy",
                   help="vswitch's poll thread busy-polling (as bench/run.py by default) or "
                        "in the daemon's default adaptive polling (bench/run.py --vswitch-pmd)")
    opts = p.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="ping-outliers-")
    try:
        snap = os.path.join(tmp, "snap")
        shutil.copytree(os.path.join(opts.tree, "vswitch"), os.path.join(snap, "vswitch"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        bench.SNAPSHOT.update({"dir": snap, "pmd_mask": True,
                                 "busy_poll": opts.vswitch_pmd == "busy"})
        for _ in range(opts.loops):
            print(json.dumps(one_loop(opts, tmp)), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
