"""NetFlow v5 exporter (Cisco's fixed format: 24-byte header, 48-byte records).

- IPv4 flows only: the format has no room for IPv6 or non-IP flows; those are
  counted under show()["ignored"].
- dOctets is the IP-layer byte count (records.ip_layer_bytes).
- dPkts/dOctets are 32-bit: a flow that exceeds either is split over several
  records, as Open vSwitch does.
- Interface fields are 16-bit: a port whose ifIndex (after ifindex_map) does
  not fit is dropped with a reason; map it to a smaller ifIndex.
- flow_sequence is the number of records exported before this datagram; it
  carries on across flush() and reconfiguration.
- next hop, AS numbers and masks are 0 (a switch does not know them).
Settings (besides exporter_base's): engine_type, engine_id (0-255),
active_timeout, inactive_timeout, max_flows, tcp_end_detection.
"""
from __future__ import annotations

import struct

from .exporter_base import FlowCacheExporter, apply_numbers

VERSION = 5
MAX_RECORDS = 30
HEADER = struct.Struct("!HHIIIIBBH")
RECORD = struct.Struct("!4s4s4sHHIIIIHHBBBBHHBBH")
U32_MAX = 0xFFFFFFFF


def split_counts(packets: int, octets: int) -> list[tuple[int, int]]:
    """Splits counts so each part fits the 32-bit fields."""
    parts = max(1, -(-packets // U32_MAX), -(-octets // U32_MAX))
    out = []
    for i in range(parts):
        out.append((packets * (i + 1) // parts - packets * i // parts,
                    octets * (i + 1) // parts - octets * i // parts))
    return out


class NetflowV5Exporter(FlowCacheExporter):
    FORMAT = "netflow-v5"

    def __init__(self):
        super().__init__()
        self.engine_type = 0
        self.engine_id = 0
        self.flow_sequence = 0

    def _configure(self, settings: dict) -> None:
        super()._configure(settings)
        apply_numbers(self, settings, {"engine_type": (0, 255, True),
                                       "engine_id": (0, 255, True)})

    def _accept(self, stats, parsed) -> str | None:
        if parsed.key.ip_version != 4:
            return "not_ipv4"
        return None

    def _records(self, flow) -> list[bytes]:
        key = flow.parsed.key
        ports = (self.ifindex(key.in_port), self.ifindex(key.out_port))
        if max(ports) > 0xFFFF:
            self._drop("ifindex_above_16_bits")
            return []
        first, last = self.uptime_ms(flow.first), self.uptime_ms(flow.last)
        return [RECORD.pack(flow.parsed.src_ip, flow.parsed.dst_ip, bytes(4),
                            ports[0], ports[1], packets, octets, first, last,
                            key.src_port, key.dst_port, 0, flow.tcp_flags & 0xFF,
                            key.protocol, key.tos, 0, 0, 0, 0, 0)
                for packets, octets in split_counts(flow.packets, flow.ip_bytes)]

    def _encode(self, flows, now: float) -> tuple[list[bytes], int]:
        records = [r for flow in flows for r in self._records(flow)]
        secs = int(now)
        nsecs = int(round((now - secs) * 1e9)) % 1_000_000_000
        datagrams = []
        for i in range(0, len(records), MAX_RECORDS):
            chunk = records[i:i + MAX_RECORDS]
            header = HEADER.pack(VERSION, len(chunk), self.uptime_ms(now),
                                 secs & U32_MAX, nsecs, self.flow_sequence,
                                 self.engine_type, self.engine_id, 0)
            self.flow_sequence = (self.flow_sequence + len(chunk)) & U32_MAX
            datagrams.append(header + b"".join(chunk))
        return datagrams, len(records)

    def show(self) -> dict:
        out = super().show()
        out.update(engine_type=self.engine_type, engine_id=self.engine_id,
                   flow_sequence=self.flow_sequence)
        return out
