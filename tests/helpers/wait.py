"""Polling with a deadline: tests wait for what they expect instead of
sleeping a fixed time."""
import time


class WaitTimeout(AssertionError, TimeoutError):
    """A wait ran out of time (an AssertionError, so pytest shows it as a
    failed expectation, and a TimeoutError for callers that catch that)."""


def wait_until(predicate, timeout=10.0, interval=0.05, what=""):
    """Polls `predicate()` until it returns something truthy and returns it;
    raises WaitTimeout with the last value seen after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout}s waiting for "
                              f"{what or predicate}; last value: {value!r}")
        time.sleep(interval)
