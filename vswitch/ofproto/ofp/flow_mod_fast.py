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

Match layouts repeat too (ovs-ofctl's `tcp,nw_dst=A,tp_dst=B` rules all
carry eth_type, ip_proto, ipv4_dst, tcp_dst): a layout — the sequence of
OXM headers — that the walk decoded once is compiled into one Struct that
unpacks every header and value in one call; a message whose headers read
back equal to the layout's takes it, any other falls back to the walk.  For
a layout of exact full-width fields, Match.check's verdict depends only on
the values of the fields others need as prerequisites (eth_type, ip_proto):
the verdicts that passed are kept by those values.

Streamed adds of a shape this decoder and OFSwitch's checks accepted are
then decoded in C, without a FlowMod (conn/front.py, csrc/of_front.h):
this decoder remains the path of every other message and the one that
teaches the C side.
"""
import struct
from itertools import repeat
from operator import itemgetter

from . import messages as m
from .actions import ACTIONS_13, Output
from .constants import OFP_VERSION_13, OFPFC_DELETE_STRICT
from .errors import OFPError
from .instructions import ApplyActions, GotoTable, WriteActions
from .oxm import FIELD_LIST, FIELDS, OFPMT_OXM, Match, oxm_header
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

MAX_LAYOUTS = 256              # compiled match layouts kept (then emptied)
MAX_CHECKED = 64               # prerequisite values whose check passed, per layout
STRUCT_CODE = {1: "B", 2: "H", 4: "I", 8: "Q"}   # OXM value sizes one Struct code reads
OXM_HEADER_LEN = 4
MATCH_WITH_OXM = 4 + OXM_HEADER_LEN   # ofp_match's type and length, then at least one header
_LAYOUTS = {}                  # (match_len, first OXM header's field byte) -> _Layout

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
    layout = _LAYOUTS.get((match_len, buf[OXM_OFFSET + 2])) if match_len >= MATCH_WITH_OXM else None
    if layout is not None and (match := layout.read(buf)) is not None:
        if not layout.check_passed(match):
            return None
    else:
        match = _oxms(buf, OXM_OFFSET, end)
        if match is None:
            return None
        try:
            match.check()
        except OFPError:
            return None
        _learn_layout(match_len, match, buf)
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


class _Layout:
    """One compiled match layout (see the module note)."""
    __slots__ = ("struct", "headers", "header_of", "names", "pairs", "masked_idx", "prereq_of", "checked",
                 "last_key")

    def __init__(self, match, headers):
        fmt, idx, hidx, i = ["!"], [], [], 0
        for name, (_, mask) in match.items():
            code = STRUCT_CODE[FIELDS[name].size]
            fmt.append("I" + code + (code if mask is not None else ""))
            hidx.append(i)
            idx.append((i + 1, i + 2 if mask is not None else None))
            i += 3 if mask is not None else 2
        self.struct = struct.Struct("".join(fmt))
        self.headers = headers
        self.header_of = itemgetter(*hidx) if len(hidx) > 1 else (lambda vals: (vals[0],))
        self.names = tuple(match)
        exact = all(mask is None for _, mask in match.values())
        self.pairs = None if not exact else itemgetter(*(v for v, _ in idx)) if len(idx) > 1 \
            else (lambda vals: (vals[1],))
        self.masked_idx = idx
        # Check verdicts by prerequisite values: only when nothing else in
        # Match.check can fail (all exact, every value as wide as its field).
        pre = [self.names.index(p) for p in {p for n in self.names for p, _ in FIELDS[n].prereqs}
               if p in self.names]
        full_width = all(FIELDS[n].bits == FIELDS[n].size * 8 for n in self.names)
        pre_idx = [idx[j][0] for j in pre]
        self.prereq_of = None if not (exact and full_width) else \
            itemgetter(*pre_idx) if len(pre_idx) > 1 else (lambda vals: tuple(vals[i] for i in pre_idx))
        self.checked = set()       # prerequisite values whose check passed
        self.last_key = None       # those values of the message read last

    def read(self, buf):
        """The Match of a message with this layout, or None (another layout)."""
        if len(buf) < OXM_OFFSET + self.struct.size:
            return None
        vals = self.struct.unpack_from(buf, OXM_OFFSET)
        if self.header_of(vals) != self.headers:
            return None
        if self.pairs is not None:
            values = self.pairs(vals) if len(self.names) > 1 else (vals[1],)
            match = Match(zip(self.names, zip(values, repeat(None))))
        else:
            match = Match(zip(self.names, [(vals[v], vals[m] if m is not None else None)
                                           for v, m in self.masked_idx]))
        self.last_key = self.prereq_of(vals) if self.prereq_of is not None else None
        return match

    def check_passed(self, match):
        """Match.check of the match read last, its verdict kept by
        prerequisite values when it can be."""
        key = self.last_key
        if key is not None and key in self.checked:
            return True
        try:
            match.check()
        except OFPError:
            return False
        if key is not None and len(self.checked) < MAX_CHECKED:
            self.checked.add(key)
        return True


def _learn_layout(match_len, match, buf):
    if not match or any(FIELDS[n].size not in STRUCT_CODE for n in match):
        return
    if len(_LAYOUTS) >= MAX_LAYOUTS:
        _LAYOUTS.clear()
    headers, pos = [], OXM_OFFSET
    for name, (_, mask) in match.items():
        headers.append(U32.unpack_from(buf, pos)[0])
        pos += OXM_HEADER_LEN + FIELDS[name].size * (2 if mask is not None else 1)
    _LAYOUTS[(match_len, buf[OXM_OFFSET + 2])] = _Layout(match, tuple(headers))


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
