"""The shape every control-protocol engine shares, and its two small helpers.

An engine (LACP, CFM, ...) never reads the clock or touches a socket: the
caller hands it frames with `process_packet(port, frame, now)`, calls
`run(now)` when `next_wakeup()` is due and sends the `(port, frame)` pairs it
returns. Malformed input is counted per reason in a `DropCounter` and never
raises. `StateTable` runs a `{(state, event): (action, next_state)}` table so
that state machines read like the standard's diagrams.
"""
from collections import Counter
from typing import Callable, Iterable, Protocol


class Engine(Protocol):
    def configure(self, settings: dict) -> None: ...
    def process_packet(self, port: str, frame: bytes, now: float) -> None: ...
    def run(self, now: float) -> list: ...
    def next_wakeup(self) -> float | None: ...
    def show(self) -> dict: ...


class MalformedFrame(ValueError):
    """Raised by a codec; `reason` is a short stable token for counters."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class DropCounter(Counter):
    """Counts dropped input by reason (`{"bad-length": 2, ...}`)."""

    def drop(self, reason: str) -> None:
        self[reason] += 1


class StateTable:
    """A state machine given as `{(state, event): (action, next_state)}`.

    `step(state, events, do)` looks up the first event (in the caller's
    priority order) that has a transition from `state`, calls `do(action)`
    and returns the next state; it repeats from the new state so that
    unconditional transitions (event "UCT") chain, and stops when no listed
    event applies. `events` is a callable returning the events true *now*,
    because actions change the conditions.
    """

    ANY = "*"

    def __init__(self, name: str, table: dict):
        self.name = name
        self.table = table

    def lookup(self, state: str, event: str):
        hit = self.table.get((state, event))
        if hit is None:
            hit = self.table.get((self.ANY, event))
            # A global transition into the state we are already in is a no-op
            # (its condition is level-triggered and would fire forever).
            if hit is not None and hit[1] == state:
                return None
        return hit

    def step(self, state: str, events: Callable[[str], Iterable[str]],
             do: Callable[[str], None], limit: int = 16) -> str:
        for _ in range(limit):
            for event in events(state):
                hit = self.lookup(state, event)
                if hit is not None:
                    action, state = hit
                    if action:
                        do(action)
                    break
            else:
                return state
        return state
