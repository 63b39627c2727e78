#!/usr/bin/env python3
"""bench/vxlan_tcp.py — TCP (or UDP) through a VXLAN tunnel: vswitch vs the Linux
kernel's vxlan driver + Linux bridge, on the same kind of underlay, in one run.

    python3 bench/vxlan_tcp.py                       # 3 reps each, 5 s, -P 4 (as root)
    python3 bench/vxlan_tcp.py --reps 5 --seconds 10 --streams 1 --json /tmp/v.json
    python3 bench/vxlan_tcp.py --modes vswitch-tc-port --streams 1,4   # both counts, one run
    python3 bench/vxlan_tcp.py --modes vswitch --offloads off          # senders without TSO
    python3 bench/vxlan_tcp.py --modes vswitch --udp-len 64 --streams 1  # small UDP datagrams

Topology (built once per mode, torn down after it):

    underlay namespace U: Linux bridge ubr (bridge-nf-call off)
    VTEP namespaces X, Y: ul0 192.168.77.1/24 and .2 (veths to ubr), MTU 1500
      vswitch: vswitchd in X and Y, br0 = p1 + vx (type=vxlan, remote_ip=the
               other VTEP, key=100)
      vswitch-tc: the same with options:tc-offload=true on vx and p1 (the
               kernel's vxlan device receives, and the tc tier forwards
               established flows veth <-> tunnel in the kernel: csrc/vxlan_kdev.h)
      vswitch-tc-port: vswitch-tc with options:tc-device=per-port on vx (a
               plain kernel vxlan device for the port instead of the shared
               external one)
      kernel:  vxlan0 (id 100, dstport 4789, remote the other VTEP) and veth
               p1 in a Linux bridge kbr (learning, no STP)
    client/server namespaces C, S behind X and Y: eth0 10.77.0.1/.2, MTU 1500
    (vswitch lowers the MSS of TSO frames to fit; for the kernel and
    vswitch-tc, whose tunnel the kernel sends, C and S get MTU 1450, as the
    kernel's vxlan device has)

Offloads are left at their defaults (TSO/GSO on veth: vswitch sends each TSO
super-frame as one UDP_SEGMENT send of MSS-sized VXLAN datagrams); with
--offloads off the hosts send MSS-sized segments (vswitch sends runs of them
as datagram trains, one UDP_SEGMENT send each).  iperf3 -s
in S, `iperf3 -c 10.77.0.2 -P N -t T -J` in C; runs interleave vswitch,
vswitch-tc, kernel, vswitch, ...; the report gives medians of Gbit/s and retransmits,
vswitchd's CPU, and the whole machine's busy CPU time per GB delivered
(/proc/stat, steal left out: bench/run.py's tcp_cpu_cost) with the share the
host stole, so a run whose Gbit/s a neighbour moved still compares the
paths' cost (cost_ratio_*: lower is cheaper).  Nothing is pinned unless --pin (client and server on CPUs
PIN_CPUS: the paths' cost without the scheduler's placement).  Everything created is removed on exit; only pids this script
started are signalled.
"""
import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from helpers import netns  # noqa: E402
from helpers.vswitchd import running_vswitchd, wait_for  # noqa: E402
from run import cpu_ticks, loadavg, tcp_cpu_cost  # noqa: E402  (bench/run.py's, shared by the benches)
from udp_gen import rx_packets  # noqa: E402

VTEP = {"x": "192.168.77.1", "y": "192.168.77.2"}
INNER = {"x": "10.77.0.1", "y": "10.77.0.2"}
MODES = ("vswitch", "vswitch-tc", "vswitch-tc-port", "kernel")
# --pin: iperf3's client and server CPUs.  On 2 CPUs the scheduler's
# placement of the two (stacked on one CPU or spread, woken by IPI or not)
# changes throughput as much as the datapath does; pinned, a run compares
# the paths' cost per byte (bench/VXLAN_RESULTS.md).
PIN_CPUS = ("0", "1")


def pinned(cpu, pin):
    return ["taskset", "-c", cpu] if pin else []


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def underlay(stack):
    u = stack.enter_context(netns.namespace("vbu"))
    netns.run(u, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0", check=False)
    netns.run(u, "ip", "link", "add", "ubr", "type", "bridge")
    netns.run(u, "ip", "link", "set", "ubr", "up")
    vteps = {}
    for tag in ("x", "y"):
        ns = stack.enter_context(netns.namespace("vb" + tag))
        netns.run(u, "ip", "link", "add", "u" + tag, "type", "veth", "peer", "name", "ul0", "netns", ns)
        netns.run(u, "ip", "link", "set", "u" + tag, "master", "ubr", "up")
        netns.run(ns, "ip", "addr", "add", f"{VTEP[tag]}/24", "dev", "ul0")
        netns.run(ns, "ip", "link", "set", "ul0", "up")
        netns.run(ns, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0", check=False)
        vteps[tag] = ns
    return vteps


# --offloads off: `ethtool -K eth0 tx off` in both end hosts (checksums
# and TSO off: the sender hands the switch MSS-sized segments, as a VM
# without TSO or an afxdp port does) and MTU 1450 in every mode, so the
# segments fit the tunnel as they are.
OFFLOADS_OFF_MTU = 1450


def end_host(stack, vtep_ns, tag, mtu, offloads=True):
    h = stack.enter_context(netns.namespace("vbh" + tag))
    netns.run(vtep_ns, "ip", "link", "add", "p1", "type", "veth", "peer", "name", "eth0", "netns", h)
    netns.run(vtep_ns, "ip", "link", "set", "p1", "up")
    netns.run(h, "ip", "link", "set", "eth0", "mtu", str(mtu))
    netns.run(h, "ip", "addr", "add", f"{INNER[tag]}/24", "dev", "eth0")
    netns.run(h, "ip", "link", "set", "eth0", "up")
    if not offloads:
        netns.run(h, "ethtool", "-K", "eth0", "tx", "off")
    return h


@contextlib.contextmanager
def vswitch_setup(tmp, tc=False, per_port=False, offloads=True):
    """tc: both ports with options:tc-offload=true, the hosts' MTU 1450;
    per_port: vx with options:tc-device=per-port; offloads: the end hosts'
    (see OFFLOADS_OFF_MTU)."""
    tier = ["--", "set", "interface", "p1", "options:tc-offload=true"] if tc else []
    with contextlib.ExitStack() as stack:
        vteps = underlay(stack)
        hosts, daemons = {}, {}
        for tag, other in (("x", "y"), ("y", "x")):
            work = os.path.join(tmp, tag)
            os.makedirs(work, exist_ok=True)
            vs = stack.enter_context(running_vswitchd(vteps[tag], work))
            vs.vsctl("add-br", "br0")
            vs.vsctl("add-port", "br0", "vx", "--", "set", "interface", "vx", "type=vxlan",
                     f"options:remote_ip={VTEP[other]}", "options:key=100",
                     f"options:tc-offload={'true' if tc else 'false'}",
                     *(["options:tc-device=per-port"] if per_port else []))
            hosts[tag] = end_host(stack, vteps[tag], tag,
                                  1450 if tc else OFFLOADS_OFF_MTU if not offloads else 1500,
                                  offloads)
            vs.vsctl("add-port", "br0", "p1", *tier)
            daemons[tag] = vs
        yield hosts, daemons


@contextlib.contextmanager
def kernel_setup(offloads=True):
    with contextlib.ExitStack() as stack:
        vteps = underlay(stack)
        hosts = {}
        for tag, other in (("x", "y"), ("y", "x")):
            ns = vteps[tag]
            netns.run(ns, "ip", "link", "add", "vxlan0", "type", "vxlan", "id", "100", "dstport", "4789",
                      "local", VTEP[tag], "remote", VTEP[other], "dev", "ul0")
            netns.run(ns, "ip", "link", "add", "kbr", "type", "bridge")
            netns.run(ns, "ip", "link", "set", "vxlan0", "master", "kbr", "up")
            hosts[tag] = end_host(stack, ns, tag, 1450, offloads)
            netns.run(ns, "ip", "link", "set", "p1", "master", "kbr", "up")
            netns.run(ns, "ip", "link", "set", "kbr", "up")
        yield hosts, {}


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(hosts, daemons, seconds, streams, congestion=None, pin=False, udp_len=0):
    """One iperf3 run C -> S: TCP, or with udp_len UDP datagrams of that
    many payload bytes sent as fast as iperf3 can (-b 0)."""
    c, s = hosts["x"], hosts["y"]
    wait_for(lambda: netns.run(c, "ping", "-c", "1", "-W", "1", INNER["y"], check=False).returncode == 0,
             timeout=15, what="ping through the tunnel")
    server = subprocess.Popen(["ip", "netns", "exec", s, *pinned(PIN_CPUS[1], pin), "iperf3", "-s", "-1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        cpu0 = {t: cpu_seconds(vs.pid) for t, vs in daemons.items()}
        cc = ["-C", congestion] if congestion else []
        if udp_len:
            cc = ["-u", "-b", "0", "-l", str(udp_len)]
        ticks = cpu_ticks()
        rx0 = rx_packets(s, "eth0")
        out = netns.run(c, *pinned(PIN_CPUS[0], pin), "iperf3", "-c", INNER["y"], "-P", str(streams),
                        "-t", str(seconds), "-J",
                        *cc, timeout=seconds + 30).stdout
        cpu = {t: round((cpu_seconds(vs.pid) - cpu0[t]) / seconds, 2) for t, vs in daemons.items()}
        ticks = (ticks, cpu_ticks())
        rx = rx_packets(s, "eth0") - rx0
    finally:
        server.terminate()
        server.wait(5)
    end = json.loads(out)["end"]
    cost = tcp_cpu_cost(*ticks, end["sum_received"]["bytes"])
    # every CPU's busy time per GB (steal left out: a neighbour's load
    # lowers Gbit/s, not this), and the share stolen
    busy = [v for k, v in cost.items() if k.endswith("_ms_per_gb")]
    busy_ms_per_gb = sum(busy) if busy else None
    if udp_len:
        # Delivered = frames that reached the receiving host's interface:
        # the tunnel's work.  What iperf3's server read is less when its
        # socket overflows (app_loss_pct: the receiving application, not
        # the path).
        sent = end["sum_sent"]["packets"]
        app = end["sum_received"]["bytes"] // udp_len
        gb = end["sum_received"]["bytes"] / 1e9
        return {"gbps": end["sum_received"]["bits_per_second"] / 1e9, "retransmits": 0,
                "cpu_per_s": cpu, "mpps": rx / seconds / 1e6, "sent_mpps": sent / seconds / 1e6,
                "loss_pct": 100.0 * (1 - rx / sent) if sent else None,
                "app_loss_pct": 100.0 * (1 - app / sent) if sent else None,
                "busy_ms_per_gb": busy_ms_per_gb,
                # per frame delivered, like mpps (busy ms/GB x GB = busy ms)
                "busy_ns_per_pkt": busy_ms_per_gb * gb * 1e6 / rx if busy and rx else None,
                "steal_pct": cost["steal_pct"]}
    return {"gbps": end["sum_received"]["bits_per_second"] / 1e9,
            "retransmits": end["sum_sent"].get("retransmits", 0), "cpu_per_s": cpu,
            "busy_ms_per_gb": busy_ms_per_gb, "steal_pct": cost["steal_pct"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--streams", default="4",
                    help="iperf3 -P; a comma-separated list (1,4) measures each count on the same "
                         "topology in turn, so one run compares the modes at all of them")
    ap.add_argument("--json")
    ap.add_argument("--congestion", help="TCP congestion control for iperf3 -C (default: the system's)")
    ap.add_argument("--pin", action="store_true",
                    help=f"iperf3 client on CPU {PIN_CPUS[0]}, server on CPU {PIN_CPUS[1]} (default: unpinned)")
    ap.add_argument("--offloads", choices=("on", "off"), default="on",
                    help="the end hosts' offloads: on (the default: TSO super-frames) or off "
                         "(tx off: MSS-sized segments, MTU 1450 in every mode)")
    ap.add_argument("--udp-len", type=int, default=0,
                    help="UDP instead of TCP: iperf3 -u -b 0 -l N (datagrams of N payload bytes); "
                         "reports sent and delivered Mpps (frames that reached the receiving "
                         "host's eth0) and what iperf3's server read")
    ap.add_argument("--modes", default=",".join(MODES),
                    help="comma-separated subset of " + ",".join(MODES) + " (kernel is always run)")
    args = ap.parse_args(argv)
    modes = [m for m in MODES if m in args.modes.split(",") or m == "kernel"]
    counts = [int(n) for n in args.streams.split(",")]

    def label(mode, n):  # one stream count: the mode alone, as before
        return mode if len(counts) == 1 else f"{mode} -P {n}"

    results = {label(mode, n): [] for mode in modes for n in counts}
    with tempfile.TemporaryDirectory(prefix="vxbench-") as tmp:
        for rep in range(args.reps):
            for mode in modes:
                offloads = args.offloads == "on"
                setup = kernel_setup(offloads) if mode == "kernel" else \
                    vswitch_setup(os.path.join(tmp, f"{mode}{rep}"), tc=mode.startswith("vswitch-tc"),
                                  per_port=mode == "vswitch-tc-port", offloads=offloads)
                with setup as (hosts, daemons):
                    for n in counts:
                        r = measure(hosts, daemons, args.seconds, n, args.congestion, args.pin,
                                    args.udp_len)
                        r["loadavg_1min"] = loadavg()
                        if mode != "kernel":
                            st = daemons["x"].json("get", "interface", "vx", "statistics")
                            r["tx_stats_x"] = st[0] if isinstance(st, list) else st
                        if args.udp_len:
                            log(f"{label(mode, n)} rep {rep + 1}: sent {r['sent_mpps']:.3f}, "
                                f"delivered {r['mpps']:.3f} Mpps (loss {r['loss_pct']:.1f}%; "
                                f"read by iperf3: loss {r['app_loss_pct']:.1f}%), "
                                f"steal {r['steal_pct']:.1f}%")
                        log(f"{label(mode, n)} rep {rep + 1}: {r['gbps']:.2f} Gbit/s, retransmits "
                            f"{r['retransmits']}, vswitchd CPU/s {r['cpu_per_s']}, busy {r['busy_ms_per_gb']:.0f} ms/GB, "
                            f"steal {r['steal_pct']:.1f}%, load {r['loadavg_1min']}")
                        results[label(mode, n)].append(r)
    summary = {key: {"median_gbps": round(statistics.median(x["gbps"] for x in rs), 2),
                     "median_retransmits": statistics.median(x["retransmits"] for x in rs),
                     "runs_gbps": [round(x["gbps"], 2) for x in rs],
                     "median_busy_ms_per_gb": round(statistics.median(x["busy_ms_per_gb"] for x in rs)),
                     "runs_busy_ms_per_gb": [round(x["busy_ms_per_gb"]) for x in rs],
                     "runs_steal_pct": [round(x["steal_pct"], 1) for x in rs],
                     **({"median_mpps": round(statistics.median(x["mpps"] for x in rs), 3),
                         "median_busy_ns_per_pkt": round(statistics.median(x["busy_ns_per_pkt"] for x in rs)),
                         "runs_mpps": [round(x["mpps"], 3) for x in rs]} if args.udp_len else {}),
                     "loadavg_1min": [x["loadavg_1min"] for x in rs]}
               for key, rs in results.items()}
    for mode in (m for m in modes if m != "kernel"):
        for n in counts:
            summary[f"ratio_{label(mode, n)}_to_kernel"] = round(
                summary[label(mode, n)]["median_gbps"] / summary[label("kernel", n)]["median_gbps"], 2)
            summary[f"cost_ratio_{label(mode, n)}_to_kernel"] = round(
                summary[label(mode, n)]["median_busy_ms_per_gb"]
                / summary[label("kernel", n)]["median_busy_ms_per_gb"], 2)
    summary["params"] = vars(args)
    summary["nproc"] = os.cpu_count()
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "runs": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
