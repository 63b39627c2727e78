"""NetFlow v5 and IPFIX exporters against nfdump's nfcapd on loopback.

The engines run on a fake clock (starting from the wall clock so the files
look sane); UdpSender sends for real; nfdump reads nfcapd's file back and
every flow must carry exactly the packets and IP-layer bytes we fed."""
import random
import time
from collections import defaultdict

from helpers.collectors import flow_key, nfcapd  # noqa: F401  (fixture)

from vswitch.export import FlowKey, FlowStats, IpfixExporter, NetflowV5Exporter, UdpSender
from vswitch.export.records import ip_layer_bytes


def feed(engine, keys, start, rng, deltas=3):
    """Feeds each key a few random deltas; returns expected {key: [pkts, ip bytes, l2]}."""
    expected = defaultdict(lambda: [0, 0, 0])
    for step in range(deltas):
        t = start + step
        for key in keys:
            packets = rng.randint(1, 50)
            stats = FlowStats(key, packets, packets * rng.randint(64, 1500),
                              first_seen=t, last_seen=t + 0.5, tcp_flags=0x10)
            engine.add_flow_stats(stats, t + 0.5)
            expected[key][0] += packets
            expected[key][1] += ip_layer_bytes(stats)
            expected[key][2] += stats.bytes
    return expected


def nfdump_totals(flows, address_field="4_addr"):
    """{(src, dst, sport, dport): [packets, bytes, records]} from nfdump json."""
    out = defaultdict(lambda: [0, 0, 0])
    for f in flows:
        src = f.get("src" + address_field, f.get("src6_addr"))
        dst = f.get("dst" + address_field, f.get("dst6_addr"))
        entry = out[(src, dst, f["src_port"], f["dst_port"])]
        entry[0] += f["in_packets"]
        entry[1] += f["in_bytes"]
        entry[2] += 1
    return out


def by_tuple(expected):
    return {(k.src_ip, k.dst_ip, k.src_port, k.dst_port): v[:2] for k, v in expected.items()}


def test_netflow_v5_counts_reach_nfcapd_exactly(nfcapd):
    rng = random.Random(5)
    sender = UdpSender()
    base = time.time() - 120
    nf = NetflowV5Exporter()
    nf.configure({"targets": [nfcapd.target], "active_timeout": 30, "inactive_timeout": 10,
                  "engine_type": 1, "engine_id": 7, "ifindex_map": {1: 101, 2: 102},
                  "boot_time": base - 1000})
    keys = [flow_key(i) for i in range(45)]
    expected = feed(nf, keys, base, rng)
    # what v5 cannot carry or what is broken is counted, not sent
    nf.add_flow_stats(FlowStats(flow_key(99, version=6), 1, 100, base, base), base)
    nf.add_flow_stats(FlowStats(FlowKey(in_port=1, src_ip="10.0.0.300"), 1, 100, base, base),
                      base)
    assert nf.run(base + 5) == []                      # nothing idle yet
    first = nf.run(base + 20)                           # all 45 idle: 30 + 15
    assert [len(d) for _, d in first] == [24 + 30 * 48, 24 + 15 * 48]
    sent = sender.send(first)

    # a long flow crosses the active timeout (30 s) while it keeps sending:
    # one record at the timeout, the rest in the next one
    long_key, long_total = flow_key(200), [0, 0, 0]
    for step in range(40):
        t = base + 30 + step
        nf.add_flow_stats(FlowStats(long_key, 10, 10 * 1000, t, t + 0.5), t + 0.5)
        long_total = [long_total[0] + 10, long_total[1] + 10 * (1000 - 14), 0]
        sent += sender.send(nf.run(t + 0.5))
    assert nf.show()["records_sent"] == 46
    # restart of the cache: new timeouts, flush; sequence numbers carry on
    nf.configure({"active_timeout": 60, "inactive_timeout": 5})
    sent += sender.send(nf.flush(base + 75))
    late = feed(nf, [flow_key(i) for i in range(300, 305)], base + 80, rng)
    sent += sender.send(nf.run(base + 100))
    expected[long_key] = long_total
    expected.update(late)

    nfcapd.stop()
    assert nfcapd.socket_drops == 0
    flows = nfcapd.flows()
    got = nfdump_totals(flows)
    assert {k: v[:2] for k, v in got.items()} == by_tuple(expected)
    assert got[(long_key.src_ip, long_key.dst_ip, long_key.src_port, long_key.dst_port)][2] == 2
    assert len(flows) == nf.show()["records_sent"] == 45 + 2 + 5
    assert {(f["input_snmp"], f["output_snmp"]) for f in flows} == {(101, 102)}
    stats = nfcapd.stats()
    assert stats["Sequence failures"] == "0"
    assert int(stats["Flows"]) == len(flows)
    assert sent == nf.show()["datagrams_sent"] == 5
    show = nf.show()
    assert show["flow_sequence"] == 52
    assert show["ignored"] == {"not_ipv4": 1} and show["dropped"] == {"bad_ip_address": 1}


def test_ipfix_records_reach_nfcapd_with_templates_refreshed(nfcapd):
    rng = random.Random(10)
    sender = UdpSender()
    base = time.time() - 120
    ipfix = IpfixExporter()
    ipfix.configure({"targets": [nfcapd.target], "observation_domain_id": 4242,
                     "observation_point_id": 9, "template_interval": 10,
                     "active_timeout": 60, "inactive_timeout": 5})
    v4 = [flow_key(i, vlan=30) for i in range(40)]
    v6 = [flow_key(i, version=6) for i in range(10)]
    expected = feed(ipfix, v4 + v6, base, rng)
    sent = sender.send(ipfix.run(base + 10))            # templates + data
    later = feed(ipfix, [flow_key(i) for i in range(100, 110)], base + 20, rng)
    sent += sender.send(ipfix.run(base + 30))           # refreshed templates + data
    expected.update(later)
    assert ipfix.show()["template_messages_sent"] == 2

    nfcapd.stop()
    flows = nfcapd.flows()
    got = nfdump_totals(flows)
    assert {k: v[:2] for k, v in got.items()} == by_tuple(expected)
    assert len(flows) == ipfix.show()["records_sent"] == 60
    assert {f["observationDoaminID"] for f in flows} == {4242}   # sic, nfdump's key
    assert {f["observationPointID"] for f in flows} == {9}
    assert sorted(f["src_vlan"] for f in flows) == [0] * 20 + [30] * 40
    macs = {(k.src_mac, k.dst_mac) for k in expected}
    assert {(f["in_src_mac"], f["in_dst_mac"]) for f in flows} == macs
    assert nfcapd.stats()["Sequence failures"] == "0"
    assert sent == ipfix.show()["datagrams_sent"]
