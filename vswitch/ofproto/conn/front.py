"""The C front end of a bridge's OpenFlow connections (csrc/of_front.h).

Design note.  ovs-ofctl add-flows sends one flow-mod ADD + barrier per
round trip; the Python path frames, decodes, checks and answers each pair,
then inserts the rule: more CPU than OVS spends per rule.  For the shapes it
has been taught, the C front end does the framing, the barrier replies and
the decoding in one call per received buffer, and leaves compact records;
the rules go into the tables in bulk, one Python loop over a batch of
records, not a pass through the connection and OFSwitch per message.

Teaching (`learn`): when the Python path defers an add (ofswitch.py: the
add was fully validated, and applying it after the reply cannot change
anything a packet or a peer sees), its message's shape becomes a pattern if
whatever the Python path checks is then decided by the bytes the pattern
fixes: every match field exact and as wide as its wire size (so any value
is valid; the prerequisite fields' values are fixed in the pattern), an
instruction section no table, group or meter can refuse (no goto, meter or
group), byte for byte.  The table it went into is enabled; C takes further
adds of the pattern into enabled tables only, without CHECK_OVERLAP and
without a buffer, and stops at any other message, which the Python path
handles (errors included) as before.

Ordering and visibility (what the deferred add of ofswitch.py promises,
held over a batch): records are applied in arrival order, after the
Python-path add deferred before them; OFSwitch applies them before anything
reads the tables (`OFSwitch.tables` settles; every message through
OFSwitch.handle, run() and configure() settle) — and those settles also
disable every table (`disable`), so the next add goes through the Python
path's checks (megaflows may depend on the table now, the table may be
empty, the pipeline choice may change) and enables it again if it still
may wait.  Without a reader the records are applied when the batch reaches
SETTLE_BATCH rules or SETTLE_DELAY_S after the first of them, by the
connection (nothing is left for later: the daemon's CPU for the rules is
spent within that delay, and they are in the tables by then).

Collector: each bulk apply ends with gc.freeze() (process-wide: the
young and middle collections would otherwise walk the new rules again
and again while adds stream in), and OFSwitch.run, the periodic run,
calls thaw_front_rules(), so cycles made meanwhile are collected after
the stream, not never.

Threads: the event loop thread only, like OFSwitch.
"""
import gc
import struct
from operator import itemgetter

from vswitch.datapath._datapath import ffi, lib
from vswitch.ofproto.flow_table import compact_match, exact_pairs, never_refused
from vswitch.ofproto.ofp.constants import OFP_NO_BUFFER, OFP_VERSION_13, OFPFC_ADD, OFPFF_CHECK_OVERLAP
from vswitch.ofproto.ofp.oxm import FIELDS, Match, OFPMT_OXM, oxm_header

MAX_RECORDS = 1024                 # records one scan may produce
OUT_SIZE = 65536                   # reply bytes one scan may produce
SETTLE_BATCH = 512                 # rules waiting in records before they are applied at once
SETTLE_DELAY_S = 0.002             # at the latest this long after the first of them
MATCH_OFFSET = 48                  # ofp_flow_mod: where ofp_match starts
OXM_OFFSET = MATCH_OFFSET + 4      # after the match's type and length
OXM_HEADER = struct.Struct("!I")
OXM_HEADER_LEN = OXM_HEADER.size
VALUE_SIZES = (1, 2, 4, 8)         # field sizes the C record carries as integers
REC_SIZE = ffi.sizeof("struct vs_of_front_rec")
MAX_FIELDS = lib.VS_OF_FRONT_MAX_FIELDS
PUMP_IDLE, PUMP_CLOSED = lib.VS_OF_FRONT_PUMP_IDLE, lib.VS_OF_FRONT_PUMP_CLOSED
# struct vs_of_front_rec: cookie, values, priority, idle, hard, flags, table, pattern, pad
REC = struct.Struct(f"=Q{MAX_FIELDS}QHHHHBB6x")
# where the items are in an unpacked record
REC_COOKIE, REC_VALUES = 0, 1
REC_PRIORITY = REC_VALUES + MAX_FIELDS
REC_IDLE, REC_HARD, REC_FLAGS, REC_TABLE, REC_PATTERN = range(REC_PRIORITY + 1, REC_PRIORITY + 6)
assert REC.size == REC_SIZE


class _Pattern:
    """The Python half of one C pattern: how a record becomes a rule."""
    __slots__ = ("norm_names", "values_of", "sig", "key_pos", "program")

    def __init__(self, names, sig, program):
        # names: the fields as the records carry them (wire order, from REC_VALUES)
        self.norm_names = tuple(Match((n, (0, None)) for n in names).normalized())
        self.values_of = _getter([REC_VALUES + names.index(n) for n in self.norm_names])
        self.sig = sig
        self.key_pos = [self.norm_names.index(n) for n, _ in sig]   # the classifier key, from the pairs
        self.program = program                 # the shared instruction list


def _getter(indices):
    """record -> tuple of its items at `indices` (one or more)."""
    get = itemgetter(*indices)
    return get if len(indices) > 1 else lambda rec: (get(rec),)


def pattern_of(raw, fm):
    """(oxm bytes, fixed-byte mask, value offsets, value sizes, names) of a
    flow-mod whose every check is decided by fixed bytes, else None."""
    match = fm.match
    if fm.version != OFP_VERSION_13 or not match or len(match) > MAX_FIELDS or \
            not never_refused(fm.instructions):
        return None
    match_len = int.from_bytes(raw[MATCH_OFFSET + 2:OXM_OFFSET], "big")
    if int.from_bytes(raw[MATCH_OFFSET:MATCH_OFFSET + 2], "big") != OFPMT_OXM:
        return None
    prereqs = {p for name in match for p, _ in FIELDS[name].prereqs}
    oxm_len = match_len - 4
    oxm = bytes(raw[OXM_OFFSET:OXM_OFFSET + oxm_len])
    fixed, offs, sizes, pos = bytearray(oxm_len), [], [], 0
    for name, (_, mask) in match.items():
        field = FIELDS[name]
        if mask is not None or field.size not in VALUE_SIZES or field.bits != field.size * 8 or \
                pos + OXM_HEADER_LEN + field.size > oxm_len or \
                OXM_HEADER.unpack_from(oxm, pos)[0] != oxm_header(field, False):
            return None
        end = pos + OXM_HEADER_LEN + (field.size if name in prereqs else 0)
        fixed[pos:end] = b"\xff" * (end - pos)
        offs.append(pos + OXM_HEADER_LEN)
        sizes.append(field.size)
        pos += OXM_HEADER_LEN + field.size
    if pos != oxm_len:
        return None
    return oxm, bytes(fixed), offs, sizes, tuple(match)


_front_frozen = False                   # FrontEnd.apply froze the collector's objects since the last thaw_front_rules()


def thaw_front_rules():
    """Give the objects FrontEnd.apply froze back to the cycle collector
    (OFSwitch.run: cycles made during an add stream are collected after it)."""
    global _front_frozen
    if _front_frozen:
        _front_frozen = False
        gc.unfreeze()


class FrontEnd:
    """One bridge's C front end, its patterns and the records not yet
    applied (module note)."""

    def __init__(self):
        self._c = ffi.gc(lib.vs_of_front_new(), lib.vs_of_front_free)
        self._patterns = {}          # C pattern id -> _Pattern
        self._known = {}             # (oxm, fixed, section) -> C pattern id
        self._out = bytearray(OUT_SIZE)
        self._out_c = ffi.from_buffer("uint8_t[]", self._out)
        self._recs = ffi.new("struct vs_of_front_rec[]", MAX_RECORDS)
        self._rec_bytes = ffi.buffer(self._recs)
        self._res = ffi.new("struct vs_of_front_result *")
        self._pump_res = ffi.new("struct vs_of_front_pump_result *")
        self.pending = []            # [(now, bytes of records)] in arrival order
        self.n_pending = 0           # rules in them
        self.settle_due = False      # a delayed apply is scheduled (by a connection)
        self.taken = 0               # flow-mods the C side took (counter for tests and benches)

    def active(self):
        return bool(lib.vs_of_front_active(self._c))

    def disable(self):
        lib.vs_of_front_disable_all(self._c)

    def learn(self, raw, fm, tables):
        """A flow-mod the Python path just deferred: its shape becomes a
        pattern if it can, and its table is enabled."""
        if fm.command != OFPFC_ADD or fm.buffer_id != OFP_NO_BUFFER or fm.flags & OFPFF_CHECK_OVERLAP:
            return
        shape = pattern_of(raw, fm)
        if shape is None:
            return
        oxm, fixed, offs, sizes, names = shape
        section_start = MATCH_OFFSET + (4 + len(oxm) + 7) // 8 * 8
        section = bytes(raw[section_start:])
        known = (bytes(a & b for a, b in zip(oxm, fixed)), fixed, section)
        if known not in self._known:
            if self.pending:             # ids may be reused: only with no record in flight
                return
            pid = lib.vs_of_front_add_pattern(self._c, oxm, fixed, len(oxm), len(offs),
                                              ffi.new("uint16_t[]", offs), ffi.new("uint8_t[]", sizes),
                                              section, len(section))
            if pid < 0:
                return
            for k in [k for k, v in self._known.items() if v == pid]:
                del self._known[k]
            norm = compact_match(fm.match.normalized())
            self._patterns[pid] = _Pattern(names, tables.tables[fm.table_id].signature_of(norm),
                                           tables.shared_program(fm.instructions))
            self._known[known] = pid
        lib.vs_of_front_enable(self._c, fm.table_id, 1)

    def scan(self, buf, pos, now):
        """Handle what C takes of buf[pos:] -> (bytes consumed, the replies
        as bytes or None); the records join `pending`."""
        res = self._res
        n = lib.vs_of_front_scan(self._c, ffi.from_buffer(buf) + pos, len(buf) - pos, self._out_c, OUT_SIZE,
                                 self._recs, MAX_RECORDS, res)
        if not n:
            return 0, None
        self._take(res.n_records, now)
        return res.consumed, bytes(self._out[:res.out_len]) if res.out_len else None

    def pump(self, fd, rbuf, window_s, budget_s, now):
        """vs_of_front_pump on socket `fd` reading into `rbuf` (a cffi
        uint8_t[] of the connection's receive buffer) -> (reason, replies
        the socket did not take or None, bytes read for the Python path or
        None, reads, slowest gap in seconds, the errno of a socket error
        that closed it or 0)."""
        res = self._pump_res
        reason = lib.vs_of_front_pump(self._c, fd, rbuf, len(rbuf), self._out_c, OUT_SIZE, self._recs,
                                      MAX_RECORDS, int(window_s * 1e9), int(budget_s * 1e9), res)
        self._take(res.n_records, now)
        unsent = bytes(self._out[res.unsent_off:res.unsent_off + res.unsent_len]) if res.unsent_len else None
        rest = ffi.buffer(rbuf)[res.rest_off:res.rest_off + res.rest_len] if res.rest_len else None
        return reason, unsent, rest, res.n_reads, res.max_gap_ns * 1e-9, res.err

    def _take(self, n_records, now):
        """The first n_records records of the last scan or pump join `pending`."""
        if n_records:
            self.pending.append((now, self._rec_bytes[:n_records * REC_SIZE]))
            self.n_pending += n_records
            self.taken += n_records

    def apply(self, tables):
        """Put the pending records' rules into `tables`, in arrival order."""
        batches, self.pending, self.n_pending = self.pending, [], 0
        patterns, install = self._patterns, tables.install
        # One young-generation collection per batch instead of one per few
        # hundred objects (each rule leaves four): fewer collections move
        # fewer objects up, and the full ones that walk every rule come
        # correspondingly rarer (bench/OF_SCALE_RESULTS.md).
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._install(batches, patterns, install)
        finally:
            if collecting:
                gc.enable()
        # The rules stay: keep the collector from walking them (and the
        # batch's garbage-free rest) again and again while adds stream in;
        # thaw_front_rules() hands everything back at the next periodic run.
        global _front_frozen
        gc.freeze()
        _front_frozen = True

    @staticmethod
    def _install(batches, patterns, install):
        # the record's indices as locals: this loop runs once per rule
        pattern_i, table_i, priority_i, cookie_i = REC_PATTERN, REC_TABLE, REC_PRIORITY, REC_COOKIE
        idle_i, hard_i, flags_i = REC_IDLE, REC_HARD, REC_FLAGS
        for now, data in batches:
            for rec in REC.iter_unpack(data):
                pat = patterns[rec[pattern_i]]
                pairs = exact_pairs(pat.values_of(rec))
                # the key holds the pairs' own ints (a shared pair's, not the
                # record's copy: 32 bytes per field and rule at 1M rules)
                install(rec[table_i], rec[priority_i], Match(zip(pat.norm_names, pairs)), pat.program,
                        rec[cookie_i], rec[idle_i], rec[hard_i], rec[flags_i], now, pat.sig,
                        tuple([pairs[i][0] for i in pat.key_pos]))
