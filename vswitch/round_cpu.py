"""How much of its CPU the revalidator's rounds take (issue 16).

The daemon's Python main thread may share its CPU with the C poll thread
(bench/run.py pins the whole switch to one CPU, as OVS's); a packet that
arrives while Python runs waits until Python blocks, so what matters for
latency is the longest stretch of Python CPU between two sleeps.  The
revalidator runs its round in steps with a sleep between them
(daemon.Daemon._revalidator); RoundCpu records each step's CPU time
(time.thread_time_ns: this thread's alone, not the poll thread's) and the
round's total, for the last ROUNDS_KEPT rounds, and ovs-appctl upcall/show
prints them beside OVS's "dump duration" (appctl/commands.py).
"""
import time
from collections import deque

ROUNDS_KEPT = 60  # a minute of rounds at one a second
NS_PER_US = 1000


class RoundCpu:
    def __init__(self, clock=time.thread_time_ns, wall=time.monotonic_ns):
        self.clock, self.wall = clock, wall
        self.rounds = deque(maxlen=ROUNDS_KEPT)  # (total ns, longest step ns, steps, wall ns)
        self.last_steps = []  # the last round's steps' CPU, ns, in order
        self._steps = None
        self._mark = self._wall0 = 0

    def start(self):
        """A round begins: its first step starts now."""
        self._steps = []
        self._wall0 = self.wall()
        self._mark = self.clock()

    def step(self):
        """A step ended (the thread is about to sleep)."""
        now = self.clock()
        self._steps.append(now - self._mark)
        self._mark = now

    def resume(self):
        """The thread woke from its sleep between two steps."""
        self._mark = self.clock()

    def finish(self):
        """The round is over (its last step already counted by step())."""
        steps = self._steps or [0]
        self.rounds.append((sum(steps), max(steps), len(steps), self.wall() - self._wall0))
        self.last_steps = steps
        self._steps = None

    def summary(self):
        """{last, median, max} of the kept rounds' CPU and longest step (µs),
        or None before the first round."""
        if not self.rounds:
            return None
        totals = sorted(r[0] for r in self.rounds)
        longest = sorted(r[1] for r in self.rounds)
        last = self.rounds[-1]
        return {"rounds": len(self.rounds),
                "last_cpu_us": last[0] // NS_PER_US, "last_max_step_us": last[1] // NS_PER_US,
                "last_steps": last[2], "last_wall_us": last[3] // NS_PER_US,
                "last_step_us": [ns // NS_PER_US for ns in self.last_steps],
                "median_cpu_us": totals[len(totals) // 2] // NS_PER_US,
                "max_cpu_us": totals[-1] // NS_PER_US,
                "median_max_step_us": longest[len(longest) // 2] // NS_PER_US,
                "max_step_us": longest[-1] // NS_PER_US}
