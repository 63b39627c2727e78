"""The load-based sleeping policy (csrc/pmd_sleep.h), its state table step by
step, with a made-up clock: which traffic sleeps (dense, one-way), how long
(the fill, then a step per light round, capped), and what ends it (a full
round, sparse or two-way traffic, a maximum of 0)."""
from vswitch.datapath._datapath import ffi, lib

STEP = lib.VS_PMD_SLEEP_STEP_NS
WINDOW = lib.VS_PMD_SLEEP_WINDOW_NS
DENSE = lib.VS_PMD_SLEEP_DENSE_PKTS
HOLD = lib.VS_PMD_SLEEP_HOLD_NS
MIN = lib.VS_PMD_SLEEP_MIN_NS
SHARE = lib.VS_PMD_SLEEP_TWO_WAY_SHARE
BATCH = lib.VS_BATCH
LONG_MAX = 1000 * STEP  # a maximum the fill never reaches in these tests
PORT_A, PORT_B = 1, 2


def _round(s, pkts, now, max_ns=LONG_MAX, batch=None):
    return lib.vs_pmd_sleep_after_round(s, pkts, pkts if batch is None else batch, BATCH, now,
                                        max_ns)


def _forward(s, pkts, in_port, out_port):
    """A round's traffic as the datapath reports it: received on in_port,
    sent to out_port."""
    lib.vs_pmd_sleep_note_rx(s, in_port, pkts)
    lib.vs_pmd_sleep_note_tx(s, lib.vs_pmd_sleep_port_bit(out_port))


def _dense_policy(rate=DENSE):
    """A policy whose last window was a dense one-way stream A -> B (`rate`
    packets in it: the measured rate), still spinning; and the time now."""
    s = ffi.new("struct vs_pmd_sleep *")
    now = 10 * WINDOW
    assert _round(s, 0, now) == 0
    assert s.dense == 0 and s.state == lib.VS_PMD_SLEEP_SPIN
    now += WINDOW
    _forward(s, rate, PORT_A, PORT_B)
    assert _round(s, rate, now, batch=BATCH) == 0  # a full round: no sleep
    assert s.dense == 1 and s.two_way == 0 and s.state == lib.VS_PMD_SLEEP_SPIN
    return s, now


def test_a_light_round_starts_at_the_fill_then_each_grows_by_a_step():
    # DENSE packets per window: half a round (BATCH // 2) takes
    # WINDOW * BATCH / 2 / DENSE to arrive.
    s, now = _dense_policy()
    fill = WINDOW * (BATCH // 2) // DENSE
    got = [_round(s, 1, now + i) for i in range(5)]
    assert got == [fill + n * STEP for n in range(5)]
    assert s.state == lib.VS_PMD_SLEEP_SLEEP
    # The maximum bounds it, and a lower maximum applies at once.
    assert _round(s, 1, now + 5, max_ns=25 * STEP) == 25 * STEP


def test_the_fill_follows_the_measured_rate():
    # Four times the rate: a quarter of the sleep.
    s, now = _dense_policy(rate=4 * DENSE)
    fill = WINDOW * (BATCH // 2) // (4 * DENSE)
    assert fill >= MIN
    assert _round(s, 1, now) == fill
    # Windows at the lower rate pull the average (and the sleep) back up.
    for w in range(1, 20):
        _round(s, DENSE, now + w * WINDOW, batch=BATCH)
    assert _round(s, 1, now + 20 * WINDOW) > 3 * fill


def test_no_sleep_is_shorter_than_the_minimum_unless_the_maximum_is():
    # A rate at which half a round arrives in MIN / 2.
    rate = (BATCH // 2) * WINDOW // (MIN // 2)
    s, now = _dense_policy(rate=rate)
    assert _round(s, 1, now) == MIN
    assert _round(s, 1, now) == MIN + STEP
    s, now = _dense_policy(rate=rate)
    assert _round(s, 1, now, max_ns=MIN // 4) == MIN // 4


def test_half_full_rounds_hold_the_sleep_and_a_full_one_ends_it():
    s, now = _dense_policy()
    first = _round(s, 1, now)
    assert first > 0
    assert _round(s, BATCH // 2, now) == first
    assert s.state == lib.VS_PMD_SLEEP_SLEEP
    assert _round(s, BATCH, now) == 0
    assert s.next_ns == 0 and s.state == lib.VS_PMD_SLEEP_SPIN
    # From SPIN a half-full round does not start sleeping: the load is matched.
    assert _round(s, BATCH // 2, now) == 0


def test_sparse_traffic_and_a_maximum_of_0_never_sleep():
    s, now = _dense_policy()
    assert _round(s, 1, now, max_ns=0) == 0
    # Sparse traffic from the start: one packet per window never sleeps.
    s = ffi.new("struct vs_pmd_sleep *")
    for w in range(1, 40):
        assert _round(s, 1, w * WINDOW) == 0
    assert s.dense == 0
    # A burst after a long gap is not a dense rate: the window spans the gap.
    assert _round(s, DENSE * 4, 50 * WINDOW) == 0
    assert s.dense == 0


def test_density_outlasts_gaps_between_bursts_then_ends():
    # Bursts with empty windows between them (a sender's batches) keep the
    # thread sleeping: dense for HOLD after the last dense window ...
    s, now = _dense_policy()
    for w in range(1, 4):
        assert _round(s, 0, now + w * WINDOW) > 0
    assert s.dense == 1
    # ... and no longer.
    now += HOLD + WINDOW
    assert _round(s, 0, now) == 0
    assert s.dense == 0 and s.state == lib.VS_PMD_SLEEP_SPIN
    # A window that ran long (the thread was preempted) but whose rate is
    # dense makes it dense again.
    now += 5 * WINDOW
    _round(s, 5 * DENSE, now, batch=BATCH)
    assert s.dense == 1


def _two_way_window(s, now, data, back):
    """One window of `data` packets A -> B and `back` packets B -> A (a
    transfer and its ACKs), ended at now + WINDOW."""
    _forward(s, data, PORT_A, PORT_B)
    _round(s, data, now + 1)
    _forward(s, back, PORT_B, PORT_A)
    _round(s, back, now + 2)
    return _round(s, 0, now + WINDOW)


def test_two_way_traffic_keeps_the_thread_spinning_for_the_hold():
    # A window-clocked transfer: a sleep would hold its ACKs back.
    s, now = _dense_policy()
    assert _round(s, 1, now) > 0  # one-way: it sleeps
    assert _two_way_window(s, now, 4 * DENSE, DENSE) == 0
    assert s.dense == 1 and s.two_way == 1 and s.state == lib.VS_PMD_SLEEP_SPIN
    # Light rounds of the same traffic do not sleep while the hold lasts,
    # even in windows that happen to carry no ACK ...
    now += WINDOW
    for w in range(1, 10):
        _forward(s, 2, PORT_A, PORT_B)
        assert _round(s, 2 * DENSE, now + w * WINDOW, batch=1) == 0
    # ... and one-way traffic sleeps again once it is over.
    now += HOLD + WINDOW
    _forward(s, DENSE, PORT_A, PORT_B)
    _round(s, DENSE, now, batch=BATCH)
    assert s.two_way == 0 and s.dense == 1
    assert _round(s, 1, now + 1) > 0


def test_a_stray_frame_back_does_not_make_a_stream_two_way():
    # One frame back (an ARP reply) among more than SHARE packets one way.
    s, now = _dense_policy()
    _two_way_window(s, now, SHARE + 1, 1)
    assert s.two_way == 0
    assert _round(s, 1, now + WINDOW + 1) > 0
    # At 1 / SHARE of the window it is two-way.
    s, now = _dense_policy()
    _two_way_window(s, now, SHARE - 1, 1)
    assert s.two_way == 1
    assert _round(s, 1, now + WINDOW + 1) == 0


def test_traffic_back_counts_only_on_ports_sent_to_in_this_window_or_the_last():
    s, now = _dense_policy()
    # Packets in on a third port (another one-way stream C -> B) are not
    # traffic back.
    _forward(s, DENSE, 3, PORT_B)
    _round(s, DENSE, now + 1)
    assert s.window_back == 0
    # B was sent to: what comes in on B is.
    _forward(s, 4, PORT_B, PORT_A)
    assert s.window_back == 4
    # Two windows without sending to A: A's packets no longer count.
    _round(s, 0, now + WINDOW)
    _round(s, 0, now + 2 * WINDOW)
    lib.vs_pmd_sleep_note_rx(s, PORT_A, 5)
    assert s.window_back == 0
