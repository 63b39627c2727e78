"""Structures shared by several messages: ports, group buckets, meter bands.

Layouts per version as Struct tables (OF1.3 sections 7.2.1, 7.3.4.2, 7.3.4.4;
OF1.0 section 5.2.1).
"""
import struct

from .actions import ACTION_CODECS
from .errors import OFPError
from .instructions import ApplyActions, actions_of, decode_instructions, encode_instructions
from .match10 import decode_match10, encode_match10
from .messages import Bucket, MeterBand, Port
from .oxm import decode_match, encode_match
from .records import MAC, PORT10, Struct, text
from .wire import Reader

PORT = {
    4: Struct(Port, "!I4x6s2x16sIIIIIIII",
              "port_no hw_addr name config state curr advertised supported peer curr_speed max_speed",
              hw_addr=MAC, name=text(16)),
    1: Struct(Port, "!H6s16sIIIIII",
              "port_no hw_addr name config state curr advertised supported peer",
              port_no=PORT10, hw_addr=MAC, name=text(16)),
}


# version -> (decode(reader) -> Match, encode(Match) -> bytes)
MATCH = {4: (decode_match, encode_match), 1: (decode_match10, encode_match10)}


def decode_program(version, reader):
    """The rest of `reader` as instructions (OF1.3) or an action list (OF1.0)."""
    data = reader.rest()
    if version == 4:
        return decode_instructions(data)
    actions = ACTION_CODECS[1].decode(Reader(data, ("BAD_ACTION", "BAD_LEN")))
    return [ApplyActions(actions)] if actions else []


def encode_program(version, instructions):
    if version == 4:
        return encode_instructions(instructions)
    return ACTION_CODECS[1].encode(actions_of(instructions))


def decode_list(reader, decode_one):
    out = []
    while reader.remaining():
        out.append(decode_one(reader))
    return out


# --- group buckets (OF1.3 only) ---------------------------------------------
BUCKET = Struct(Bucket, "!HHII4x", "length weight watch_port watch_group")
BAD_BUCKET = ("GROUP_MOD_FAILED", "BAD_BUCKET")


def decode_buckets(reader):
    buckets = []
    for length, body in reader.tlvs(header="!H", min_len=BUCKET.size, align=8, error=BAD_BUCKET):
        fields = BUCKET.unpack(body)
        del fields["length"]
        actions = ACTION_CODECS[4].decode(body.sub(body.remaining(), ("BAD_ACTION", "BAD_LEN")))
        buckets.append(Bucket(actions=actions, **fields))
    return buckets


def encode_buckets(buckets):
    out = b""
    for b in buckets:
        actions = ACTION_CODECS[4].encode(b.actions)
        out += BUCKET.encode(b, length=BUCKET.size + len(actions)) + actions
    return out


# --- meter bands (OF1.3 only) -----------------------------------------------
BAND_HEADER = "!HHII"
# band type -> (name of the 4 type-specific bytes, their format)
BAND_TYPES = {1: (None, "4x"), 2: ("prec_level", "B3x"), 0xFFFF: ("experimenter", "I")}
BAND_LEN = 16


def decode_bands(reader):
    bands = []
    for btype, body in reader.tlvs(min_len=BAND_LEN, error=("METER_MOD_FAILED", "BAD_BAND")):
        if btype not in BAND_TYPES or body.remaining() != BAND_LEN:
            raise OFPError("METER_MOD_FAILED", "BAD_BAND", detail=f"band type {btype}")
        _, _, rate, burst = body.unpack(BAND_HEADER)
        name, fmt = BAND_TYPES[btype]
        extra = body.unpack("!" + fmt)
        band = MeterBand(btype, rate, burst)
        if name:
            setattr(band, name, extra[0])
        bands.append(band)
    return bands


def encode_bands(bands):
    out = b""
    for band in bands:
        name, fmt = BAND_TYPES[band.type]
        out += struct.pack(BAND_HEADER + fmt, band.type, BAND_LEN, band.rate, band.burst_size,
                           *([getattr(band, name)] if name else []))
    return out
