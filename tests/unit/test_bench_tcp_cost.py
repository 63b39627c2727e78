"""bench/run.py's TCP cost figures: busy ticks of each CPU per GB delivered,
and the host's steal as a share of the interval (the run itself needs root
and namespaces: tests/integration/test_bench_smoke.py)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import run as bench  # noqa: E402


def test_busy_ticks_per_gigabyte_leave_steal_and_idle_out():
    tick_ms = 1000 / bench.CLK_TCK
    before = {0: (1000, 10, 5000), 1: (300, 0, 5000)}
    # CPU 0: 400 ticks busy and 100 stolen of 500; CPU 1: 50 busy, 450 idle.
    after = {0: (1400, 110, 5500), 1: (350, 0, 5500)}
    cost = bench.tcp_cpu_cost(before, after, 2e9)
    assert cost["cpu0_ms_per_gb"] == pytest.approx(400 * tick_ms / 2)
    assert cost["cpu1_ms_per_gb"] == pytest.approx(50 * tick_ms / 2)
    assert cost["steal_pct"] == pytest.approx(100 * 100 / 1000)


def test_nothing_delivered_gives_no_cost_rather_than_a_division_by_zero():
    ticks = {0: (10, 0, 100)}
    cost = bench.tcp_cpu_cost(ticks, {0: (20, 0, 110)}, 0)
    assert "cpu0_ms_per_gb" not in cost
    assert cost["steal_pct"] == 0


def test_this_machine_reports_every_cpu_with_busy_within_all():
    ticks = bench.cpu_ticks()
    assert sorted(ticks) == list(range(os.cpu_count()))
    for busy, steal, total in ticks.values():
        assert 0 <= busy <= total and 0 <= steal <= total


def test_pooled_ping_p99_ranks_every_runs_echoes_together():
    # Three runs of 100 echoes: one run's slow stretch (10 echoes at 500 µs)
    # is the run's own p99, while the pooled p99 (rank 297 of 300) is still
    # in it; a run without echoes adds nothing.
    fast = [{"ping": {"rtts_us": [20.0 + i % 10 for i in range(100)]}}]
    slow = [{"ping": {"rtts_us": [20.0] * 90 + [500.0] * 10}}]
    runs = fast * 2 + slow + [{"ping": {"error": "no replies"}}]
    assert bench.pooled_ping_p99(runs) == 500.0
    assert bench.pooled_ping_p99(fast * 3) == 29.0
    assert bench.pooled_ping_p99([{"ping": {"error": "no replies"}}]) is None
