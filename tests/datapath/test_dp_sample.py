"""The SAMPLE action (sFlow / IPFIX packet sampling): 1-in-N decisions, the
header copy, per-port sample pools, and a sample ring of its own that can fill
up and drop without ever taking room from flow-miss upcalls.  Tests with
ports run on dummy ports (no root) and on afpacket ports on veths (root)."""
import math
import select
import time

import pytest
from dp_ports import KINDS, datapath_with_ports

from vswitch.datapath import dpif
from vswitch.datapath._datapath import lib
from vswitch.datapath.dpif import (SAMPLE_ALWAYS, SAMPLE_BATCH, SAMPLE_MAX_HEADER, Datapath,
                                   decode_actions, encode_actions, format_actions,
                                   sample_probability)

SRC, DST = "02:00:00:00:5a:01", "02:00:00:00:5a:02"
ETH_TYPE = 0x88b5  # local experimental: nothing else in the namespace sends it


def frame_of(n, size=100):
    """A distinct frame per n (the counter is in the payload), built by hand:
    scapy would take most of the 1-in-16 test's time."""
    head = mac(DST) + mac(SRC) + ETH_TYPE.to_bytes(2, "big")
    return (head + n.to_bytes(4, "big") * size)[:size]


def mac(text):
    return bytes.fromhex(text.replace(":", ""))


def ours(frames):
    return [f for f in frames if f[6:12] == mac(SRC)]


def drain_samples(dp):
    out = []
    while batch := dp.recv_samples():
        out += batch
    return out


def readable(fd, timeout=0.0):
    return bool(select.select([fd], [], [], timeout)[0])


# ---- encoding (no root needed) ----

def test_sample_probability_is_floor_of_2_to_32_over_n():
    assert sample_probability(1) == SAMPLE_ALWAYS == 0xFFFFFFFF
    assert sample_probability(2) == 1 << 31
    assert sample_probability(16) == 1 << 28
    assert sample_probability(3) == 1431655765
    assert sample_probability(1 << 32) == 1
    for bad in (0, -1, 1.5, "4", True, None):
        with pytest.raises(ValueError):
            sample_probability(bad)


def test_sample_action_encodes_decodes_and_formats():
    actions = [("sample", (sample_probability(64), 7, 3, 128)), ("output", 3)]
    words, n = encode_actions(actions)
    assert list(words[0:n]) == [lib.VS_ACTION_SAMPLE | 4 << 16, 1 << 26, 7, 3, 128,
                                lib.VS_ACTION_OUTPUT | 1 << 16, 3]
    assert decode_actions(words, n) == actions
    assert encode_actions(list(actions)) is encode_actions(actions)  # cached
    assert format_actions(actions) == "sample(probability=67108864,cookie=7,out=3,header=128),3"
    assert format_actions(actions, {3: "eth3"}) == \
        "sample(probability=67108864,cookie=7,out=eth3,header=128),eth3"
    assert format_actions([("sample", (1, 2, 99, 4))], {3: "eth3"}) == \
        "sample(probability=1,cookie=2,out=99,header=4)"
    with pytest.raises(ValueError):
        encode_actions([("sample", (1, 2, 3))])


def test_flow_dump_gives_the_sample_action_back():
    dp = Datapath(upcall_ring_size=16)
    try:
        actions = [("sample", (SAMPLE_ALWAYS, 0xDEADBEEF, 0xFFFFFFFF, 256)), ("output", 1)]
        dp.flow_put({"in_port": 1}, {"in_port": 0xFFFFFFFF}, actions)
        [flow] = dp.flow_dump()
        assert flow.actions == actions
    finally:
        dp.close()


# ---- through execute() ----

@pytest.mark.parametrize("kind", KINDS)
def test_always_samples_every_packet_with_its_header_and_pool_and_forwards_it_unchanged(kind):
    n, header = 20, 64
    with datapath_with_ports(kind, 1) as (dp, [peer]):
        frames = [frame_of(i, 100 + i) for i in range(n)]
        for f in frames:
            dp.execute(1, f, [("sample", (SAMPLE_ALWAYS, 5, 42, header)), ("output", 1)])
        samples = drain_samples(dp)
        time.sleep(0.3)
        sent = ours(peer.recv_all())
        stats = dp.stats()
    assert sent == frames  # the output after the sample: every frame, unchanged
    assert [s.header for s in samples] == [f[:header] for f in frames]
    assert [s.frame_len for s in samples] == [len(f) for f in frames]
    assert [s.pool for s in samples] == list(range(1, n + 1))
    assert {(s.in_port, s.cookie, s.out_port, s.drops) for s in samples} == {(1, 5, 42, 0)}
    key = samples[0].key
    assert (key["in_port"], key["dl_type"], key["dl_src"]) == (1, ETH_TYPE, 0x02000000_5A01)
    assert (stats["samples"], stats["sample_drops"]) == (n, 0)
    assert stats["upcalls"] == 0  # samples are not upcalls


@pytest.mark.parametrize("kind", KINDS)
def test_pools_are_per_port_and_per_cookie_modulo_the_pool_count(kind):
    always = lambda cookie: [("sample", (SAMPLE_ALWAYS, cookie, 0, 14))]
    with datapath_with_ports(kind, 2) as (dp, _):
        for _ in range(3):
            dp.execute(1, frame_of(0), always(5))
        dp.execute(1, frame_of(0), always(6))   # another pool
        dp.execute(2, frame_of(0), always(5))   # another port
        dp.execute(1, frame_of(0), always(5 + dpif.SAMPLE_POOLS))  # the same pool as 5
        # never sampled (probability 0), still counted
        dp.execute(1, frame_of(0), [("sample", (0, 5, 0, 14))])
        dp.execute(1, frame_of(0), always(5))
        dp.execute(77, frame_of(0), always(5))  # not a port: no pool, still sampled
        samples = drain_samples(dp)
    assert [(s.in_port, s.cookie, s.pool) for s in samples] == [
        (1, 5, 1), (1, 5, 2), (1, 5, 3), (1, 6, 1), (2, 5, 1), (1, 13, 4), (1, 5, 6), (77, 5, 0)]


@pytest.mark.parametrize("kind", KINDS)
def test_one_in_16_samples_about_a_sixteenth_and_pools_count_every_packet(kind):
    n, rate, cookie = 20000, 16, 3
    with datapath_with_ports(kind, 1) as (dp, _):
        actions = [("sample", (sample_probability(rate), cookie, 0, 32))]
        samples = []
        for i in range(n):
            dp.execute(1, frame_of(i), actions)
            if i % 1000 == 999:
                samples += drain_samples(dp)
        samples += drain_samples(dp)
        dp.execute(1, frame_of(n), [("sample", (SAMPLE_ALWAYS, cookie, 0, 32))])
        [last] = drain_samples(dp)
        stats = dp.stats()
    p = 1 / rate
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(len(samples) - n * p) < 5 * sigma, (len(samples), n * p, sigma)
    assert stats["samples"] == len(samples) + 1 and stats["sample_drops"] == 0
    # The pool is the packet's number among all that reached the action: the
    # sampled frame's own counter (in its payload) + 1.
    assert all(s.pool == int.from_bytes(s.header[14:18], "big") + 1 for s in samples)
    pools = [s.pool for s in samples]
    assert pools == sorted(set(pools)) and 1 <= pools[0] and pools[-1] <= n
    assert last.pool == n + 1


@pytest.mark.parametrize("kind", KINDS)
def test_header_is_cut_at_the_frame_and_at_256_bytes(kind):
    with datapath_with_ports(kind, 1) as (dp, _):
        big, small = frame_of(1, 1000), frame_of(2, 60)
        dp.execute(1, big, [("sample", (SAMPLE_ALWAYS, 1, 0, 5000))])
        dp.execute(1, big, [("sample", (SAMPLE_ALWAYS, 1, 0, SAMPLE_MAX_HEADER))])
        dp.execute(1, big, [("sample", (SAMPLE_ALWAYS, 1, 0, 100))])
        dp.execute(1, small, [("sample", (SAMPLE_ALWAYS, 1, 0, 128))])
        dp.execute(1, small, [("sample", (SAMPLE_ALWAYS, 1, 0, 0))])
        samples = drain_samples(dp)
    assert SAMPLE_MAX_HEADER == 256
    assert [s.header for s in samples] == [big[:256], big[:256], big[:100], small, b""]
    assert [s.frame_len for s in samples] == [1000, 1000, 1000, 60, 60]


def test_a_sample_writes_the_upcall_eventfd_and_a_partial_drain_keeps_it_written():
    dp = Datapath(upcall_ring_size=16)
    try:
        dp.recv_upcalls()  # re-arms the eventfd
        assert not readable(dp.upcall_fd)
        dp.execute(0, frame_of(0), [("sample", (SAMPLE_ALWAYS, 1, 0, 64))])
        assert readable(dp.upcall_fd)
        dp.recv_upcalls()
        assert len(dp.recv_samples()) == 1
        assert not readable(dp.upcall_fd)
        for i in range(SAMPLE_BATCH + 10):
            dp.execute(0, frame_of(i), [("sample", (SAMPLE_ALWAYS, 1, 0, 64))])
        dp.recv_upcalls()
        assert len(dp.recv_samples()) == SAMPLE_BATCH
        assert readable(dp.upcall_fd)  # more to come: the reader is called back
        assert len(dp.recv_samples()) == 10
        assert dp.stats()["upcalls"] == 0
    finally:
        dp.close()


# ---- the ring fills; upcalls do not care ----

def wait_for_upcalls(dp, want, timeout=5.0):
    got, deadline = [], time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        if readable(dp.upcall_fd, 0.1):
            got += dp.recv_upcalls()
    return got


@pytest.mark.parametrize("kind", KINDS)
def test_a_full_sample_ring_drops_and_counts_while_misses_still_reach_userspace(kind):
    ring, extra = lib.VS_SAMPLE_RING, 100
    with datapath_with_ports(kind, 1) as (dp, [peer]):
        always = [("sample", (SAMPLE_ALWAYS, 2, 0, SAMPLE_MAX_HEADER)), ("userspace", 9)]
        for i in range(ring + extra):
            dp.execute(1, frame_of(i, 300), always[:1])
        stats = dp.stats()
        assert (stats["samples"], stats["sample_drops"]) == (ring, extra)
        # A flow miss through the poll thread, and a USERSPACE action through
        # execute(): the upcall ring has all its room.
        dp.recv_upcalls()
        peer.send(frame_of(123456))
        dp.execute(1, frame_of(654321), always)
        upcalls = wait_for_upcalls(dp, 2)
        assert sorted(u.cookie for u in upcalls) == [0, 9]
        assert {u.frame[14:18] for u in upcalls} == {(123456).to_bytes(4, "big"),
                                                     (654321).to_bytes(4, "big")}
        samples = drain_samples(dp)
        dp.execute(1, frame_of(0), always[:1])
        [after] = drain_samples(dp)
        stats = dp.stats()
    # The ring kept the first `ring` samples; the one taken with the last
    # USERSPACE action was dropped too.
    assert len(samples) == ring
    assert [s.pool for s in samples] == list(range(1, ring + 1))
    assert samples[-1].header == frame_of(ring - 1, 300)[:SAMPLE_MAX_HEADER]
    assert {s.drops for s in samples} == {extra + 1}
    assert (after.pool, after.drops) == (ring + extra + 2, extra + 1)
    assert stats["upcall_drops"] == 0 and stats["sample_drops"] == extra + 1
    assert stats["samples"] == ring + 1


# ---- through a poll thread and a megaflow ----

@pytest.mark.parametrize("kind", KINDS)
def test_megaflow_samples_on_the_poll_thread_and_still_forwards(kind):
    n, header = 30, 48
    with datapath_with_ports(kind, 2) as (dp, [inside, outside]):
        dp.flow_put({"in_port": 1}, {"in_port": 0xFFFFFFFF},
                    [("sample", (SAMPLE_ALWAYS, 11, 2, header)), ("output", 2)])
        frames = [frame_of(i, 120) for i in range(n)]
        for f in frames:
            inside.send(f)
        samples, deadline = [], time.monotonic() + 5
        while len(samples) < n and time.monotonic() < deadline:
            if readable(dp.upcall_fd, 0.1):
                dp.recv_upcalls()
                samples += dp.recv_samples()
        time.sleep(0.2)
        forwarded = ours(outside.recv_all())
        pmd_total = sum(t["samples"] for t in dp.pmd_stats())
        stats = dp.stats()
    assert forwarded == frames
    assert [s.header for s in samples] == [f[:header] for f in frames]
    assert [s.pool for s in samples] == list(range(1, n + 1))
    assert {(s.in_port, s.cookie, s.out_port, s.frame_len) for s in samples} == {(1, 11, 2, 120)}
    assert all(s.key["in_port"] == 1 and s.key["dl_type"] == ETH_TYPE for s in samples)
    assert pmd_total == stats["samples"] == n
    assert stats["misses"] == 0 and stats["upcalls"] == 0
