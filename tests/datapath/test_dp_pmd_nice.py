"""The poll threads' nice value (vs_dp_set_pmd_nice, datapath.h): set on the
threads that run and on those started later, only on them (the calling
thread keeps its own), and refused out of range without a change.  Read back
from /proc/self/task/TID/stat, as the scheduler sees it."""
import os

import pytest

from helpers.wait import wait_until
from vswitch.datapath.dpif import Datapath

NICE_FIELD = 16  # field 19 of /proc/PID/stat, counted after the ")" of comm
RAISED = 5  # a higher nice: any process may set it
LOWERED = -5  # needs CAP_SYS_NICE
SETTLE_S = 2.0


def nices_become(expected):
    """A thread that has not run yet takes the value as it starts."""
    wait_until(lambda: pmd_nices() == expected, SETTLE_S, what=f"poll threads' nice {expected}")
    return True


def pmd_nices():
    """{thread name: nice} of this process's poll threads ("pmdN")."""
    nices = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # a thread that just ended
        if name.startswith("pmd"):
            nices[name] = int(fields[NICE_FIELD])
    return nices


@pytest.fixture
def dp():
    d = Datapath(upcall_ring_size=16)
    yield d
    d.close()


def test_nice_reaches_running_and_later_threads_only(dp):
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert nices_become({"pmd0": own})
    dp.set_pmd_nice(RAISED)
    assert nices_become({"pmd0": RAISED})
    dp.set_pmds([None, None])
    assert nices_become({"pmd0": RAISED, "pmd1": RAISED})
    assert os.getpriority(os.PRIO_PROCESS, 0) == own  # this thread is not a poll thread


def test_out_of_range_is_refused_and_changes_nothing(dp):
    dp.set_pmd_nice(RAISED)
    assert nices_become({"pmd0": RAISED})
    for bad in (-21, 20):
        with pytest.raises(ValueError, match="out of range"):
            dp.set_pmd_nice(bad)
    assert pmd_nices() == {"pmd0": RAISED}


def test_lower_nice_needs_the_privilege(dp):
    dp.set_pmd_nice(RAISED)
    assert nices_become({"pmd0": RAISED})
    if os.geteuid() == 0:
        dp.set_pmd_nice(LOWERED)
        assert nices_become({"pmd0": LOWERED})
    else:
        with pytest.raises(PermissionError):
            dp.set_pmd_nice(LOWERED)
        assert pmd_nices() == {"pmd0": RAISED}
