"""sFlow v5 exporter against pmacct's sfacctd on loopback.

sfacctd runs with renormalization on: it multiplies each flow sample by the
sampling rate (its estimate from the sample pool, which equals the rate when
the pool grows by exactly one rate per sample, as here), and counts bytes
from the sample's frame_length, which includes the 4-byte FCS."""
import time
from collections import Counter

import pytest

from helpers.collectors import poll_until, sfacctd, tcp_frame  # noqa: F401  (fixture)

from vswitch.export import InterfaceCounters, PacketSample, SflowExporter, UdpSender

# flow number -> (in port, sampling rate, samples, vlan, payload bytes)
FLOWS = {0: (1, 10, 7, 0, 100), 1: (2, 100, 4, 20, 300), 2: (1, 10, 5, 0, 1000)}


def test_sflow_samples_and_counters_match_in_sfacctd(sfacctd):
    base = time.time()
    polls = []

    def counters():
        n = len(polls) + 1
        polls.append(n)
        return {1: InterfaceCounters(if_speed=10_000_000_000, in_octets=1000 * n,
                                     in_ucast_pkts=10 * n, out_octets=2000 * n,
                                     out_discards=n),
                2: {"in_octets": 5 * n, "oper_up": False}}

    sflow = SflowExporter()
    sflow.configure({"targets": [sfacctd.target], "agent_address": "127.0.0.1",
                     "sub_agent_id": 3, "polling_interval": 5, "flush_delay": 0.5,
                     "counters_callback": counters})
    sender, pools, expected = UdpSender(), Counter(), {}
    t = base
    for i, (port, rate, samples, vlan, payload) in FLOWS.items():
        frame = tcp_frame(i, payload, vlan)
        for _ in range(samples):
            pools[port] += rate
            t += 0.1
            sflow.add_packet_sample(PacketSample(frame, len(frame), port, 3, rate, pools[port],
                                                 in_vlan=vlan, out_vlan=vlan), t)
            sender.send(sflow.run(t))
        expected[(f"10.0.{i}.1", f"10.0.{i}.2")] = (samples * rate,
                                                    samples * rate * (len(frame) + 4), vlan)
    sender.send(sflow.run(t + 1))
    sender.send(sflow.run(base + 5.5))          # second counter poll, queued
    assert sflow.next_wakeup() == pytest.approx(base + 6.0)
    sender.send(sflow.run(base + 6.0))          # flush_delay later: sent
    assert len(polls) == 2 and sflow.show()["pending_samples"] == 0

    def totals():
        got = {}
        for r in sfacctd.flows():
            key = (r["ip_src"], r["ip_dst"])
            packets, octets, _ = got.get(key, (0, 0, 0))
            got[key] = (packets + r["packets"], octets + r["bytes"], r["vlan"])
            assert (r["iface_in"], r["iface_out"], r["port_dst"]) in \
                {(1, 3, 443), (2, 3, 443)}
        return got
    poll_until(lambda: totals() == expected and len(sfacctd.counters()) == 4, timeout=15)
    assert totals() == expected

    logged = {(c["ifIndex"], c["sflow_cnt_seq"]): c for c in sfacctd.counters()}
    assert set(logged) == {(1, 1), (1, 2), (2, 1), (2, 2)}
    for n in (1, 2):
        one, two = logged[(1, n)], logged[(2, n)]
        assert (one["ifInOctets"], one["ifInUcastPkts"], one["ifOutOctets"],
                one["ifOutDiscards"], one["ifSpeed"], one["ifStatus"]) == \
            (1000 * n, 10 * n, 2000 * n, n, 10_000_000_000, 3)
        assert (two["ifInOctets"], two["ifStatus"]) == (5 * n, 1)
    assert {c["peer_ip_src"] for c in sfacctd.counters()} == {"127.0.0.1"}
    assert sflow.show()["flow_samples"] == sum(f[2] for f in FLOWS.values())
