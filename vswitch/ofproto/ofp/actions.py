"""Actions: small dataclasses shared by both versions, and their wire codecs.

Each version has a table {wire type: ActionSpec} giving the body layout as a
struct format (read it against OF1.3 section 7.2.5 / OF1.0 section 5.2.4) and,
where OF1.0 has a special-purpose action, how it maps onto the internal form:
OF1.0 set-vlan-vid/pcp, set-dl-*, set-nw-*, set-tp-* become SetField; strip-vlan
becomes PopVlan.  OF1.0 set-tp-src/dst do not say which transport protocol they
rewrite, so they become SetField("tp_src"/"tp_dst") that xlate applies to
whatever L4 header the packet has.  Experimenter (vendor) actions are kept
opaque so a message round-trips; the pipeline rejects them with
BAD_ACTION/BAD_EXPERIMENTER.
"""
import struct
from dataclasses import dataclass, fields

from .constants import OFPCML_NO_BUFFER, port_from_of10, port_to_of10
from .errors import OFPError
from .oxm import FIELDS, OFPVID_PRESENT, oxm_header, read_oxm
from .wire import Reader, pad8


@dataclass(frozen=True)
class Output:
    port: int
    max_len: int = OFPCML_NO_BUFFER


@dataclass(frozen=True)
class SetField:
    field: str
    value: int


@dataclass(frozen=True)
class PushVlan:
    ethertype: int = 0x8100


@dataclass(frozen=True)
class PopVlan:
    pass


@dataclass(frozen=True)
class PushMpls:
    ethertype: int = 0x8847


@dataclass(frozen=True)
class PopMpls:
    ethertype: int = 0x0800


@dataclass(frozen=True)
class PushPbb:
    ethertype: int = 0x88E7


@dataclass(frozen=True)
class PopPbb:
    pass


@dataclass(frozen=True)
class SetMplsTtl:
    ttl: int


@dataclass(frozen=True)
class DecMplsTtl:
    pass


@dataclass(frozen=True)
class SetNwTtl:
    ttl: int


@dataclass(frozen=True)
class DecNwTtl:
    pass


@dataclass(frozen=True)
class CopyTtlOut:
    pass


@dataclass(frozen=True)
class CopyTtlIn:
    pass


@dataclass(frozen=True)
class Group:
    group_id: int


@dataclass(frozen=True)
class SetQueue:
    queue_id: int


@dataclass(frozen=True)
class Enqueue:
    """OF1.0 enqueue: set-queue and output in one action."""
    port: int
    queue_id: int


@dataclass(frozen=True)
class Experimenter:
    experimenter: int
    data: bytes = b""


@dataclass(frozen=True)
class ActionSpec:
    type: int
    cls: type
    fmt: str                 # struct format of the body after type/len
    decode: object = None    # wire tuple -> action (default cls(*values))
    encode: object = None    # action -> wire tuple (default astuple)
    field: str = None        # for SetField specs: which field (OF1.0 only)

    @property
    def length(self):
        return 4 + struct.calcsize(self.fmt)


def _spec(type_, cls, fmt, decode=None, encode=None, field=None):
    return ActionSpec(type_, cls, fmt, decode, encode, field)


def _mac(raw):
    return int.from_bytes(raw, "big")


def _check_ethertype(allowed):
    def decode(cls):
        def make(values):
            if values[0] not in allowed:
                raise OFPError("BAD_ACTION", "BAD_ARGUMENT", detail=f"ethertype {values[0]:#x}")
            return cls(*values)
        return make
    return decode


_VLAN_TYPES = _check_ethertype((0x8100, 0x88A8))
_MPLS_TYPES = _check_ethertype((0x8847, 0x8848))

SPECS_13 = [
    _spec(0, Output, "!IH6x"),
    _spec(11, CopyTtlOut, "!4x"),
    _spec(12, CopyTtlIn, "!4x"),
    _spec(15, SetMplsTtl, "!B3x"),
    _spec(16, DecMplsTtl, "!4x"),
    _spec(17, PushVlan, "!H2x", decode=_VLAN_TYPES(PushVlan)),
    _spec(18, PopVlan, "!4x"),
    _spec(19, PushMpls, "!H2x", decode=_MPLS_TYPES(PushMpls)),
    _spec(20, PopMpls, "!H2x"),
    _spec(21, SetQueue, "!I"),
    _spec(22, Group, "!I"),
    _spec(23, SetNwTtl, "!B3x"),
    _spec(24, DecNwTtl, "!4x"),
    _spec(26, PushPbb, "!H2x"),
    _spec(27, PopPbb, "!4x"),
]
OFPAT13_SET_FIELD = 25
OFPAT_EXPERIMENTER = 0xFFFF


def _of10_set(type_, fmt, field, to_value=lambda v: v, from_value=lambda v: v):
    return _spec(type_, SetField, fmt, field=field,
                 decode=lambda vals: SetField(field, to_value(vals[0])),
                 encode=lambda a: (from_value(a.value),))


SPECS_10 = [
    _spec(0, Output, "!HH", decode=lambda v: Output(port_from_of10(v[0]), v[1]),
          encode=lambda a: (port_to_of10(a.port), a.max_len)),
    _of10_set(1, "!H2x", "vlan_vid", lambda v: v | OFPVID_PRESENT, lambda v: v & 0xFFF),
    _of10_set(2, "!B3x", "vlan_pcp"),
    _spec(3, PopVlan, "!4x"),
    _of10_set(4, "!6s6x", "eth_src", _mac, lambda v: v.to_bytes(6, "big")),
    _of10_set(5, "!6s6x", "eth_dst", _mac, lambda v: v.to_bytes(6, "big")),
    _of10_set(6, "!I", "ipv4_src"),
    _of10_set(7, "!I", "ipv4_dst"),
    _of10_set(8, "!B3x", "ip_dscp", lambda v: v >> 2, lambda v: v << 2),
    _of10_set(9, "!H2x", "tp_src"),
    _of10_set(10, "!H2x", "tp_dst"),
    _spec(11, Enqueue, "!H6xI", decode=lambda v: Enqueue(port_from_of10(v[0]), v[1]),
          encode=lambda a: (port_to_of10(a.port), a.queue_id)),
]
# OF1.0 can carry any L4 port rewrite with set-tp-src/dst.
OF10_FIELD_ALIASES = {"tcp_src": "tp_src", "udp_src": "tp_src", "sctp_src": "tp_src",
                      "tcp_dst": "tp_dst", "udp_dst": "tp_dst", "sctp_dst": "tp_dst"}


class ActionCodec:
    """Action list codec for one version, driven by its spec table."""

    def __init__(self, specs, set_field_type=None, field_aliases=None):
        self.by_type = {s.type: s for s in specs}
        self.by_key = {(s.cls, s.field): s for s in specs}
        self.set_field_type = set_field_type
        self.field_aliases = field_aliases or {}

    def decode(self, reader):
        actions = []
        error = ("BAD_ACTION", "BAD_LEN")
        for atype, body in reader.tlvs(min_len=8, align=8, error=error):
            body.error = error
            body.unpack("!HH")
            actions.append(self.decode_one(atype, body))
        return actions

    def decode_one(self, atype, body):
        if atype == OFPAT_EXPERIMENTER:
            (experimenter,) = body.unpack("!I")
            return Experimenter(experimenter, body.rest())
        if atype == self.set_field_type:
            return decode_set_field(body)
        spec = self.by_type.get(atype)
        if spec is None:
            raise OFPError("BAD_ACTION", "BAD_TYPE", detail=f"action type {atype}")
        if body.remaining() != spec.length - 4:
            raise OFPError("BAD_ACTION", "BAD_LEN", detail=f"action type {atype}")
        values = body.unpack(spec.fmt)
        return spec.decode(values) if spec.decode else spec.cls(*values)

    def encode(self, actions):
        return b"".join(self.encode_one(a) for a in actions)

    def encode_one(self, action):
        if isinstance(action, Experimenter):
            body = struct.pack("!I", action.experimenter) + action.data
            return struct.pack("!HH", OFPAT_EXPERIMENTER, 4 + len(body)) + body
        if isinstance(action, SetField) and self.set_field_type is not None:
            return encode_set_field(self.set_field_type, action)
        field = self.field_aliases.get(action.field, action.field) if isinstance(action, SetField) else None
        spec = self.by_key.get((type(action), field))
        if spec is None:
            raise OFPError("BAD_ACTION", "BAD_TYPE", detail=f"{action} not in this version")
        values = spec.encode(action) if spec.encode else _field_values(action)
        return struct.pack("!HH", spec.type, spec.length) + struct.pack(spec.fmt, *values)


_FIELD_NAMES = {}   # action class -> its dataclass field names


def _field_values(action):
    """The fields in order, shallow (dataclasses.astuple deep-copies each
    value: most of the cost of encoding a dump of many flows)."""
    names = _FIELD_NAMES.get(type(action))
    if names is None:
        names = _FIELD_NAMES[type(action)] = tuple(f.name for f in fields(action))
    return tuple([getattr(action, n) for n in names])


def decode_set_field(body):
    try:
        field, value, mask = read_oxm(body)
    except OFPError as err:
        code = {"BAD_FIELD": "BAD_SET_TYPE", "BAD_LEN": "BAD_SET_LEN"}.get(err.code, "BAD_SET_ARGUMENT")
        raise OFPError("BAD_ACTION", code, detail=err.detail) from None
    if mask is not None:
        raise OFPError("BAD_ACTION", "BAD_SET_ARGUMENT", detail="set-field with a mask")
    if body.rest().strip(b"\0"):
        raise OFPError("BAD_ACTION", "BAD_SET_LEN", detail="set-field trailing bytes")
    return SetField(field.name, value)


def encode_set_field(type_, action):
    field = FIELDS.get(action.field)
    if field is None:
        raise OFPError("BAD_ACTION", "BAD_SET_TYPE", detail=action.field)
    oxm = oxm_header(field, False).to_bytes(4, "big") + action.value.to_bytes(field.size, "big")
    length = 4 + len(oxm)
    return struct.pack("!HH", type_, length + pad8(length)) + oxm + bytes(pad8(length))


ACTIONS_13 = ActionCodec(SPECS_13, set_field_type=OFPAT13_SET_FIELD)
ACTIONS_10 = ActionCodec(SPECS_10, field_aliases=OF10_FIELD_ALIASES)
ACTION_CODECS = {1: ACTIONS_10, 4: ACTIONS_13}


def decode_actions(version, data):
    return ACTION_CODECS[version].decode(Reader(data, ("BAD_ACTION", "BAD_LEN")))


def encode_actions(version, actions):
    return ACTION_CODECS[version].encode(actions)
