"""bench/pmd_sleep_ab.py --diag counts the system calls on the switch's CPU
with perf stat (count_syscalls).  A child pinned to one CPU makes a known
number of sched_yield() calls inside the counting window: the count for that
CPU must include them, every name asked for is reported, and the child's
calls are not counted under another name."""
import os
import subprocess
import sys
import threading
import time

import pytest

from helpers.vswitchd import have

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import pmd_sleep_ab  # noqa: E402

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="perf tracepoints need root"),
              pytest.mark.skipif(not have("perf"), reason="needs perf")]

CPU = 0
YIELDS = 20000
WINDOW_S = 2.0
CHILD_START_S = 0.5  # the child runs well inside the window


def perf_counts_syscalls():
    r = subprocess.run(["perf", "stat", "-e", pmd_sleep_ab.SYSCALL_EVENT + "sched_yield", "true"],
                       capture_output=True, text=True)
    return r.returncode == 0


def test_sched_yield_calls_on_a_cpu_are_counted():
    if not perf_counts_syscalls():
        pytest.skip("perf cannot count the syscalls tracepoints here")
    got = {}
    th = threading.Thread(target=lambda: got.update(pmd_sleep_ab.count_syscalls(CPU, WINDOW_S)))
    th.start()
    time.sleep(CHILD_START_S)
    subprocess.run(["taskset", "-c", str(CPU), sys.executable, "-c",
                    f"import os\nfor _ in range({YIELDS}): os.sched_yield()"], check=True)
    th.join()
    assert set(got) == set(pmd_sleep_ab.SYSCALLS)
    assert got["sched_yield"] >= YIELDS
    # the child made no sendto(); what else ran on the CPU made few at most
    assert got["sendto"] < YIELDS
