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
refused with OFPFMFC_TABLE_FULL (checked, not assumed).  Then "evicting":
the table holds --rules rules with hard timeouts under flow_limit=--rules,
overflow_policy=evict, and add-flows of --rules other rules makes every add
evict one (the table must end with exactly the new rules).  vswitch takes a
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

from of_scale import (Ours, Theirs, loadavg, ofctl, settled_cpu_seconds,  # noqa: E402
                      tcp_rules, write_rules)
from helpers import netns  # noqa: E402

MODES = ("unlimited", "limited", "evicting")
HARD_TIMEOUT = 3600          # s: the evicting phase's rules never expire during a run
EXTRA_RULE = "priority=1,tcp,nw_dst=192.0.2.1,tp_dst=1,actions=drop"


def vsctl(switch, *args):
    return (switch.vs.vsctl if isinstance(switch, Ours) else switch.ovs.vsctl)(*args)


def set_mode(switch, mode, n):
    if mode in ("limited", "evicting"):
        policy = "evict" if mode == "evicting" else "refuse"
        vsctl(switch, "--", "--id=@ft", "create", "Flow_Table", "name=bench", f"flow_limit={n}",
              f"overflow_policy={policy}", "--", "set", "Bridge", "br0", "flow_tables:0=@ft")
    else:
        vsctl(switch, "clear", "Bridge", "br0", "flow_tables")


def refused_extra(switch):
    proc = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flow", switch.target, EXTRA_RULE],
                          capture_output=True, text=True, timeout=60)
    return proc.returncode != 0 and "OFPFMFC_TABLE_FULL" in proc.stderr


def timed(lines, first):
    """The rules with hard timeouts (spread so that expiries differ);
    `first` False: other destinations (11.x instead of 10.x) and later
    expiries than every rule of the first (so only those are evicted)."""
    base = HARD_TIMEOUT if first else 2 * HARD_TIMEOUT
    return [line.replace(",tcp,", f",hard_timeout={base + i % 1000},tcp,", 1)
            .replace("nw_dst=10.", "nw_dst=10." if first else "nw_dst=11.", 1) for i, line in enumerate(lines)]


def run(switches, n, rounds):
    path = write_rules(tcp_rules(n))
    fill, evicting = write_rules(timed(tcp_rules(n), True)), write_rules(timed(tcp_rules(n, seed=3), False))
    results = {(s.label, mode): {"wall": [], "cpu": []} for s in switches for mode in MODES}
    loads = []
    try:
        for _ in range(rounds):
            loads.append(loadavg())
            for s in switches:
                for mode in MODES:
                    ofctl(s.target, "del-flows")
                    set_mode(s, mode, n)
                    if mode == "evicting":
                        ofctl(s.target, "add-flows", fill)
                    cpu = settled_cpu_seconds(s.pid)
                    wall = ofctl(s.target, "add-flows", evicting if mode == "evicting" else path)[0]
                    results[(s.label, mode)]["wall"].append(wall)
                    results[(s.label, mode)]["cpu"].append((settled_cpu_seconds(s.pid) - cpu) / n)
                    got = sum(1 for line in ofctl(s.target, "dump-flows")[1].splitlines() if "actions=" in line)
                    if got != n:
                        raise RuntimeError(f"{s.label} {mode}: {got} rules after adding {n}")
                    if mode == "evicting" and "nw_dst=10." in ofctl(s.target, "dump-flows")[1]:
                        raise RuntimeError(f"{s.label}: a rule of the first load was not evicted")
                    if mode == "limited" and not refused_extra(s):
                        raise RuntimeError(f"{s.label}: the add beyond the limit was not TABLE_FULL")
                    set_mode(s, "unlimited", n)
    finally:
        for name in (path, fill, evicting):
            os.unlink(name)
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
        unl = med[(label, "unlimited")]
        for mode in MODES[1:]:
            print(f"- {label}: {mode}/unlimited wall {med[(label, mode)]['wall'] / unl['wall']:.2f}x, "
                  f"CPU {med[(label, mode)]['cpu'] / unl['cpu']:.2f}x")
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
