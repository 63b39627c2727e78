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
1-flow 64-byte UDP (optionally paced with --pps), and reads the switch's
utime+stime and its pmd-stats-show around the blast.  --tcp measures
TCP (default offloads, then offloads off) instead, --ping PING_COUNT echoes
(bench/run.py's ping: every 2 ms) on the idle switch.

    sudo python bench/pmd_sleep_ab.py old=/tmp/base-tree new=. new100=.:100 \\
        [--reps 3] [--seconds 3] [--pps 500000] [--tcp | --ping]

Prints one line per run and the medians per variant, with the load average
at the start of each run (the machine is shared)."""
import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run as bench  # noqa: E402
import udp_gen  # noqa: E402

CONFIG = "vswitch-afxdp"
WARM_SECONDS = 1
MAXSLEEP_ENV = "VSWITCH_PMD_MAXSLEEP"
PMD_COUNTERS = ("packets", "batches", "sleeps", "busy_ns", "idle_ns")
PING_COUNT = 500


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
    bench.measure_udp(s, WARM_SECONDS, 1, tools)
    c0 = pmd_totals(bench.vswitch_counters(s))
    r = bench.measure_udp(s, opts.seconds, 1, tools, opts.pps)
    c1 = pmd_totals(bench.vswitch_counters(s))
    d = {k: c1[k] - c0[k] for k in PMD_COUNTERS}
    return {"mpps": r["pps"] / 1e6, "loss_pct": r["loss_pct"], "cpu_ns": r["cpu_ns_per_pkt"],
            "busy_ns": r["busy_ns_per_pkt"],
            "pkts_per_sleep": d["packets"] / d["sleeps"] if d["sleeps"] else None,
            "pkts_per_batch": d["packets"] / d["batches"] if d["batches"] else None}


def measure_tcp(s, opts):
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
            return bench.measure_ping(s, PING_COUNT)
        return measure_tcp(s, opts) if opts.tcp else measure_udp(s, opts, tools)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("variants", nargs="+", type=parse_variant)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--pps", type=int, default=0, help="pace the blast (0: as fast as it goes)")
    p.add_argument("--tcp", action="store_true")
    p.add_argument("--ping", action="store_true")
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
            med = {key: statistics.median(r[key] for r in rows if r[key] is not None)
                   for key in rows[0] if any(r[key] is not None for r in rows)}
            med["loads"] = [r["load"] for r in rows]
            print("median", label, json.dumps(med), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
