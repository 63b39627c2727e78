"""OF1.3 instructions (section 7.2.4) as dataclasses, and their codec.

OF1.0 has no instructions: its action list is carried internally as
[ApplyActions(actions)], so the pipeline sees one shape for both versions.
"""
import struct
from dataclasses import dataclass, field

from .actions import ACTIONS_13
from .errors import OFPError
from .wire import Reader


@dataclass
class GotoTable:
    table_id: int


@dataclass
class WriteMetadata:
    metadata: int
    mask: int = 0xFFFFFFFFFFFFFFFF


@dataclass
class WriteActions:
    actions: list = field(default_factory=list)


@dataclass
class ApplyActions:
    actions: list = field(default_factory=list)


@dataclass
class ClearActions:
    pass


@dataclass
class Meter:
    meter_id: int


@dataclass
class ExperimenterInstruction:
    experimenter: int
    data: bytes = b""


# wire type -> (class, fixed body format or None for "pad 4 + action list")
INSTRUCTIONS = {
    1: (GotoTable, "!B3x"),
    2: (WriteMetadata, "!4xQQ"),
    3: (WriteActions, None),
    4: (ApplyActions, None),
    5: (ClearActions, "!4x"),
    6: (Meter, "!I"),
}
TYPE_OF = {cls: t for t, (cls, _) in INSTRUCTIONS.items()}
OFPIT_EXPERIMENTER = 0xFFFF
BAD_LEN = ("BAD_INSTRUCTION", "BAD_LEN")


def decode_instructions(data):
    out, seen = [], set()
    for itype, body in Reader(data, BAD_LEN).tlvs(min_len=8, align=8):
        body.unpack("!HH")
        if itype in seen:
            raise OFPError("BAD_INSTRUCTION", "UNSUP_INST", detail=f"instruction {itype} twice")
        seen.add(itype)
        out.append(_decode_one(itype, body))
    return out


def _decode_one(itype, body):
    if itype == OFPIT_EXPERIMENTER:
        (experimenter,) = body.unpack("!I")
        return ExperimenterInstruction(experimenter, body.rest())
    if itype not in INSTRUCTIONS:
        raise OFPError("BAD_INSTRUCTION", "UNKNOWN_INST", detail=f"instruction type {itype}")
    cls, fmt = INSTRUCTIONS[itype]
    if fmt is None:
        body.unpack("!4x")
        return cls(ACTIONS_13.decode(body.sub(body.remaining(), ("BAD_ACTION", "BAD_LEN"))))
    if body.remaining() != struct.calcsize(fmt):
        raise OFPError(*BAD_LEN, detail=f"instruction type {itype}")
    inst = cls(*body.unpack(fmt))
    if isinstance(inst, GotoTable) and inst.table_id > 0xFE:
        raise OFPError("BAD_INSTRUCTION", "BAD_TABLE_ID", detail="goto_table 255")
    return inst


def encode_instructions(instructions):
    return b"".join(_encode_one(i) for i in instructions)


def _encode_one(inst):
    if isinstance(inst, ExperimenterInstruction):
        body = struct.pack("!I", inst.experimenter) + inst.data
        return struct.pack("!HH", OFPIT_EXPERIMENTER, 4 + len(body)) + body
    itype = TYPE_OF[type(inst)]
    fmt = INSTRUCTIONS[itype][1]
    if fmt is None:
        body = bytes(4) + ACTIONS_13.encode(inst.actions)
    else:
        body = struct.pack(fmt, *vars(inst).values())
    return struct.pack("!HH", itype, 4 + len(body)) + body


def actions_of(instructions):
    """OF1.0 view: the apply-actions list (the only instruction 1.0 can carry)."""
    for inst in instructions:
        if not isinstance(inst, ApplyActions):
            raise OFPError("BAD_ACTION", "BAD_TYPE", detail=f"{type(inst).__name__} needs OpenFlow 1.3")
    return [a for inst in instructions for a in inst.actions]
