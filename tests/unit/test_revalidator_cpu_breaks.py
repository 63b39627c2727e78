"""The daemon's revalidator gives up the CPU between the steps of a round
(Daemon._revalidator): it sleeps REVALIDATE_CPU_BREAK_S, a real wait that
lets a busy-polling poll thread sharing the CPU forward what arrived, rather
than only yielding to other callbacks (asyncio.sleep(0)), which kept the
thread on the CPU for a whole round (bench/ping_outliers.py)."""
import asyncio
import types

import pytest

from vswitch import daemon

STEPS = 3


class Stop(Exception):
    pass


class SteppingSwitch:
    def __init__(self, log):
        self.log = log

    def revalidate_steps(self):
        for i in range(STEPS):
            self.log.append(("step", i))
            yield


def one_round(monkeypatch, fake, log):
    """Runs Daemon._revalidator on `fake` for one round, every sleep logged."""
    real_sleep = asyncio.sleep

    async def recording_sleep(delay):
        log.append(("sleep", delay))
        if log.count(("sleep", daemon.REVALIDATE_SECONDS)) > 1:
            raise Stop  # the second round begins: one round seen
        await real_sleep(0)

    monkeypatch.setattr(daemon.asyncio, "sleep", recording_sleep)
    with pytest.raises(Stop):
        asyncio.run(daemon.Daemon._revalidator(fake))


def test_revalidator_sleeps_between_every_step(monkeypatch):
    log = []
    one_round(monkeypatch, types.SimpleNamespace(switch=SteppingSwitch(log), ovsdb=None), log)
    brk = ("sleep", daemon.REVALIDATE_CPU_BREAK_S)
    assert daemon.REVALIDATE_CPU_BREAK_S > 0
    assert log == [("sleep", daemon.REVALIDATE_SECONDS),
                   ("step", 0), brk, ("step", 1), brk, ("step", 2), brk,
                   ("sleep", daemon.REVALIDATE_SECONDS)]


def test_revalidator_breaks_before_the_ovsdb_refresh(monkeypatch):
    log = []
    db = types.SimpleNamespace(refresh=lambda: log.append(("refresh",)))
    fake = types.SimpleNamespace(switch=SteppingSwitch(log), ovsdb=types.SimpleNamespace(db=db))
    one_round(monkeypatch, fake, log)
    brk = ("sleep", daemon.REVALIDATE_CPU_BREAK_S)
    assert log[-3:] == [brk, ("refresh",), ("sleep", daemon.REVALIDATE_SECONDS)]
    assert log.count(brk) == STEPS + 1
