"""The revalidator's filtered dump and the kernel XDP tier: traffic the
kernel forwarded reaches a megaflow's counters only when a walk harvests it,
and its last-use stamp is a coarse clock, so the filtered walk harvests
every megaflow it visits and returns one whose harvest brought new packets
even when `since` is later than any stamp.  Then nothing new: skipped.  Same
hosts and datapath as test_xdp_tier.py."""
import pytest
import test_xdp_tier
from test_xdp_tier import DATAGRAMS, FIRST, IN_PORT_ONLY, PAYLOAD, _drain, _tx_packets

from vswitch.datapath import dpif

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not dpif.xdp_tier_available(),
                                 reason="built without clang/libbpf: no XDP tier")]

NEVER = 2 ** 64 - 1  # no last-use stamp reaches it: only new tier traffic selects
tier = test_xdp_tier.tier  # its hosts-and-datapath fixture, used here by name


def _active(dp):
    return [s for c in dp.flow_dump_active_chunks(NEVER, 0) for s in c]


def test_filtered_walk_harvests_and_returns_kernel_forwarded_traffic(tier):
    hosts, dp, sink = tier
    dp.flow_put({"in_port": 1}, IN_PORT_ONLY, [("output", 2)])
    dp.flow_put({"in_port": 2}, IN_PORT_ONLY, [("output", 1)])   # no traffic
    sent_before = _tx_packets(hosts.a, hosts.a0)
    hosts.blast(DATAGRAMS, PAYLOAD, first=FIRST)
    assert _drain(sink) == DATAGRAMS
    sent = _tx_packets(hosts.a, hosts.a0) - sent_before
    userspace = sum(s["packets"] for s in dp.pmd_stats())
    assert userspace < sent        # most of it was the kernel's, not yet harvested
    got = _active(dp)
    assert [(s.key["in_port"], s.packets) for s in got] == [(1, sent)]
    assert dp.port_stats(1)["rx_packets"] == sent   # the walk's harvest reached the ports too
    assert _active(dp) == []       # harvested already: nothing new
    hosts.blast(FIRST, PAYLOAD)           # the entry is still in the kernel: more tier traffic
    assert _drain(sink) == FIRST
    assert [(s.key["in_port"], s.packets) for s in _active(dp)] == [(1, sent + FIRST)]
