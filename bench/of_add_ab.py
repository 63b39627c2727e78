"""add-flows A/B: vswitchd from two source trees (and OVS), interleaved.

    python3 bench/of_add_ab.py --tree A=/work/main --tree B=$PWD [--ovs]
                               [--rules 50000] [--rounds 3]

Each tree's vswitchd runs as a daemon in its own namespace (PYTHONPATH set
to that tree while it starts), all of them up at once; each round runs
`ovs-ofctl -O OpenFlow13 add-flows` of the of_scale rule set against every
daemon in turn (del-flows before).  Per add: wall time, the daemon's CPU
per rule (/proc/PID/stat delta) and ovs-ofctl's own CPU per rule (children
rusage), so a change's effect on both the rate and the daemon's CPU shows
within one run on this shared machine.  Medians over the rounds, with the
load.  Not a test.
"""
import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, HERE)

from helpers import netns  # noqa: E402
from of_scale import (Ours, Theirs, cpu_seconds, loadavg, ofctl, ofctl_cpu, settled_cpu_seconds, tcp_rules,
                      write_rules)  # noqa: E402


@contextlib.contextmanager
def python_path(tree):
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = tree
    try:
        yield
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", action="append", required=True, help="LABEL=PATH of a source tree")
    ap.add_argument("--ovs", action="store_true", help="OVS 3.1 as well")
    ap.add_argument("--rules", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    n = args.rules
    path = write_rules(tcp_rules(n))
    work = tempfile.mkdtemp(prefix="of-add-ab-")
    with contextlib.ExitStack() as stack:      # undone last-in first-out: daemons, then namespaces
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        stack.callback(os.unlink, path)
        switches = []
        for spec in args.tree:
            label, tree = spec.split("=", 1)
            ns = stack.enter_context(netns.namespace("ofab"))
            with python_path(tree):
                s = Ours(ns, os.path.join(work, label))
            stack.callback(s.close)
            s.label = label
            switches.append(s)
        if args.ovs:
            s = Theirs(stack.enter_context(netns.namespace("ofab")), work)
            stack.callback(s.close)
            switches.append(s)
        results = {s.label: {"wall": [], "cpu": [], "client": []} for s in switches}
        loads = []
        for _ in range(args.rounds):
            loads.append(loadavg())
            for s in switches:
                ofctl(s.target, "del-flows")
                before = cpu_seconds(s.pid)
                wall, client, _ = ofctl_cpu(s.target, "add-flows", path)
                r = results[s.label]
                r["wall"].append(wall)
                r["cpu"].append((settled_cpu_seconds(s.pid) - before) / n * 1e6)   # rules applied after the last reply too
                r["client"].append(client / n * 1e6)
        loads.append(loadavg())
        print(f"\nadd-flows of {n:,} rules, {args.rounds} rounds interleaved; load {' -> '.join(loads)}\n")
        print("| daemon | wall (median; rounds) | us per rule | daemon CPU us/rule (median; rounds) "
              "| ovs-ofctl CPU us/rule |")
        print("|---|---|---|---|---|")
        for label, r in results.items():
            w = statistics.median(r["wall"])
            print(f"| {label} | {w:.2f} s ({', '.join(f'{v:.2f}' for v in r['wall'])}) | {w / n * 1e6:.1f} "
                  f"| {statistics.median(r['cpu']):.1f} ({', '.join(f'{v:.0f}' for v in r['cpu'])}) "
                  f"| {statistics.median(r['client']):.1f} |")

if __name__ == "__main__":
    main()
