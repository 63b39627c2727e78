"""sFlow v5 agent (sflow.org/sflow_version_5.txt), XDR encoded.

- Flow samples (enterprise 0, format 1) with a raw packet header record
  (0/1, header_protocol 1 = Ethernet) and an extended switch record (0/1001).
  As Open vSwitch does, frame_length counts the FCS that the datapath never
  saw (+4) and `stripped` is 4. The header is cut to `header_bytes` (128).
- The data source of a flow sample is the input port's ifIndex; its sampling
  rate, sample pool and drops come from the datapath unchanged.
- Counter samples (0/2) with generic interface counters (0/1), polled from
  `counters_callback() -> {ifIndex: InterfaceCounters | dict}` every
  `polling_interval` seconds (default 20; 0 disables).
- Datagram, flow-sample and counter-sample sequence numbers start at 1;
  sample sequences are per data source (type 0 = ifIndex).
- Samples wait at most `flush_delay` seconds (default 1) to share a
  datagram; a datagram never exceeds `max_datagram` bytes (1400).
Not yet: expanded sample formats (ifIndex above 2^24), other counter records
(ethernet, processor), extended router/gateway/user data.
Settings (besides exporter_base's): agent_address (IPv4 or IPv6, required),
sub_agent_id, polling_interval, counters_callback, header_bytes, flush_delay,
max_datagram.
"""
from __future__ import annotations

import ipaddress
import struct
from collections import defaultdict

from .exporter_base import ExporterBase, apply_numbers
from .records import InvalidRecord, check_counters, check_packet_sample

VERSION = 5
FLOW_SAMPLE = 1
COUNTER_SAMPLE = 2
RAW_HEADER = 1
EXTENDED_SWITCH = 1001
GENERIC_COUNTERS = 1
HEADER_PROTOCOL_ETHERNET = 1
FCS_LEN = 4
U32 = 0xFFFFFFFF


def xdr_opaque(data: bytes) -> bytes:
    """Variable-length opaque: length, bytes, zero padding to 4."""
    return struct.pack("!I", len(data)) + data + bytes(-len(data) % 4)


def xdr_record(data_format: int, body: bytes) -> bytes:
    """A sample or record: (enterprise << 12 | format), length, body."""
    return struct.pack("!II", data_format, len(body)) + body


def interface_field(port) -> int:
    """sFlow input/output: format 0 ifIndex, 2 = number of outputs; 0 unknown."""
    if port is None:
        return 0
    if isinstance(port, list):
        return 0x80000000 | len(port) if len(port) != 1 else port[0]
    return port


def generic_counters(ifindex: int, c) -> bytes:
    status = (1 if c.admin_up else 0) | (2 if c.oper_up else 0)
    return struct.pack(
        "!IIQIIQIIIIIIQIIIIII", ifindex, c.if_type, c.if_speed, c.if_direction,
        status, c.in_octets, c.in_ucast_pkts & U32, c.in_multicast_pkts & U32,
        c.in_broadcast_pkts & U32, c.in_discards & U32, c.in_errors & U32,
        c.in_unknown_protos & U32, c.out_octets, c.out_ucast_pkts & U32,
        c.out_multicast_pkts & U32, c.out_broadcast_pkts & U32,
        c.out_discards & U32, c.out_errors & U32, int(bool(c.promiscuous)))


class SflowExporter(ExporterBase):
    FORMAT = "sflow-v5"

    def __init__(self):
        super().__init__()
        self.agent_address = None
        self.sub_agent_id = 0
        self.polling_interval = 20.0
        self.counters_callback = None
        self.header_bytes = 128
        self.flush_delay = 1.0
        self.max_datagram = 1400
        self.datagram_sequence = 0
        self.flow_sequences: dict[int, int] = defaultdict(int)
        self.counter_sequences: dict[int, int] = defaultdict(int)
        self.pending: list[bytes] = []
        self.pending_since: float | None = None
        self.next_poll: float | None = None
        self.flow_samples_sent = 0
        self.counter_samples_sent = 0

    def _configure(self, settings: dict) -> None:
        super()._configure(settings)
        if "agent_address" in settings:
            self.agent_address = ipaddress.ip_address(settings["agent_address"])
        if self.agent_address is None:
            raise ValueError("sFlow needs agent_address")
        changed = apply_numbers(self, settings, {
            "sub_agent_id": (0, U32, True), "polling_interval": (0, None, False),
            "flush_delay": (0, None, False), "header_bytes": (14, 256, True),
            "max_datagram": (512, 65507, True)})
        if "polling_interval" in changed:
            self.next_poll = None
        if "counters_callback" in settings:
            self.counters_callback = settings["counters_callback"]

    # -- input ------------------------------------------------------------
    def add_packet_sample(self, sample, now: float) -> None:
        self._clock(now)
        try:
            check_packet_sample(sample)
        except InvalidRecord as e:
            self._drop(e.reason)
            return
        source = self.ifindex(sample.in_port)
        if source >= 1 << 24:
            self._drop("ifindex_above_24_bits")
            return
        self.flow_sequences[source] = (self.flow_sequences[source] + 1) & U32
        out = sample.out_port
        out = [self.ifindex(p) for p in out] if isinstance(out, list) \
            else (None if out is None else self.ifindex(out))
        header = bytes(sample.header[:self.header_bytes])
        raw = struct.pack("!III", HEADER_PROTOCOL_ETHERNET,
                          sample.frame_length + FCS_LEN, FCS_LEN) + xdr_opaque(header)
        switch = struct.pack("!IIII", sample.in_vlan, sample.in_priority,
                             sample.out_vlan, sample.out_priority)
        body = struct.pack("!IIIIIIII", self.flow_sequences[source], source,
                           sample.sampling_rate, sample.sample_pool, sample.drops,
                           source, interface_field(out), 2)
        body += xdr_record(RAW_HEADER, raw) + xdr_record(EXTENDED_SWITCH, switch)
        self._queue(xdr_record(FLOW_SAMPLE, body), now)
        self.flow_samples_sent += 1

    def _queue(self, sample: bytes, now: float) -> None:
        if not self.pending:
            self.pending_since = now
        self.pending.append(sample)

    def _poll_counters(self, now: float) -> None:
        if not self.polling_interval or not self.counters_callback:
            return
        if self.next_poll is not None and now < self.next_poll:
            return
        self.next_poll = now + self.polling_interval
        try:
            table = dict(self.counters_callback())
        except Exception:   # the callback is someone else's code: count, go on
            self._drop("counters_callback_failed")
            return
        for ifindex, counters in sorted(table.items(), key=lambda kv: str(kv[0])):
            try:
                counters = check_counters(ifindex, counters)
                if ifindex >= 1 << 24:
                    raise InvalidRecord("ifindex_above_24_bits")
            except InvalidRecord as e:
                self._drop(e.reason)
                continue
            self.counter_sequences[ifindex] = (self.counter_sequences[ifindex] + 1) & U32
            body = struct.pack("!III", self.counter_sequences[ifindex], ifindex, 1)
            body += xdr_record(GENERIC_COUNTERS, generic_counters(ifindex, counters))
            self._queue(xdr_record(COUNTER_SAMPLE, body), now)
            self.counter_samples_sent += 1

    # -- output -----------------------------------------------------------
    def _datagram_header(self, now: float, count: int) -> bytes:
        self.datagram_sequence = (self.datagram_sequence + 1) & U32
        addr_type = 1 if self.agent_address.version == 4 else 2
        return (struct.pack("!II", VERSION, addr_type) + self.agent_address.packed
                + struct.pack("!IIII", self.sub_agent_id, self.datagram_sequence,
                              self.uptime_ms(now), count))

    def run(self, now: float) -> list:
        self._clock(now)
        if self.agent_address is None:
            return []
        self._poll_counters(now)
        if not self.pending or (now < self.pending_since + self.flush_delay
                                and sum(map(len, self.pending)) < self.max_datagram):
            return []
        room = self.max_datagram - (24 + len(self.agent_address.packed))
        datagrams, batch, size = [], [], 0
        for sample in self.pending + [None]:
            if batch and (sample is None or size + len(sample) > room):
                datagrams.append(self._datagram_header(now, len(batch)) + b"".join(batch))
                batch, size = [], 0
            if sample is not None:
                batch.append(sample)
                size += len(sample)
        records = len(self.pending)
        self.pending, self.pending_since = [], None
        return self._address(datagrams, records)

    def next_wakeup(self) -> float | None:
        times = []
        if self.pending:
            times.append(self.pending_since + self.flush_delay)
        if self.polling_interval and self.counters_callback:
            times.append(0.0 if self.next_poll is None else self.next_poll)
        return min(times, default=None)

    def show(self) -> dict:
        out = super().show()
        out.update(agent_address=str(self.agent_address), sub_agent_id=self.sub_agent_id,
                   datagram_sequence=self.datagram_sequence,
                   flow_samples=self.flow_samples_sent,
                   counter_samples=self.counter_samples_sent,
                   pending_samples=len(self.pending),
                   polling_interval=self.polling_interval,
                   flow_sequences=dict(self.flow_sequences),
                   counter_sequences=dict(self.counter_sequences))
        return out
