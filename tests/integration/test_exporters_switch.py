"""NetFlow, sFlow and IPFIX from the running switch, read by real collectors.

A vswitchd in its own namespace forwards between two host namespaces; the
collectors (nfcapd, sfacctd, dumpcap + tshark) run in the switch's
namespace and listen on its loopback.  The truth is independent of the
switch: what tcpdump captured on the receiving host (every frame both ways
crosses its eth0), or what the test itself sent.
"""
import contextlib
import re
import socket
import subprocess
import time
from collections import defaultdict

import pytest
from helpers import netns
from helpers.collectors import LoopbackCapture, NfcapdCollector, PmacctCollector, poll_until
from helpers.topology import switch_with_bridge
from helpers.vswitchd import VSwitchd, have
from scapy.layers.inet import IP, TCP, UDP
from scapy.utils import rdpcap

pytestmark = [pytest.mark.timeout(240),
              pytest.mark.skipif(not all(have(t) for t in ("nfcapd", "nfdump", "sfacctd", "tshark",
                                                          "iperf3", "tcpdump")),
                                 reason="needs nfdump, pmacct, tshark, iperf3, tcpdump")]

REVALIDATE_WAIT = 2.5  # > one revalidator round (1 s) after the last packet, with slack


def ifindex(topo, name):
    return int(netns.run(topo.sw, "cat", f"/sys/class/net/{name}/ifindex").stdout)


def udp_burst(ns, dst, count, size, sport, dport, pps=20000):
    """Sends `count` UDP datagrams of `size` payload bytes from a fixed port,
    paced at about `pps`; returns how many left."""
    with netns.entered(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("0.0.0.0", sport))
        payload, sent, start = bytes(size), 0, time.monotonic()
        for i in range(count):
            s.sendto(payload, (dst, dport))
            sent += 1
            if i % 200 == 199:
                ahead = start + sent / pps - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
    finally:
        s.close()
    return sent


def udp_sink(ns, port):
    """A bound socket that keeps the receiver from answering ICMP unreachable."""
    with netns.entered(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    return s


class Capture:
    """tcpdump on a host's interface into a pcap, stopped by its pid."""

    def __init__(self, ns, ifname, path, bpf="ip"):
        self.path = path
        # Headers only (-s) and a large buffer (-B, KiB): 64 KiB TSO frames
        # would otherwise overrun the default buffer and be lost to the count.
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-i", ifname, "-U", "-n", "--immediate-mode",
                                      "-s", "128", "-B", "32768", "-w", path, bpf],
                                     stderr=subprocess.PIPE, text=True)
        # tcpdump says "listening on" once the capture runs
        line = self.proc.stderr.readline()
        assert "listening" in line, line

    def stop(self):
        time.sleep(0.5)
        self.proc.send_signal(2)
        _, err = self.proc.communicate(timeout=20)
        assert re.search(r"^0 packets dropped by kernel", err, re.M), err  # a complete truth
        return rdpcap(self.path)


def truth_by_tuple(packets):
    """{(src, dst, sport, dport, proto): [packets, IP-layer bytes]} of IPv4
    frames (frame length minus the 14-byte Ethernet header, as NetFlow's
    dOctets for an untagged frame)."""
    out = defaultdict(lambda: [0, 0])
    for p in packets:
        if IP not in p:
            continue
        ip = p[IP]
        l4 = p[TCP] if TCP in p else p[UDP] if UDP in p else None
        sport, dport = (l4.sport, l4.dport) if l4 is not None else (0, 0)
        if ip.proto == 1:  # ICMP: type and code in the port fields, as OVS
            sport, dport = bytes(ip.payload)[0], bytes(ip.payload)[1]
        entry = out[(ip.src, ip.dst, sport, dport, ip.proto)]
        entry[0] += 1
        entry[1] += p.wirelen - 14
    return out


def nfdump_by_tuple(flows):
    out = defaultdict(lambda: [0, 0, 0])
    for f in flows:
        ports = ((f["icmp_type"], f["icmp_code"]) if f["proto"] == 1
                 else (f["src_port"], f["dst_port"]))
        entry = out[(f["src4_addr"], f["dst4_addr"], *ports, f["proto"])]
        entry[0] += f["in_packets"]
        entry[1] += f["in_bytes"]
        entry[2] += 1
    return out


@contextlib.contextmanager
def exporting(tmp_path, collector_class, table, column, *columns, **collector_args):
    """A switch with hosts p1 (10.0.0.1) and p2 (10.0.0.2), a collector in the
    switch's namespace (its datagrams captured from the first: `topo.capture`)
    and bridge br0 exporting to it through a new row of `table` (referenced
    by Bridge `column`); yields (topo, h1, h2, collector)."""
    with switch_with_bridge(tmp_path) as topo:
        h1 = topo.veth_host("p1", "10.0.0.1")
        h2 = topo.veth_host("p2", "10.0.0.2")
        collector = topo.stack.enter_context(collector_class(str(tmp_path), ns=topo.sw, **collector_args))
        topo.capture = topo.stack.enter_context(LoopbackCapture(str(tmp_path), [collector.port], ns=topo.sw))
        topo.vs.vsctl("--", "--id=@e", "create", table, f'targets="{collector.target}"', *columns,
                      "--", "set", "Bridge", "br0", f"{column}=@e")
        yield topo, h1, h2, collector


def burst_to_p2(topo, count, size, sport, pps):
    """ARP resolved first, then `count` datagrams p1 -> p2:7000 (where a
    socket keeps p2 from answering ICMP unreachable); returns how many left."""
    sink = udp_sink(topo.hosts["p2"][0], 7000)
    try:
        assert topo.ping("p1", "p2", count=1)
        return udp_burst(topo.hosts["p1"][0], "10.0.0.2", count, size, sport, 7000, pps=pps)
    finally:
        sink.close()


def decoded_cleanly(topo, table, port, dissector):
    """Every datagram the exporter says it sent was captured, and tshark
    decodes each with no malformed or expert-warning fields; returns them."""
    (uuid,) = [r["_uuid"] for r in topo.vs.json("list", table)]
    datagrams = topo.vs.json("get", table, uuid, "statistics")[0]["sent_datagrams"]
    topo.capture.stop(datagrams)
    assert topo.capture.problems({port: dissector}) == []
    frames = topo.capture.decode({port: dissector})
    assert len(frames) == datagrams
    return frames

def test_netflow_reports_every_flow_exactly(tmp_path):
    with exporting(tmp_path, NfcapdCollector, "NetFlow", "netflow",
                   "active_timeout=60") as (topo, h1, h2, collector):
        capture = Capture(h2, "eth0", str(tmp_path / "h2.pcap"))
        sink = udp_sink(h2, 7000)
        try:
            assert topo.ping("p1", "p2", count=1)  # ARP first: the burst must not wait on it
            assert udp_burst(h1, "10.0.0.2", 500, 200, 6000, 7000) == 500
            server = subprocess.Popen(["ip", "netns", "exec", h2, "iperf3", "-s", "-1", "-p", "5202"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                assert poll_until(lambda: ":5202" in netns.run(h2, "ss", "-ltn").stdout)
                netns.run(h1, "iperf3", "-c", "10.0.0.2", "-p", "5202", "-n", "4M", timeout=60)
            finally:
                server.wait(timeout=30)
            truth = truth_by_tuple(capture.stop())
        finally:
            sink.close()
        # Removing it exports what is cached, the last deltas included.
        topo.vs.vsctl("clear", "Bridge", "br0", "netflow")
        stats_before = collector.stop()
        assert collector.socket_drops == 0, stats_before
        got = nfdump_by_tuple(collector.flows())
        assert got, "nfcapd stored no flow"
        differ = {key: (truth.get(key), got.get(key)) for key in set(truth) | set(got)
                  if truth.get(key) != (got.get(key) or [0, 0, 0])[:2]}
        assert not differ, differ
        udp = got[("10.0.0.1", "10.0.0.2", 6000, 7000, 17)]
        assert udp[:2] == [500, 500 * (200 + 8 + 20)]
        stats = collector.stats()
        assert stats.get("Sequence failures") == "0", stats
        # interfaces are the switch ports' ifindexes
        raw = {(f["src4_addr"], f.get("src_port")): f for f in collector.flows()}
        f = raw[("10.0.0.1", 6000)]
        assert (f["input_snmp"], f["output_snmp"]) == (ifindex(topo, "p1"), ifindex(topo, "p2"))
        # the NetFlow row went with its last reference (OVSDB's garbage collection)
        assert topo.vs.json("list", "NetFlow") == []


def test_netflow_active_timeout_splits_a_long_flow(tmp_path):
    with exporting(tmp_path, NfcapdCollector, "NetFlow", "netflow",
                   "active_timeout=2") as (topo, h1, h2, collector):
        sent = burst_to_p2(topo, 300, 100, 6001, pps=60)  # 5 s
        time.sleep(REVALIDATE_WAIT)
        topo.vs.vsctl("clear", "Bridge", "br0", "netflow")
        collector.stop()
        records = [f for f in collector.flows() if f.get("src_port") == 6001]
        assert len(records) >= 2, records  # split by the 2 s active timeout
        assert sum(f["in_packets"] for f in records) == sent


def test_sflow_samples_and_counters_reach_sfacctd(tmp_path):
    with exporting(tmp_path, PmacctCollector, "sFlow", "sflow", "sampling=64", "polling=2", "header=128",
                   "agent=127.0.0.1", daemon="sfacctd") as (topo, h1, h2, collector):
        before = topo.vs.json("get", "Interface", "p1", "statistics")
        sent = burst_to_p2(topo, 100_000, 64, 6002, pps=40000)
        time.sleep(4.5)  # samples flushed, two more counter polls
        after = topo.vs.json("get", "Interface", "p1", "statistics")
        received = after[0]["rx_packets"] - before[0]["rx_packets"]
        assert received >= sent * 0.99, (sent, received)

        def renormalised():
            return sum(f["packets"] for f in collector.flows()
                       if f.get("port_src") == 6002 and f.get("port_dst") == 7000)
        assert poll_until(lambda: abs(renormalised() - sent) <= sent * 0.10, timeout=10), \
            (renormalised(), sent)
        # counter samples every `polling` (2) seconds, octets growing: three
        # within 10 s at the latest (sfacctd writes its log when it likes)
        p1 = ifindex(topo, "p1")

        def p1_counters():
            return [c for c in collector.counters() if c.get("ifIndex") == p1]
        assert poll_until(lambda: len(p1_counters()) >= 3, timeout=10), p1_counters()
        samples = p1_counters()
        octets = [c["ifInOctets"] for c in samples]
        assert octets == sorted(octets) and octets[-1] > octets[0]
        decoded_cleanly(topo, "sFlow", collector.port, "sflow")


def test_ipfix_records_the_sampled_packets(tmp_path):
    with exporting(tmp_path, NfcapdCollector, "IPFIX", "ipfix", "sampling=10", "obs_domain_id=5",
                   "cache_active_timeout=2", "cache_max_flows=1000") as (topo, h1, h2, collector):
        sent = burst_to_p2(topo, 5000, 100, 6003, pps=5000)
        time.sleep(3.5)  # past the cache's active timeout
        collector.stop()
        frames = decoded_cleanly(topo, "IPFIX", collector.port, "cflow")
        assert "cflow.template_id" in frames[0], "the first message carries the templates"
        assert all(f["cflow.od_id"] == ["5"] for f in frames)
        records = [f for f in collector.flows() if f.get("src_port") == 6003]
        assert records, collector.flows()
        sampled = sum(f["in_packets"] for f in records)
        expected, sigma = sent / 10, (sent * 0.1 * 0.9) ** 0.5
        assert abs(sampled - expected) <= 5 * sigma, (sampled, expected)
        assert all(f["in_bytes"] == f["in_packets"] * (100 + 8 + 20) for f in records)


def test_exporters_survive_a_restart_and_stop_when_removed(tmp_path):
    with exporting(tmp_path, NfcapdCollector, "NetFlow", "netflow") as (topo, h1, h2, collector):
        assert topo.vs.stop(), "vswitchd did not exit on SIGTERM"
        topo.vs = VSwitchd(topo.sw, str(tmp_path)).start()
        topo.stack.callback(topo.vs.stop)
        assert poll_until(lambda: topo.ping("p1", "p2", count=1))
        sink = udp_sink(h2, 7000)
        try:
            after_restart = udp_burst(h1, "10.0.0.2", 200, 50, 6010, 7000)
            time.sleep(REVALIDATE_WAIT)
            topo.vs.vsctl("clear", "Bridge", "br0", "netflow")
            udp_burst(h1, "10.0.0.2", 200, 50, 6011, 7000)  # not exported any more
            time.sleep(REVALIDATE_WAIT)
        finally:
            sink.close()
        collector.stop()
        by_port = defaultdict(int)
        for f in collector.flows():
            by_port[f.get("src_port")] += f["in_packets"]
        assert by_port[6010] == after_restart
        assert 6011 not in by_port
