"""OpenFlow tables at controller scale, side by side with a private Open vSwitch.

    python3 bench/of_scale.py [--rules 100000] [--big 300000] [--rounds 3]
                              [--acl 10000] [--flows 10000] [--only add,big,acl,upcall]

Both switches run as daemons in their own namespaces (vswitchd from this
tree; ovs-vswitchd with the userspace datapath, tests/helpers/ovs_peer.py),
and the real ovs-ofctl talks to their bridges' management sockets.  Phases:

  add     `ovs-ofctl -O OpenFlow13 add-flows br0 FILE` of --rules rules
          (`priority=P,tcp,nw_dst=A,tp_dst=B,actions=output:2`, P mixed);
          then `dump-flows` of them; then one flow-mod + barrier with the
          rules installed, timed from a Python client on the socket (median
          of 20, so ovs-ofctl's start-up is not counted); RSS of the daemon.
          Repeated --rounds times, vswitch and OVS interleaved.  add-flows
          runs once per --placements entry: "free" (no pinning, the
          scheduler's choice), "same" (daemon and ovs-ofctl on CPU 0),
          "split" (daemon on CPU 0, ovs-ofctl on CPU 1); each switch gets
          the same placement, so OVS's bimodality (it depends on whether the
          two share a CPU) is controlled, not sampled.  The daemon's CPU is
          read once it is idle again, so work done after the last reply is
          counted.
  dump    (only when asked: --only dump) --rules rules loaded once, then
          `dump-flows` --rounds times per switch, interleaved, with
          ovs-ofctl's own CPU time (the client's share of the wall time).
  big     --big rules loaded into the fresh daemons (this phase runs first):
          RSS before and after (target: 1M rules < 1 GiB, extrapolated).
  acl     --acl rules of a firewall-like table (nw_src/nw_dst at /8../32,
          mixed priorities) and --flows random TCP flows through a veth port:
          the number of megaflows each datapath installs (vsctl
          dpctl/dump-flows vs ovs-appctl dpctl/dump-flows).
  upcall  flow setups per second through the real slow path (in this
          process, bench/upcall_rate.py's set-up and loop) with --rules
          rules in table 0 above a NORMAL rule, for frames that miss them
          and frames that each hit one, vs the NORMAL rule alone.

Results are printed as markdown; medians of the rounds, with /proc/loadavg.
"""
import argparse
import os
import random
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, HERE)

from helpers import netns  # noqa: E402
from helpers.ovs_peer import OvsPeer  # noqa: E402
from helpers.vswitchd import VSwitchd  # noqa: E402
from vswitch.ofproto.ofp import ApplyActions, FlowMod, Match, Output, decode, encode, split_messages  # noqa: E402
from vswitch.ofproto.ofp import messages as m  # noqa: E402
from vswitch.ofproto.ofp.constants import OFPFC_ADD, OFPFC_DELETE_STRICT  # noqa: E402

OF13 = 4
LATENCY_SAMPLES = 20
PRIORITIES = 1000          # rules spread over this many priorities
OUT_PORT = 2
TCP = 6
STAT_UTIME, STAT_STIME = 11, 12   # /proc/PID/stat fields after "(comm)", 0-based


# --- rule sets -----------------------------------------------------------------

def ip_text(v):
    return ".".join(str((v >> s) & 0xFF) for s in (24, 16, 8, 0))


def tcp_rules(n, seed=1):
    rng = random.Random(seed)
    return [f"priority={rng.randrange(1, PRIORITIES)},tcp,nw_dst={ip_text(0x0A000000 + i)},"
            f"tp_dst={1 + i % 60000},actions=output:{OUT_PORT}" for i in range(n)]


def acl_rules(n, seed=2):
    """Firewall-like: source and destination prefixes /8../32, some with a
    port; priority grows with specificity as an ACL compiler would emit."""
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n:
        ps, pd = rng.choice((8, 16, 24, 32)), rng.choice((8, 16, 24, 32))
        src = rng.getrandbits(32) & (0xFFFFFFFF << (32 - ps))
        dst = rng.getrandbits(32) & (0xFFFFFFFF << (32 - pd))
        src |= 0x0A000000 & (0xFF000000 if ps >= 8 else 0)
        src = (src & ~0xFF000000 | 0x0A000000) & (0xFFFFFFFF << (32 - ps)) & 0xFFFFFFFF
        dst = (dst & ~0xFF000000 | 0x14000000) & (0xFFFFFFFF << (32 - pd)) & 0xFFFFFFFF
        port = f",tp_dst={rng.choice((22, 80, 443, 8080))}" if rng.random() < 0.3 else ""
        if (ps, pd, src, dst, port) in seen:
            continue
        seen.add((ps, pd, src, dst, port))
        action = "drop" if rng.random() < 0.5 else f"output:{OUT_PORT}"
        out.append(f"priority={ps + pd + (1 if port else 0)},tcp,nw_src={ip_text(src)}/{ps},"
                   f"nw_dst={ip_text(dst)}/{pd}{port},actions={action}")
    out.append("priority=0,actions=drop")
    return out


# --- the two switches ------------------------------------------------------------

def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Ours:
    """vswitchd from this tree with bridge br0, in its own namespace."""
    label = "vswitch"

    def __init__(self, ns, workdir):
        self.ns, self.vs = ns, VSwitchd(ns, workdir).start()
        self.vs.vsctl("add-br", "br0")
        self.target = f"unix:{self.vs.rundir}/br0.mgmt"
        self.pid = self.vs.pid

    def add_port(self, name):
        self.vs.vsctl("add-port", "br0", name)

    def megaflow_count(self):
        out = self.vs.vsctl("dpctl/dump-flows")
        return sum(1 for line in out.splitlines() if "actions:" in line)

    def close(self):
        self.vs.stop()


class Theirs:
    """ovs-vswitchd (userspace datapath) with bridge br0, in its own namespace."""
    label = "OVS"

    def __init__(self, ns, workdir):
        self.ns, self.ovs = ns, OvsPeer(ns, timeout=120)
        self.ovs.start()
        self.ovs.add_bridge("br0")
        self.target = f"unix:{self.ovs.dir}/br0.mgmt"
        with open(os.path.join(self.ovs.dir, "ovs-vswitchd.pid")) as f:
            self.pid = int(f.read())

    def add_port(self, name):
        self.ovs.vsctl("add-port", "br0", name)

    def megaflow_count(self):
        out = self.ovs.appctl("dpctl/dump-flows")
        return sum(1 for line in out.splitlines() if "actions:" in line)

    def close(self):
        self.ovs.stop()


def ofctl(target, *args, timeout=3600, cpus=None):
    """Run ovs-ofctl (on the CPUs `cpus`, e.g. "0", if given) -> (seconds, stdout)."""
    pin = ["taskset", "-c", cpus] if cpus is not None else []
    t0 = time.perf_counter()
    proc = subprocess.run([*pin, "ovs-ofctl", "-O", "OpenFlow13", *args[:1], target, *args[1:]],
                          capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"ovs-ofctl {args[0]} failed: {proc.stderr[:500]}")
    return elapsed, proc.stdout


class Client:
    """A minimal OpenFlow 1.3 client on a unix socket (for timing one
    flow-mod + barrier without a process start-up in the measurement)."""

    def __init__(self, target):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(target.split(":", 1)[1])
        self.buf, self.xid = b"", 0
        self.send(m.Hello(versions=(OF13,), version=OF13))
        self.wait_for(m.Hello)

    def send(self, msg):
        self.xid += 1
        msg.version, msg.xid = OF13, self.xid
        self.sock.sendall(encode(msg))

    def wait_for(self, kind):
        while True:
            raws, self.buf = split_messages(self.buf)
            for raw in raws:
                msg = decode(raw)
                if isinstance(msg, m.Error):
                    raise RuntimeError(f"OpenFlow error {msg.type}/{msg.code}")
                if isinstance(msg, kind):
                    self.buf = b"".join(raws[raws.index(raw) + 1:]) + self.buf
                    return msg
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("connection closed")
            self.buf += data

    def flow_mod_latency(self, n=LATENCY_SAMPLES):
        """Median seconds from sending add + barrier to the barrier reply
        (the rule is deleted again, outside the timing)."""
        times = []
        for i in range(n):
            match = Match(eth_type=(0x800, None), ip_proto=(TCP, None),
                          ipv4_dst=(0xC0A80000 + i, None), tcp_dst=(9, None))
            fm = FlowMod(command=OFPFC_ADD, priority=PRIORITIES + 1, match=match,
                         instructions=[ApplyActions([Output(OUT_PORT)])])
            t0 = time.perf_counter()
            self.send(fm)
            self.send(m.BarrierRequest())
            self.wait_for(m.BarrierReply)
            times.append(time.perf_counter() - t0)
            self.send(FlowMod(command=OFPFC_DELETE_STRICT, priority=PRIORITIES + 1, match=match))
            self.send(m.BarrierRequest())
            self.wait_for(m.BarrierReply)
        return statistics.median(times)

    def close(self):
        self.sock.close()


# CPU placements of the add phase: (daemon's CPUs, ovs-ofctl's CPUs), None =
# anywhere.  On this VM a wake-up that crosses CPUs costs tens of us, so
# whether the two share a CPU decides a round trip's cost (OVS's add-flows
# is bimodal unpinned: OF_SCALE_RESULTS.md); pinned, each switch gets the
# same placement instead of whatever the scheduler picked.
PLACEMENTS = {"free": (None, None), "same": ("0", "0"), "split": ("0", "1")}
ALL_CPUS = f"0-{os.cpu_count() - 1}"


def pin_process(pid, cpus):
    """Move every thread of `pid` to `cpus` (None: all CPUs)."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpus or ALL_CPUS, str(pid)],
                   check=True, capture_output=True)


def settled_cpu_seconds(pid, quiet_s=0.05, polls=40):
    """The daemon's CPU time once it has stopped working (a deferred batch
    settled after the last reply is counted: no hidden work)."""
    last = cpu_seconds(pid)
    for _ in range(polls):
        time.sleep(quiet_s)
        now = cpu_seconds(pid)
        if now == last:
            return now
        last = now
    return last


def cpu_seconds(pid):
    """User + system CPU time of a process so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[STAT_UTIME]) + int(fields[STAT_STIME])) / os.sysconf("SC_CLK_TCK")


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def write_rules(lines):
    fd, path = tempfile.mkstemp(prefix="of-scale-", suffix=".flows")
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


# --- phases ----------------------------------------------------------------------

def phase_add(switches, n, rounds, placements=("free",)):
    """-> {label: {measure: [values per round]}}; add-flows is timed once per
    placement per round ("add@same" etc.), the last placement's rules stay
    for the dump, latency and RSS."""
    path = write_rules(tcp_rules(n))
    keys = [f"{k}@{p}" for p in placements for k in ("add", "cpu")]
    results = {s.label: {"dump": [], "latency": [], "rss": [], "load": [], **{k: [] for k in keys}}
               for s in switches}
    try:
        for _ in range(rounds):
            for s in switches:
                r = results[s.label]
                r["load"].append(loadavg())
                for place in placements:
                    daemon_cpus, ofctl_cpus = PLACEMENTS[place]
                    ofctl(s.target, "del-flows")
                    settled_cpu_seconds(s.pid)
                    pin_process(s.pid, daemon_cpus)
                    try:
                        cpu = cpu_seconds(s.pid)
                        r[f"add@{place}"].append(ofctl(s.target, "add-flows", path, cpus=ofctl_cpus)[0])
                        r[f"cpu@{place}"].append((settled_cpu_seconds(s.pid) - cpu) / n)
                    finally:
                        pin_process(s.pid, None)
                elapsed, out = ofctl(s.target, "dump-flows")
                got = sum(1 for line in out.splitlines() if "actions=" in line)
                if got != n:
                    raise RuntimeError(f"{s.label}: dump-flows shows {got} rules, added {n}")
                r["dump"].append(elapsed)
                client = Client(s.target)
                r["latency"].append(client.flow_mod_latency())
                client.close()
                r["rss"].append(rss_bytes(s.pid))
    finally:
        os.unlink(path)
    return results


def ofctl_cpu(target, *args):
    """(wall seconds, ovs-ofctl's own CPU seconds) of one ovs-ofctl run."""
    before = os.times()
    elapsed, out = ofctl(target, *args)
    after = os.times()
    return elapsed, (after.children_user - before.children_user
                     + after.children_system - before.children_system), out


def phase_dump(switches, n, rounds):
    """dump-flows of n rules, rounds times per switch, interleaved: wall time
    and ovs-ofctl's CPU (parsing and printing, the same client for both)."""
    path = write_rules(tcp_rules(n))
    results = {s.label: {"dump": [], "client": [], "daemon": [], "load": [], "rss": []} for s in switches}
    try:
        for s in switches:
            ofctl(s.target, "del-flows")
            ofctl(s.target, "add-flows", path)
            results[s.label]["rss"].append(rss_bytes(s.pid))
        for _ in range(rounds):
            for s in switches:
                r = results[s.label]
                r["load"].append(loadavg())
                daemon_before = cpu_seconds(s.pid)
                elapsed, cpu, out = ofctl_cpu(s.target, "dump-flows")
                r["daemon"].append(cpu_seconds(s.pid) - daemon_before)
                got = sum(1 for line in out.splitlines() if "actions=" in line)
                if got != n:
                    raise RuntimeError(f"{s.label}: dump-flows shows {got} rules, added {n}")
                r["dump"].append(elapsed)
                r["client"].append(cpu)
        for s in switches:
            results[s.label]["rss"].append(rss_bytes(s.pid))
    finally:
        os.unlink(path)
    return results


def report_dump(results, n):
    print(f"\n### dump-flows of {n:,} rules, {len(results['vswitch']['dump'])} interleaved rounds, "
          f"medians; load per round: {', '.join(results['vswitch']['load'])}\n")
    print("| switch | dump-flows wall | all rounds | ovs-ofctl CPU | daemon CPU | RSS before, after the dumps "
          "| ratio wall (CPU) vswitch/OVS | target |")
    print("|---|---|---|---|---|---|---|---|")
    base = statistics.median(results["OVS"]["dump"]) if "OVS" in results else None
    base_cpu = statistics.median(results["OVS"]["daemon"]) if "OVS" in results else None
    for label, r in results.items():
        med = statistics.median(r["dump"])
        rss = " / ".join(f"{v / 2**20:,.0f} MiB" for v in r["rss"])
        cpu = statistics.median(r["daemon"])
        ratio = f"{med / base:.2f} ({cpu / base_cpu:.2f})" if base and base_cpu else "-"
        print(f"| {label} | {med:.3f} s | {', '.join(f'{v:.2f}' for v in r['dump'])} "
              f"| {statistics.median(r['client']):.3f} s | {cpu:.2f} s | {rss} | {ratio} | <= 2x |")


def phase_big(switches, n):
    path = write_rules(tcp_rules(n, seed=3))
    out = {}
    try:
        for s in switches:
            ofctl(s.target, "del-flows")
            before = rss_bytes(s.pid)
            elapsed = ofctl(s.target, "add-flows", path)[0]
            out[s.label] = (elapsed, before, rss_bytes(s.pid))
            ofctl(s.target, "del-flows")
    finally:
        os.unlink(path)
    return out


# --- megaflows and flow setups (datapath traffic) ------------------------------------

def tcp_frame(src, dst, sport, dport, smac=0x020000000001, dmac=0x020000000002):
    """Ethernet + IPv4 + TCP SYN (checksums left 0: neither switch checks)."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, TCP, 0,
                     src.to_bytes(4, "big"), dst.to_bytes(4, "big"))
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 0x50, 0x02, 65535, 0, 0)
    return (dmac.to_bytes(6, "big") + smac.to_bytes(6, "big") + b"\x08\x00" + ip + tcp + b"\0" * 6)


def acl_frames(rules, n, seed=4):
    """n random TCP flows, most of them inside some rule's prefixes (a
    firewall's traffic mostly hits its rules), the rest anywhere in 10/8 ->
    20/8."""
    rng = random.Random(seed)
    parsed = []
    for line in rules:
        fields = dict(part.split("=", 1) for part in line.split(",") if "=" in part)
        if "nw_src" in fields:
            parsed.append([tuple(fields[k].split("/")) for k in ("nw_src", "nw_dst")])
    frames = []
    for _ in range(n):
        if rng.random() < 0.7:
            (s, ps), (d, pd) = rng.choice(parsed)
            src = _ip_int(s) | rng.getrandbits(32 - int(ps)) if int(ps) < 32 else _ip_int(s)
            dst = _ip_int(d) | rng.getrandbits(32 - int(pd)) if int(pd) < 32 else _ip_int(d)
        else:
            src, dst = 0x0A000000 | rng.getrandbits(24), 0x14000000 | rng.getrandbits(24)
        frames.append(tcp_frame(src, dst, rng.randrange(1024, 65536), rng.choice((22, 80, 443, 8080, 3306))))
    return frames


def _ip_int(text):
    return int.from_bytes(socket.inet_aton(text), "big")


def inprocess_switch(ns):
    """The real datapath and slow path in this process (bench/upcall_rate.py's
    set-up: br0 with veth ports pa and qa; frames are sent into pb)."""
    from upcall_rate import config, veth_pairs
    from vswitch.datapath.dpif import Datapath
    from vswitch.switch import Switch
    veth_pairs(ns, (("pa", "pb"), ("qa", "qb")))
    with netns.entered(ns):
        dp = Datapath(upcall_ring_size=4096)
        sw = Switch(dp)
        sw.apply_config(config())
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind(("pb", 0))
    return dp, sw, sock


def phase_acl_ours(n_rules, n_flows):
    from upcall_rate import drive
    rules = acl_rules(n_rules)
    frames = acl_frames(rules, n_flows)
    with netns.namespace("ofs-acl") as ns:
        dp, sw, sock = inprocess_switch(ns)
        try:
            sw.add_flows("br0", rules)
            wall, cpu = drive(sw, dp, sock, frames)
            return dp.stats()["n_flows"], dp.stats()["upcalls"]
        finally:
            sock.close()
            sw.close()
            dp.close()


def phase_acl_theirs(ovs, n_rules, n_flows):
    rules = acl_rules(n_rules)
    frames = acl_frames(rules, n_flows)
    from upcall_rate import veth_pairs
    veth_pairs(ovs.ns, (("oa", "ob"),))
    ovs.add_port("oa")
    path = write_rules(rules)
    try:
        ofctl(ovs.target, "del-flows")
        ofctl(ovs.target, "add-flows", path)
    finally:
        os.unlink(path)
    with netns.entered(ovs.ns):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    try:
        sock.bind(("ob", 0))
        for i, frame in enumerate(frames):
            sock.send(frame)
            if i % 256 == 255:
                time.sleep(0.01)   # let its handler keep up (no upcall drops)
        time.sleep(1.0)
        return ovs.megaflow_count()
    finally:
        sock.close()


UPCALL_CASES = (("NORMAL rule only", False, "hit"),
                ("{n:,} rules + NORMAL, frames miss the rules", True, "miss"),
                ("{n:,} rules + NORMAL, each frame hits its own rule", True, "hit"))


def phase_upcall(n_rules, n_frames, rounds):
    """Setups/s with `n_rules` (tcp_rules) in table 0 above a NORMAL rule vs
    the NORMAL rule alone.  Frames: upcall_rate's --tcp shape, a new source
    MAC each (NORMAL gives each its own megaflow); "hit" frames go to rule
    i's nw_dst and tp_dst (each its own exact megaflow), "miss" ones to
    10.0.0.2:80, which no rule has (the lookup misses in the rules' subtable)."""
    from upcall_rate import drive
    frames = {"hit": [], "miss": []}
    for i in range(n_frames):
        smac = 0x020000000000 | (i + 1)
        rule = i * max(1, n_rules // n_frames) % max(1, n_rules)
        frames["hit"].append(tcp_frame(0x0A000001, 0x0A000000 + rule, 1024 + i % 64000,
                                       1 + rule % 60000, smac=smac))
        frames["miss"].append(tcp_frame(0x0A000001, 0x0A000002, 1024 + i % 64000, 80, smac=smac))
    rules = tcp_rules(n_rules)
    out = {label: [] for label, _, _ in UPCALL_CASES}
    out["revalidation"] = revalidations = []
    for _ in range(rounds):
        for label, loaded, kind in UPCALL_CASES:
            with netns.namespace("ofs-up") as ns:
                dp, sw, sock = inprocess_switch(ns)
                try:
                    sw.add_flows("br0", ["priority=0,actions=NORMAL"] + (rules if loaded else []))
                    wall, cpu = drive(sw, dp, sock, frames[kind])
                    st = dp.stats()
                    out[label].append((st["n_flows"] / wall, st["upcalls"] / cpu, st["n_flows"]))
                    if loaded and kind == "hit":
                        revalidations.append(time_revalidation(sw, dp, n_rules, n_frames))
                finally:
                    sock.close()
                    sw.close()
                    dp.close()
    return out


def time_revalidation(sw, dp, n_rules, n_frames):
    """With the rules and one megaflow per frame installed: the time of a
    flow-mod (add above one frame's rule; strict delete of another's) in the
    slow path and the megaflows each one deleted -> ((s, deleted), (s, deleted))."""
    step = max(1, n_rules // n_frames)
    out = []
    for i, text in ((5, "add"), (7, "del")):
        rule = i * step
        spec = f"tcp,nw_dst={ip_text(0x0A000000 + rule)},tp_dst={1 + rule % 60000}"
        line = next(line for line in tcp_rules(n_rules) if f"nw_dst={ip_text(0x0A000000 + rule)}," in line)
        before, t0 = dp.stats()["n_flows"], time.perf_counter()
        if text == "add":
            sw.add_flows("br0", [f"priority={PRIORITIES + 1},{spec},actions=drop"])
        else:
            sw.del_flows("br0", f"{line.split(',')[0]},{spec}", strict=True)
        out.append((time.perf_counter() - t0, before - dp.stats()["n_flows"]))
    return tuple(out)


def report_add(results, n, placements=("free",)):
    ours, theirs = results["vswitch"], results.get("OVS")
    med = {label: {k: statistics.median(v) for k, v in r.items() if k != "load"}
           for label, r in results.items()}
    print(f"\n### {n:,} rules (`tcp,nw_dst,tp_dst`, {PRIORITIES} priorities), "
          f"{len(ours['dump'])} rounds, medians; load at each round: {', '.join(ours['load'])}\n")
    print("Placements (daemon CPUs / ovs-ofctl CPUs): "
          + "; ".join(f"{p}: {PLACEMENTS[p][0] or 'any'} / {PLACEMENTS[p][1] or 'any'}" for p in placements)
          + ".  Daemon CPU is read once it is idle again (settling included).\n")
    print("| measure | vswitch | OVS | ratio (vswitch/OVS) | target |")
    print("|---|---|---|---|---|")
    o, t = med["vswitch"], med.get("OVS")

    def row(name, key, fmt, target):
        a = o[key]
        b = t[key] if t else None
        ratio = f"{a / b:.2f}" if b else "-"
        print(f"| {name} | {fmt(a)} | {fmt(b) if b else '-'} | {ratio} | {target} |")
    for p in placements:
        row(f"add-flows time, {p}", f"add@{p}", lambda v: f"{v:.2f} s ({n / v:,.0f} rules/s)", "rate >= OVS")
        row(f"daemon CPU per rule, {p}", f"cpu@{p}", lambda v: f"{v * 1e6:.0f} us", "")
    row("dump-flows time", "dump", lambda v: f"{v:.2f} s", "<= 2x OVS")
    row("flow-mod + barrier with rules installed", "latency", lambda v: f"{v * 1e3:.2f} ms", "<= 10 ms")
    row("daemon RSS with rules installed", "rss", lambda v: f"{v / 2**20:,.0f} MiB", "")
    print()
    for label, r in results.items():
        for p in placements:
            print(f"- {label} add-flows ({p}) per round: {', '.join(f'{v:.2f} s' for v in r[f'add@{p}'])}; "
                  f"CPU per rule: {', '.join(f'{v * 1e6:.0f} us' for v in r[f'cpu@{p}'])}")
    return theirs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", type=int, default=100_000)
    ap.add_argument("--big", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--acl", type=int, default=10_000)
    ap.add_argument("--flows", type=int, default=10_000)
    ap.add_argument("--frames", type=int, default=20_000, help="new flows in the upcall phase")
    ap.add_argument("--only", default="add,big,acl,upcall")
    ap.add_argument("--no-ovs", action="store_true")
    ap.add_argument("--placements", default="free,same,split",
                    help=f"add phase CPU placements, of {','.join(PLACEMENTS)}")
    args = ap.parse_args()
    phases = set(args.only.split(","))
    if not shutil.which("ovs-ofctl"):
        sys.exit("needs ovs-ofctl")
    print(f"of_scale: commit {subprocess.run(['git', '-C', HERE, 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()}, "
          f"{os.cpu_count()} CPUs, load {loadavg()}")
    work = tempfile.mkdtemp(prefix="of-scale-")
    switches = []
    try:
        with netns.namespace("ofs-vs") as ns_vs, netns.namespace("ofs-ovs") as ns_ovs:
            switches.append(Ours(ns_vs, work))
            if not args.no_ovs:
                switches.append(Theirs(ns_ovs, work))
            if "big" in phases:   # first: the daemons' RSS before is a fresh one's
                big = phase_big(switches, args.big)
                print(f"\n### {args.big:,} rules loaded\n")
                print("| switch | add-flows time | RSS before | RSS after | per rule | 1M rules (linear extrapolation) |")
                print("|---|---|---|---|---|---|")
                for label, (elapsed, before, after) in big.items():
                    per = (after - before) / args.big
                    print(f"| {label} | {elapsed:.1f} s | {before / 2**20:,.0f} MiB | {after / 2**20:,.0f} MiB "
                          f"| {per:,.0f} B | {(before + per * 1_000_000) / 2**30:.2f} GiB |")
            if "dump" in phases:
                report_dump(phase_dump(switches, args.rules, args.rounds), args.rules)
            if "add" in phases:
                placements = tuple(args.placements.split(","))
                report_add(phase_add(switches, args.rules, args.rounds, placements), args.rules, placements)
            if "acl" in phases:
                ours = phase_acl_ours(args.acl, args.flows)
                theirs = phase_acl_theirs(switches[1], args.acl, args.flows) if len(switches) > 1 else None
                print(f"\n### ACL: {args.acl:,} rules (nw_src/nw_dst /8../32, some tp_dst), "
                      f"{args.flows:,} random TCP flows; load {loadavg()}\n")
                print("| switch | megaflows | ratio (vswitch/OVS) | target |")
                print("|---|---|---|---|")
                print(f"| vswitch | {ours[0]:,} (upcalls {ours[1]:,}) | "
                      f"{ours[0] / theirs:.2f} | within 2x |" if theirs else f"| vswitch | {ours[0]:,} | - | |")
                if theirs:
                    print(f"| OVS | {theirs:,} | 1 | |")
            if "upcall" in phases:
                up = phase_upcall(args.rules, args.frames, args.rounds)
                reval = up.pop("revalidation")
                med = {k: (statistics.median(v[0] for v in vals), statistics.median(v[1] for v in vals),
                           statistics.median(v[2] for v in vals)) for k, vals in up.items()}
                print(f"\n### Flow setups, {args.frames:,} new flows (upcall_rate --tcp frames); "
                      f"{args.rounds} rounds, medians; load {loadavg()}\n")
                base = med[UPCALL_CASES[0][0]]
                print("| table 0 | setups/s (wall) | setups per slow-path CPU-second | megaflows "
                      "| ratio to NORMAL only (wall, CPU; target >= 0.5) |")
                print("|---|---|---|---|---|")
                for label, _, _ in UPCALL_CASES:
                    v = med[label]
                    print(f"| {label.format(n=args.rules)} | {v[0]:,.0f} | {v[1]:,.0f} | {v[2]:,.0f} "
                          f"| {v[0] / base[0]:.2f}, {v[1] / base[1]:.2f} |")
                print(f"\nIncremental revalidation with {args.rules:,} rules and the hit case's megaflows "
                      "installed (per round: seconds, megaflows deleted):")
                for (add_s, add_n), (del_s, del_n) in reval:
                    print(f"- add above one flow's rule: {add_s * 1e3:.2f} ms, {add_n} deleted; "
                          f"strict delete of another flow's rule: {del_s * 1e3:.2f} ms, {del_n} deleted")
            for s in switches:
                s.close()
            switches = []
    finally:
        for s in switches:
            s.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
