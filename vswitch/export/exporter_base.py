"""What every exporter shares: targets, interface index map, the uptime
clock, drop/ignore counters, and the flow-cache plumbing that NetFlow v5 and
IPFIX have in common.

Settings common to all exporters:
  targets      list of "host:port" ("[v6addr]:port" for IPv6) or (host, port)
  ifindex_map  {datapath port number: ifIndex}; unmapped ports keep their number
  boot_time    the clock value at which uptime is 0; default: the first `now`
               the engine sees
Configuration errors raise ValueError (they come from the operator); input
errors never raise, they are counted per reason in show()["dropped"].
"""
from __future__ import annotations

from collections import Counter

from .flow_cache import FlowCache
from .records import InvalidRecord, check_flow_stats


def parse_target(target) -> tuple[str, int]:
    if isinstance(target, (tuple, list)) and len(target) == 2:
        host, port = target
    elif isinstance(target, str) and target.rfind(":") > 0:
        host, _, port = target.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    else:
        raise ValueError(f"target {target!r} is not host:port")
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise ValueError(f"target {target!r} has a bad port") from None
    if not host or not 0 < port < 65536:
        raise ValueError(f"target {target!r} is not host:port")
    return (str(host), port)


def apply_numbers(target, settings: dict, spec: dict) -> set[str]:
    """Copies the numeric settings named in spec {name: (low, high, integer)}
    onto target's attributes after checking them; returns the names whose
    value changed. high None means unbounded."""
    changed = set()
    for name, (low, high, integer) in spec.items():
        if name not in settings:
            continue
        value = settings[name]
        kinds = int if integer else (int, float)
        if not isinstance(value, kinds) or isinstance(value, bool) or value < low \
                or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise ValueError(f"{name} must be {'an integer' if integer else 'a number'} {bound}")
        if getattr(target, name) != value:
            changed.add(name)
        setattr(target, name, value)
    return changed


class ExporterBase:
    FORMAT = "?"

    def __init__(self):
        self.targets: list[tuple[str, int]] = []
        self.ifindex_map: dict[int, int] = {}
        self.boot_time: float | None = None
        self.dropped: Counter = Counter()
        self.ignored: Counter = Counter()
        self.datagrams_sent = 0
        self.records_sent = 0

    def configure(self, settings: dict) -> None:
        """Applies settings all or nothing: a bad one raises ValueError and
        leaves the previous configuration in place."""
        saved = [(obj, dict(vars(obj))) for obj in self._configurable()]
        try:
            self._configure(settings)
        except (ValueError, TypeError, AttributeError) as e:
            for obj, state in saved:
                vars(obj).clear()
                vars(obj).update(state)
            raise ValueError(str(e)) from None

    def _configurable(self) -> list:
        return [self]

    def _configure(self, settings: dict) -> None:
        if "targets" in settings:
            self.targets = [parse_target(t) for t in settings["targets"]]
        if "ifindex_map" in settings:
            self.ifindex_map = {int(k): int(v) for k, v in settings["ifindex_map"].items()}
        if settings.get("boot_time") is not None:
            self.boot_time = float(settings["boot_time"])

    # Inputs a format does not use are counted, not refused: the datapath
    # feeds every exporter of a bridge the same way.
    def add_flow_stats(self, stats, now: float) -> None:
        self._clock(now)
        self.ignored["flow_stats"] += 1

    def add_packet_sample(self, sample, now: float) -> None:
        self._clock(now)
        self.ignored["packet_sample"] += 1

    def _clock(self, now: float) -> None:
        if self.boot_time is None:
            self.boot_time = now

    def uptime_ms(self, t: float) -> int:
        """Milliseconds since boot_time, as a wrapping 32-bit counter."""
        return max(0, int(round((t - self.boot_time) * 1000))) & 0xFFFFFFFF

    def ifindex(self, port: int) -> int:
        return self.ifindex_map.get(port, port)

    def _drop(self, reason: str) -> None:
        self.dropped[reason] += 1

    def _address(self, datagrams: list[bytes], records: int) -> list:
        """Counts what is sent and pairs each datagram with every target."""
        self.datagrams_sent += len(datagrams)
        self.records_sent += records
        return [(target, d) for d in datagrams for target in self.targets]

    def show(self) -> dict:
        return {
            "format": self.FORMAT,
            "targets": [f"{h}:{p}" for h, p in self.targets],
            "datagrams_sent": self.datagrams_sent,
            "records_sent": self.records_sent,
            "dropped": dict(self.dropped),
            "ignored": dict(self.ignored),
        }


class FlowCacheExporter(ExporterBase):
    """NetFlow v5 and IPFIX: flow stats go through a FlowCache; subclasses
    encode what expires (`_encode(flows, now) -> (datagrams, records)`)."""

    def __init__(self):
        super().__init__()
        self.cache = FlowCache(active_timeout=60.0, inactive_timeout=15.0)

    def _configurable(self) -> list:
        return [self, self.cache]

    def _configure(self, settings: dict) -> None:
        super()._configure(settings)
        apply_numbers(self.cache, settings, {"active_timeout": (0, None, False),
                                             "inactive_timeout": (0, None, False),
                                             "max_flows": (1, None, True)})
        if "tcp_end_detection" in settings:
            self.cache.tcp_end_detection = bool(settings["tcp_end_detection"])

    def _accept(self, stats, parsed) -> str | None:
        """A reason to ignore a valid flow this format cannot carry, or None."""
        return None

    def add_flow_stats(self, stats, now: float) -> None:
        try:
            parsed = check_flow_stats(stats)
        except InvalidRecord as e:
            self._clock(now)
            self._drop(e.reason)
            return
        self.add_parsed_flow_stats(parsed, stats, now)

    def add_parsed_flow_stats(self, parsed, stats, now: float) -> None:
        """add_flow_stats for a caller that built the ParsedKey itself from
        values already in range (the switch, from the datapath's key): no
        text to parse, which would cost more than the rest of a record."""
        self._clock(now)
        reason = self._accept(stats, parsed)
        if reason:
            self.ignored[reason] += 1
        elif stats.packets == 0:
            self.ignored["empty_delta"] += 1
        else:
            self.cache.add(parsed, stats)

    def run(self, now: float) -> list:
        self._clock(now)
        return self._send(self.cache.expire(now), now)

    def flush(self, now: float) -> list:
        """Exports every cached flow now (reason forced), e.g. before a
        restart; sequence numbers carry on afterwards."""
        self._clock(now)
        return self._send(self.cache.flush(), now)

    def _send(self, flows, now: float) -> list:
        if not flows and not self._must_send(now):
            return []
        datagrams, records = self._encode(flows, now)
        return self._address(datagrams, records)

    def _must_send(self, now: float) -> bool:
        return False

    def next_wakeup(self) -> float | None:
        return self.cache.next_expiry()

    def show(self) -> dict:
        out = super().show()
        out.update(cached_flows=len(self.cache),
                   active_timeout=self.cache.active_timeout,
                   inactive_timeout=self.cache.inactive_timeout)
        return out
