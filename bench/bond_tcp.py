#!/usr/bin/env python3
"""bench/bond_tcp.py — TCP through vswitch: two-member balance-tcp bond vs one port.

    python3 bench/bond_tcp.py                    # 3 reps each, 5 s, -P 8 (as root)
    python3 bench/bond_tcp.py --reps 5 --seconds 10 --streams 8 --json /tmp/b.json

Topology, built afresh for every run in three namespaces this script creates:

    C (client)                S (vswitchd, bridge br0)              M (upstream "switch")
    eth0 10.88.0.1/24 ---veth--- p1                                  Linux bridge mbr 10.88.0.2/24
                                 u1  ---------------veth---------- m1 (port of mbr)
                                 u2  ---------------veth---------- m2 (port of mbr)   [bond only]

    single:  `vsctl add-port br0 u1` (u2/m2 are not created)
    bond:    `vsctl add-bond br0 bond0 u1 u2 bond_mode=balance-tcp
              other_config:bond-rebalance-interval=0`  (no LACP: the Linux
              bridge is a plain switch; balance-tcp runs on carrier alone)

vswitchd is started as tests/helpers/vswitchd.py does (--rundir/--db/--log-file
--detach) from a private copy of the vswitch package taken at start-up
(colleagues edit and rebuild the tree while we measure), and is stopped by the
pid in RUNDIR/vswitchd.pid.  iperf3 -s runs in M; `iperf3 -c 10.88.0.2 -P N -t T
-J` runs in C.  Runs are interleaved single, bond, single, bond, ...; the report
gives medians of Gbit/s and retransmits (iperf3's sum_sent.retransmits), the
bond/single ratio (target >= 0.90), the per-member tx packet split of the bond
(`vsctl --format json dump-ports br0` deltas over the iperf3 run), vswitchd's
CPU (utime+stime) per run, whether ARP resolved, and how often the Linux
bridge saw C's MAC move between m1 and m2 (sampled `bridge fdb` during the
run: balance-tcp sends one MAC's flows on both members, so an upstream switch
without LACP relearns it; harmless for delivery here, reported as a warning).
When C cannot ping M after setup, the switch's fdb, bond state and megaflows
and M's bridge fdb are captured and the run is rebuilt from scratch (new
namespaces, new random MACs; --setup-retries, default 3); every failed setup
is reported.

Offloads are left at their defaults and nothing is pinned (the README's
benchmark section does not pin).  Everything created (namespaces, links,
daemons, temp dirs) is removed on exit, exceptions, Ctrl-C and SIGTERM; only
pids this script started are signalled.
"""
import argparse
import contextlib
import glob
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from helpers import netns  # noqa: E402
from run import stop_proc, wait_until  # noqa: E402  (bench/run.py's, shared by the benches)

IP_C, IP_M = "10.88.0.1", "10.88.0.2"
PORT = 5201
CLK_TCK = os.sysconf("SC_CLK_TCK")
SNAP = {}


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# -- the vswitch package under test --------------------------------------------

def snapshot(tmp):
    """Copy the vswitch package (with its built fast path) to tmp; return a note."""
    import importlib.util
    src = os.path.join(ROOT, "vswitch")
    if not glob.glob(os.path.join(src, "datapath", "_datapath*.so")):
        spec = importlib.util.find_spec("vswitch")
        src = os.path.dirname(spec.origin)
    dst = os.path.join(tmp, "snapshot")
    shutil.copytree(src, os.path.join(dst, "vswitch"), ignore=shutil.ignore_patterns("__pycache__"))
    SNAP["dir"] = dst
    digest = {}
    for rel in ("datapath/_datapath.abi3.so", "bridge/bond.py"):
        path = os.path.join(dst, "vswitch", rel)
        if os.path.exists(path):
            with open(path, "rb") as f:
                digest[rel] = hashlib.sha256(f.read()).hexdigest()[:12]
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--short", "--", "vswitch"],
                           capture_output=True, text=True).stdout.split("\n")
    dirty = [l.strip() for l in dirty if l.strip()]
    SNAP["note"] = (f"vswitch from {src} at HEAD {head}"
                    + (f", uncommitted: {'; '.join(dirty)}" if dirty else ", clean")
                    + "; sha256[:12] " + ", ".join(f"{k} {v}" for k, v in digest.items()))
    env = dict(os.environ)
    env["PYTHONPATH"] = dst + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONSAFEPATH"] = "1"
    SNAP["env"] = env


def stop_pid(pid, grace=10):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def cpu_ns(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // CLK_TCK
    except (OSError, ValueError, IndexError):
        return 0


# -- one run -------------------------------------------------------------------

class Run:
    def __init__(self, mode, stack, tmp):
        self.mode, self.stack = mode, stack
        self.work = tempfile.mkdtemp(prefix=f"{mode}-", dir=tmp)
        self.rundir = os.path.join(self.work, "run")
        self.pid = None
        self.notes = []

    def vsctl(self, *args, check=True):
        cmd = [sys.executable, "-m", "vswitch.cli.vsctl", "--rundir", self.rundir, *args]
        proc = netns.run(self.s, *cmd, env=SNAP["env"], check=False, timeout=20)
        if check and proc.returncode != 0:
            raise RuntimeError(f"vsctl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def build(self):
        st = self.stack
        self.s = st.enter_context(netns.namespace("bS"))
        self.c = st.enter_context(netns.namespace("bC"))
        self.m = st.enter_context(netns.namespace("bM"))
        s, c, m = self.s, self.c, self.m
        members = ["u1"] if self.mode == "single" else ["u1", "u2"]
        netns.run(s, "ip", "link", "add", "p1", "type", "veth", "peer", "name", "eth0", "netns", c)
        netns.run(m, "ip", "link", "add", "mbr", "type", "bridge")
        br_nf = netns.run(m, "sysctl", "-w", "net.bridge.bridge-nf-call-iptables=0", check=False)
        if br_nf.returncode != 0:
            self.notes.append("net.bridge.bridge-nf-call-iptables not present (br_netfilter not loaded)")
        for i, u in enumerate(members, 1):
            netns.run(s, "ip", "link", "add", u, "type", "veth", "peer", "name", f"m{i}", "netns", m)
            netns.run(m, "ip", "link", "set", f"m{i}", "master", "mbr")
            netns.run(m, "ip", "link", "set", f"m{i}", "up")
            netns.run(s, "ip", "link", "set", u, "up")
        netns.run(s, "ip", "link", "set", "p1", "up")
        netns.run(c, "ip", "addr", "add", f"{IP_C}/24", "dev", "eth0")
        netns.run(c, "ip", "link", "set", "eth0", "up")
        netns.run(m, "ip", "addr", "add", f"{IP_M}/24", "dev", "mbr")
        netns.run(m, "ip", "link", "set", "mbr", "up")
        self.c_mac = netns.run(c, "cat", "/sys/class/net/eth0/address").stdout.strip()

        os.makedirs(self.rundir, exist_ok=True)
        daemon = [sys.executable, "-m", "vswitch.daemon", "--rundir", self.rundir,
                  "--db", os.path.join(self.work, "conf.db"),
                  "--log-file", os.path.join(self.work, "vswitchd.log"), "--detach"]
        proc = netns.run(s, *daemon, env=SNAP["env"], check=False, timeout=20)
        pidfile = os.path.join(self.rundir, "vswitchd.pid")
        if os.path.exists(pidfile):
            with open(pidfile) as f:
                self.pid = int(f.read())
            st.callback(stop_pid, self.pid)
        if proc.returncode != 0:
            raise RuntimeError(f"vswitchd failed: {proc.stderr}\n{self.read_log()}")
        self.vsctl("add-br", "br0")
        self.vsctl("add-port", "br0", "p1")
        if self.mode == "single":
            self.vsctl("add-port", "br0", "u1")
        else:
            self.vsctl("add-bond", "br0", "bond0", "u1", "u2", "bond_mode=balance-tcp",
                       "other_config:bond-rebalance-interval=0")
            ok = wait_until(self._bond_ready, 10, 0.2)
            if not ok:
                self.notes.append("bond: members not both enabled after 10 s: "
                                  + " ".join(self.vsctl("bond-show", "bond0", check=False).split()))
        # ARP and reachability
        ok = wait_until(lambda: netns.run(c, "ping", "-c", "1", "-W", "1", IP_M,
                                          check=False).returncode == 0, 15, 0.2)
        neigh = netns.run(c, "ip", "neigh", "show", IP_M).stdout.strip()
        self.arp = neigh
        if not ok:
            raise RuntimeError(f"C cannot ping M ({self.mode}); neigh: {neigh!r}\n{self.diagnose()}")

    def diagnose(self):
        """What the switch and the upstream bridge hold, for a failed setup."""
        out = []
        for args in (["fdb-show", "br0"], ["bond-show"], ["dump-dp-flows"], ["dump-ports", "br0"]):
            out.append(f"$ vsctl {' '.join(args)}\n{self.vsctl(*args, check=False).rstrip()}")
        out.append("$ M: bridge fdb show br mbr\n" + netns.run(
            self.m, "bridge", "fdb", "show", "br", "mbr", check=False).stdout.rstrip())
        out.append(f"C eth0 MAC {self.c_mac}")
        out.append("vswitchd log tail:\n" + "\n".join(self.read_log().splitlines()[-15:]))
        return "\n".join(out)

    def _bond_ready(self):
        out = self.vsctl("--format", "json", "bond-show", "bond0", check=False)
        try:
            data = json.loads(out)
        except ValueError:
            return False
        text = json.dumps(data)
        self.bond_show = data
        return text.count('"enabled"') >= 2 or text.count("enabled") >= 2

    def read_log(self):
        try:
            with open(os.path.join(self.work, "vswitchd.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def ports(self):
        try:
            return json.loads(self.vsctl("--format", "json", "dump-ports", "br0"))
        except (RuntimeError, ValueError) as e:
            return {"error": str(e)}

    def fdb_port(self):
        out = netns.run(self.m, "bridge", "-j", "fdb", "show", "br", "mbr", check=False).stdout
        try:
            for e in json.loads(out or "[]"):
                if e.get("mac") == self.c_mac:
                    return e.get("ifname")
        except ValueError:
            pass
        return None

    def measure(self, seconds, streams):
        server = subprocess.Popen(["ip", "netns", "exec", self.m, "iperf3", "-s", "-1", "-p", str(PORT)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.stack.callback(stop_proc, server)
        try:
            wait_until(lambda: f":{PORT}" in netns.run(self.m, "ss", "-ltn").stdout, 5, 0.05)
            ports0, cpu0 = self.ports(), cpu_ns(self.pid)
            fdb, stop = [], threading.Event()

            def sample():
                while not stop.is_set():
                    fdb.append(self.fdb_port())
                    stop.wait(0.2)
            t = threading.Thread(target=sample, daemon=True)
            t.start()
            try:
                client = netns.run(self.c, "iperf3", "-c", IP_M, "-p", str(PORT), "-P", str(streams),
                                   "-t", str(seconds), "-J", "--connect-timeout", "3000",
                                   check=False, timeout=seconds + 30)
            finally:
                stop.set()
                t.join()
            cpu1, ports1 = cpu_ns(self.pid), self.ports()
        finally:
            stop_proc(server)
        res = {"mode": self.mode, "notes": self.notes, "arp": self.arp,
               "vswitchd_cpu_s": (cpu1 - cpu0) / 1e9}
        try:
            out = json.loads(client.stdout)
        except ValueError:
            res.update(gbps=0.0, error=(client.stderr or client.stdout).strip()[:300])
            return res
        end = out.get("end", {})
        res["gbps"] = end.get("sum_received", {}).get("bits_per_second", 0.0) / 1e9
        res["retrans"] = end.get("sum_sent", {}).get("retransmits")
        if out.get("error"):
            res["error"] = out["error"][:300]
        # per-interval sums: a stall shows as zero-throughput intervals
        res["intervals_gbps"] = [round(i["sum"]["bits_per_second"] / 1e9, 2)
                                 for i in out.get("intervals", [])]
        res["tx_split"] = port_delta(ports0, ports1)
        seen = [p for p in fdb if p]
        res["fdb_samples"] = len(fdb)
        res["fdb_ports_seen"] = sorted(set(seen))
        res["fdb_moves"] = sum(1 for a, b in zip(seen, seen[1:]) if a != b)
        res["log_warnings"] = [l for l in self.read_log().splitlines()
                               if any(w in l for w in ("WARN", "ERR", "Traceback"))][-10:]
        return res


def _port_rows(dump):
    """dump-ports json -> {name: {"tx_packets": n, "rx_packets": n}} whatever its shape."""
    rows = {}
    if isinstance(dump, dict):
        items = dump.get("ports", dump.get("data", dump))
        if isinstance(items, dict):
            items = [dict(v, name=k) if isinstance(v, dict) else v for k, v in items.items()]
    else:
        items = dump
    for row in items if isinstance(items, list) else []:
        if not isinstance(row, dict):
            continue
        name = row.get("name") or row.get("port") or row.get("interface")
        tx = row.get("tx_packets", (row.get("tx") or {}).get("packets") if isinstance(row.get("tx"), dict) else None)
        rx = row.get("rx_packets", (row.get("rx") or {}).get("packets") if isinstance(row.get("rx"), dict) else None)
        if name is not None:
            rows[str(name)] = {"tx_packets": tx or 0, "rx_packets": rx or 0}
    return rows


def port_delta(before, after):
    a, b = _port_rows(before), _port_rows(after)
    return {k: {f: v[f] - a.get(k, {}).get(f, 0) for f in v} for k, v in b.items()}


def one_run(mode, tmp, seconds, streams):
    with contextlib.ExitStack() as stack:
        r = Run(mode, stack, tmp)
        r.build()
        return r.measure(seconds, streams)


# -- report --------------------------------------------------------------------

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def report(samples, args):
    single = [s for s in samples if s["mode"] == "single"]
    bond = [s for s in samples if s["mode"] == "bond"]
    lines = []
    for name, runs in (("single", single), ("bond", bond)):
        for i, s in enumerate(runs, 1):
            split = s.get("tx_split", {})
            members = {k: split[k]["tx_packets"] for k in ("u1", "u2") if k in split}
            lines.append(f"{name} #{i}: {s.get('gbps', 0):.2f} Gbit/s, retrans {s.get('retrans')}, "
                         f"vswitchd CPU {s['vswitchd_cpu_s']:.2f} s, tx pkts {members}, "
                         f"fdb moves {s.get('fdb_moves')} {s.get('fdb_ports_seen')}, "
                         f"load before: {s['load_before']}"
                         + (f", ERROR {s['error']}" if s.get("error") else ""))
    gs, gb = med([s.get("gbps") for s in single]), med([s.get("gbps") for s in bond])
    summary = {
        "single_gbps_median": gs, "bond_gbps_median": gb,
        "single_retrans_median": med([s.get("retrans") for s in single]),
        "bond_retrans_median": med([s.get("retrans") for s in bond]),
        "ratio": gb / gs if gs and gb is not None else None,
    }
    shares = []
    for s in bond:
        split = s.get("tx_split", {})
        u1, u2 = (split.get(k, {}).get("tx_packets", 0) for k in ("u1", "u2"))
        if u1 + u2:
            shares.append(u1 / (u1 + u2))
    summary["bond_u1_tx_share_median"] = med(shares)
    warnings = []
    for s in bond:
        if s.get("fdb_moves"):
            warnings.append(f"Linux bridge relearned C's MAC {s['fdb_moves']} times between "
                            f"{s['fdb_ports_seen']} in a bond run (MAC flapping upstream)")
        split = s.get("tx_split", {})
        if any(split.get(k, {}).get("tx_packets", 0) == 0 for k in ("u1", "u2")):
            warnings.append(f"bond run used one member only: {split}")
    for s in samples:
        for f in s.get("setup_failures", []):
            keep = [l for l in f.splitlines() if "cannot ping" in l or "bond0 " in l
                    or "ff:ff:ff:ff:ff:ff" in l or l.startswith("C eth0")]
            warnings.append(f"{s['mode']} rep {s.get('rep')}: setup failed and was rebuilt:\n    "
                            + "\n    ".join(keep))
        if s.get("gbps", 0) == 0 or s.get("error"):
            warnings.append(f"{s['mode']}: {s.get('error') or 'no data (TCP stalled)'}")
        if any(v == 0 for v in s.get("intervals_gbps", [])):
            warnings.append(f"{s['mode']}: zero-throughput intervals {s['intervals_gbps']}")
        if "REACHABLE" not in (s.get("arp") or "") and "STALE" not in (s.get("arp") or "") \
                and "DELAY" not in (s.get("arp") or ""):
            warnings.append(f"{s['mode']}: ARP entry for {IP_M}: {s.get('arp')!r}")
    return summary, lines, warnings


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--json", help="also write the raw samples here")
    ap.add_argument("--setup-retries", type=int, default=3,
                    help="rebuild (new namespaces, new random MACs) when C cannot reach M")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bond_tcp.py needs root (namespaces)")
    for tool in ("iperf3", "ip", "bridge", "ss", "ping"):
        if not shutil.which(tool):
            sys.exit(f"missing tool: {tool}")
    signal.signal(signal.SIGTERM, _on_sigterm)
    tmp = tempfile.mkdtemp(prefix="bondbench-")
    samples = []
    try:
        snapshot(tmp)
        log(SNAP["note"])
        for rep in range(args.reps):
            for mode in ("single", "bond"):
                load = uptime()
                log(f"rep {rep + 1}/{args.reps} {mode}  [{load}]")
                failures = []
                for _ in range(1 + args.setup_retries):
                    try:
                        s = one_run(mode, tmp, args.seconds, args.streams)
                        break
                    except RuntimeError as e:
                        failures.append(str(e)[:4000])
                        log(f"  setup failed (fresh namespaces/MACs next): {str(e).splitlines()[0]}")
                        s = {"mode": mode, "gbps": 0.0, "error": str(e)[:4000], "vswitchd_cpu_s": 0.0}
                s["setup_failures"] = failures
                s["load_before"] = load.split("load average:")[-1].strip()
                s["rep"] = rep + 1
                samples.append(s)
                log(f"  {s.get('gbps', 0):.2f} Gbit/s retrans {s.get('retrans')} "
                    f"split {s.get('tx_split')} fdb moves {s.get('fdb_moves')}"
                    + (f" ERROR {s['error']}" if s.get("error") else ""))
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary, lines, warnings = report(samples, args)
    print(f"# bond_tcp: iperf3 -P {args.streams} -t {args.seconds}, {args.reps} reps interleaved")
    print(SNAP["note"])
    for l in lines:
        print(l)
    print(json.dumps(summary, indent=1))
    for w in warnings:
        print("WARNING:", w)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "samples": samples, "warnings": warnings,
                       "snapshot": SNAP["note"]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
