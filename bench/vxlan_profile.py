#!/usr/bin/env python3
"""bench/vxlan_profile.py — where the CPU goes, per GB carried, for TCP
through the VXLAN tunnel: the kernel's vxlan + bridge against vswitch with
the tc tier (issue 13), on bench/vxlan_tcp.py's topology and traffic.

    sudo python3 bench/vxlan_profile.py [--streams 1] [--congestion cubic] \\
        [--seconds 8] [--record 4] [--out /tmp/vxprof] \\
        [--modes kernel,vswitch-tc | vswitch-tc,vswitch-tc-port | ...] [--pin]

For each of the two --modes (default kernel, then vswitch-tc) one iperf3 run
of --seconds; for --record seconds in its middle `perf record -a -g -e
cpu-clock` (the VM has no PMU: cpu-clock samples), the VTEP devices'
counters (packets and bytes per packet: are super-frames kept whole end to
end?) and the client's and server's TCP counters (nstat: retransmits,
reordering, DSACKs). Prints, per mode, Gbit/s, the busiest (sending)
thread's CPU per GB, the devices, the TCP counters, how busy each CPU was
and where iperf3's client and server ran (on 2 CPUs, whether the receiver
sleeps on its own CPU or is stacked on the sender's decides as much as any
datapath cost), and the kernel functions whose inclusive CPU per GB (all
threads but idle) differs most between the modes. perf.data files stay in
--out for perf report.

Why per GB: the two modes carry different amounts in the same time, and
on 2 CPUs the sending thread (which runs the whole forwarding path in its
softirqs) is the bottleneck, so what matters is the cost of a byte.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import vxlan_tcp as vx  # noqa: E402
from helpers import netns  # noqa: E402

MODES = ("kernel", "vswitch-tc", "vswitch-tc-port")
SAMPLE_S = 250e-6      # perf record -e cpu-clock's default period (4 kHz)
BITS_PER_BYTE = 8
MS_PER_S = 1000
IDLE_COMM = "swapper"
TCP_COUNTERS = ("TcpRetransSegs", "TcpExtTCPSACKReorder", "TcpExtTCPDSACKRecvSegs",
                "TcpExtTCPOFOQueue", "TcpInSegs", "TcpOutSegs")
TOP_THREADS = 5  # the busiest threads listed per mode
TOP_THREADS_BY_CPU = 2  # the threads whose CPU placement is shown (iperf3's client and server)
MIN_DEVICE_PACKETS = 100  # devices that carried the run (not lo, not idle ports)


def stats(ns):
    out = netns.run(ns, "ip", "-s", "-j", "link", check=False).stdout
    return {d["ifname"]: d["stats64"] for d in json.loads(out or "[]")}


def device_rows(before, after):
    rows = []
    for ns in after:
        for dev, a in after[ns].items():
            b = before[ns].get(dev)
            if not b:
                continue
            d = {k: (a[k]["packets"] - b[k]["packets"], a[k]["bytes"] - b[k]["bytes"]) for k in ("rx", "tx")}
            if d["rx"][0] + d["tx"][0] >= MIN_DEVICE_PACKETS:
                rows.append((ns, dev, d))
    return rows


def tcp_counters(ns):
    out = netns.run(ns, "nstat", "-a", check=False).stdout
    vals = dict((line.split()[0], int(line.split()[1])) for line in out.splitlines()[1:] if line.split())
    return {k: vals.get(k, 0) for k in TCP_COUNTERS}


def samples(perf_data):
    """[(comm, tid, [symbols, leaf first], cpu)] from perf script."""
    out = subprocess.run(["perf", "script", "-i", perf_data, "-F", "comm,tid,cpu,ip,sym"],
                         capture_output=True, text=True).stdout
    res, cur = [], None
    for line in out.splitlines():
        if not line.startswith("\t"):
            if line.strip():
                f = line.split()
                cur = (f[0], f[1], [], f[2].strip("[]"))
                res.append(cur)
        elif cur:
            f = line.split()
            if len(f) >= 2:
                cur[2].append(f[1].split("+")[0])
    return res


def ms_per_gb(count, gbytes):
    return count * SAMPLE_S * MS_PER_S / gbytes


def profile(mode, args, tmp):
    setup = vx.kernel_setup() if mode == "kernel" else \
        vx.vswitch_setup(os.path.join(tmp, mode), tc=True, per_port=mode == "vswitch-tc-port")
    with setup as (hosts, _daemons):
        c, s = hosts["x"], hosts["y"]
        vx.wait_for(lambda: netns.run(c, "ping", "-c", "1", "-W", "1", vx.INNER["y"], check=False).returncode == 0,
                    timeout=15, what="ping through the tunnel")
        vteps = [n for n in netns.run(None, "ip", "netns", "list").stdout.split() if n.startswith(("vbx", "vby"))]
        pin_c, pin_s = (vx.pinned(cpu, args.pin) for cpu in vx.PIN_CPUS)
        server = subprocess.Popen(["ip", "netns", "exec", s, *pin_s, "iperf3", "-s", "-1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            cc = ["-C", args.congestion] if args.congestion else []
            client = subprocess.Popen(["ip", "netns", "exec", c, *pin_c, "iperf3", "-c", vx.INNER["y"], "-P",
                                       str(args.streams), "-t", str(args.seconds), "-J", *cc],
                                      stdout=subprocess.PIPE, text=True)
            time.sleep((args.seconds - args.record) / 2)
            before = {n: stats(n) for n in vteps}
            tcp0 = {"client": tcp_counters(c), "server": tcp_counters(s)}
            load = vx.loadavg()
            data = os.path.join(args.out, f"{mode}.perf.data")
            subprocess.run(["perf", "record", "-a", "-g", "-e", "cpu-clock", "-o", data, "--",
                            "sleep", str(args.record)], capture_output=True, check=True)
            after = {n: stats(n) for n in vteps}
            tcp1 = {"client": tcp_counters(c), "server": tcp_counters(s)}
            out = client.communicate(timeout=args.seconds + 30)[0]
        finally:
            server.terminate()
            server.wait(5)
    gbps = json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9
    tcp = {side: {k: tcp1[side][k] - tcp0[side][k] for k in TCP_COUNTERS} for side in tcp0}
    return {"gbps": gbps, "load": load, "devices": device_rows(before, after), "tcp": tcp, "perf": data}


def inclusive(smp, gbytes):
    per_sym = collections.Counter()
    busy = [x for x in smp if x[0] != IDLE_COMM]
    for _comm, _tid, stack, _cpu in busy:
        per_sym.update(set(stack))
    threads = collections.Counter((comm, tid) for comm, tid, _, _ in busy)
    (comm, tid), top = threads.most_common(1)[0]
    others = ", ".join(f"{c}/{t} {ms_per_gb(n, gbytes):.0f}" for (c, t), n in threads.most_common(TOP_THREADS)[1:])
    return ({k: ms_per_gb(v, gbytes) for k, v in per_sym.items()}, ms_per_gb(len(busy), gbytes),
            f"{comm}/{tid}", ms_per_gb(top, gbytes), others)


def cpu_shares(smp, record_s, n_threads=TOP_THREADS_BY_CPU):
    """How busy each CPU was (share of the recorded time: an idle CPU in
    nohz mode takes no samples, so it is counted from the busy ones), and
    where the busiest threads ran: is one CPU saturated while the other idles?"""
    per_window = record_s / SAMPLE_S
    busy = [x for x in smp if x[0] != IDLE_COMM]
    per_cpu = collections.Counter(x[3] for x in busy)
    threads = collections.Counter((x[0], x[1]) for x in busy).most_common(n_threads)
    where = {f"{c}/{t}": dict(collections.Counter(x[3] for x in busy if (x[0], x[1]) == (c, t)))
             for (c, t), _ in threads}
    return {cpu: round(n / per_window, 2) for cpu, n in sorted(per_cpu.items())}, where


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=1)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--record", type=int, default=4)
    ap.add_argument("--congestion")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--out", default=tempfile.mkdtemp(prefix="vxprof-"))
    ap.add_argument("--pin", action="store_true",
                    help="iperf3's client and server pinned as bench/vxlan_tcp.py --pin does: the cost "
                         "per GB without the scheduler's placement (which differs from mode to mode)")
    ap.add_argument("--modes", default="kernel,vswitch-tc",
                    help="two of " + ",".join(MODES) + ", compared in this order")
    args = ap.parse_args(argv)
    if args.record >= args.seconds:
        ap.error("--record must be shorter than --seconds")
    os.makedirs(args.out, exist_ok=True)
    modes = args.modes.split(",")
    if len(modes) != 2 or not set(modes) <= set(MODES):
        ap.error("--modes: two of " + ",".join(MODES))
    per = {}
    with tempfile.TemporaryDirectory(prefix="vxprof-") as tmp:
        for mode in modes:
            r = profile(mode, args, tmp)
            gbytes = r["gbps"] * args.record / BITS_PER_BYTE
            smp = samples(r["perf"])
            r["syms"], r["busy"], r["top_thread"], r["top_ms"], r["others"] = inclusive(smp, gbytes)
            r["cpu_busy"], r["placement"] = cpu_shares(smp, args.record)
            per[mode] = r
            print(f"== {mode}: {r['gbps']:.2f} Gbit/s, load {r['load']}, CPU (not idle) {r['busy']:.0f} ms/GB, "
                  f"busiest thread {r['top_thread']} {r['top_ms']:.0f} ms/GB (then {r['others']}); perf data {r['perf']}")
            for ns, dev, d in r["devices"]:
                rx, tx = d["rx"], d["tx"]
                print(f"   {ns[:3]} {dev:15s} rx {rx[0]:8d} pkts {rx[1] / max(rx[0], 1):7.0f} B/pkt"
                      f"   tx {tx[0]:8d} pkts {tx[1] / max(tx[0], 1):7.0f} B/pkt")
            print("   tcp", json.dumps(r["tcp"]))
            print("   CPU busy share", json.dumps(r["cpu_busy"]), "; samples per CPU of the busiest threads",
                  json.dumps(r["placement"]))
    a, b = (per[m]["syms"] for m in modes)
    print(f"\ninclusive CPU ms/GB: {modes[0]:>10s} {modes[1]:>10s}  difference")
    for k in sorted(set(a) | set(b), key=lambda k: -abs(b.get(k, 0) - a.get(k, 0)))[:args.top]:
        print(f"  {k:45s} {a.get(k, 0):10.1f} {b.get(k, 0):10.1f} {b.get(k, 0) - a.get(k, 0):+10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
