"""bench/udp_gen.py — the 64-byte UDP blast: generator, counting sink, and
the generator's ceiling on a bare veth pair.

    tools = udp_gen.build(tmpdir)                      # cc the two C tools
    with udp_gen.Sink(tools, "vmb-ns", "eth0", 9000) as sink:
        tx = udp_gen.send(tools, "vma-ns", "eth0", mac_b, ip_a, ip_b, 9000,
                          flows=1, seconds=3)
        delivered = sink.count()
    ceiling = udp_gen.ceiling(tools, seconds=1)        # bare veth, 1 flow

The generator (udp_blast.c) sends prebuilt frames with AF_PACKET sendmmsg()
in batches of 64 from the traffic core; the sink (drop_sink.c) is a tcx
ingress eBPF program on the receiving VM's interface that counts the
blast's frames and drops them before the IP stack, so receiving costs a
few dozen instructions instead of a socket's worth.  On a bare veth pair
the pair reaches ~1.9 Mpps on one core of the bench machine, three times
the old UDP-socket sink's 0.67 Mpps and two to three times what the
switches forward, so the 64-byte rows measure the switch.

`ceiling()` builds its own two namespaces and a veth pair (transmit checksum
offload off on both ends, as in the switches' UDP runs) and returns the three
counts (the sender's, the sink's, the receiving interface's rx_packets),
which must agree exactly there; the report prints it before the switches'
rows.
Commands run with `ip netns exec`; `record(ns, argv)`, when given, is told
each command line (bench/run.py lists them in its report).
"""
import contextlib
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from helpers import netns  # noqa: E402

TOOLS = ("udp_blast", "drop_sink")
NS_PREFIX = "bnch-"              # the bench's namespaces: bnch-vma-3f9c1a, bnch-ga-...
CC_FLAGS = ["-O2", "-Wall"]
CEILING_IP_A, CEILING_IP_B = "10.78.0.1", "10.78.0.2"
CEILING_PORT = 9000
SINK_START_TIMEOUT = 10          # seconds for the eBPF program to load and attach
SEND_SLACK = 15                  # seconds a sender may take beyond its run
IN_FLIGHT_WAIT = 0.05            # seconds for the last frames to leave the switch's queues


def build(tmp, cc="cc"):
    """Compile udp_blast.c and drop_sink.c into `tmp`: {name: path}."""
    out = {}
    for name in TOOLS:
        exe = os.path.join(tmp, name)
        proc = subprocess.run([cc, *CC_FLAGS, "-o", exe, os.path.join(HERE, name + ".c")],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{cc} {name}.c failed: {proc.stderr.strip()[:600]}")
        out[name] = exe
    return out


def _argv(ns, cmd, cpu):
    return ["ip", "netns", "exec", ns] + (["taskset", "-c", str(cpu)] if cpu is not None
                                          else []) + list(cmd)


class Sink:
    """drop_sink on `ifname` in `ns` while the block runs; count() = frames
    of the blast (IPv4/UDP to `port`) that reached the interface's ingress."""

    def __init__(self, tools, ns, ifname, port, cpu=None, record=None):
        self.cmd = [tools["drop_sink"], ifname, str(port)]
        self.ns, self.cpu, self.record = ns, cpu, record
        self.proc = None

    def __enter__(self):
        if self.record:
            self.record(self.ns, _argv(self.ns, self.cmd, self.cpu)[4:])
        self.proc = subprocess.Popen(_argv(self.ns, self.cmd, self.cpu), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self._readline(SINK_START_TIMEOUT)
        if line != "ready":
            self.__exit__(None, None, None)
            raise RuntimeError(f"drop_sink did not attach: {line!r} {self._stderr()}")
        return self

    def _readline(self, timeout):
        import select
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            return None
        return self.proc.stdout.readline().strip()

    def _stderr(self):
        if self.proc.poll() is None:
            return ""
        return self.proc.stderr.read().strip()[:600]

    def count(self):
        self.proc.stdin.write("?\n")
        self.proc.stdin.flush()
        line = self._readline(SINK_START_TIMEOUT)
        try:
            return json.loads(line)["packets"]
        except (TypeError, ValueError, KeyError):
            raise RuntimeError(f"drop_sink gave no count: {line!r} {self._stderr()}") from None

    def __exit__(self, *exc):
        if self.proc is None:
            return
        with contextlib.suppress(OSError):
            self.proc.stdin.close()      # end of input: it exits, the link goes
        try:
            self.proc.wait(SINK_START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


def send(tools, ns, ifname, dst_mac, src_ip, dst_ip, port, flows, seconds, pps=0, cpu=None,
         record=None):
    """One blast from `ifname` in `ns`: {"sent", "send_errors", "seconds",
    "flows", "target_pps"} as udp_blast printed it."""
    cmd = [tools["udp_blast"], ifname, dst_mac, src_ip, dst_ip, str(port), str(flows),
           str(seconds), str(pps)]
    argv = _argv(ns, cmd, cpu)
    if record:
        record(ns, argv[4:])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + SEND_SLACK)
    if proc.returncode != 0:
        raise RuntimeError(f"udp_blast failed ({proc.returncode}): {proc.stderr.strip()[:600]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rx_packets(ns, ifname):
    return int(netns.run(ns, "cat", f"/sys/class/net/{ifname}/statistics/rx_packets")
               .stdout)


def mac_of(ns, ifname):
    return netns.run(ns, "cat", f"/sys/class/net/{ifname}/address").stdout.strip()


def rates(tx, counted, rx_delta):
    """The figures of one blast: offered (what the sender's kernel took),
    delivered (the sink's count), the receiving interface's rx_packets
    (cross-check), loss against offered; all per second of sending."""
    t = tx["seconds"]
    return {
        "sent_pps": tx["sent"] / t,
        "pps": counted / t,
        "rx_pps": rx_delta / t,
        "loss_pct": 100.0 * (1 - counted / tx["sent"]) if tx["sent"] else None,
        "sent": tx["sent"],
        "counted": counted,
        "rx_delta": rx_delta,
        "send_errors": tx["send_errors"],
    }


def blast(tools, tx_ns, tx_if, rx_ns, rx_if, dst_ip, src_ip, port, flows, seconds, pps=0,
          cpu=None, record=None):
    """A whole measured blast between two interfaces, nothing around it."""
    mac = mac_of(rx_ns, rx_if)
    with Sink(tools, rx_ns, rx_if, port, cpu=cpu, record=record) as sink:
        rx0 = rx_packets(rx_ns, rx_if)
        tx = send(tools, tx_ns, tx_if, mac, src_ip, dst_ip, port, flows, seconds, pps=pps,
                  cpu=cpu, record=record)
        time.sleep(IN_FLIGHT_WAIT)
        rx1 = rx_packets(rx_ns, rx_if)
        counted = sink.count()
    return rates(tx, counted, rx1 - rx0)


@contextlib.contextmanager
def bare_veth():
    """Two fresh namespaces joined by a veth pair, eth0 at each end (CEILING_IP_A
    and _B, transmit checksum offload off as in the switches' UDP runs):
    yields (ns_a, ns_b); everything goes with the namespaces."""
    with netns.namespace(NS_PREFIX + "ga") as a, netns.namespace(NS_PREFIX + "gb") as b:
        netns.run(a, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
                  "netns", b)
        for ns, ip in ((a, CEILING_IP_A), (b, CEILING_IP_B)):
            netns.run(ns, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
            netns.run(ns, "ip", "link", "set", "eth0", "up")
            netns.run(ns, "ethtool", "-K", "eth0", "tx", "off")
        yield a, b


def ceiling(tools, seconds, flows=1, pps=0, cpu=None):
    """The generator and sink alone on a bare_veth(), plus the load before
    the run."""
    load = os.getloadavg()[0]
    with bare_veth() as (a, b):
        out = blast(tools, a, "eth0", b, "eth0", CEILING_IP_B, CEILING_IP_A, CEILING_PORT, flows,
                    seconds, pps=pps, cpu=cpu)
    out["load"] = load
    out["flows"] = flows
    return out
