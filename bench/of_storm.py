"""Established traffic during a flow-mod storm, side by side with Open vSwitch.

    python3 bench/of_storm.py [--rules 100000] [--rate 1000] [--seconds 5] [--rounds 3]

Issue 14: "established traffic is unaffected by a flow-mod storm (1,000
flow-mods/s) on another part of the table".  Per switch (vswitchd from this
tree; ovs-vswitchd on the userspace datapath, tests/helpers/ovs_peer.py),
each in its own namespace with two host namespaces behind veths:

  - --rules rules `priority=P,tcp,nw_dst=10.0.x.y,tp_dst=N,actions=output:2`
    (of_scale.py's set, P in 1..999) loaded with ovs-ofctl add-flows, plus the
    two rules the established traffic hits: `priority=500,ip,nw_dst=H,
    actions=output:<H's port>` for the hosts 10.99.0.1 and .2 (static ARP);
  - established traffic for --seconds: ping every PING_INTERVAL s from host 1
    to host 2, and an iperf3 UDP stream at UDP_RATE the other way;
  - with and without a storm: a controller connection (the management socket,
    a Python OpenFlow 1.3 client) sending --rate flow-mods/s on the 10.0.x.y
    rules — strict delete of one, add of it back, strict modify of another
    (output:1) — in batches of BATCH followed by a barrier, paced by the
    clock; the achieved rate (barrier replies) is reported.

Reported per switch and case (medians of --rounds, interleaved: vswitch calm,
vswitch storm, OVS calm, OVS storm, ...): ping avg and p99, UDP loss and
jitter (iperf3's receiver), upcalls during the traffic (vswitch: coverage
datapath_upcall; OVS: dpctl/show "missed"), the storm's achieved rate and
the daemon's CPU (utime + stime of all its threads over the case).
Load is printed per round: the machine is shared.
"""
import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from of_scale import (OUT_PORT, PRIORITIES, Client, Ours, Theirs, cpu_seconds, loadavg, ofctl,  # noqa: E402
                      tcp_rules, write_rules)
from helpers import netns  # noqa: E402
from vswitch.ofproto.ofp import ApplyActions, FlowMod, Match, Output  # noqa: E402
from vswitch.ofproto.ofp import messages as m  # noqa: E402
from vswitch.ofproto.ofp.constants import OFPFC_ADD, OFPFC_DELETE_STRICT, OFPFC_MODIFY_STRICT  # noqa: E402

HOSTS = ("10.99.0.1", "10.99.0.2")
MACS = ("02:99:00:00:00:01", "02:99:00:00:00:02")
TRAFFIC_PRIORITY = 500
PING_INTERVAL = 0.01
UDP_RATE = "20M"
UDP_LEN = 1000
IPERF_PORT = 5299
BATCH = 10                    # flow-mods per barrier
TCP = 6
IPV4 = 0x800
STORM_BASE = 0x0A000000       # of_scale.tcp_rules: nw_dst = 10.0.0.0 + i
STORM_MODIFY_PORT = 1


def rule_priorities(n, seed=1):
    """The priorities of_scale.tcp_rules(n) gives rule i (same generator)."""
    rng = random.Random(seed)
    return [rng.randrange(1, PRIORITIES) for _ in range(n)]


def storm_match(i):
    return Match(eth_type=(IPV4, None), ip_proto=(TCP, None), ipv4_dst=(STORM_BASE + i, None),
                 tcp_dst=(1 + i % 60000, None))


def storm_messages(priorities, k):
    """The k-th triple: delete rule i, add it back, modify rule j."""
    n = len(priorities)
    i, j = (k * 7919) % n, (k * 7919 + n // 2) % n
    out_i = [ApplyActions([Output(OUT_PORT)])]
    return [FlowMod(command=OFPFC_DELETE_STRICT, priority=priorities[i], match=storm_match(i)),
            FlowMod(command=OFPFC_ADD, priority=priorities[i], match=storm_match(i), instructions=out_i),
            FlowMod(command=OFPFC_MODIFY_STRICT, priority=priorities[j], match=storm_match(j),
                    instructions=[ApplyActions([Output(STORM_MODIFY_PORT)])])]


class Storm(threading.Thread):
    """Sends `rate` flow-mods/s until stopped; counts those acknowledged."""

    def __init__(self, target, priorities, rate):
        super().__init__(daemon=True)
        self.client, self.priorities, self.rate = Client(target), priorities, rate
        self.stop_event, self.sent, self.acked, self.elapsed = threading.Event(), 0, 0, 0.0
        self.error = None

    def run(self):
        pending, k = [], 0
        t0 = time.perf_counter()
        try:
            while not self.stop_event.is_set():
                while len(pending) < BATCH:
                    pending += storm_messages(self.priorities, k)
                    k += 1
                batch, pending = pending[:BATCH], pending[BATCH:]
                for fm in batch:
                    self.client.send(fm)
                self.client.send(m.BarrierRequest())
                self.client.wait_for(m.BarrierReply)
                self.sent += len(batch)
                self.acked = self.sent
                due = t0 + self.sent / self.rate    # pace by the clock, not by the replies
                delay = due - time.perf_counter()
                if delay > 0:
                    self.stop_event.wait(delay)
        except Exception as exc:  # noqa: BLE001 — reported with the results
            self.error = exc
        self.elapsed = time.perf_counter() - t0
        self.client.close()


class Hosts:
    """Two host namespaces with a veth each into the switch's namespace."""

    def __init__(self, stack_ns, sw_ns, add_port):
        self.ns = stack_ns
        self.ports = []
        for k, (ns, addr) in enumerate(zip(self.ns, HOSTS)):
            name = f"st{k + 1}"
            netns.run(sw_ns, "ip", "link", "add", name, "type", "veth", "peer", "name", "eth0",
                      "netns", ns)
            netns.run(sw_ns, "ip", "link", "set", name, "up")
            netns.run(ns, "ip", "link", "set", "eth0", "address", MACS[k])
            netns.run(ns, "ip", "addr", "add", f"{addr}/24", "dev", "eth0")
            netns.run(ns, "ip", "link", "set", "eth0", "up")
            # Full checksums on the hosts' frames: OVS's userspace datapath
            # forwards veth frames with partial checksums as they are.
            netns.run(ns, "ethtool", "-K", "eth0", "tx", "off")
            add_port(name)
            self.ports.append(name)
        for k, ns in enumerate(self.ns):
            other = 1 - k
            netns.run(ns, "ip", "neigh", "replace", HOSTS[other], "lladdr", MACS[other], "dev", "eth0",
                      "nud", "permanent")

    def traffic(self, seconds):
        """(ping avg ms, ping p99 ms, ping loss %, udp loss %, udp jitter ms)."""
        server = subprocess.Popen(["ip", "netns", "exec", self.ns[0], "iperf3", "-s", "-1", "-p",
                                   str(IPERF_PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.3)
            count = int(seconds / PING_INTERVAL)
            ping = subprocess.Popen(["ip", "netns", "exec", self.ns[0], "ping", "-n", "-i", str(PING_INTERVAL),
                                     "-c", str(count), "-W", "1", HOSTS[1]], stdout=subprocess.PIPE, text=True)
            udp = netns.run(self.ns[1], "iperf3", "-c", HOSTS[0], "-p", str(IPERF_PORT), "-u", "-b", UDP_RATE,
                            "-l", str(UDP_LEN), "-t", str(seconds), "-J", timeout=seconds + 30)
            out, _ = ping.communicate(timeout=seconds + 30)
        finally:
            server.kill()
            server.wait()
        rtts = sorted(float(x) for x in re.findall(r"time=([\d.]+) ms", out))
        sent = count
        report = json.loads(udp.stdout)["end"]["sum"]
        p99 = rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))] if rtts else float("nan")
        return (statistics.mean(rtts) if rtts else float("nan"), p99, 100.0 * (sent - len(rtts)) / sent,
                report["lost_percent"], report["jitter_ms"])


def upcalls(switch):
    if isinstance(switch, Ours):
        out = subprocess.run(["ovs-appctl", "-t", os.path.join(switch.vs.rundir, "vswitchd.ctl"),
                              "coverage/read-counter", "datapath_upcall"],
                             capture_output=True, text=True, check=True).stdout
        return int(out.strip())
    out = switch.ovs.appctl("dpctl/show")
    return int(re.search(r"missed:(\d+)", out).group(1))


def install(switch, hosts, path, n):
    ofctl(switch.target, "del-flows")
    ofctl(switch.target, "add-flows", path)
    for addr, port in zip(HOSTS, hosts.ports):
        ofctl(switch.target, "add-flow",
              f"priority={TRAFFIC_PRIORITY},ip,nw_dst={addr},actions=output:{port}")
    _, out = ofctl(switch.target, "dump-flows")
    got = sum(1 for line in out.splitlines() if "actions=" in line)
    if got != n + len(HOSTS):
        raise RuntimeError(f"{switch.label}: {got} rules installed, expected {n + len(HOSTS)}")


def one_case(switch, hosts, priorities, storm_rate, seconds):
    before = upcalls(switch)
    cpu0, t0 = cpu_seconds(switch.pid), time.monotonic()
    storm = Storm(switch.target, priorities, storm_rate) if storm_rate else None
    if storm:
        storm.start()
        time.sleep(0.5)          # the storm is under way before the traffic starts
    try:
        result = hosts.traffic(seconds)
    finally:
        if storm:
            storm.stop_event.set()
            storm.join()
    if storm and storm.error:
        raise RuntimeError(f"{switch.label}: storm failed: {storm.error}")
    rate = storm.acked / storm.elapsed if storm else 0.0
    cpu_pct = 100.0 * (cpu_seconds(switch.pid) - cpu0) / (time.monotonic() - t0)
    return result + (upcalls(switch) - before, rate, cpu_pct)


FIELDS = ("ping_avg_ms", "ping_p99_ms", "ping_loss_pct", "udp_loss_pct", "udp_jitter_ms", "upcalls",
          "storm_rate", "daemon_cpu_pct")


def report(results, args):
    print(f"\n### {args.rules:,} rules, storm {args.rate:,} flow-mods/s for {args.seconds} s, "
          f"{args.rounds} rounds interleaved, medians; load per round: {', '.join(results['load'])}\n")
    print("| switch | case | ping avg ms | ping p99 ms | ping loss % | UDP loss % | UDP jitter ms "
          "| upcalls | flow-mods/s achieved | daemon CPU % |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (label, case), runs in results["cases"].items():
        med = [statistics.median(r[i] for r in runs) for i in range(len(FIELDS))]
        print(f"| {label} | {case} | {med[0]:.3f} | {med[1]:.3f} | {med[2]:.1f} | {med[3]:.2f} "
              f"| {med[4]:.3f} | {med[5]:,.0f} | {med[6]:,.0f} | {med[7]:.0f} |")
    print("\nAll rounds (" + ", ".join(FIELDS) + "):")
    for (label, case), runs in results["cases"].items():
        for r in runs:
            print(f"- {label} {case}: " + ", ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", type=int, default=100_000)
    ap.add_argument("--rate", type=int, default=1000, help="flow-mods per second in the storm")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-ovs", action="store_true")
    args = ap.parse_args()
    for tool in ("ovs-ofctl", "ovs-appctl", "iperf3", "ping", "ethtool"):
        if not shutil.which(tool):
            sys.exit(f"needs {tool}")
    print(f"of_storm: commit {subprocess.run(['git', '-C', HERE, 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()}, "
          f"{os.cpu_count()} CPUs, load {loadavg()}")
    priorities = rule_priorities(args.rules)
    path = write_rules(tcp_rules(args.rules))
    work = tempfile.mkdtemp(prefix="of-storm-")
    switches = []
    results = {"load": [], "cases": {}}
    try:
        with netns.namespace("ost-vs") as ns_vs, netns.namespace("ost-ovs") as ns_ovs, \
                netns.namespace("ost-v1") as v1, netns.namespace("ost-v2") as v2, \
                netns.namespace("ost-o1") as o1, netns.namespace("ost-o2") as o2:
            setups = [(Ours, ns_vs, (v1, v2))] + ([] if args.no_ovs else [(Theirs, ns_ovs, (o1, o2))])
            for cls, ns, host_ns in setups:
                switch = cls(ns, work)
                switches.append(switch)
                hosts = Hosts(host_ns, ns, switch.add_port)
                install(switch, hosts, path, args.rules)
                switch.hosts = hosts
                hosts.traffic(1)          # warm-up: megaflows for the established traffic
            for _ in range(args.rounds):
                results["load"].append(loadavg())
                for switch in switches:
                    for case, rate in (("calm", 0), ("storm", args.rate)):
                        r = one_case(switch, switch.hosts, priorities, rate, args.seconds)
                        results["cases"].setdefault((switch.label, case), []).append(r)
            report(results, args)
    finally:
        for s in switches:
            s.close()
        os.unlink(path)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
