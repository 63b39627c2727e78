"""The revalidator's filtered dump (vs_dp_flow_dump_active, dpif
flow_dump_active_chunks): a megaflow hit since `since` comes back with its
counters, an idle one (last hit, or install if never hit, before
`idle_before`) comes back, a quiet one that is not idle does not; the walk
is bounded per call and, when everything matches, covers every megaflow once
as the full dump does.  Kernel-tier traffic: tests/integration/
test_xdp_tier_revalidate.py (needs root and the XDP tier)."""
import random
import time

import pytest
from dp_ports import KINDS, datapath_with_ports
from test_dp_dump_chunks import N_FLOWS, put_flows
from test_dp_sample import frame_of, ours

from vswitch.datapath import dpif
from vswitch.datapath._datapath import lib
from vswitch.datapath.dpif import Datapath

IN_PORT_ONLY = {"in_port": 0xFFFFFFFF}
NEVER = 2 ** 64 - 1   # a `since` no hit can reach: only idle flows match
HOUR_NS = 3600 * 1_000_000_000
CHUNK = 128


def active(dp, since_ns, idle_before_ns, chunk=CHUNK):
    return [s for c in dp.flow_dump_active_chunks(since_ns, idle_before_ns, chunk) for s in c]


def send_and_wait(peer, out, n, size):
    for i in range(n):
        peer.send(frame_of(i, size))
    deadline, arrived = time.monotonic() + 5, 0
    while arrived < n and time.monotonic() < deadline:
        time.sleep(0.05)
        arrived += len(ours(out.recv_all()))
    assert arrived == n


@pytest.mark.parametrize("kind", KINDS)
def test_hit_since_is_returned_with_counters_and_quiet_is_skipped(kind):
    n, size = 7, 90
    with datapath_with_ports(kind, 3) as (dp, [p1, p2, p3]):
        dp.flow_put({"in_port": 1}, IN_PORT_ONLY, [("output", 2)])   # will see traffic
        dp.flow_put({"in_port": 3}, IN_PORT_ONLY, [("output", 2)])   # stays quiet
        since = dpif.now_ns()
        send_and_wait(p1, p2, n, size)
        got = active(dp, since, 0)
        assert [(s.key["in_port"], s.packets, s.bytes) for s in got] == [(1, n, n * size)]
        assert got[0].used_ns >= since and got[0].actions == [("output", 2)]
        # Hit before `since`, nothing after: skipped until it is hit again.
        assert active(dp, dpif.now_ns(), 0) == []
        since = dpif.now_ns()
        send_and_wait(p1, p2, 2 * n, size)
        assert [(s.key["in_port"], s.packets) for s in active(dp, since, 0)] == [(1, 3 * n)]


def test_idle_megaflows_are_returned_by_last_hit_or_install():
    with datapath_with_ports("dummy", 2) as (dp, [p1, p2]):
        dp.flow_put({"in_port": 1}, IN_PORT_ONLY, [("output", 2)])
        dp.flow_put({"in_port": 2}, IN_PORT_ONLY, [("output", 1)])   # never hit
        send_and_wait(p1, p2, 3, 80)
        hit_ns = next(s.used_ns for s in dp.flow_dump() if s.key["in_port"] == 1)
        installed_late = dpif.now_ns()
        dp.flow_put({"in_port": 3}, IN_PORT_ONLY, [("output", 1)])   # installed after the mark
        # idle_before just after the hit: the hit flow and the one never hit
        # since its (earlier) install are idle; the late one is not.
        idle = active(dp, NEVER, installed_late)
        assert sorted(s.key["in_port"] for s in idle) == [1, 2]
        assert next(s.packets for s in idle if s.key["in_port"] == 1) == 3
        # idle_before at the hit: the hit flow is not idle yet (strictly before).
        assert sorted(s.key["in_port"] for s in active(dp, NEVER, hit_ns)) == [2]
        assert active(dp, NEVER, 0) == []
        assert len(active(dp, NEVER, dpif.now_ns() + HOUR_NS)) == 3


def test_walk_is_bounded_per_call_and_covers_every_flow_once():
    dp = Datapath(upcall_ring_size=16)
    try:
        flows = put_flows(dp, random.Random(11))
        n_calls = 0
        for chunk in dp.flow_dump_active_chunks(NEVER, 0, CHUNK):
            assert chunk == []                  # quiet, not idle: all skipped in C
            n_calls += 1
        assert n_calls == -(-N_FLOWS // lib.VS_DUMP_ACTIVE_VISIT_MAX)
        chunks = list(dp.flow_dump_active_chunks(0, 0, CHUNK))  # since 0: all match
        assert all(len(c) <= CHUNK for c in chunks)
        seen = [s.packed_key + s.packed_mask for c in chunks for s in c]
        assert len(seen) == len(set(seen)) == N_FLOWS and set(seen) == set(flows)
    finally:
        dp.close()
