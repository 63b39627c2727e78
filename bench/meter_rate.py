"""bench/meter_rate.py — an OpenFlow meter in the fast path holds its rate
while the switch forwards other traffic at full speed (issue 15).

    python3 bench/meter_rate.py [--rate-kbps 100000] [--seconds 5] [--offered-mbps 300]

(as root, from the repository root).  A vswitchd in its own namespace with
br0 and four hosts on veths (afpacket ports): p1 -> p2 goes through meter 1
(`ovs-ofctl add-meter`: kbps, one drop band at the rate, a burst of
BURST_KBITS), p3 <-> p4 is forwarded unmetered.  Three runs: TCP p3 -> p4
alone (iperf3), then UDP p1 -> p2 offered at --offered-mbps (iperf3 -u,
DATAGRAM bytes) at the same time as the TCP run again.

Reported: the metered flow's delivered rate counted in frame bits (what the
meter measures: the Ethernet frame, no FCS) against the configured rate,
the TCP rate alone and beside the metered flow, and the poll threads' upcalls
and cache hits over the metered run (a metered flow stays in the datapath:
hits grow with the packets, upcalls do not).  `measure()` is also what
tests/integration/test_meter_switch.py runs, shorter.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from helpers import netns  # noqa: E402
from helpers.topology import switch_with_bridge  # noqa: E402
from helpers.vswitchd import wait_for  # noqa: E402

DATAGRAM = 1400                      # UDP payload bytes
FRAME_OVERHEAD = 14 + 20 + 8         # Ethernet + IPv4 + UDP headers around it
BURST_KBITS = 1000                   # the band's burst: small next to a run's volume
IPERF_UDP_PORT, IPERF_TCP_PORT = 5301, 5302
SERVER_GRACE = 2                     # seconds an iperf3 server waits beyond the run


def _ofctl(t, *args):
    proc = netns.run(t.sw, "ovs-ofctl", "-O", "OpenFlow13", args[0], t.mgmt, *args[1:],
                     check=False)
    if proc.returncode:
        raise RuntimeError(f"ovs-ofctl {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def _iperf(t, src, dst, port, seconds, udp_mbps=None):
    """Runs iperf3 src -> dst; returns its JSON 'end' section."""
    dst_ns, _, dst_ip = t.hosts[dst]
    server = subprocess.Popen(["ip", "netns", "exec", dst_ns, "iperf3", "-s", "-1", "-p",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: f":{port}" in netns.run(dst_ns, "ss", "-ltn").stdout, what="iperf3 server")
        cmd = ["iperf3", "-c", dst_ip, "-p", str(port), "-t", str(seconds), "-J"]
        if udp_mbps:
            cmd += ["-u", "-b", f"{udp_mbps}M", "-l", str(DATAGRAM)]
        out = netns.run(t.hosts[src][0], *cmd, timeout=seconds + 30).stdout
        return json.loads(out)["end"]
    finally:
        server.wait(timeout=seconds + SERVER_GRACE + 30)


def _pmd_totals(t):
    st = t.vs.json("pmd-stats-show")
    return {k: st[k] for k in ("upcalls", "emc_hits", "megaflow_hits", "misses", "packets")}


def _tcp_gbps(end):
    return end["sum_received"]["bits_per_second"] / 1e9


def measure(workdir, rate_kbps=100000, seconds=5, offered_mbps=300):
    with switch_with_bridge(workdir) as t:
        for i in (1, 2, 3, 4):
            t.veth_host(f"p{i}", f"10.0.0.{i}")
        t.mgmt = f"unix:{t.vs.rundir}/br0.mgmt"
        _ofctl(t, "add-meter", f"meter=1,kbps,burst,band=type=drop,rate={rate_kbps},"
                               f"burst_size={BURST_KBITS}")
        for flow in ("in_port=1,actions=meter:1,output:2", "in_port=2,actions=output:1",
                     "in_port=3,actions=output:4", "in_port=4,actions=output:3"):
            _ofctl(t, "add-flow", flow)
        assert t.ping("p1", "p2") and t.ping("p3", "p4")
        tcp_alone = _tcp_gbps(_iperf(t, "p3", "p4", IPERF_TCP_PORT, seconds))

        tcp_beside = {}
        tcp = threading.Thread(target=lambda: tcp_beside.update(
            _iperf(t, "p3", "p4", IPERF_TCP_PORT, seconds)))
        before = _pmd_totals(t)
        tcp.start()
        udp = _iperf(t, "p1", "p2", IPERF_UDP_PORT, seconds, udp_mbps=offered_mbps)
        tcp.join()
        after = _pmd_totals(t)
        s = udp["sum"]
        received = s["packets"] - s["lost_packets"]
        frame_mbps = received * (DATAGRAM + FRAME_OVERHEAD) * 8 / s["seconds"] / 1e6
        delta = {k: after[k] - before[k] for k in after}
        return {
            "rate_mbps": rate_kbps / 1000, "offered_mbps": offered_mbps,
            "sent_packets": s["packets"], "received_packets": received,
            "metered_frame_mbps": round(frame_mbps, 2),
            "ratio": round(frame_mbps / (rate_kbps / 1000), 4),
            "tcp_alone_gbps": round(tcp_alone, 3),
            "tcp_beside_gbps": round(_tcp_gbps(tcp_beside), 3),
            "pmd": delta,
            "load": os.getloadavg()[0],
            "meter_stats": _ofctl(t, "meter-stats").strip(),
        }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate-kbps", type=int, default=100000)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--offered-mbps", type=int, default=300)
    p.add_argument("--reps", type=int, default=3)
    opts = p.parse_args()
    results = []
    for rep in range(opts.reps):
        with tempfile.TemporaryDirectory() as work:
            r = measure(work, opts.rate_kbps, opts.seconds, opts.offered_mbps)
        results.append(r)
        print(f"rep {rep + 1}: metered {r['metered_frame_mbps']} Mbit/s (x{r['ratio']} of "
              f"{r['rate_mbps']}), TCP alone {r['tcp_alone_gbps']} / beside "
              f"{r['tcp_beside_gbps']} Gbit/s, upcalls {r['pmd']['upcalls']}, hits "
              f"{r['pmd']['emc_hits'] + r['pmd']['megaflow_hits']}, load {r['load']:.2f}",
              flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
