"""IPFIX exporter (RFC 7011) over UDP, standard information elements only.

Three templates, one per kind of flow, all from the IANA registry:
  256 IPv4, 257 IPv6, 258 non-IP (L2 only, no octetDeltaCount since that
  counts IP bytes; layer2OctetDeltaCount carries the frame bytes).
Every record carries delta counts since the previous record of that flow
(packetDeltaCount, octetDeltaCount = IP-layer bytes, layer2OctetDeltaCount =
frame bytes), flowStart/EndMilliseconds, flowEndReason, tcpControlBits
(2 octets, RFC 7125), vlanId, MACs, in/egress interface and observationPointId.

Templates go out in their own message on the first run() and again every
`template_interval` seconds (default 60, well under OVS's 600) and after a
change of observation domain. The message sequence number counts the data
records sent before it in this observation domain (template records do not
count), and carries on across flush() and reconfiguration.
Not yet: options templates (exporter statistics), variable-length IEs,
enterprise IEs, SCTP/TCP transport.
Settings (besides exporter_base's): observation_domain_id, observation_point_id,
template_interval, max_message_size, active_timeout, inactive_timeout,
max_flows, tcp_end_detection.
"""
from __future__ import annotations

import struct

from .exporter_base import FlowCacheExporter, apply_numbers

VERSION = 10
MESSAGE_HEADER = struct.Struct("!HHIII")
SET_HEADER = struct.Struct("!HH")
TEMPLATE_SET_ID = 2
U32_MAX = 0xFFFFFFFF

# IANA IPFIX information elements used here: name -> (element id, length).
ELEMENTS = {
    "observationPointId": (138, 4),
    "ingressInterface": (10, 4),
    "egressInterface": (14, 4),
    "sourceMacAddress": (56, 6),
    "destinationMacAddress": (80, 6),
    "vlanId": (58, 2),
    "sourceIPv4Address": (8, 4),
    "destinationIPv4Address": (12, 4),
    "sourceIPv6Address": (27, 16),
    "destinationIPv6Address": (28, 16),
    "ipClassOfService": (5, 1),
    "protocolIdentifier": (4, 1),
    "sourceTransportPort": (7, 2),
    "destinationTransportPort": (11, 2),
    "tcpControlBits": (6, 2),
    "flowStartMilliseconds": (152, 8),
    "flowEndMilliseconds": (153, 8),
    "flowEndReason": (136, 1),
    "packetDeltaCount": (2, 8),
    "octetDeltaCount": (1, 8),
    "layer2OctetDeltaCount": (352, 8),
}

_COMMON_HEAD = ["observationPointId", "ingressInterface", "egressInterface",
                "sourceMacAddress", "destinationMacAddress", "vlanId"]
_L4 = ["ipClassOfService", "protocolIdentifier", "sourceTransportPort",
       "destinationTransportPort", "tcpControlBits"]
_TAIL = ["flowStartMilliseconds", "flowEndMilliseconds", "flowEndReason",
         "packetDeltaCount"]

TEMPLATES = {  # ip_version -> (template id, element names in record order)
    4: (256, _COMMON_HEAD + ["sourceIPv4Address", "destinationIPv4Address"]
        + _L4 + _TAIL + ["octetDeltaCount", "layer2OctetDeltaCount"]),
    6: (257, _COMMON_HEAD + ["sourceIPv6Address", "destinationIPv6Address"]
        + _L4 + _TAIL + ["octetDeltaCount", "layer2OctetDeltaCount"]),
    0: (258, _COMMON_HEAD + _TAIL + ["layer2OctetDeltaCount"]),
}

_STRUCT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


def _record_struct(names) -> struct.Struct:
    codes = []
    for name in names:
        length = ELEMENTS[name][1]
        # addresses are octet strings; everything else an unsigned integer
        is_address = name.endswith("Address")
        codes.append(f"{length}s" if is_address else _STRUCT_CODES[length])
    return struct.Struct("!" + "".join(codes))


_RECORD_STRUCTS = {v: _record_struct(names) for v, (_, names) in TEMPLATES.items()}


def template_record(template_id: int, names) -> bytes:
    out = struct.pack("!HH", template_id, len(names))
    for name in names:
        out += struct.pack("!HH", *ELEMENTS[name])
    return out


class IpfixExporter(FlowCacheExporter):
    FORMAT = "ipfix"

    def __init__(self):
        super().__init__()
        self.observation_domain_id = 0
        self.observation_point_id = 0
        self.template_interval = 60.0
        self.max_message_size = 1400
        self.sequence = 0
        self.templates_due: float | None = None   # None: send at next run()
        self.template_messages_sent = 0

    def _configure(self, settings: dict) -> None:
        super()._configure(settings)
        biggest = max(s.size for s in _RECORD_STRUCTS.values())
        changed = apply_numbers(self, settings, {
            "observation_domain_id": (0, U32_MAX, True),
            "observation_point_id": (0, U32_MAX, True),
            "template_interval": (0.001, None, False),
            "max_message_size": (MESSAGE_HEADER.size + SET_HEADER.size + biggest, 65507, True)})
        if "observation_domain_id" in changed:
            self.templates_due = None      # a new domain needs its templates now

    def _must_send(self, now: float) -> bool:
        return self.templates_due is None or now >= self.templates_due

    def next_wakeup(self) -> float | None:
        due = self.cache.next_expiry()
        refresh = 0.0 if self.templates_due is None else self.templates_due
        return refresh if due is None else min(due, refresh)

    def _message(self, now: float, sets: list[bytes]) -> bytes:
        body = b"".join(sets)
        return MESSAGE_HEADER.pack(VERSION, MESSAGE_HEADER.size + len(body),
                                   int(now) & U32_MAX, self.sequence,
                                   self.observation_domain_id) + body

    def _template_message(self, now: float) -> bytes:
        records = b"".join(template_record(tid, names) for tid, names in TEMPLATES.values())
        self.templates_due = now + self.template_interval
        self.template_messages_sent += 1
        return self._message(now, [SET_HEADER.pack(TEMPLATE_SET_ID,
                                                   SET_HEADER.size + len(records)) + records])

    def _data_record(self, flow) -> bytes:
        p, key = flow.parsed, flow.parsed.key
        values = {
            "observationPointId": self.observation_point_id,
            "ingressInterface": self.ifindex(key.in_port),
            "egressInterface": self.ifindex(key.out_port),
            "sourceMacAddress": p.src_mac, "destinationMacAddress": p.dst_mac,
            "vlanId": key.vlan,
            "sourceIPv4Address": p.src_ip, "destinationIPv4Address": p.dst_ip,
            "sourceIPv6Address": p.src_ip, "destinationIPv6Address": p.dst_ip,
            "ipClassOfService": key.tos, "protocolIdentifier": key.protocol,
            "sourceTransportPort": key.src_port,
            "destinationTransportPort": key.dst_port,
            "tcpControlBits": flow.tcp_flags,
            "flowStartMilliseconds": int(round(flow.first * 1000)),
            "flowEndMilliseconds": int(round(flow.last * 1000)),
            "flowEndReason": flow.end_reason,
            "packetDeltaCount": flow.packets,
            "octetDeltaCount": flow.ip_bytes,
            "layer2OctetDeltaCount": flow.l2_bytes,
        }
        names = TEMPLATES[key.ip_version][1]
        return _RECORD_STRUCTS[key.ip_version].pack(*(values[n] for n in names))

    def _data_messages(self, flows, now: float) -> list[bytes]:
        """Packs records into messages of at most max_message_size bytes, one
        set per run of records that share a template."""
        messages, sets, set_id, set_body, size, count = [], [], None, b"", 0, 0

        def close_set():
            nonlocal set_body
            if set_body:
                sets.append(SET_HEADER.pack(set_id, SET_HEADER.size + len(set_body)) + set_body)
            set_body = b""

        def close_message():
            nonlocal sets, size, count
            close_set()
            if sets:
                messages.append(self._message(now, sets))
                self.sequence = (self.sequence + count) & U32_MAX
            sets, size, count = [], MESSAGE_HEADER.size, 0

        close_message()
        for flow in flows:
            record = self._data_record(flow)
            tid = TEMPLATES[flow.parsed.key.ip_version][0]
            grow = len(record) + (SET_HEADER.size if tid != set_id or not set_body else 0)
            if size + grow > self.max_message_size:
                close_message()
                grow = len(record) + SET_HEADER.size
            if tid != set_id:
                close_set()
                set_id = tid
            set_body += record
            size += grow
            count += 1
        close_message()
        return messages

    def _encode(self, flows, now: float) -> tuple[list[bytes], int]:
        messages = []
        if self._must_send(now):
            messages.append(self._template_message(now))
        messages += self._data_messages(flows, now)
        return messages, len(flows)

    def show(self) -> dict:
        out = super().show()
        out.update(observation_domain_id=self.observation_domain_id,
                   observation_point_id=self.observation_point_id,
                   sequence=self.sequence,
                   template_interval=self.template_interval,
                   template_messages_sent=self.template_messages_sent,
                   next_template_refresh=self.templates_due)
        return out
