"""The daemon's revalidator gives up the CPU between the steps of a round
(Daemon._revalidator): it sleeps REVALIDATE_CPU_BREAK_S, a real wait that
lets a busy-polling poll thread sharing the CPU forward what arrived, rather
than only yielding to other callbacks (asyncio.sleep(0)), which kept the
thread on the CPU for a whole round (bench/ping_outliers.py)."""
import asyncio
import types

import pytest

from vswitch import daemon
from vswitch.round_cpu import RoundCpu

STEPS = 3


class Stop(Exception):
    pass


class SteppingSwitch:
    def __init__(self, log, cpu=None):
        self.log = log
        self.cpu = cpu  # a FakeCpu the steps spend on, or None

    def revalidate_steps(self):
        for i in range(STEPS):
            self.log.append(("step", i))
            if self.cpu:
                self.cpu.ns += STEP_NS[i]
            yield
        if self.cpu:
            self.cpu.ns += REST_NS  # after the last yield: the round's rest


STEP_NS = (3000, 7000, 5000)
REST_NS = 2000
SLEEP_NS = 1_000_000  # what the thread's clock would show if sleeping counted


class FakeCpu:
    """A thread CPU clock the fake switch advances; so does each sleep, to
    show that sleeps are not counted as a step's CPU."""
    def __init__(self):
        self.ns = 0

    def __call__(self):
        return self.ns


def fake_daemon(switch, ovsdb=None, cpu=None):
    return types.SimpleNamespace(switch=switch, ovsdb=ovsdb,
                                 round_cpu=RoundCpu(clock=cpu or FakeCpu()))


def one_round(monkeypatch, fake, log, cpu=None):
    """Runs Daemon._revalidator on `fake` for one round, every sleep logged
    (and, with a FakeCpu, charged SLEEP_NS on its clock)."""
    real_sleep = asyncio.sleep

    async def recording_sleep(delay):
        log.append(("sleep", delay))
        if cpu is not None:
            cpu.ns += SLEEP_NS
        if log.count(("sleep", daemon.REVALIDATE_SECONDS)) > 1:
            raise Stop  # the second round begins: one round seen
        await real_sleep(0)

    monkeypatch.setattr(daemon.asyncio, "sleep", recording_sleep)
    with pytest.raises(Stop):
        asyncio.run(daemon.Daemon._revalidator(fake))


def test_revalidator_sleeps_between_every_step(monkeypatch):
    log = []
    one_round(monkeypatch, fake_daemon(SteppingSwitch(log)), log)
    brk = ("sleep", daemon.REVALIDATE_CPU_BREAK_S)
    assert daemon.REVALIDATE_CPU_BREAK_S > 0
    assert log == [("sleep", daemon.REVALIDATE_SECONDS),
                   ("step", 0), brk, ("step", 1), brk, ("step", 2), brk,
                   ("sleep", daemon.REVALIDATE_SECONDS)]


def test_revalidator_breaks_before_the_ovsdb_refresh(monkeypatch):
    log = []
    db = types.SimpleNamespace(refresh=lambda: log.append(("refresh",)), watches_runtime=lambda: True)
    fake = fake_daemon(SteppingSwitch(log), ovsdb=types.SimpleNamespace(db=db))
    one_round(monkeypatch, fake, log)
    brk = ("sleep", daemon.REVALIDATE_CPU_BREAK_S)
    assert log[-3:] == [brk, ("refresh",), ("sleep", daemon.REVALIDATE_SECONDS)]
    assert log.count(brk) == STEPS + 1


def test_no_break_and_no_refresh_while_no_monitor_watches_runtime_columns(monkeypatch):
    log = []
    db = types.SimpleNamespace(refresh=lambda: log.append(("refresh",)), watches_runtime=lambda: False)
    one_round(monkeypatch, fake_daemon(SteppingSwitch(log), ovsdb=types.SimpleNamespace(db=db)), log)
    brk = ("sleep", daemon.REVALIDATE_CPU_BREAK_S)
    assert ("refresh",) not in log and log.count(brk) == STEPS
    assert log[-2:] == [brk, ("sleep", daemon.REVALIDATE_SECONDS)]


def test_round_cpu_counts_each_step_between_sleeps_not_the_sleeps(monkeypatch):
    """upcall/show's figures (round_cpu.py): each step's CPU from its
    start to the sleep after it, the rest of the round (after the last
    chunk) a step of its own, the sleeps in between nowhere."""
    log, cpu = [], FakeCpu()
    fake = fake_daemon(SteppingSwitch(log, cpu), cpu=cpu)
    one_round(monkeypatch, fake, log, cpu)
    total, longest, steps, _ = fake.round_cpu.rounds[-1]
    assert (total, longest, steps) == (sum(STEP_NS) + REST_NS, max(STEP_NS), STEPS + 1)
    summary = fake.round_cpu.summary()
    assert summary["last_cpu_us"] == (sum(STEP_NS) + REST_NS) // 1000
    assert summary["max_step_us"] == max(STEP_NS) // 1000
