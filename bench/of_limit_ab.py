"""What a Flow_Table flow_limit costs an `ovs-ofctl add-flows` stream,
side by side with a private Open vSwitch.

    python3 bench/of_limit_ab.py [--rules 10000] [--rounds 3]

Both switches run as daemons in their own namespaces (bench/of_scale.py's
Ours and Theirs).  Each round, interleaved switch by switch, table 0 is
loaded with --rules rules by `ovs-ofctl -O OpenFlow13 add-flows` twice:
without a Flow_Table ("unlimited"), and mapped to a Flow_Table with
flow_limit=--rules, overflow_policy=refuse ("limited"; set with each
switch's own vsctl), timing the wall clock and the daemon's CPU per rule.
Every limited load must end with exactly --rules rules and one more add
refused with OFPFMFC_TABLE_FULL (checked, not assumed).  vswitch takes a
limited table's adds through its Python path (the C front end does not
take them: ofproto/table_limits.py), so "limited" is expected slower
there; OVS checks the count on every add either way.

Results are printed as markdown: medians of the rounds, ratios to OVS and
limited/unlimited, with /proc/loadavg at each round.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from of_scale import (Ours, Theirs, cpu_seconds, loadavg, ofctl, settled_cpu_seconds,  # noqa: E402
                      tcp_rules, write_rules)
from helpers import netns  # noqa: E402

MODES = ("unlimited", "limited")
EXTRA_RULE = "priority=1,tcp,nw_dst=192.0.2.1,tp_dst=1,actions=drop"


def vsctl(switch, *args):
    return (switch.vs.vsctl if isinstance(switch, Ours) else switch.ovs.vsctl)(*args)


def set_mode(switch, mode, n):
    if mode == "limited":
        vsctl(switch, "--", "--id=@ft", "create", "Flow_Table", "name=bench", f"flow_limit={n}",
              "overflow_policy=refuse", "--", "set", "Bridge", "br0", "flow_tables:0=@ft")
    else:
        vsctl(switch, "clear", "Bridge", "br0", "flow_tables")


def refused_extra(switch):
    proc = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flow", switch.target, EXTRA_RULE],
                          capture_output=True, text=True, timeout=60)
    return proc.returncode != 0 and "OFPFMFC_TABLE_FULL" in proc.stderr


def run(switches, n, rounds):
    path = write_rules(tcp_rules(n))
    results = {(s.label, mode): {"wall": [], "cpu": []} for s in switches for mode in MODES}
    loads = []
    try:
        for _ in range(rounds):
            loads.append(loadavg())
            for s in switches:
                for mode in MODES:
                    ofctl(s.target, "del-flows")
                    set_mode(s, mode, n)
                    cpu = settled_cpu_seconds(s.pid)
                    wall = ofctl(s.target, "add-flows", path)[0]
                    results[(s.label, mode)]["wall"].append(wall)
                    results[(s.label, mode)]["cpu"].append((settled_cpu_seconds(s.pid) - cpu) / n)
                    got = sum(1 for line in ofctl(s.target, "dump-flows")[1].splitlines() if "actions=" in line)
                    if got != n:
                        raise RuntimeError(f"{s.label} {mode}: {got} rules after adding {n}")
                    if mode == "limited" and not refused_extra(s):
                        raise RuntimeError(f"{s.label}: the add beyond the limit was not TABLE_FULL")
                    set_mode(s, "unlimited", n)
    finally:
        os.unlink(path)
    return results, loads


def report(results, loads, n, rounds):
    med = {key: {k: statistics.median(v) for k, v in r.items()} for key, r in results.items()}
    print(f"## add-flows of {n} rules into table 0, medians of {rounds} rounds\n")
    print("| switch | table 0 | wall s | daemon CPU us/rule |")
    print("|---|---|---|---|")
    for (label, mode), r in med.items():
        print(f"| {label} | {mode} | {r['wall']:.2f} | {r['cpu'] * 1e6:.1f} |")
    print()
    for mode in MODES:
        ours, theirs = med[("vswitch", mode)], med[("OVS", mode)]
        print(f"- {mode}: vswitch/OVS wall {ours['wall'] / theirs['wall']:.2f}x, "
              f"CPU {ours['cpu'] / theirs['cpu']:.2f}x")
    for label in ("vswitch", "OVS"):
        lim, unl = med[(label, "limited")], med[(label, "unlimited")]
        print(f"- {label}: limited/unlimited wall {lim['wall'] / unl['wall']:.2f}x, "
              f"CPU {lim['cpu'] / unl['cpu']:.2f}x")
    print(f"- load (/proc/loadavg) at each round: {'; '.join(loads)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rules", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, netns.namespace("lim-ours") as ns1, \
            netns.namespace("lim-ovs") as ns2:
        switches = [Ours(ns1, os.path.join(tmp, "ours")), Theirs(ns2, os.path.join(tmp, "ovs"))]
        try:
            results, loads = run(switches, args.rules, args.rounds)
        finally:
            for s in switches:
                s.close()
    report(results, loads, args.rules, args.rounds)


if __name__ == "__main__":
    main()
