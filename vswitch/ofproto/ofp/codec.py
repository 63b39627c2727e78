"""Message framing and the per-version message tables.

CODECS[version][wire type] = a body codec for one message class.  `decode`
checks the header (length, version, type), decodes the body with the table and
always either returns a Message or raises OFPError; the error carries the
request's version, xid and first 64 bytes so the connection layer can answer
with `error_reply()` and keep the connection up.
"""
import struct

from . import messages as m
from .actions import ACTION_CODECS
from .constants import OFP_VERSION_10, OFP_VERSION_13, port_from_of10, port_to_of10
from .errors import OFPError
from .flow_mod_fast import OFPT_FLOW_MOD, decode_flow_mod13
from .multipart import body_codec
from .parts import (MATCH, PORT, decode_bands, decode_buckets, decode_list, decode_program,
                    encode_bands, encode_buckets, encode_program)
from .records import MAC, PORT10, Struct
from .wire import Reader, pad8

HEADER = struct.Struct("!BBHI")
HEADER_LEN = 8
MESSAGE_LENGTH = struct.Struct("!H")  # the header's length field, at offset 2
OFPHET_VERSIONBITMAP = 1
FLOW_MOD_VERSION, FLOW_MOD_TYPE = bytes([OFP_VERSION_13]), bytes([OFPT_FLOW_MOD])


class Fixed:
    """A body that is one Struct, optionally followed by raw bytes (`tail`)
    or by a variable part decoded by tail_codec = (decode(reader, v), encode(x, v))."""

    def __init__(self, cls, fmt="!", names="", tail=None, tail_codec=None, check=None, **conv):
        self.cls = cls
        self.struct = Struct(cls, fmt, names, **conv)
        self.tail, self.tail_codec, self.check = tail, tail_codec, check

    def decode(self, reader, version):
        fields = self.struct.unpack(reader)
        if self.tail:
            fields[self.tail] = self.tail_codec[0](reader, version) if self.tail_codec else reader.rest()
        elif reader.remaining():
            reader.fail("trailing bytes")
        if self.check:
            self.check(fields)
        return fields

    def encode(self, msg, version):
        out = self.struct.encode(msg)
        if self.tail:
            value = getattr(msg, self.tail)
            out += self.tail_codec[1](value, version) if self.tail_codec else value
        return out


class Custom:
    """A body with hand-written decode(reader, version) -> fields / encode(msg, version)."""

    def __init__(self, cls, decode, encode):
        self.cls, self.decode, self.encode = cls, decode, encode


def _range_check(name, limit, err_type, code):
    def check(fields):
        if fields[name] > limit:
            raise OFPError(err_type, code, detail=f"{name}={fields[name]}")
    return check


# --- hello ------------------------------------------------------------------

def _hello_decode(reader, version):
    versions = None
    for etype, elem in reader.tlvs(error=("HELLO_FAILED", "INCOMPATIBLE")):
        _, length = elem.unpack("!HH")
        if etype == OFPHET_VERSIONBITMAP:
            versions = tuple(32 * i + bit for i, (bm,) in enumerate(
                struct.iter_unpack("!I", elem.take(elem.remaining() // 4 * 4))) for bit in range(32)
                if bm >> bit & 1)
        reader.take(min(pad8(length), reader.remaining()))
    return {"versions": versions}


def _hello_encode(msg, version):
    if msg.versions is None:
        return b""
    words = [0] * (max(msg.versions) // 32 + 1)
    for v in msg.versions:
        words[v // 32] |= 1 << (v % 32)
    length = 4 + 4 * len(words)
    return struct.pack(f"!HH{len(words)}I", OFPHET_VERSIONBITMAP, length, *words) + bytes(pad8(length))


# --- error --------------------------------------------------------------------

def _error_decode(reader, version):
    err_type, code = reader.unpack("!HH")
    experimenter = reader.unpack("!I")[0] if err_type == 0xFFFF and version == 4 else None
    return {"type": err_type, "code": code, "experimenter": experimenter, "data": reader.rest()}


def _error_encode(msg, version):
    exp = struct.pack("!I", msg.experimenter) if msg.experimenter is not None else b""
    return struct.pack("!HH", msg.type, msg.code) + exp + msg.data


# --- packet-in / flow-removed / packet-out / flow-mod ---------------------------

PACKET_IN_13 = Struct(m.PacketIn, "!IHBBQ", "buffer_id total_len reason table_id cookie")
PACKET_IN_10 = Struct(m.PacketIn, "!IHHBx", "buffer_id total_len in_port reason")


def _packet_in_decode(reader, version):
    if version == 4:
        fields = PACKET_IN_13.unpack(reader)
        fields["match"] = MATCH[4][0](reader)
        reader.unpack("!2x")
    else:
        fields = PACKET_IN_10.unpack(reader)
        fields["match"] = m.Match(in_port=(port_from_of10(fields.pop("in_port")), None))
    fields["data"] = reader.rest()
    return fields


def _packet_in_encode(msg, version):
    if version == 4:
        return PACKET_IN_13.encode(msg) + MATCH[4][1](msg.match) + bytes(2) + msg.data
    in_port = port_to_of10(msg.match.value("in_port", 0), ("BAD_REQUEST", "BAD_PORT"))
    return PACKET_IN_10.encode(msg, in_port=in_port) + msg.data


FLOW_REMOVED = {
    4: Struct(m.FlowRemoved, "!QHBBIIHHQQ", "cookie priority reason table_id duration_sec "
              "duration_nsec idle_timeout hard_timeout packet_count byte_count"),
    1: Struct(m.FlowRemoved, "!QHBxIIH2xQQ", "cookie priority reason duration_sec duration_nsec "
              "idle_timeout packet_count byte_count"),
}


def _flow_removed_decode(reader, version):
    if version == 1:
        match = MATCH[1][0](reader)
        return dict(FLOW_REMOVED[1].unpack(reader), match=match)
    return dict(FLOW_REMOVED[4].unpack(reader), match=MATCH[4][0](reader))


def _flow_removed_encode(msg, version):
    fixed, match = FLOW_REMOVED[version].encode(msg), MATCH[version][1](msg.match)
    return match + fixed if version == 1 else fixed + match


PACKET_OUT = {4: Struct(m.PacketOut, "!IIH6x", "buffer_id in_port actions_len"),
              1: Struct(m.PacketOut, "!IHH", "buffer_id in_port actions_len", in_port=PORT10)}


def _packet_out_decode(reader, version):
    fields = PACKET_OUT[version].unpack(reader)
    actions = reader.sub(fields.pop("actions_len"))
    fields["actions"] = ACTION_CODECS[version].decode(
        Reader(actions.rest(), ("BAD_ACTION", "BAD_LEN")))
    fields["data"] = reader.rest()
    return fields


def _packet_out_encode(msg, version):
    actions = ACTION_CODECS[version].encode(msg.actions)
    return PACKET_OUT[version].encode(msg, actions_len=len(actions)) + actions + msg.data


FLOW_MOD = {
    4: Struct(m.FlowMod, "!QQBBHHHIIIH2x", "cookie cookie_mask table_id command idle_timeout "
              "hard_timeout priority buffer_id out_port out_group flags"),
    1: Struct(m.FlowMod, "!QHHHHIHH", "cookie command idle_timeout hard_timeout priority "
              "buffer_id out_port flags", out_port=PORT10),
}
OFPTT_ALL = 0xFF


def _flow_mod_decode(reader, version):
    if version == 1:
        match = MATCH[1][0](reader)
        fields = FLOW_MOD[1].unpack(reader)
        # OF1.0 has one table; its deletes apply to "all tables" as OF1.3 says it.
        fields["table_id"] = OFPTT_ALL if fields["command"] >= 3 else 0
    else:
        fields = FLOW_MOD[4].unpack(reader)
        match = MATCH[4][0](reader)
    if fields["command"] > 4:
        raise OFPError("FLOW_MOD_FAILED", "BAD_COMMAND", detail=f"command {fields['command']}")
    fields["match"] = match
    fields["instructions"] = decode_program(version, reader)
    return fields


def _flow_mod_encode(msg, version):
    fixed, match = FLOW_MOD[version].encode(msg), MATCH[version][1](msg.match)
    program = encode_program(version, msg.instructions)
    return (match + fixed if version == 1 else fixed + match) + program


def _port_status_decode(reader, version):
    (reason,) = reader.unpack("!B7x")
    return {"reason": reason, "port": PORT[version].decode(reader)}


def _port_status_encode(msg, version):
    return struct.pack("!B7x", msg.reason) + PORT[version].encode(msg.port)


# --- multipart / stats ----------------------------------------------------------

MP_HEADER = {4: "!HH4x", 1: "!HH"}


def _multipart(is_reply):
    def decode(reader, version):
        mp_type, flags = reader.unpack(MP_HEADER[version])
        body = body_codec(version, mp_type, is_reply).decode(reader, version)
        return {"type": mp_type, "flags": flags, "body": body}

    def encode(msg, version):
        body = body_codec(version, msg.type, is_reply).encode(msg.body, version)
        return struct.pack(MP_HEADER[version], msg.type, msg.flags) + body
    return decode, encode


ASYNC_FMT = "!6I"


def _async_decode(reader, version):
    v = reader.unpack(ASYNC_FMT)
    return {"packet_in_mask": v[0:2], "port_status_mask": v[2:4], "flow_removed_mask": v[4:6]}


def _async_encode(msg, version):
    return struct.pack(ASYNC_FMT, *msg.packet_in_mask, *msg.port_status_mask, *msg.flow_removed_mask)


_ports = (lambda r, v: decode_list(r, PORT[v].decode),
          lambda ports, v: b"".join(PORT[v].encode(p) for p in ports))
_buckets = (lambda r, v: decode_buckets(r), lambda b, v: encode_buckets(b))
_bands = (lambda r, v: decode_bands(r), lambda b, v: encode_bands(b))

COMMON = {
    0: Custom(m.Hello, _hello_decode, _hello_encode),
    1: Custom(m.Error, _error_decode, _error_encode),
    2: Fixed(m.EchoRequest, tail="data"),
    3: Fixed(m.EchoReply, tail="data"),
    5: Fixed(m.FeaturesRequest),
    7: Fixed(m.GetConfigRequest),
    8: Fixed(m.GetConfigReply, "!HH", "flags miss_send_len"),
    9: Fixed(m.SetConfig, "!HH", "flags miss_send_len"),
    10: Custom(m.PacketIn, _packet_in_decode, _packet_in_encode),
    11: Custom(m.FlowRemoved, _flow_removed_decode, _flow_removed_encode),
    12: Custom(m.PortStatus, _port_status_decode, _port_status_encode),
    13: Custom(m.PacketOut, _packet_out_decode, _packet_out_encode),
    14: Custom(m.FlowMod, _flow_mod_decode, _flow_mod_encode),
}

CODECS = {
    OFP_VERSION_13: {
        **COMMON,
        4: Fixed(m.ExperimenterMsg, "!II", "experimenter exp_type", tail="data"),
        6: Fixed(m.FeaturesReply, "!QIBB2xI4x", "datapath_id n_buffers n_tables auxiliary_id capabilities"),
        15: Fixed(m.GroupMod, "!HBxI", "command type group_id", tail="buckets", tail_codec=_buckets,
                  check=lambda f: (_range_check("command", 2, "GROUP_MOD_FAILED", "BAD_COMMAND")(f),
                                   _range_check("type", 3, "GROUP_MOD_FAILED", "BAD_TYPE")(f))),
        16: Fixed(m.PortMod, "!I4x6s2xIII4x", "port_no hw_addr config mask advertise", hw_addr=MAC),
        17: Fixed(m.TableMod, "!B3xI", "table_id config"),
        18: Custom(m.MultipartRequest, *_multipart(False)),
        19: Custom(m.MultipartReply, *_multipart(True)),
        20: Fixed(m.BarrierRequest),
        21: Fixed(m.BarrierReply),
        22: Fixed(m.QueueGetConfigRequest, "!I4x", "port"),
        23: Fixed(m.QueueGetConfigReply, "!I4x", "port", tail="queues"),
        24: Fixed(m.RoleRequest, "!I4xQ", "role generation_id",
                  check=_range_check("role", 3, "ROLE_REQUEST_FAILED", "BAD_ROLE")),
        25: Fixed(m.RoleReply, "!I4xQ", "role generation_id"),
        26: Fixed(m.GetAsyncRequest),
        27: Custom(m.GetAsyncReply, _async_decode, _async_encode),
        28: Custom(m.SetAsync, _async_decode, _async_encode),
        29: Fixed(m.MeterMod, "!HHI", "command flags meter_id", tail="bands", tail_codec=_bands,
                  check=_range_check("command", 2, "METER_MOD_FAILED", "BAD_COMMAND")),
    },
    OFP_VERSION_10: {
        **COMMON,
        4: Fixed(m.ExperimenterMsg, "!I", "experimenter", tail="data"),
        6: Fixed(m.FeaturesReply, "!QIB3xII", "datapath_id n_buffers n_tables capabilities actions",
                 tail="ports", tail_codec=_ports),
        15: Fixed(m.PortMod, "!H6sIII4x", "port_no hw_addr config mask advertise",
                  port_no=PORT10, hw_addr=MAC),
        16: Custom(m.MultipartRequest, *_multipart(False)),
        17: Custom(m.MultipartReply, *_multipart(True)),
        18: Fixed(m.BarrierRequest),
        19: Fixed(m.BarrierReply),
        20: Fixed(m.QueueGetConfigRequest, "!H2x", "port", port=PORT10),
        21: Fixed(m.QueueGetConfigReply, "!H6x", "port", tail="queues", port=PORT10),
    },
}
TYPE_NUMBER = {v: {c.cls: t for t, c in table.items()} for v, table in CODECS.items()}


# --- framing ----------------------------------------------------------------------

def message_length(buf):
    """Length of the message at the start of `buf`, or None if the header is incomplete."""
    if len(buf) < HEADER_LEN:
        return None
    return HEADER.unpack_from(buf)[2]


def split_messages(buf):
    """A stream buffer -> (complete messages, leftover bytes).  A header with a
    length below 8 is unrecoverable framing: raise BAD_LEN (close after replying)."""
    out, pos = [], 0
    while True:
        length = message_length(buf[pos:pos + HEADER_LEN])
        if length is None or len(buf) - pos < length:
            return out, bytes(buf[pos:])
        if length < HEADER_LEN:
            raise OFPError("BAD_REQUEST", "BAD_LEN", data=bytes(buf[pos:pos + 64]))
        out.append(bytes(buf[pos:pos + length]))
        pos += length


def decode(buf):
    """One complete message -> Message.  Raises OFPError (with .version, .xid)."""
    if buf[1:2] == FLOW_MOD_TYPE and buf[:1] == FLOW_MOD_VERSION:
        msg = decode_flow_mod13(buf)     # the common shape, decoded lean
        if msg is not None:
            return msg
    return decode_by_table(buf)


def decode_by_table(buf):
    """decode() through the layout tables alone (every shape, every error)."""
    if len(buf) < HEADER_LEN:
        raise _annotate(OFPError("BAD_REQUEST", "BAD_LEN", detail="short header"), buf, 4, 0)
    version, mtype, length, xid = HEADER.unpack_from(buf)
    try:
        if length != len(buf):
            raise OFPError("BAD_REQUEST", "BAD_LEN", detail=f"header says {length}, got {len(buf)}")
        table = CODECS.get(version)
        if table is None:
            if mtype != 0:
                raise OFPError("BAD_REQUEST", "BAD_VERSION", detail=f"version {version}")
            table = CODECS[OFP_VERSION_13]   # hellos of any version share one layout
        codec = table.get(mtype)
        if codec is None:
            raise OFPError("BAD_REQUEST", "BAD_TYPE", detail=f"message type {mtype}")
        fields = codec.decode(Reader(buf, start=HEADER_LEN), version)
        return codec.cls(version=version, xid=xid, **fields)
    except OFPError as err:
        raise _annotate(err, buf, version, xid) from None


def _annotate(err, buf, version, xid):
    err.version = version if version in CODECS else OFP_VERSION_13
    err.xid = xid
    err.data = err.data or bytes(buf[:64])
    return err


def encode(msg):
    """Message -> bytes (header included), in msg.version."""
    # hellos of any version share one layout (version negotiation)
    table_version = OFP_VERSION_13 if isinstance(msg, m.Hello) else msg.version
    mtype = TYPE_NUMBER.get(table_version, {}).get(type(msg))
    if mtype is None:
        raise OFPError("BAD_REQUEST", "BAD_TYPE", detail=f"{type(msg).__name__} not in version {msg.version}")
    body = CODECS[table_version][mtype].encode(msg, msg.version)
    return HEADER.pack(msg.version, mtype, HEADER_LEN + len(body), msg.xid) + body


def error_message(err, version=None, xid=None):
    """OFPError -> the Error message that answers it."""
    version = version or getattr(err, "version", OFP_VERSION_13)
    err_type, code = err.numbers(version)
    return m.Error(err_type, code, err.data[:64], version=version,
                   xid=getattr(err, "xid", 0) if xid is None else xid)


def error_reply(err, version=None, xid=None):
    """OFPError -> wire bytes of the error reply."""
    return encode(error_message(err, version, xid))
