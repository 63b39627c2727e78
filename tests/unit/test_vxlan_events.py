"""bench/vxlan_events.py's arithmetic: perf stat's CSV parsed, counts per GB
of the seconds counted (the run itself needs root and namespaces: bench only)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import vxlan_events as ev  # noqa: E402

PERF_STAT = """\
# started on Tue Dec  1
12345,,sched:sched_wakeup,6000012345,100.00,,
<not supported>,,irq_vectors:call_function_single_entry,0,100.00,,
987.5,msec,kmem:kmalloc,6000012345,100.00,,
"""


def test_perf_stat_csv_keeps_counted_events_only():
    assert ev.parse_perf_stat(PERF_STAT) == {"sched:sched_wakeup": 12345.0, "kmem:kmalloc": 987.5}


def test_counts_are_divided_by_the_gigabytes_of_the_counted_seconds():
    iperf = {"intervals": [{"sum": {"bytes": b}} for b in (9e9, 9e9, 1e9, 2e9, 3e9, 9e9)]}
    gb = ev.counted_gbytes(iperf, first=2, n=3)
    assert gb == pytest.approx(6.0)
    assert ev.per_gb({"sched:sched_wakeup": 600.0}, gb) == {"sched:sched_wakeup": 100}


def test_no_bytes_is_an_error_not_a_division_by_zero():
    with pytest.raises(ValueError):
        ev.per_gb({"kmem:kmalloc": 1.0}, 0.0)
