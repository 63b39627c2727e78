#!/usr/bin/env python3
"""bench/vxlan_events.py — kernel event counts per GB carried for TCP through
the VXLAN tunnel: the kernel's vxlan + bridge against vswitch's tc tier
(issue 13), on bench/vxlan_tcp.py's topology and traffic.

    sudo python3 bench/vxlan_events.py [--modes vswitch-tc,vswitch-tc-port] \\
        [--streams 1,4] [--reps 2] [--json /tmp/ev.json]

For each rep, mode and stream count: one iperf3 run of RUN_S seconds, and
`perf stat -a` of tracepoints over RECORD_S seconds in its middle; each
count is divided by the GB iperf3 reported for the same seconds.

Why counts and not a cpu-clock profile: this VM has no PMU, and cpu-clock
samples cannot land while interrupts are off, so the cost of waking a
thread on the other vCPU (an IPI, a VM exit) shows up as
_raw_spin_unlock_irqrestore under whoever woke it.  On 2 CPUs, with the
whole forwarding path in the sending thread's softirqs, -P 1 throughput
follows how often that thread must wake the receiver (sched_wakeup,
call_function_single IPIs per GB) as much as the bytes' own cost; and the
per-skb work of each path shows as counts (kmalloc: the collect_md
device's metadata dst per received skb; net_dev_xmit; napi_poll).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import vxlan_tcp as vx  # noqa: E402
from helpers import netns  # noqa: E402

EVENTS = ("sched:sched_wakeup", "irq_vectors:call_function_single_entry", "timer:hrtimer_start",
          "irq:softirq_entry", "napi:napi_poll", "net:net_dev_xmit", "kmem:kmalloc",
          "skb:consume_skb", "tcp:tcp_retransmit_skb")
RUN_S = 6       # iperf3 -t
WARMUP_S = 2    # seconds of the run before counting (slow start, BBR startup)
RECORD_S = 3    # seconds counted; iperf3's 1 s intervals WARMUP_S.. cover the same
BYTES_PER_GB = 1e9
CSV_VALUE, CSV_EVENT = 0, 2  # perf stat -x, fields


def parse_perf_stat(text):
    """{event: count} from `perf stat -x,` output (stderr); events perf
    could not count (<not supported>, <not counted>) are left out."""
    counts = {}
    for line in text.splitlines():
        f = line.split(",")
        if len(f) > CSV_EVENT:
            try:
                counts[f[CSV_EVENT]] = float(f[CSV_VALUE])
            except ValueError:
                continue
    return counts


def per_gb(counts, gbytes):
    if gbytes <= 0:
        raise ValueError("no bytes carried in the counted seconds")
    return {ev: round(n / gbytes) for ev, n in counts.items()}


def counted_gbytes(iperf_json, first=WARMUP_S, n=RECORD_S):
    """GB received in iperf3's 1 s intervals [first, first + n): the seconds perf counted."""
    return sum(iv["sum"]["bytes"] for iv in iperf_json["intervals"][first:first + n]) / BYTES_PER_GB


def one_run(hosts, streams):
    c, s = hosts["x"], hosts["y"]
    server = subprocess.Popen(["ip", "netns", "exec", s, "iperf3", "-s", "-1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        client = subprocess.Popen(["ip", "netns", "exec", c, "iperf3", "-c", vx.INNER["y"], "-P", str(streams),
                                   "-t", str(RUN_S), "-i", "1", "-J"], stdout=subprocess.PIPE, text=True)
        time.sleep(WARMUP_S)
        stat = subprocess.run(["perf", "stat", "-a", "-x,", "-e", ",".join(EVENTS), "--", "sleep", str(RECORD_S)],
                              capture_output=True, text=True)
        out, _ = client.communicate(timeout=RUN_S + 30)
    finally:
        server.terminate()
        server.wait(5)
    res = json.loads(out)
    row = per_gb(parse_perf_stat(stat.stderr), counted_gbytes(res))
    row["gbps"] = round(res["end"]["sum_received"]["bits_per_second"] / 1e9, 2)
    row["load"] = vx.loadavg()
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default="vswitch-tc,vswitch-tc-port",
                    help="comma-separated subset of " + ",".join(vx.MODES[1:]) + " (kernel is always run)")
    ap.add_argument("--streams", default="1,4")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    modes = [m for m in vx.MODES if m in args.modes.split(",") or m == "kernel"]
    counts = [int(n) for n in args.streams.split(",")]
    runs = {}
    with tempfile.TemporaryDirectory(prefix="vxevents-") as tmp:
        for rep in range(args.reps):
            for mode in modes:
                setup = vx.kernel_setup() if mode == "kernel" else \
                    vx.vswitch_setup(os.path.join(tmp, f"{mode}{rep}"), tc=mode.startswith("vswitch-tc"),
                                     per_port=mode == "vswitch-tc-port")
                with setup as (hosts, _daemons):
                    vx.wait_for(lambda: netns.run(hosts["x"], "ping", "-c", "1", "-W", "1", vx.INNER["y"],
                                                  check=False).returncode == 0, timeout=15, what="ping")
                    for n in counts:
                        row = one_run(hosts, n)
                        runs.setdefault(f"{mode} -P {n}", []).append(row)
                        vx.log(f"{mode} -P {n}: {row}")
    summary = {label: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for label, rows in runs.items()}
    short = {ev: ev.split(":")[-1] for ev in EVENTS}
    print("per GB (medians of %d reps)" % args.reps)
    print("%-22s %6s " % ("mode", "Gbit/s") + " ".join("%9s" % short[ev][:9] for ev in EVENTS))
    for label, m in summary.items():
        print("%-22s %6.2f " % (label, m["gbps"]) + " ".join("%9d" % m.get(ev, -1) for ev in EVENTS))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "runs": runs, "events": EVENTS}, f, indent=1)


if __name__ == "__main__":
    main()
