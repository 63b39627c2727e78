"""A lean decoder for the common OF1.3 flow-mod: the message controllers and
ovs-ofctl send by the hundred thousand.

Design note.  codec.decode walks every message through the layout tables
(Struct, Reader, tlvs, one sub-reader per element): general, and about 25 us
of Python per flow-mod.  This module decodes the usual shape directly from
the buffer with precompiled structs and a table keyed by the whole 32-bit
OXM header: an OXM match, then apply-actions / write-actions / goto-table
instructions.  It accepts only what the table codec accepts and builds the
same FlowMod (tests/unit/test_ofp_flow_mod_fast.py checks both on random
and mangled messages).  Anything else — another instruction, a malformed
or unusual element, a match that fails its checks — returns None and the
table codec decodes the message, raising the spec's error when it is bad;
so error replies come from one place.  Actions other than output are
decoded by the table codec's per-action decoder.

Instruction sections repeat (ovs-ofctl's files and controllers put the same
actions on many rules): the decoded list is kept by the section's bytes and
the same list object returned for a repeat, which also lets FlowTables
recognise it without hashing its actions.  Those lists are shared by
FlowMods and rules and never mutated (FlowTables shared them already).

A C decoder was not written: measured on ovs-ofctl's flow-mods (see
bench/of_flow_mod_decode.py) this Python path leaves the decode a small
share of the per-rule cost.
"""
import struct

from . import messages as m
from .actions import ACTIONS_13, Output
from .constants import OFP_VERSION_13, OFPFC_DELETE_STRICT
from .errors import OFPError
from .instructions import ApplyActions, GotoTable, WriteActions
from .oxm import FIELD_LIST, OFPMT_OXM, Match, oxm_header
from .wire import Reader, pad8

OFPT_FLOW_MOD = 14
# header, the flow-mod's fixed part, the match's type and length
FIXED = struct.Struct("!BBHIQQBBHHHIIIH2xHH")
MATCH_OFFSET = 48              # where ofp_match starts
OXM_OFFSET = MATCH_OFFSET + 4
TLV = struct.Struct("!HH")
U32 = struct.Struct("!I")
OUTPUT = struct.Struct("!IH")  # port, max_len (then 6 pad bytes)
OFPAT_OUTPUT, OUTPUT_LEN = 0, 16
OFPIT_GOTO_TABLE, OFPIT_WRITE_ACTIONS, OFPIT_APPLY_ACTIONS = 1, 3, 4
GOTO_LEN = 8
INSTRUCTION_HEADER = 8         # type, length, 4 pad bytes (goto: table_id, 3 pad)
ELEMENT_ALIGN = 8              # instructions and actions are multiples of 8 bytes
MAX_TABLE_ID = 0xFE
ACTION_LEN_ERROR = ("BAD_ACTION", "BAD_LEN")
MAX_CACHED_PROGRAMS = 1024     # distinct instruction sections kept decoded (then emptied)
_PROGRAMS = {}                 # instruction section bytes -> its decoded list
_PROGRAM_IDS = {}              # id(a decoded list kept above) -> the list

# The whole OXM header (class, field, has-mask, length) -> (name, size,
# masked): one dict probe checks class, field and length together.
OXM_SHAPES = {oxm_header(f, masked): (f.name, f.size, masked)
              for f in FIELD_LIST for masked in ((False, True) if f.maskable else (False,))}


def decode_flow_mod13(buf):
    """bytes of one whole message -> FlowMod, or None: not a shape this
    decoder takes (codec.decode decides, with the spec's error if bad)."""
    n = len(buf)
    if n < FIXED.size:
        return None
    (version, mtype, length, xid, cookie, cookie_mask, table_id, command, idle_timeout,
     hard_timeout, priority, buffer_id, out_port, out_group, flags, match_type,
     match_len) = FIXED.unpack_from(buf)
    if version != OFP_VERSION_13 or mtype != OFPT_FLOW_MOD or length != n or \
            command > OFPFC_DELETE_STRICT or match_type != OFPMT_OXM or match_len < 4:
        return None
    end = MATCH_OFFSET + match_len
    if end > n:
        return None
    match = _oxms(buf, OXM_OFFSET, end)
    if match is None:
        return None
    try:
        match.check()
    except OFPError:
        return None
    start = min(end + pad8(match_len), n)
    section = bytes(buf[start:n])
    instructions = _PROGRAMS.get(section)
    if instructions is None:
        instructions = _instructions(buf, start, n)
        if instructions is None:
            return None
        if len(_PROGRAMS) >= MAX_CACHED_PROGRAMS:   # start afresh: follows what is sent now
            _PROGRAMS.clear()
            _PROGRAM_IDS.clear()
        _PROGRAMS[section] = _PROGRAM_IDS[id(instructions)] = instructions
    return m.FlowMod(version=version, xid=xid, cookie=cookie, cookie_mask=cookie_mask,
                     table_id=table_id, command=command, idle_timeout=idle_timeout,
                     hard_timeout=hard_timeout, priority=priority, buffer_id=buffer_id,
                     out_port=out_port, out_group=out_group, flags=flags, match=match,
                     instructions=instructions)


def is_cached_program(instructions):
    """True if `instructions` is a list this decoder keeps and returns for
    every repeat of its section (nobody mutates it: it may be compared by
    identity)."""
    return _PROGRAM_IDS.get(id(instructions)) is instructions


def _oxms(buf, pos, end):
    match = Match()
    shapes, from_bytes = OXM_SHAPES, int.from_bytes
    while pos < end:
        if end - pos < 4:
            return None
        shape = shapes.get(U32.unpack_from(buf, pos)[0])
        if shape is None:
            return None
        name, size, masked = shape
        value_end = pos + 4 + size
        nxt = value_end + size if masked else value_end
        if nxt > end or name in match:
            return None
        match[name] = (from_bytes(buf[pos + 4:value_end], "big"),
                       from_bytes(buf[value_end:nxt], "big") if masked else None)
        pos = nxt
    return match


def _instructions(buf, pos, end):
    out, seen = [], set()
    while pos < end:
        if end - pos < 4:
            return None
        itype, ilen = TLV.unpack_from(buf, pos)
        if ilen < INSTRUCTION_HEADER or ilen % ELEMENT_ALIGN or pos + ilen > end or itype in seen:
            return None
        seen.add(itype)
        if itype == OFPIT_APPLY_ACTIONS or itype == OFPIT_WRITE_ACTIONS:
            actions = _actions(buf, pos + INSTRUCTION_HEADER, pos + ilen)
            if actions is None:
                return None
            out.append(ApplyActions(actions) if itype == OFPIT_APPLY_ACTIONS else WriteActions(actions))
        elif itype == OFPIT_GOTO_TABLE and ilen == GOTO_LEN and buf[pos + 4] <= MAX_TABLE_ID:
            out.append(GotoTable(buf[pos + 4]))
        else:
            return None
        pos += ilen
    return out


def _actions(buf, pos, end):
    out = []
    while pos < end:
        if end - pos < 4:
            return None
        atype, alen = TLV.unpack_from(buf, pos)
        if alen < ELEMENT_ALIGN or alen % ELEMENT_ALIGN or pos + alen > end:
            return None
        if atype == OFPAT_OUTPUT and alen == OUTPUT_LEN:
            out.append(Output(*OUTPUT.unpack_from(buf, pos + 4)))
        else:
            try:
                out.append(ACTIONS_13.decode_one(atype, Reader(buf, ACTION_LEN_ERROR, pos + 4, pos + alen)))
            except OFPError:
                return None
        pos += alen
    return out
