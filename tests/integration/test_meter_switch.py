"""An OpenFlow meter in the running switch (issue 15), through the real
ovs-ofctl: a 100 Mbit/s drop meter on p1 -> p2 holds its rate within 5 %
(counted in frame bits, as the meter measures) against 3x that offered,
while TCP p3 -> p4 runs beside it, and the metered flow stays in the
datapath (its packets hit the cache; they do not become upcalls).  The same
measurement as bench/meter_rate.py, shorter."""
import os
import re
import sys

import pytest

from helpers.vswitchd import have

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import meter_rate  # noqa: E402

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not (have("ovs-ofctl") and have("iperf3")),
                                 reason="needs ovs-ofctl and iperf3")]

TOLERANCE = 0.05
COUNT_SLACK = 0.01  # other packets through the meter, iperf3's counting


def test_meter_holds_its_rate_beside_full_speed_traffic(tmp_path):
    r = meter_rate.measure(str(tmp_path), rate_kbps=100000, seconds=3, offered_mbps=300)
    assert r["sent_packets"] > 2 * r["received_packets"], r  # the meter had work to do
    assert abs(r["ratio"] - 1) <= TOLERANCE, r
    assert r["tcp_beside_gbps"] > 0.5, r
    assert r["pmd"]["upcalls"] < 50, r  # cached: no packet of it went to the slow path
    # The datapath's meter saw every datagram (and the pings, ARP and
    # iperf3's control connection), and what its band let pass is what
    # arrived, within a percent (iperf3's own counts are that loose: its
    # control traffic, datagrams in flight at the end, a busy receiver).
    seen = int(re.search(r"packet_in_count:(\d+)", r["meter_stats"])[1])
    dropped = int(re.search(r"0: packet_count:(\d+)", r["meter_stats"])[1])
    assert r["sent_packets"] <= seen <= r["sent_packets"] * (1 + COUNT_SLACK), r
    assert abs((seen - dropped) - r["received_packets"]) <= r["received_packets"] * COUNT_SLACK, r
