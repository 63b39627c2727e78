"""coverage/show: event counters with OVS's moving averages (lib/coverage.c).

The counters are totals read from where the switch already counts (the
datapath, the switch's flow limit, the unixctl server): `read()` returns
{name: total} in a fixed order.  `run()`, every RUN_INTERVAL seconds (the
daemon's timer; OVS's COVERAGE_RUN_INTERVAL), records each counter's
increase in a ring of 12 slots (the last minute) and folds each minute into
a ring of 60 (the last hour), as OVS does; `show()` prints per-second rates
over the last interval, minute and hour, and the total.
"""
import zlib

RUN_INTERVAL = 5.0
MIN_AVG_LEN = 12  # RUN_INTERVAL slots in a minute
HR_AVG_LEN = 60   # minutes in an hour


class Coverage:
    def __init__(self, read):
        self.read = read
        self.last_total = {}
        self.min = {}   # name -> [increase per RUN_INTERVAL] * MIN_AVG_LEN
        self.hr = {}    # name -> [increase per minute] * HR_AVG_LEN
        self.idx = 0    # slots recorded so far, modulo MIN_AVG_LEN * HR_AVG_LEN

    def run(self, slots=1):
        """Records the increase since the last run, spread over `slots`
        intervals when runs were missed (as coverage_run__)."""
        for name, total in self.read().items():
            count = max(total - self.last_total.get(name, 0), 0)
            self.last_total[name] = total
            mins = self.min.setdefault(name, [0] * MIN_AVG_LEN)
            hrs = self.hr.setdefault(name, [0] * HR_AVG_LEN)
            idx = self.idx
            for j in range(slots):
                m_idx, h_idx = idx % MIN_AVG_LEN, idx // MIN_AVG_LEN
                mins[m_idx] = count // slots + (count % slots if j == slots - 1 else 0)
                hrs[h_idx] = mins[m_idx] if m_idx == 0 else hrs[h_idx] + mins[m_idx]
                idx = (idx + 1) % (MIN_AVG_LEN * HR_AVG_LEN)
        self.idx = (self.idx + slots) % (MIN_AVG_LEN * HR_AVG_LEN)

    @staticmethod
    def _hash(totals):
        """Same role as OVS's coverage_hash (equal for the same counters at
        the same ranks of totals), not the same value: CRC-32 here."""
        ranked = sorted((-t, n) for n, t in totals.items() if t)
        text = "|".join(f"{-t}:{n}" for t, n in ranked)
        return zlib.crc32(text.encode())

    def totals(self):
        return self.read()

    def show(self):
        totals = self.read()
        lines = [f"Event coverage, avg rate over last: {RUN_INTERVAL:g} seconds, last minute, "
                 f"last hour,  hash={self._hash(totals):08x}:"]
        never = 0
        last = (self.idx - 1) % MIN_AVG_LEN
        for name, total in totals.items():
            if not total:
                never += 1
                continue
            mins = self.min.get(name, [0] * MIN_AVG_LEN)
            hrs = self.hr.get(name, [0] * HR_AVG_LEN)
            lines.append(f"{name:<24} {mins[last] / RUN_INTERVAL:5.1f}/sec {sum(mins) / 60.0:9.3f}/sec "
                         f"{sum(hrs) / 3600.0:13.4f}/sec   total: {total}")
        lines.append(f"{never} events never hit")
        return "\n".join(lines) + "\n"
