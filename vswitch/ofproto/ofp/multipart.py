"""Multipart (OF1.3) / stats (OF1.0) request and reply bodies.

BODIES[version][type] = (request codec, reply codec).  A codec has
decode(reader, version) and encode(body, version).  Bodies are None (empty),
one object, or a list of entries, as the spec's section 7.3.5 says per type.
"""
import struct
from dataclasses import dataclass, field

from .constants import OFPG_ALL, OFPG_ANY, OFPM_ALL, OFPP_ANY, OFPQ_ALL, OFPTT_ALL
from .errors import OFPError
from .oxm import Match
from .parts import (MATCH, PORT, decode_bands, decode_buckets, decode_list, decode_program,
                    encode_bands, encode_buckets, encode_program)
from .of10_program import encode_of10_program
from .records import PORT10, Struct, text
from .wire import pad8

(OFPMP_DESC, OFPMP_FLOW, OFPMP_AGGREGATE, OFPMP_TABLE, OFPMP_PORT_STATS, OFPMP_QUEUE,
 OFPMP_GROUP, OFPMP_GROUP_DESC, OFPMP_GROUP_FEATURES, OFPMP_METER, OFPMP_METER_CONFIG,
 OFPMP_METER_FEATURES, OFPMP_TABLE_FEATURES, OFPMP_PORT_DESC) = range(14)
OFPMP_EXPERIMENTER = 0xFFFF
OFPMPF_REQ_MORE = OFPMPF_REPLY_MORE = 1


@dataclass
class Desc:
    mfr_desc: str = ""
    hw_desc: str = ""
    sw_desc: str = ""
    serial_num: str = ""
    dp_desc: str = ""


@dataclass
class FlowStatsRequest:
    """Body of flow and aggregate requests."""
    table_id: int = OFPTT_ALL
    out_port: int = OFPP_ANY
    out_group: int = OFPG_ANY
    cookie: int = 0
    cookie_mask: int = 0
    match: Match = field(default_factory=Match)


@dataclass
class FlowStatsEntry:
    table_id: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0
    priority: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    flags: int = 0
    cookie: int = 0
    packet_count: int = 0
    byte_count: int = 0
    match: Match = field(default_factory=Match)
    instructions: list = field(default_factory=list)


@dataclass
class AggregateStats:
    packet_count: int = 0
    byte_count: int = 0
    flow_count: int = 0


@dataclass
class TableStats:
    table_id: int
    active_count: int = 0
    lookup_count: int = 0
    matched_count: int = 0
    name: str = ""            # OF1.0 only
    wildcards: int = 0        # OF1.0 only
    max_entries: int = 0      # OF1.0 only


@dataclass
class PortStatsRequest:
    port_no: int = OFPP_ANY


@dataclass
class PortStats:
    port_no: int
    rx_packets: int = 0
    tx_packets: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0
    rx_errors: int = 0
    tx_errors: int = 0
    rx_frame_err: int = 0
    rx_over_err: int = 0
    rx_crc_err: int = 0
    collisions: int = 0
    duration_sec: int = 0     # OF1.3 only
    duration_nsec: int = 0


@dataclass
class QueueStatsRequest:
    port_no: int = OFPP_ANY
    queue_id: int = OFPQ_ALL


@dataclass
class QueueStats:
    port_no: int
    queue_id: int
    tx_bytes: int = 0
    tx_packets: int = 0
    tx_errors: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0


@dataclass
class GroupStatsRequest:
    group_id: int = OFPG_ALL


@dataclass
class GroupStats:
    group_id: int
    ref_count: int = 0
    packet_count: int = 0
    byte_count: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0
    bucket_stats: list = field(default_factory=list)   # [(packet_count, byte_count)]


@dataclass
class GroupDesc:
    type: int
    group_id: int
    buckets: list = field(default_factory=list)


@dataclass
class GroupFeatures:
    types: int = 0
    capabilities: int = 0
    max_groups: tuple = (0, 0, 0, 0)    # per group type
    actions: tuple = (0, 0, 0, 0)       # action bitmaps per group type


@dataclass
class MeterStatsRequest:
    """Body of meter and meter-config requests."""
    meter_id: int = OFPM_ALL


@dataclass
class MeterStats:
    meter_id: int
    flow_count: int = 0
    packet_in_count: int = 0
    byte_in_count: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0
    band_stats: list = field(default_factory=list)     # [(packet_count, byte_count)]


@dataclass
class MeterConfig:
    flags: int
    meter_id: int
    bands: list = field(default_factory=list)


@dataclass
class MeterFeatures:
    max_meter: int = 0
    band_types: int = 0
    capabilities: int = 0
    max_bands: int = 0
    max_color: int = 0


@dataclass
class TableFeatureProp:
    """One table-features property; data is its payload without padding."""
    type: int
    data: bytes = b""


@dataclass
class TableFeatures:
    table_id: int
    name: str = ""
    metadata_match: int = 0
    metadata_write: int = 0
    config: int = 0
    max_entries: int = 0
    properties: list = field(default_factory=list)


@dataclass
class MultipartExperimenter:
    experimenter: int
    exp_type: int = None      # None in OF1.0 vendor stats
    data: bytes = b""


# --- codecs -----------------------------------------------------------------

class Empty:
    def decode(self, reader, version):
        if reader.remaining():
            reader.fail("this request has no body")
        return None

    def encode(self, body, version):
        return b""


class One:
    """Exactly one fixed structure."""

    def __init__(self, struct_):
        self.struct = struct_

    def decode(self, reader, version):
        body = self.struct.decode(reader)
        if reader.remaining():
            reader.fail("trailing bytes")
        return body

    def encode(self, body, version):
        return self.struct.encode(body)


class Many(One):
    """A list of fixed structures (or of codecs with decode/encode)."""

    def decode(self, reader, version):
        return decode_list(reader, self.struct.decode)

    def encode(self, body, version):
        return b"".join(self.struct.encode(e) for e in body)


class WithLength:
    """Entries that start with their own 16-bit length: a Struct for the fixed
    part (its first name is "length") and functions for the variable rest."""

    def __init__(self, struct_, tail_decode, tail_encode, tail_name, length_fmt="!H"):
        self.struct, self.tail_decode, self.tail_encode = struct_, tail_decode, tail_encode
        self.tail_name, self.length_fmt, self.version = tail_name, length_fmt, 4

    def decode(self, reader):
        length = reader.peek(self.length_fmt)[-1]
        entry = reader.sub(length)
        fields = self.struct.unpack(entry)
        del fields["length"]
        fields[self.tail_name] = self.tail_decode(entry, self.version)
        return self.struct.cls(**fields)

    def encode(self, obj):
        tail = self.tail_encode(getattr(obj, self.tail_name), self.version)
        return self.struct.encode(obj, length=self.struct.size + len(tail)) + tail


def _pairs(reader, version):
    """(packet_count, byte_count) per bucket or band."""
    if reader.remaining() % 16:
        reader.fail("bad counter list")
    return [reader.unpack("!QQ") for _ in range(reader.remaining() // 16)]


def _pairs_encode(pairs, version):
    return b"".join(struct.pack("!QQ", *p) for p in pairs)


class FlowStatsRequestCodec:
    LAYOUT = {4: Struct(FlowStatsRequest, "!B3xII4xQQ", "table_id out_port out_group cookie cookie_mask"),
              1: Struct(FlowStatsRequest, "!BxH", "table_id out_port", out_port=PORT10)}

    def decode(self, reader, version):
        decode_match = MATCH[version][0]
        if version == 1:
            match = decode_match(reader)
            return self.LAYOUT[1].decode(reader, match=match)
        fields = self.LAYOUT[4].unpack(reader)
        return FlowStatsRequest(match=decode_match(reader), **fields)

    def encode(self, body, version):
        match = MATCH[version][1](body.match)
        fixed = self.LAYOUT[version].encode(body)
        return match + fixed if version == 1 else fixed + match


class FlowStatsCodec:
    """ofp_flow_stats: length-prefixed, match and instructions inside."""
    HEAD = {4: "!HBxIIHHHH4xQQQ", 1: "!HBx"}
    NAMES_13 = "duration_sec duration_nsec priority idle_timeout hard_timeout flags cookie packet_count byte_count"
    TAIL_10 = "!IIHHH6xQQQ"
    NAMES_10 = "duration_sec duration_nsec priority idle_timeout hard_timeout cookie packet_count byte_count"

    def __init__(self, version):
        self.version = version

    def decode(self, reader):
        (length,) = reader.peek("!H")
        entry = reader.sub(length)
        vals = entry.unpack(self.HEAD[self.version])
        if self.version == 4:
            fields = dict(zip(self.NAMES_13.split(), vals[2:]))
            match = MATCH[4][0](entry)
        else:
            match = MATCH[1][0](entry)
            fields = dict(zip(self.NAMES_10.split(), entry.unpack(self.TAIL_10)))
        return FlowStatsEntry(table_id=vals[1], match=match,
                         instructions=decode_program(self.version, entry), **fields)

    def encode(self, s):
        # A flow dump encodes every entry twice (once alone, to split the
        # reply at MAX_REPLY; once in its chunk): the bytes are kept on the
        # entry, a reply-building object that is not changed once encoded.
        cached = s.__dict__.get("_wire")
        if cached is not None and cached[0] == self.version:
            return cached[1]
        out = self._encode(s)
        s.__dict__["_wire"] = (self.version, out)
        return out

    def _encode(self, s):
        match = MATCH[self.version][1](s.match)
        # OF1.0 replies carry OF1.3 instructions as OVS does (of10_program)
        program = encode_program(4, s.instructions) if self.version == 4 else \
            encode_of10_program(s.instructions)
        if self.version == 4:
            head_len = struct.calcsize(self.HEAD[4])
            length = head_len + len(match) + len(program)
            head = struct.pack(self.HEAD[4], length, s.table_id,
                               *[getattr(s, n) for n in self.NAMES_13.split()])
            return head + match + program
        tail = struct.pack(self.TAIL_10, *[getattr(s, n) for n in self.NAMES_10.split()])
        length = 4 + len(match) + len(tail) + len(program)
        return struct.pack(self.HEAD[1], length, s.table_id) + match + tail + program


def _props_decode(reader, version):
    props = []
    for ptype, body in reader.tlvs(error=("TABLE_FEATURES_FAILED", "BAD_LEN")):
        _, length = body.unpack("!HH")
        props.append(TableFeatureProp(ptype, body.rest()))
        reader.take(min(pad8(length), reader.remaining()))
    return props


def _props_encode(props, version):
    out = b""
    for p in props:
        length = 4 + len(p.data)
        out += struct.pack("!HH", p.type, length) + p.data + bytes(pad8(length))
    return out


class GroupFeaturesStruct:
    FMT = "!II4I4I"

    def decode(self, reader):
        v = reader.unpack(self.FMT)
        return GroupFeatures(v[0], v[1], tuple(v[2:6]), tuple(v[6:10]))

    def encode(self, g):
        return struct.pack(self.FMT, g.types, g.capabilities, *g.max_groups, *g.actions)


class ExperimenterBody:
    def decode(self, reader, version):
        if version == 1:
            (experimenter,) = reader.unpack("!I")
            return MultipartExperimenter(experimenter, None, reader.rest())
        experimenter, exp_type = reader.unpack("!II")
        return MultipartExperimenter(experimenter, exp_type, reader.rest())

    def encode(self, body, version):
        head = struct.pack("!I", body.experimenter) if version == 1 else \
            struct.pack("!II", body.experimenter, body.exp_type)
        return head + body.data


def _port_list(version):
    return Many(PORT[version])


DESC = One(Struct(Desc, "!256s256s256s32s256s", "mfr_desc hw_desc sw_desc serial_num dp_desc",
                  mfr_desc=text(256), hw_desc=text(256), sw_desc=text(256),
                  serial_num=text(32), dp_desc=text(256)))
AGGREGATE = One(Struct(AggregateStats, "!QQI4x", "packet_count byte_count flow_count"))
FLOW_REQUEST = FlowStatsRequestCodec()
METER_REQUEST = One(Struct(MeterStatsRequest, "!I4x", "meter_id"))

BODIES = {
    4: {
        OFPMP_DESC: (Empty(), DESC),
        OFPMP_FLOW: (FLOW_REQUEST, Many(FlowStatsCodec(4))),
        OFPMP_AGGREGATE: (FLOW_REQUEST, AGGREGATE),
        OFPMP_TABLE: (Empty(), Many(Struct(TableStats, "!B3xIQQ",
                                           "table_id active_count lookup_count matched_count"))),
        OFPMP_PORT_STATS: (One(Struct(PortStatsRequest, "!I4x", "port_no")),
                           Many(Struct(PortStats, "!I4x12QII", " ".join(PortStats.__dataclass_fields__)))),
        OFPMP_QUEUE: (One(Struct(QueueStatsRequest, "!II", "port_no queue_id")),
                      Many(Struct(QueueStats, "!IIQQQII", " ".join(QueueStats.__dataclass_fields__)))),
        OFPMP_GROUP: (One(Struct(GroupStatsRequest, "!I4x", "group_id")),
                      Many(WithLength(Struct(GroupStats, "!H2xII4xQQII",
                                             "length group_id ref_count packet_count byte_count "
                                             "duration_sec duration_nsec"),
                                      _pairs, _pairs_encode, "bucket_stats"))),
        OFPMP_GROUP_DESC: (Empty(), Many(WithLength(Struct(GroupDesc, "!HBxI", "length type group_id"),
                                                    lambda r, v: decode_buckets(r),
                                                    lambda b, v: encode_buckets(b), "buckets"))),
        OFPMP_GROUP_FEATURES: (Empty(), One(GroupFeaturesStruct())),
        OFPMP_METER: (METER_REQUEST,
                      Many(WithLength(Struct(MeterStats, "!IH6xIQQII",
                                             "meter_id length flow_count packet_in_count "
                                             "byte_in_count duration_sec duration_nsec"),
                                      _pairs, _pairs_encode, "band_stats", length_fmt="!IH"))),
        OFPMP_METER_CONFIG: (METER_REQUEST,
                             Many(WithLength(Struct(MeterConfig, "!HHI", "length flags meter_id"),
                                             lambda r, v: decode_bands(r),
                                             lambda b, v: encode_bands(b), "bands"))),
        OFPMP_METER_FEATURES: (Empty(), One(Struct(MeterFeatures, "!IIIBB2x",
                                                   "max_meter band_types capabilities max_bands max_color"))),
        OFPMP_TABLE_FEATURES: None,  # filled below: same codec both ways
        OFPMP_PORT_DESC: (Empty(), _port_list(4)),
        OFPMP_EXPERIMENTER: (ExperimenterBody(), ExperimenterBody()),
    },
    1: {
        OFPMP_DESC: (Empty(), DESC),
        OFPMP_FLOW: (FLOW_REQUEST, Many(FlowStatsCodec(1))),
        OFPMP_AGGREGATE: (FLOW_REQUEST, AGGREGATE),
        OFPMP_TABLE: (Empty(), Many(Struct(TableStats, "!B3x32sIIIQQ",
                                           "table_id name wildcards max_entries active_count "
                                           "lookup_count matched_count", name=text(32)))),
        OFPMP_PORT_STATS: (One(Struct(PortStatsRequest, "!H6x", "port_no", port_no=PORT10)),
                           Many(Struct(PortStats, "!H6x12Q",
                                       " ".join(list(PortStats.__dataclass_fields__)[:13]),
                                       port_no=PORT10))),
        OFPMP_QUEUE: (One(Struct(QueueStatsRequest, "!H2xI", "port_no queue_id", port_no=PORT10)),
                      Many(Struct(QueueStats, "!H2xIQQQ", "port_no queue_id tx_bytes tx_packets tx_errors",
                                  port_no=PORT10))),
        OFPMP_EXPERIMENTER: (ExperimenterBody(), ExperimenterBody()),
        # OVS's OF1.0 extension (OFPST_PORT_DESC, stats type 13): ofp10_phy_ports
        OFPMP_PORT_DESC: (Empty(), _port_list(1)),
    },
}
_TABLE_FEATURES = Many(WithLength(Struct(TableFeatures, "!HB5x32sQQII",
                                         "length table_id name metadata_match metadata_write "
                                         "config max_entries", name=text(32)),
                                  _props_decode, _props_encode, "properties"))
BODIES[4][OFPMP_TABLE_FEATURES] = (_TABLE_FEATURES, _TABLE_FEATURES)


def body_codec(version, mp_type, is_reply):
    codecs = BODIES[version].get(mp_type)
    if codecs is None:
        raise OFPError("BAD_REQUEST", "BAD_MULTIPART", detail=f"multipart type {mp_type}")
    return codecs[1 if is_reply else 0]
