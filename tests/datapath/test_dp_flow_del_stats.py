"""Deleting a megaflow hands back its final counters, so the packets it
forwarded since the revalidator's last look are still reported (NetFlow,
mirror and bond statistics)."""
import time

import pytest
from dp_ports import KINDS, datapath_with_ports
from test_dp_sample import frame_of, ours


@pytest.mark.parametrize("kind", KINDS)
def test_flow_del_stats_returns_the_final_counters_then_none(kind):
    n, size = 25, 90
    with datapath_with_ports(kind, 2) as (dp, [inside, outside]):
        key, mask = {"in_port": 1}, {"in_port": 0xFFFFFFFF}
        dp.flow_put(key, mask, [("output", 2)])
        for i in range(n):
            inside.send(frame_of(i, size))
        deadline = time.monotonic() + 5
        while len(ours(outside.recv_all())) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        final = dp.flow_del_stats(key, mask)
        assert (final.packets, final.bytes, final.actions) == (n, n * size, [("output", 2)])
        assert final.used_ns > 0 and final.key["in_port"] == 1
        assert dp.flow_del_stats(key, mask) is None  # gone
        assert dp.stats()["n_flows"] == 0
