"""Control calls against two poll threads that forward all the time: flows
are added, modified, deleted, dumped and flushed, and a port comes and goes,
while both threads forward from dummy ports that replay their frames
(rx-replay) to ports that count and discard (tx-discard).

What is checked is exact: each megaflow that is the only way to an output
port must account for every packet that port sent while it existed (its
final counters from flow_del_stats against the port's tx counter), and once
the delete returns nothing more reaches the port (the barrier datapath.h
promises).  At the end every thread's packets are all accounted for (hits +
misses + malformed), and both threads forwarded.

The run lasts STRESS_SECONDS (env VS_STRESS_SECONDS, default 2): the fast
variant for CI.  tests/datapath/stress_loop.py runs it 100 times in a row,
optionally against a ThreadSanitizer build (VS_SANITIZE=thread)."""
import os
import random
import time

from test_dp_sample import frame_of

from vswitch.datapath.dpif import Datapath

STRESS_SECONDS = float(os.environ.get("VS_STRESS_SECONDS", "2"))
IN_A, IN_B, OUT_A, OUT_B, SPARE = 1, 2, 3, 4, 5
NOISE_PORTS = (7, 8)  # no such ports: their flows never match, but fill subtables
NOISE_FIELDS = ("dl_type", "nw_src", "nw_dst", "nw_proto", "tp_src", "tp_dst", "vlan_tci")
FRAMES_PER_PORT = 16
QUIET_S = 0.005  # after a delete: long enough for many rounds of both threads
EXACT = 0xFFFFFFFF


def in_port_flow(port_no):
    return {"in_port": port_no}, {"in_port": EXACT}


def noise_flow(rng):
    names = rng.sample(NOISE_FIELDS, rng.randint(1, 3))
    mask = {"in_port": EXACT, **{n: 0xFF for n in names}}
    key = {"in_port": rng.choice(NOISE_PORTS), **{n: rng.randint(0, 255) for n in names}}
    return key, mask


def tx_packets(dp, port_no):
    return dp.port_stats(port_no)["tx_packets"]


def make_datapath():
    dp = Datapath(upcall_ring_size=64)
    for port_no in (IN_A, IN_B):
        dp.add_port(port_no, "dummy", f"in{port_no}", {"rx-replay": "true"})
    for port_no in (OUT_A, OUT_B):
        dp.add_port(port_no, "dummy", f"out{port_no}", {"tx-discard": "true"})
    # Ports go round-robin in port order: IN_A to thread 0, IN_B to thread 1.
    dp.set_pmds([None, None])
    for port_no in (IN_A, IN_B):
        frames = [frame_of(port_no * 100 + i, 64) for i in range(FRAMES_PER_PORT)]
        assert dp.dummy_inject(port_no, frames) == FRAMES_PER_PORT
    return dp


def read_counters_under_traffic(dp):
    """Counters read while the threads add to them: never going back."""
    seen = (dp.stats()["packets"], sum(t["packets"] for t in dp.pmd_stats()),
            tx_packets(dp, OUT_B), dp.port_type_stats(OUT_B)["tx_captured"])
    again = (dp.stats()["packets"], sum(t["packets"] for t in dp.pmd_stats()),
             tx_packets(dp, OUT_B), dp.port_type_stats(OUT_B)["tx_captured"])
    assert all(b >= a for a, b in zip(seen, again)), (seen, again)


def cycle_a(dp, rng, noise):
    """One life of flow A (the only way to OUT_A), with noise around it."""
    key, mask = in_port_flow(IN_A)
    before = tx_packets(dp, OUT_A)
    assert dp.flow_put(key, mask, [("output", OUT_A)])
    for _ in range(rng.randint(0, 4)):
        k, m = noise_flow(rng)
        dp.flow_put(k, m, [("output", OUT_B)])
        noise.append((k, m))
    time.sleep(rng.random() * 0.003)
    dumped = {d.packed_key: d for d in dp.flow_dump()}
    assert len(dumped) == dp.stats()["n_flows"]
    read_counters_under_traffic(dp)
    final = dp.flow_del_stats(key, mask)
    after = tx_packets(dp, OUT_A)
    assert final is not None and final.actions == [("output", OUT_A)]
    assert after - before == final.packets  # every packet counted once, in both places
    time.sleep(QUIET_S)
    assert tx_packets(dp, OUT_A) == after  # the delete was a barrier
    while noise and rng.random() < 0.5:
        assert dp.flow_del(*noise.pop(rng.randrange(len(noise))))
    return final.packets


def test_control_calls_race_two_forwarding_poll_threads():
    rng = random.Random(os.environ.get("VS_STRESS_SEED", "7"))
    dp = make_datapath()
    try:
        key_b, mask_b = in_port_flow(IN_B)
        dp.flow_put(key_b, mask_b, [("output", OUT_B)])
        b_counted = 0  # flow B's packets, summed over its lives
        a_forwarded = cycles = 0
        noise = []
        deadline = time.monotonic() + STRESS_SECONDS
        while time.monotonic() < deadline:
            a_forwarded += cycle_a(dp, rng, noise)
            cycles += 1
            dp.recv_upcalls()  # A's misses meanwhile; the ring may also just drop
            if rng.random() < 0.3:  # modify B in place: same output, new actions array
                assert not dp.flow_put(key_b, mask_b, [("trunc", 1500), ("output", OUT_B)])
            if rng.random() < 0.1:  # flush: everything goes, B comes back
                b_counted += dp.flow_del_stats(key_b, mask_b).packets
                dp.flow_flush()
                noise.clear()
                assert dp.stats()["n_flows"] == 0
                dp.flow_put(key_b, mask_b, [("output", OUT_B)])
            if rng.random() < 0.2:  # a port comes and goes under the threads
                dp.add_port(SPARE, "dummy", "spare")
                assert dp.del_port(SPARE)
        b_counted += dp.flow_del_stats(key_b, mask_b).packets
        # Deleting the input ports stops the traffic, after a grace period.
        assert dp.del_port(IN_A) and dp.del_port(IN_B)
        assert tx_packets(dp, OUT_B) == b_counted  # noise flows never matched
        assert cycles > 3 and a_forwarded > 0 and b_counted > 0
        threads = dp.pmd_stats()
        assert len(threads) == 2
        for t in threads:
            assert t["packets"] > 0, threads  # both forwarded
            assert t["packets"] == t["emc_hits"] + t["megaflow_hits"] + t["misses"] + t["malformed"]
    finally:
        dp.close()
