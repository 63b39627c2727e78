"""Load-based sleeping (issue 16): the switch's CPU per packet on the 64-byte
afxdp blast for several vswitch trees or pmd-maxsleep settings, interleaved
run by run, with the poll thread's sleeps per packet (the figure of merit:
on the bench VM a sleep costs ~15 µs of thread CPU whatever its length).

Each variant is LABEL=TREE[:MAXSLEEP_US]: a tree holding a built vswitch
package (TREE/vswitch, copied at start so a rebuild meanwhile changes
nothing), and optionally VSWITCH_PMD_MAXSLEEP for its daemon.  A run builds
the vswitch-afxdp configuration exactly as bench/run.py does (busy-polling
poll thread pinned to its switch CPU, veth ports, endpoints' checksum
offload off), blasts WARM_SECONDS to install the flows, then --seconds of
64-byte UDP over --flows flows (1 by default; bench/run.py's 10k-flow row
is --flows 10000), optionally paced with --pps, and reads the switch's
utime+stime and its pmd-stats-show around the blast.  --tcp measures
TCP (default offloads, then offloads off; --tcp-off: offloads off only)
instead, --ping PING_COUNT echoes (bench/run.py's ping: every 2 ms) on the
idle switch.

    sudo python bench/pmd_sleep_ab.py old=/tmp/base-tree new=. new100=.:100 \\
        [--reps 3] [--seconds 3] [--pps 500000] [--flows 10000] [--tcp [--tcp-off] | --ping]

Prints one line per run and the medians per variant, with the load average
at the start of each run (the machine is shared)."""
import argparse
import contextlib
import json
import re
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run as bench  # noqa: E402
import udp_gen  # noqa: E402

CONFIG = "vswitch-afxdp"
WARM_SECONDS = 1
MAXSLEEP_ENV = "VSWITCH_PMD_MAXSLEEP"
PMD_COUNTERS = ("packets", "batches", "sleeps", "busy_ns", "idle_ns")
PING_COUNT = 500
PORT_DROP_KEYS = ("rx_dropped", "rx_fill_empty", "tx_no_room")
SS_FIELDS = {"rtt_ms": r"\brtt:([\d.]+)", "cwnd": r"\bcwnd:(\d+)", "retrans": r"\bretrans:\d+/(\d+)"}
STATS_REFRESH_WAIT = 5.5
# --diag: the system calls counted on the switch's CPU (perf stat), reported
# per packet the poll thread forwarded meanwhile.  sendto: transmit kicks;
# ppoll: poll() rounds; recvfrom: fill-ring wake-ups; sched_yield: empty
# spinning rounds.
SYSCALLS = ("sendto", "ppoll", "recvfrom", "sched_yield")
SYSCALL_EVENT = "syscalls:sys_enter_"
SYSCALL_START = 1.0  # s into the run (the transfer has ramped up)


def parse_variant(text):
    label, sep, rest = text.partition("=")
    if not sep or not label:
        raise argparse.ArgumentTypeError(f"{text!r} is not LABEL=TREE[:MAXSLEEP_US]")
    tree, _, maxsleep = rest.partition(":")
    if not os.path.isdir(os.path.join(tree, "vswitch")):
        raise argparse.ArgumentTypeError(f"{tree!r} holds no vswitch package")
    return label, os.path.abspath(tree), maxsleep


def pmd_totals(stats):
    return {k: sum(p.get(k, 0) for p in stats.get("pmds", [])) for k in PMD_COUNTERS}


def measure_udp(s, opts, tools):
    bench.set_offloads(s, False)
    bench.measure_udp(s, WARM_SECONDS, opts.flows, tools)
    c0 = pmd_totals(bench.vswitch_counters(s))
    r = bench.measure_udp(s, opts.seconds, opts.flows, tools, opts.pps)
    c1 = pmd_totals(bench.vswitch_counters(s))
    d = {k: c1[k] - c0[k] for k in PMD_COUNTERS}
    return {"mpps": r["pps"] / 1e6, "loss_pct": r["loss_pct"], "cpu_ns": r["cpu_ns_per_pkt"],
            "busy_ns": r["busy_ns_per_pkt"],
            "pkts_per_sleep": d["packets"] / d["sleeps"] if d["sleeps"] else None,
            "pkts_per_batch": d["packets"] / d["batches"] if d["batches"] else None}


def port_drops(s):
    """The afxdp ports' kernel-ring counters (XDP_STATISTICS: rx ring full or
    dropped, fill ring found empty) and transmits refused, summed."""
    out = dict.fromkeys(PORT_DROP_KEYS, 0)
    for port in ("pa", "pb"):
        text = s.vsctl("get", "interface", port, "statistics", record=False)
        st = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", text)}
        for k in PORT_DROP_KEYS:
            out[k] += st.get("afxdp_" + k, 0)
    return out


def cpu_times():
    """Per CPU: (busy, softirq, all) jiffies from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+) (.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                idle = v[3] + v[4]  # idle + iowait
                out[m.group(1)] = (sum(v[:8]) - idle, v[6], sum(v[:8]))
    return out


def ss_sample(s, delay, into):
    """The sender's socket as `ss -ti` shows it `delay` s into the run:
    rtt (ms), cwnd (segments), retransmits so far."""
    time.sleep(delay)
    out = bench.sh(s.vma, "ss", "-tin", "dst", bench.IP_B, check=False).stdout
    # iperf3's data connection: the one that sent the most (its control
    # connection is the other).
    socks = re.split(r"\n(?=ESTAB)", out)
    data = max(socks, key=lambda t: int((re.search(r"bytes_sent:(\d+)", t) or [0, 0])[1]))
    m = {k: re.search(pat, data) for k, pat in SS_FIELDS.items()}
    into.update({k: float(v.group(1)) for k, v in m.items() if v})


def count_syscalls(cpu, seconds):
    """System calls entered on `cpu` during `seconds`, by name (SYSCALLS),
    from `perf stat -x ,` (tracepoints syscalls:sys_enter_*); {} when perf
    cannot count them (no perf, no tracefs, not root)."""
    cmd = ["perf", "stat", "-x", ",", "-C", str(cpu)]
    for name in SYSCALLS:
        cmd += ["-e", SYSCALL_EVENT + name]
    try:
        r = subprocess.run(cmd + ["--", "sleep", str(seconds)], capture_output=True, text=True,
                           timeout=seconds + 30)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    out = {}
    for line in r.stderr.splitlines():
        f = line.split(",")
        if len(f) > 2 and f[0].strip().isdigit() and f[2].startswith(SYSCALL_EVENT):
            out[f[2][len(SYSCALL_EVENT):]] = int(f[0])
    return out


def syscall_sample(s, seconds, into):
    """System calls on the switch's CPU per packet the poll thread forwarded
    in the same interval, SYSCALL_START s into the run."""
    time.sleep(SYSCALL_START)
    c0 = pmd_totals(bench.vswitch_counters(s))
    counts = count_syscalls(bench.SWITCH_CPU, seconds)
    c1 = pmd_totals(bench.vswitch_counters(s))
    pk = c1["packets"] - c0["packets"]
    if pk > 0:
        into.update({f"{k}_per_pkt": v / pk for k, v in counts.items()})


def tcp_diag(s, opts):
    """One iperf3 run with what explains its rate: the endpoints' retransmits,
    the sender's rtt and cwnd mid-run, the ports' ring drops, the poll
    thread's sleeps and packets per sleep, the switch's CPU share."""
    time.sleep(STATS_REFRESH_WAIT)  # the first statistics of the ports
    d0, c0 = port_drops(s), pmd_totals(bench.vswitch_counters(s))
    cpu0, t0, pc0 = bench.proc_cpu_ns(s.pids), time.monotonic(), cpu_times()
    ss = {}
    sc = {}
    threads = [threading.Thread(target=ss_sample, args=(s, opts.seconds / 2, ss), daemon=True),
               threading.Thread(target=syscall_sample,
                                args=(s, max(1.0, opts.seconds - 2 * SYSCALL_START), sc),
                                daemon=True)]
    for th in threads:
        th.start()
    r = bench.measure_tcp(s, opts.seconds)
    for th in threads:
        th.join()
    wall = time.monotonic() - t0
    cpu1, pc1 = bench.proc_cpu_ns(s.pids), cpu_times()
    c1 = pmd_totals(bench.vswitch_counters(s))
    time.sleep(STATS_REFRESH_WAIT)  # the Interface statistics are refreshed periodically
    d1 = port_drops(s)
    pk, sl = c1["packets"] - c0["packets"], c1["sleeps"] - c0["sleeps"]
    out = {"gbps": r.get("gbps"), "retrans_pct": r.get("retrans_pct"),
           "switch_cpu_pct": 100.0 * (cpu1 - cpu0) / 1e9 / wall,
           "sleeps_per_ms": sl / wall / 1e3, "pkts_per_sleep": pk / sl if sl else None,
           "pkts_per_batch": pk / (c1["batches"] - c0["batches"]) if c1["batches"] > c0["batches"]
           else None}
    out.update({k: d1[k] - d0[k] for k in PORT_DROP_KEYS})
    for cpu in (bench.TRAFFIC_CPU, bench.SWITCH_CPU):  # busy and softirq shares of each CPU
        a, b = pc0[cpu], pc1[cpu]
        total = max(1, b[2] - a[2])
        out[f"cpu{cpu}_busy_pct"] = 100.0 * (b[0] - a[0]) / total
        out[f"cpu{cpu}_softirq_pct"] = 100.0 * (b[1] - a[1]) / total
    out.update({"ss_" + k: v for k, v in ss.items()})
    out.update(sc)
    return out


def measure_tcp(s, opts):
    if opts.diag:
        bench.set_offloads(s, False)
        return {"off_" + k: v for k, v in tcp_diag(s, opts).items()}
    if opts.tcp_off:
        bench.set_offloads(s, False)
        return {"tcp_off_gbps": bench.measure_tcp(s, opts.seconds).get("gbps")}
    on = bench.measure_tcp(s, opts.seconds)
    bench.set_offloads(s, False)
    off = bench.measure_tcp(s, opts.seconds)
    return {"tcp_on_gbps": on.get("gbps"), "tcp_off_gbps": off.get("gbps")}


def one_run(opts, tools, tmp, snapshot, maxsleep):
    bench.SNAPSHOT["dir"] = snapshot
    if maxsleep:
        os.environ[MAXSLEEP_ENV] = maxsleep
    else:
        os.environ.pop(MAXSLEEP_ENV, None)
    with contextlib.ExitStack() as stack:
        s = bench.Setup(CONFIG, stack, tmp)
        bench.build_vswitch(s, "afxdp")
        bench.wait_connected(s)
        if opts.ping:
            r = bench.measure_ping(s, PING_COUNT)
            r.pop("rtts_us", None)  # one line per run: the summary, not every echo
            return r
        return measure_tcp(s, opts) if opts.tcp else measure_udp(s, opts, tools)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("variants", nargs="+", type=parse_variant)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--pps", type=int, default=0, help="pace the blast (0: as fast as it goes)")
    p.add_argument("--flows", type=int, default=1,
                   help="UDP flows in the blast (bench/run.py's many-flow row: %d)"
                        % bench.UDP_MANY_FLOWS)
    p.add_argument("--tcp", action="store_true")
    p.add_argument("--tcp-off", action="store_true",
                   help="with --tcp: offloads off only (the issue's TCP target)")
    p.add_argument("--ping", action="store_true")
    p.add_argument("--diag", action="store_true",
                   help="with --tcp: offloads off only, with retransmits, rtt/cwnd, ring drops, "
                        "sleeps, system calls per packet on the switch's CPU")
    opts = p.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="pmd-sleep-ab-")
    try:
        tools = udp_gen.build(tmp)
        # As bench/run.py with a tree whose daemon knows both options.
        bench.SNAPSHOT["pmd_mask"] = bench.SNAPSHOT["busy_poll"] = True
        snapshots = {}
        for label, tree, _ in opts.variants:
            dst = os.path.join(tmp, "snap-" + label)
            shutil.copytree(os.path.join(tree, "vswitch"), os.path.join(dst, "vswitch"),
                            ignore=shutil.ignore_patterns("__pycache__"))
            snapshots[label] = dst
        results = {label: [] for label, _, _ in opts.variants}
        for rep in range(opts.reps):
            k = rep % len(opts.variants)
            for label, _, maxsleep in opts.variants[k:] + opts.variants[:k]:
                row = {"load": bench.loadavg()}
                row.update(one_run(opts, tools, tmp, snapshots[label], maxsleep))
                results[label].append(row)
                print(label, rep, json.dumps(row), flush=True)
        for label, rows in results.items():
            keys = dict.fromkeys(k for r in rows for k in r)
            med = {key: statistics.median(r[key] for r in rows if r.get(key) is not None)
                   for key in keys if any(r.get(key) is not None for r in rows)}
            med["loads"] = [r["load"] for r in rows]
            print("median", label, json.dumps(med), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
