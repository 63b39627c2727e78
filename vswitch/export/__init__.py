"""Flow exporters: NetFlow v5, IPFIX (RFC 7011) and sFlow v5.

Design
- Each exporter is a pure engine with the slow path's protocol shape:
  `configure(settings)`, input calls, `run(now) -> [((host, port), bytes)]`,
  `next_wakeup() -> float | None`, `show() -> dict`. Time is always a
  parameter (seconds on the wall clock, like time.time()), so tests drive the
  engines with a fake clock; nothing here sleeps or reads the clock.
- Input (records.py), the same for every exporter, which ignores (and
  counts) what its format does not use:
    add_flow_stats(FlowStats, now)      per-flow deltas from the revalidator
    add_packet_sample(PacketSample, now) 1-in-N sampled frames
    settings["counters_callback"]()     interface counters, for sFlow polling
  Malformed input is counted per reason in show()["dropped"], never raised.
- NetFlow v5 and IPFIX share a flow cache with active, inactive, TCP-end and
  eviction expiry (flow_cache.py); sFlow has no cache, samples go out as they
  come (batched for at most flush_delay).
- UdpSender (udp_sender.py) is what actually sends run()'s output.
"""
from .ipfix import IpfixExporter
from .netflow_v5 import NetflowV5Exporter
from .records import FlowKey, FlowStats, InterfaceCounters, PacketSample
from .sflow import SflowExporter
from .udp_sender import UdpSender

__all__ = ["FlowKey", "FlowStats", "InterfaceCounters", "PacketSample",
           "NetflowV5Exporter", "IpfixExporter", "SflowExporter", "UdpSender"]
