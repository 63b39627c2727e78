"""Flow-stats replies written straight from rules, one bounded chunk at a time.

Design note.  A dump of 100,000 rules is 100,000 ofp_flow_stats entries; the
generic path (a FlowStatsEntry per rule, then multipart.FlowStatsCodec, then
splitting the list by measuring each entry) costs ~30 us per entry, most of
it re-encoding the same things.  Here:

  - an entry is one struct pack of the fixed head and counters, the match's
    bytes and the program's bytes, joined once per reply;
  - the program (instruction list) is encoded once per list object per dump:
    FlowTables shares equal instruction lists between rules (flow_table.
    _shared), so a dump of rules with a handful of distinct action lists
    encodes a handful of programs.  The memo holds the list itself so its
    id() cannot be reused by another list while the dump runs (a modify
    between two chunks replaces a rule's list; it never changes one in place);
  - OXM matches (OF1.3) are encoded field by field from precomputed OXM
    headers; OF1.0 matches go through match10 (the conversion has its own
    errors and rules, kept in one place), told the match is normalized;
  - replies are cut at MAX_REPLY by summing the entries' lengths, and each
    reply is produced only when the caller asks for it (`replies()` is a
    generator), so the connection writes the first chunk before the last one
    is encoded and can let other work run in between.

Nothing is cached on the rules (memory at a million rules: issue 14); the
memo lives as long as one dump.  Output is byte-identical to FlowStatsCodec's
(tests/unit/test_ofp_flow_stats_wire.py checks both on the same rules).
"""
import functools
import struct

from .codec import HEADER, MP_HEADER
from .multipart import OFPMP_FLOW, OFPMPF_REPLY_MORE, FlowStatsCodec
from .of10_program import encode_of10_program
from .oxm import FIELD_LIST, OFPMT_OXM, oxm_header
from .match10 import encode_match10
from .parts import encode_program

OFPT_MULTIPART_REPLY = {4: 19, 1: 17}    # OF1.3 MULTIPART_REPLY, OF1.0 STATS_REPLY
MAX_REPLY = 60000   # bytes of entries per reply message (well under the 16-bit length)
NSEC = 1_000_000_000
OXM_PREFIX_LEN = 4   # ofp_match type + length
ALIGN = 8

_HEAD13 = struct.Struct(FlowStatsCodec.HEAD[4])
_HEAD10 = struct.Struct(FlowStatsCodec.HEAD[1])
_TAIL10 = struct.Struct(FlowStatsCodec.TAIL_10)
_MATCH_PREFIX = struct.Struct("!HH")
_MP = {v: struct.Struct(f) for v, f in MP_HEADER.items()}
_PADS = [bytes(n) for n in range(ALIGN)]
# name -> (exact header bytes, masked header bytes, value size)
_OXM = {f.name: (oxm_header(f, False).to_bytes(4, "big"), oxm_header(f, True).to_bytes(4, "big"),
                 f.size) for f in FIELD_LIST}


def encode_oxm_match(match):
    """ofp_match (OXM), padded; the same bytes as oxm.encode_match."""
    parts = [b""]
    for name, (value, mask) in match.items():
        exact, masked, size = _OXM[name]
        if mask is None:
            parts += (exact, value.to_bytes(size, "big"))
        else:
            parts += (masked, value.to_bytes(size, "big"), mask.to_bytes(size, "big"))
    oxms = b"".join(parts)
    length = OXM_PREFIX_LEN + len(oxms)
    return _MATCH_PREFIX.pack(OFPMT_OXM, length) + oxms + _PADS[-length % ALIGN]


class ReplyStream:
    """Reply messages in wire form, produced one at a time as the connection
    writes them (the connection yields to other work between two)."""

    def __init__(self, messages):
        self.messages = messages

    def __iter__(self):
        return iter(self.messages)


class FlowStatsWriter:
    """Encodes one dump's entries in `version` (4: OF1.3, 1: OF1.0)."""

    def __init__(self, version, now):
        self.version, self.now = version, now
        self._programs = {}      # id(instruction list) -> (the list, its bytes)
        self.entry = self._entry13 if version == 4 else self._entry10
        # a table's rules hold normalized matches (FlowTables._add)
        self._encode_match = encode_oxm_match if version == 4 else \
            functools.partial(encode_match10, normalized=True)

    def program(self, instructions):
        memo = self._programs.get(id(instructions))
        if memo is not None and memo[0] is instructions:
            return memo[1]
        # OF1.0 replies carry OF1.3 instructions as OVS does (of10_program)
        data = encode_program(4, instructions) if self.version == 4 else \
            encode_of10_program(instructions)
        self._programs[id(instructions)] = (instructions, data)
        return data

    def _duration(self, rule):
        elapsed = self.now - rule.created
        if elapsed <= 0:
            return 0, 0
        sec = int(elapsed)
        return sec, int(round((elapsed - sec) * 1e9)) % NSEC

    def _entry13(self, rule):
        return next(self._entries13((rule,)))

    def _entries13(self, rules):
        """OF1.3 entries of `rules`, in order.  The per-entry work is written
        out in one loop (no calls but the packs): this runs 100,000 times in
        a dump of 100,000 rules, where a Python call costs as much as a pack."""
        head, head_size = _HEAD13.pack, _HEAD13.size
        programs, now, program, encode_oxm = self._programs, self.now, self.program, encode_oxm_match
        for rule in rules:
            match = encode_oxm(rule.match)
            insts = rule.instructions
            memo = programs.get(id(insts))
            prog = memo[1] if memo is not None and memo[0] is insts else program(insts)
            elapsed = now - rule.created
            if elapsed > 0:
                sec = int(elapsed)
                nsec = int(round((elapsed - sec) * 1e9)) % NSEC
            else:
                sec = nsec = 0
            yield head(head_size + len(match) + len(prog), rule.table_id, sec, nsec,
                       rule.priority, rule.idle_timeout, rule.hard_timeout, rule.flags,
                       rule.cookie, rule.packet_count, rule.byte_count) + match + prog

    def _entry10(self, rule):
        match = self._encode_match(rule.match)
        program = self.program(rule.instructions)
        sec, nsec = self._duration(rule)
        tail = _TAIL10.pack(sec, nsec, rule.priority, rule.idle_timeout, rule.hard_timeout,
                            rule.cookie, rule.packet_count, rule.byte_count)
        length = _HEAD10.size + len(match) + len(tail) + len(program)
        return _HEAD10.pack(length, rule.table_id) + match + tail + program

    def replies(self, rules, xid, max_reply=MAX_REPLY):
        """Wire bytes of the flow-stats reply messages for `rules`, one message
        per step; all but the last carry REPLY_MORE.  No rules: one empty reply."""
        version = self.version
        mp_head = _MP[version]
        mtype = OFPT_MULTIPART_REPLY[version]
        fixed = HEADER.size + mp_head.size
        chunk, size = [], 0
        entries = self._entries13(rules) if version == 4 else map(self.entry, rules)
        for data in entries:
            if chunk and size + len(data) > max_reply:
                yield self._message(mtype, mp_head, fixed, xid, OFPMPF_REPLY_MORE, chunk, size)
                chunk, size = [], 0
            chunk.append(data)
            size += len(data)
        yield self._message(mtype, mp_head, fixed, xid, 0, chunk, size)

    def _message(self, mtype, mp_head, fixed, xid, flags, chunk, size):
        return b"".join([HEADER.pack(self.version, mtype, fixed + size, xid),
                         mp_head.pack(OFPMP_FLOW, flags), *chunk])
