"""Flow cache shared by the NetFlow v5 and IPFIX exporters.

Deltas from the datapath accumulate per flow key until the flow ends:
  - idle: no packet for `inactive_timeout` seconds (OVS has no such timeout),
  - active: the flow has lasted `active_timeout` seconds since its first
    packet; the next delta starts a new record, so long flows are reported
    periodically with delta counts,
  - end of flow: a TCP FIN or RST was seen (when `tcp_end_detection`),
  - lack of resources: the cache is full; the least recently updated entry
    is evicted to make room,
  - forced: flush() (reconfiguration or shutdown).
The reason codes are IPFIX flowEndReason values (RFC 5102).
A timeout of 0 disables it. Expiry scans the whole cache: fine for the slow
path's sizes; a timer wheel can replace it if profiles say so.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from .records import TCP_FIN, TCP_RST, FlowStats, ParsedKey, ip_layer_bytes

END_IDLE = 1
END_ACTIVE = 2
END_OF_FLOW = 3
END_FORCED = 4
END_LACK_OF_RESOURCES = 5


@dataclass
class CachedFlow:
    parsed: ParsedKey
    first: float
    last: float
    packets: int = 0
    l2_bytes: int = 0
    ip_bytes: int = 0
    tcp_flags: int = 0
    end_reason: int = 0


class FlowCache:
    def __init__(self, active_timeout: float, inactive_timeout: float,
                 max_flows: int = 65536, tcp_end_detection: bool = True):
        self.active_timeout = active_timeout
        self.inactive_timeout = inactive_timeout
        self.max_flows = max_flows
        self.tcp_end_detection = tcp_end_detection
        self._flows: OrderedDict = OrderedDict()
        self._evicted: list[CachedFlow] = []

    def __len__(self) -> int:
        return len(self._flows)

    def add(self, parsed: ParsedKey, stats: FlowStats) -> None:
        flow = self._flows.get(parsed.key)
        if flow is None:
            if len(self._flows) >= self.max_flows:
                _, victim = self._flows.popitem(last=False)
                victim.end_reason = END_LACK_OF_RESOURCES
                self._evicted.append(victim)
            flow = CachedFlow(parsed, stats.first_seen, stats.last_seen)
            self._flows[parsed.key] = flow
        else:
            self._flows.move_to_end(parsed.key)
        flow.first = min(flow.first, stats.first_seen)
        flow.last = max(flow.last, stats.last_seen)
        flow.packets += stats.packets
        flow.l2_bytes += stats.bytes
        flow.ip_bytes += ip_layer_bytes(stats)
        flow.tcp_flags |= stats.tcp_flags
        if self.tcp_end_detection and parsed.key.protocol == 6 \
                and stats.tcp_flags & (TCP_FIN | TCP_RST):
            flow.end_reason = END_OF_FLOW

    def _due(self, flow: CachedFlow) -> float:
        """When this flow must be exported."""
        if flow.end_reason:
            return flow.last
        due = float("inf")
        if self.inactive_timeout > 0:
            due = flow.last + self.inactive_timeout
        if self.active_timeout > 0:
            due = min(due, flow.first + self.active_timeout)
        return due

    def expire(self, now: float) -> list[CachedFlow]:
        """Removes and returns the flows that ended by `now`, oldest first."""
        done, self._evicted = self._evicted, []
        for key, flow in list(self._flows.items()):
            if self._due(flow) <= now:
                if not flow.end_reason:
                    idle = self.inactive_timeout > 0 \
                        and flow.last + self.inactive_timeout <= now
                    flow.end_reason = END_IDLE if idle else END_ACTIVE
                done.append(self._flows.pop(key))
        done.sort(key=lambda f: f.first)
        return done

    def flush(self) -> list[CachedFlow]:
        """Ends every flow now (reason forced) and empties the cache."""
        done, self._evicted = self._evicted, []
        for flow in self._flows.values():
            flow.end_reason = flow.end_reason or END_FORCED
            done.append(flow)
        self._flows.clear()
        return done

    def next_expiry(self) -> float | None:
        if self._evicted:
            return 0.0
        due = min((self._due(f) for f in self._flows.values()), default=None)
        return None if due is None or due == float("inf") else due
