"""Poll threads: how many, where they are pinned, whether they spin, and
that replacing them keeps the datapath's totals."""
import os

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
