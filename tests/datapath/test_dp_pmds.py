"""Poll threads: how many, where they are pinned, whether they spin, and
that replacing them keeps the datapath's totals."""
import os
import time

from vswitch.datapath.dpif import Datapath


def test_set_pmds_pins_and_reports_each_thread():
    dp = Datapath(upcall_ring_size=16)
    try:
        assert [t["cpu"] for t in dp.pmd_stats()] == [-1]  # default: one, unpinned
        cpus = sorted(os.sched_getaffinity(0))[:2]
        dp.set_pmds(cpus, busy_poll=True)
        threads = dp.pmd_stats()
        assert [t["cpu"] for t in threads] == cpus
        assert all(t["busy_poll"] == 1 for t in threads)
        assert dp.stats()["n_pmds"] == len(cpus)
        dp.set_pmds([None])
        assert [(t["cpu"], t["busy_poll"]) for t in dp.pmd_stats()] == [(-1, 0)]
    finally:
        dp.close()


def test_pmd_threads_are_named_and_pinned_in_the_kernel():
    dp = Datapath(upcall_ring_size=16)
    try:
        cpu = sorted(os.sched_getaffinity(0))[-1]
        dp.set_pmds([cpu])
        names = {}
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/comm") as f:
                names[f.read().strip()] = int(tid)
        assert "pmd0" in names
        assert os.sched_getaffinity(names["pmd0"]) == {cpu}
    finally:
        dp.close()


IDLE_WINDOW_S = 1.0
AFTER_TRAFFIC_S = 0.3  # well past the longest spin window (SPIN_MAX_NS, 4 ms)


def _thread_cpu_s(name):
    """CPU time (utime + stime) of this process's thread called `name`."""
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/stat") as f:
            comm, rest = f.read().split("(", 1)[1].rsplit(")", 1)
        if comm == name:
            fields = rest.split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    raise LookupError(name)


def _cpu_after_traffic(busy_poll, maxsleep_us=None):
    dp = Datapath(upcall_ring_size=16)
    try:
        dp.add_port(1, "dummy", "in")
        dp.add_port(2, "dummy", "out")
        dp.set_pmds([None], busy_poll=busy_poll)
        if maxsleep_us is not None:
            dp.set_pmd_maxsleep(maxsleep_us)
        dp.flow_put({"in_port": 1}, {"in_port": 0xFFFFFFFF}, [("output", 2)])
        frames = [bytes(range(60))] * 100
        assert dp.dummy_inject(1, frames) == len(frames)
        deadline = time.monotonic() + 5
        while len(dp.dummy_sent(2)) < len(frames) and time.monotonic() < deadline:
            time.sleep(0.01)  # dummy_sent drains: the loop ends once all were sent
        assert dp.port_stats(2)["tx_packets"] == len(frames)
        time.sleep(AFTER_TRAFFIC_S)
        c0 = _thread_cpu_s("pmd0")
        time.sleep(IDLE_WINDOW_S)
        return _thread_cpu_s("pmd0") - c0
    finally:
        dp.close()


def test_adaptive_poll_thread_sleeps_once_traffic_stops():
    # Adaptive polling (the default): it may spin right after packets, but
    # an idle switch costs under 2 % of a core.
    assert _cpu_after_traffic(busy_poll=False) < 0.02 * IDLE_WINDOW_S


def test_busy_poll_thread_keeps_spinning_when_idle():
    # Without load-based sleeping (maximum 0, as OVS's default) it spins
    # without a break; even sharing the CPU with others, a spinning thread
    # gets a good share.
    assert _cpu_after_traffic(busy_poll=True, maxsleep_us=0) > 0.2 * IDLE_WINDOW_S


LIGHT_BURSTS = 75  # of LIGHT_BURST frames: 600, within both dummy queues (VS_DUMMY_QUEUE_LEN)
LIGHT_BURST = 8  # a round's worth is 128: every round stays light
# Between bursts: with the injection's own cost ~300k frames/s, well above
# the density threshold (160k/s, judged on the rate: pmd_sleep.h).
LIGHT_GAP_S = 20e-6
# A new maximum applies from the next round: a sleep already under way (up to
# the old maximum, plus a wake-up of tens of µs) ends first.
SLEEP_SETTLE_S = 0.01


def _forward_light_stream(dp):
    """Forwards a light dense stream 1 -> 2 (small bursts back to back:
    dense traffic whose batches stay small).  Returns (frames injected,
    frames sent, load-based sleeps taken meanwhile)."""
    before = dp.pmd_stats()[0]["sleeps"]
    frames, sent = [], []
    for burst in range(LIGHT_BURSTS):
        chunk = [bytes([burst, i]) + bytes(58) for i in range(LIGHT_BURST)]
        assert dp.dummy_inject(1, chunk) == len(chunk)
        frames += chunk
        until = time.perf_counter() + LIGHT_GAP_S
        while time.perf_counter() < until:
            pass
    deadline = time.monotonic() + 5
    while len(sent) < len(frames) and time.monotonic() < deadline:
        time.sleep(0.01)
        sent += dp.dummy_sent(2)
    return frames, sent, dp.pmd_stats()[0]["sleeps"] - before


def _forwarding_dp():
    dp = Datapath(upcall_ring_size=16)
    dp.add_port(1, "dummy", "in")
    dp.add_port(2, "dummy", "out")
    dp.set_pmds([None], busy_poll=True)
    dp.flow_put({"in_port": 1}, {"in_port": 0xFFFFFFFF}, [("output", 2)])
    return dp


def test_busy_poll_thread_sleeps_under_light_dense_traffic_unless_maxsleep_is_0():
    dp = _forwarding_dp()
    try:
        # The default maximum: small batches of dense traffic are followed
        # by short sleeps, and every frame still goes out, in order.
        frames, sent, sleeps = _forward_light_stream(dp)
        assert sent == frames
        assert sleeps > 0
        dp.set_pmd_maxsleep(0)
        time.sleep(SLEEP_SETTLE_S)
        frames, sent, sleeps = _forward_light_stream(dp)
        assert sent == frames
        assert sleeps == 0
        # Out of range: refused, and the maximum stays 0.
        try:
            dp.set_pmd_maxsleep(10**9)
        except ValueError:
            pass
        else:
            raise AssertionError("a 1000 s pmd-maxsleep was accepted")
        assert _forward_light_stream(dp)[2] == 0
    finally:
        dp.close()


def test_sparse_traffic_never_waits_for_a_load_based_sleep():
    # A ping-like stream (one frame every few ms) stays below the density
    # threshold: the thread spins for it, however long the maximum.
    dp = _forwarding_dp()
    try:
        dp.set_pmd_maxsleep(1000)
        before = dp.pmd_stats()[0]["sleeps"]
        for i in range(50):
            assert dp.dummy_inject(1, [bytes([i]) + bytes(59)]) == 1
            time.sleep(0.003)
        time.sleep(0.05)
        assert dp.dummy_sent(2) == [bytes([i]) + bytes(59) for i in range(50)]
        assert dp.pmd_stats()[0]["sleeps"] == before
    finally:
        dp.close()


def test_sleeping_poll_thread_still_forwards_every_frame():
    # Frames that arrive while the thread sleeps (up to 1 ms here) wait in
    # the port's queue.
    dp = _forwarding_dp()
    try:
        dp.set_pmd_maxsleep(1000)
        frames, sent, sleeps = _forward_light_stream(dp)
        assert sent == frames
        assert sleeps > 0
    finally:
        dp.close()


def test_two_way_dense_traffic_never_waits_for_a_load_based_sleep():
    # The same light dense stream, but with as much coming back (a transfer
    # and its ACKs: in on each port, out on the other): the thread spins for
    # it (pmd_sleep.h, two-way), while the one-way stream sleeps.
    dp = _forwarding_dp()
    try:
        dp.flow_put({"in_port": 2}, {"in_port": 0xFFFFFFFF}, [("output", 1)])
        dp.set_pmd_maxsleep(1000)
        before = dp.pmd_stats()[0]["sleeps"]
        there, back = [], []
        for burst in range(LIGHT_BURSTS):
            for port, frames in ((1, there), (2, back)):
                chunk = [bytes([port, burst, i]) + bytes(57) for i in range(LIGHT_BURST // 2)]
                assert dp.dummy_inject(port, chunk) == len(chunk)
                frames += chunk
            until = time.perf_counter() + LIGHT_GAP_S
            while time.perf_counter() < until:
                pass
        got = {1: [], 2: []}
        deadline = time.monotonic() + 5
        while (len(got[2]) < len(there) or len(got[1]) < len(back)) and \
                time.monotonic() < deadline:
            time.sleep(0.01)
            got[1] += dp.dummy_sent(1)
            got[2] += dp.dummy_sent(2)
        assert got[2] == there and got[1] == back
        assert dp.pmd_stats()[0]["sleeps"] == before
        # Control: one way only, it does sleep.
        frames, sent, sleeps = _forward_light_stream(dp)
        assert sent == frames
        assert sleeps > 0
    finally:
        dp.close()


PERIODIC_GAP_S = 0.001   # a ping's period, well under SPIN_MAX_NS (4 ms)
PERIODIC_FRAMES = 12
# The first frame wakes the thread from a long sleep and the second from a
# short one, which widens the spin window past the period at once; doubling
# alone from the 200 µs start (100 µs after that first long sleep) would
# cost about five wake-ups.  One more is left for a gap stretched by the
# scheduler.
PERIODIC_WAKEUPS_MAX = 3


def test_adaptive_spin_window_covers_a_periodic_senders_gap_after_one_wakeup():
    dp = Datapath(upcall_ring_size=16)
    try:
        dp.add_port(1, "dummy", "in")
        dp.add_port(2, "dummy", "out")
        dp.flow_put({"in_port": 1}, {"in_port": 0xFFFFFFFF}, [("output", 2)])
        time.sleep(AFTER_TRAFFIC_S)  # the thread asleep in poll(), as an idle switch's
        before = dp.pmd_stats()[0]["wakeups"]
        for _ in range(PERIODIC_FRAMES):
            assert dp.dummy_inject(1, [bytes(range(60))]) == 1
            time.sleep(PERIODIC_GAP_S)
        deadline = time.monotonic() + 5
        while dp.port_stats(2)["tx_packets"] < PERIODIC_FRAMES and time.monotonic() < deadline:
            time.sleep(0.01)
        assert dp.port_stats(2)["tx_packets"] == PERIODIC_FRAMES
        wakeups = dp.pmd_stats()[0]["wakeups"] - before
        assert 1 <= wakeups <= PERIODIC_WAKEUPS_MAX
    finally:
        dp.close()
