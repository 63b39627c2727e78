"""Meters in the C datapath (csrc/meter.c): a megaflow on dummy ports with
("meter", id) before its output.  Checks what came out: how many frames a
drop band let through (burst, then rate, measured against the clock), a DSCP
remark byte for byte against scapy (IPv4 checksum recomputed by scapy), the
counters, and that a deleted meter passes everything."""
import time

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from vswitch.datapath import dp_meters
from vswitch.datapath.dpif import DUMMY_QUEUE_LEN, Datapath
from helpers.vswitchd import wait_for

ADDRS = dict(src="12:11:11:11:11:11", dst="22:22:22:22:22:22")
DROP, REMARK = dp_meters.BAND_DROP, dp_meters.BAND_DSCP_REMARK
MEASURE_ATTEMPTS = 3
OFFER_SECONDS = 2.0


@pytest.fixture
def dp():
    d = Datapath(upcall_ring_size=64)
    d.add_port(1, "dummy", "in")
    d.add_port(2, "dummy", "out")
    ids = []
    d.meter = lambda pktps, bands: ids.append(dp_meters.allocate()) or \
        dp_meters.configure(ids[-1], pktps, bands) or ids[-1]
    try:
        yield d
    finally:
        for i in ids:
            dp_meters.release(i)
        d.close()


def send(dp, frames):
    """Injects frames on port 1 (in batches the dummy queue takes); returns
    what port 2 sent once the datapath is idle."""
    sent, frames = [], list(frames)
    while frames:
        n = dp.dummy_inject(1, frames[:DUMMY_QUEUE_LEN // 2])
        frames = frames[n:]
        sent += dp.dummy_sent(2)
    quiet = [0]

    def drained():
        got = dp.dummy_sent(2)
        sent.extend(got)
        quiet[0] = 0 if got else quiet[0] + 1
        return quiet[0] >= 5

    wait_for(drained, what="the datapath to go quiet", interval=0.02)
    return sent


def flow(dp, meter_id):
    dp.flow_flush()
    dp.flow_put({"in_port": 1}, {"in_port": 0xFFFFFFFF}, [("meter", meter_id), ("output", 2)])


FRAME = bytes(Ether(**ADDRS) / IP(src="10.0.0.1", dst="10.0.0.2", tos=18 << 2) / TCP() / (b"z" * 100))


def test_drop_band_passes_the_burst_then_drops_and_counts(dp):
    m = dp.meter(True, [(DROP, 1, 20, 0)])     # 1 packet/s, burst 20 packets
    flow(dp, m)
    out = send(dp, [FRAME] * 100)
    assert 20 <= len(out) <= 21 and all(f == FRAME for f in out)
    packets, n_bytes, bands = dp_meters.stats(m)
    assert packets == 100 and n_bytes == 100 * len(FRAME)
    assert bands == [(100 - len(out), (100 - len(out)) * len(FRAME))]
    dp_meters.release(m)                        # unconfigured: everything passes
    assert len(send(dp, [FRAME] * 30)) == 30


@pytest.mark.parametrize("l3, dscp_in, dscp_out", [
    (IP(src="10.0.0.1", dst="10.0.0.2"), 18, 20),      # AF21 -> AF22
    (IPv6(src="10::1", dst="20::2"), 18, 20),
    (IP(src="10.0.0.1", dst="10.0.0.2"), 22, 22),      # AF23 stays (drop precedence saturates)
])
def test_dscp_remark_band_raises_the_drop_precedence_of_the_excess(dp, l3, dscp_in, dscp_out):
    l3 = l3.copy()
    if isinstance(l3, IP):
        l3.tos = dscp_in << 2 | 1      # ECN bits kept
    else:
        l3.tc = dscp_in << 2 | 1
    frame = Ether(bytes(Ether(**ADDRS) / l3 / TCP() / b"payload"))
    m = dp.meter(True, [(REMARK, 1, 2, 1), (DROP, 1000, 1000, 0)])
    flow(dp, m)
    out = send(dp, [bytes(frame)] * 5)
    assert len(out) == 5                       # a remark band drops nothing
    assert out[:2] == [bytes(frame)] * 2       # within the burst: unchanged
    want = frame.copy()
    if isinstance(l3, IP):
        want[IP].tos = dscp_out << 2 | 1
        del want[IP].chksum
    else:
        want[IPv6].tc = dscp_out << 2 | 1
    assert out[2:] == [bytes(Ether(bytes(want)))] * 3
    assert dp_meters.stats(m)[2] == [(3, 3 * len(frame)), (0, 0)]


@pytest.mark.parametrize("pktps, rate, burst", [(False, 8000, 80),     # 1 MB/s, 10 kB of burst
                                                 (True, 5000, 50)])      # packets/s, packets
def test_drop_band_holds_the_rate_within_5_percent(dp, pktps, rate, burst):
    # A meter must never pass more than rate × time + burst: checked on every
    # attempt.  It may pass less when this process or the poll thread is
    # descheduled for longer than burst/rate (10 ms here: the bucket is full
    # and refills are lost, as a token bucket's should be), which a loaded
    # machine does now and then; so the lower bound must hold on one of
    # MEASURE_ATTEMPTS attempts, each with a fresh meter.
    results = []
    for _ in range(MEASURE_ATTEMPTS):
        passed, allowed = measure_drop_band(dp, pktps, rate, burst)
        assert passed <= 1.05 * allowed, (passed, allowed)
        results.append((passed, allowed))
        if passed >= 0.95 * allowed:
            return
    pytest.fail(f"every attempt passed under 95% of the rate (passed, allowed): {results}")


def measure_drop_band(dp, pktps, rate, burst):
    """Offers a fresh meter far more than its rate for OFFER_SECONDS;
    returns (frames it passed, frames rate and burst allow)."""
    m = dp.meter(pktps, [(DROP, rate, burst, 0)])
    flow(dp, m)
    frame = bytes(Ether(**ADDRS) / IP() / TCP() / (b"r" * 946))   # 1000 bytes
    # Offered without pauses (a pause longer than burst/rate would cap the
    # refill at the burst, as a token bucket should), far above the rate:
    # packets a microsecond apart also catch a refill rounded down.
    passed, start = 0, time.monotonic()
    while time.monotonic() - start < OFFER_SECONDS:
        dp.dummy_inject(1, [frame] * (DUMMY_QUEUE_LEN // 2))
        passed += len(dp.dummy_sent(2))
    elapsed = time.monotonic() - start
    passed += len(send(dp, []))
    per_packet = 1 if pktps else 8 * len(frame) / 1000     # in the meter's units
    allowed = (rate * elapsed + burst) / per_packet
    packets, _, bands = dp_meters.stats(m)
    assert packets > 2 * allowed, "offered load too low to test the rate"
    assert bands[0][0] == packets - passed
    return passed, allowed
