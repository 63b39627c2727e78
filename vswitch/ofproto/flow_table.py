"""OpenFlow flow, group and meter tables as a pure model; time is a parameter.

The connection layer hands decoded FlowMod/GroupMod/MeterMod messages to
FlowTables / GroupTable / MeterTable and turns the OFPError they raise into
the spec's error reply.  xlate calls `lookup()`, which returns the winning rule
and the megaflow mask the decision depends on (classifier.py: subtables per
mask, staged lookup, prefix tracking), so a megaflow installed from it never
hides a rule of higher priority.  No flow-mod reads every rule unless it has
to return them all: strict operations probe one subtable, loose ones read
only the subtables whose masks can be selected, expiry pops a deadline heap.  Counters
are added by the caller (from datapath stats) with Rule.account().

Semantics follow OF1.3 section 6.4 (with the OF1.0 differences noted where
they apply): add replaces an identical rule (same match and priority),
check-overlap refuses a same-priority rule that can match a common packet,
modify/delete are loose unless strict, filtered by cookie/mask and out_port/
out_group; an OF1.0 modify that matches nothing adds the rule.
"""
import heapq
import itertools
from dataclasses import dataclass, field

from vswitch.ofproto.classifier import Classifier, RuleCount, best_first
from vswitch.ofproto.table_limits import TableLimits

from vswitch.ofproto.ofp import (ApplyActions, Enqueue, FlowMod, GotoTable, Group, GroupMod,
                                 Match, Meter, MeterMod, OFPError, Output, WriteActions)
from vswitch.ofproto.ofp.flow_mod_fast import is_cached_program
from vswitch.ofproto.ofp.constants import (
    OFPFC_ADD, OFPFC_DELETE, OFPFC_DELETE_STRICT, OFPFC_MODIFY, OFPFC_MODIFY_STRICT,
    OFPFF_CHECK_OVERLAP, OFPFF_RESET_COUNTS, OFPFF_SEND_FLOW_REM, OFPG_ALL, OFPG_ANY, OFPG_MAX,
    OFPGC_ADD, OFPGC_DELETE, OFPGC_MODIFY, OFPGT_ALL, OFPGT_FF, OFPGT_INDIRECT, OFPGT_SELECT,
    OFPM_ALL, OFPM_MAX, OFPMBT_DROP, OFPMBT_DSCP_REMARK, OFPMC_ADD, OFPMC_DELETE, OFPMC_MODIFY, OFPMF_BURST, OFPMF_KBPS,
    OFPMF_PKTPS, OFPMF_STATS, OFPP_ANY, OFPRR_DELETE, OFPRR_EVICTION, OFPRR_GROUP_DELETE, OFPRR_HARD_TIMEOUT,
    OFPRR_IDLE_TIMEOUT, OFPTT_ALL)

DEFAULT_N_TABLES = 254
# Memory at a million rules: equal instruction lists are shared (never
# changed in place: a modify installs a new list), up to this many distinct
# ones; small exact match values share their (value, None) pairs.
MAX_SHARED_PROGRAMS = 4096
SMALL_VALUE = 1 << 16
_EXACT_PAIRS = {}          # value below SMALL_VALUE -> its one shared (value, None) pair


@dataclass(eq=False, slots=True)
class Rule:
    table_id: int
    priority: int
    match: Match
    instructions: list
    cookie: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    flags: int = 0
    created: float = 0.0
    last_used: float = 0.0
    packet_count: int = 0
    byte_count: int = 0
    seq: int = 0              # arrival order: ties between equal priorities go to the older
    removed: bool = False     # out of its table (stale deadline-heap entries check this)

    @property
    def priority_key(self):
        return -self.priority, self.seq

    @property
    def send_flow_removed(self):
        return bool(self.flags & OFPFF_SEND_FLOW_REM)

    def account(self, packets, nbytes, now):
        """Datapath stats attributed to this rule (used by the revalidator)."""
        self.packet_count += packets
        self.byte_count += nbytes
        if packets:
            self.last_used = now

    def duration(self, now):
        """(sec, nsec) since creation, as flow stats and flow-removed carry it."""
        elapsed = max(0.0, now - self.created)
        return int(elapsed), int(round((elapsed - int(elapsed)) * 1e9)) % 1_000_000_000

    def actions(self):
        """All actions in apply/write-actions instructions."""
        return [a for inst in self.instructions if isinstance(inst, (ApplyActions, WriteActions))
                for a in inst.actions]

    def outputs_to(self, port):
        return port == OFPP_ANY or any(isinstance(a, (Output, Enqueue)) and a.port == port
                                       for a in self.actions())

    def uses_group(self, group_id):
        return group_id == OFPG_ANY or any(isinstance(a, Group) and a.group_id == group_id
                                           for a in self.actions())

    def meter_id(self):
        return next((i.meter_id for i in self.instructions if isinstance(i, Meter)), None)


def compact_match(match):
    """The same Match with small exact values' pairs shared process-wide."""
    for name, pair in match.items():
        if pair[1] is None and pair[0] < SMALL_VALUE:
            match[name] = _EXACT_PAIRS.setdefault(pair[0], pair)
    return match


def exact_pairs(values):
    """[(value, None), ...] of exact match values, compacted as
    compact_match would: for bulk installs that build matches from values
    (one dict probe per value, no pair built for a small one seen before)."""
    get = _EXACT_PAIRS.get
    return [get(v) or _new_exact_pair(v) for v in values]


def _new_exact_pair(value):
    pair = (value, None)
    return _EXACT_PAIRS.setdefault(value, pair) if value < SMALL_VALUE else pair


def never_refused(instructions):
    """True if _check_instructions can refuse this list in no table and
    with any groups and meters: no goto-table, meter or group action."""
    return not any(isinstance(i, (GotoTable, Meter)) or
                   any(isinstance(a, Group) for a in getattr(i, "actions", ()))
                   for i in instructions)


def matches_overlap(a, b):
    """True if some packet can match both (fields present in both agree on
    the bits both masks select)."""
    for name in a.keys() & b.keys():
        m = a.effective_mask(name) & b.effective_mask(name)
        if a[name][0] & m != b[name][0] & m:
            return False
    return True


@dataclass
class TableCounters:
    lookup_count: int = 0
    matched_count: int = 0


class FlowTables:
    """Tables 0..n_tables-1, each a classifier.Classifier; rules with a
    timeout also sit in a heap keyed by deadline (idle deadlines move with
    traffic and are re-read when they come up, not on every packet)."""

    def __init__(self, n_tables=DEFAULT_N_TABLES, groups=None, meters=None):
        self.n_tables = n_tables
        self.rule_count = RuleCount()  # rules in all tables (OFSwitch.mode asks)
        self.tables = [Classifier(self.rule_count) for _ in range(n_tables)]
        self.counters = [TableCounters() for _ in range(n_tables)]
        self.groups = groups
        self.meters = meters
        self._seq = itertools.count()
        self._deadlines = []      # heap of (deadline, seq, rule)
        self._programs = {}       # instruction list key -> the shared list
        # (a flow-mod's list, its shared list, whether no check can refuse it): see shared_program
        self._last_program = (None, None, False)
        self.on_change = None     # callable(rule, now_added: bool) for revalidation, or None
        self.limits = TableLimits()   # per-table names and flow limits (table_limits.py)

    # --- flow-mod ---------------------------------------------------------

    def flow_mod(self, fm: FlowMod, now):
        """Apply a flow-mod.  Returns the rules it removed (deletes: reason
        OFPRR_DELETE; an add into a full evicting table: OFPRR_EVICTION) so
        the caller can send flow-removed for those that ask."""
        handler = _FLOW_MOD_HANDLERS.get(fm.command)
        if handler is None:
            raise OFPError("FLOW_MOD_FAILED", "BAD_COMMAND", detail=f"command {fm.command}")
        return handler(self, fm, now)

    def _check_table(self, table_id, allow_all=False):
        if table_id == OFPTT_ALL and allow_all:
            return
        if table_id >= self.n_tables:
            raise OFPError("FLOW_MOD_FAILED", "BAD_TABLE_ID", detail=f"table {table_id}")

    def _check_instructions(self, table_id, instructions):
        for inst in instructions:
            if isinstance(inst, GotoTable) and not table_id < inst.table_id < self.n_tables:
                raise OFPError("BAD_INSTRUCTION", "BAD_TABLE_ID", detail=f"goto_table {inst.table_id}")
            if isinstance(inst, Meter) and self.meters is not None and inst.meter_id not in self.meters.meters:
                raise OFPError("METER_MOD_FAILED", "UNKNOWN_METER", detail=f"meter {inst.meter_id}")
            for action in getattr(inst, "actions", ()):
                if isinstance(action, Group) and self.groups is not None \
                        and action.group_id not in self.groups.groups:
                    raise OFPError("BAD_ACTION", "BAD_OUT_GROUP", detail=f"group {action.group_id}")

    def check_add(self, fm):
        """Raise what an add of `fm` would raise before the overlap check
        (the table, the instructions' references), changing nothing."""
        self._check_table(fm.table_id)
        last = self._last_program
        if fm.instructions is not last[0] or not last[2]:
            self._check_instructions(fm.table_id, fm.instructions)

    def _add(self, fm, now):
        self.check_add(fm)
        match = fm.match.normalized()
        table = self.tables[fm.table_id]
        if fm.flags & OFPFF_CHECK_OVERLAP and any(
                r.match != match and matches_overlap(r.match, match)
                for r in table.with_priority(fm.priority)):
            raise OFPError("FLOW_MOD_FAILED", "OVERLAP")
        match = compact_match(match)
        sig = table.signature_of(match)
        key = Classifier.signature_key(sig, match)
        evicted = []
        if self.limits.limited(fm.table_id) and table.find_exact(match, fm.priority, sig, key) is None:
            victim = self.limits.make_room(fm.table_id, table)     # TABLE_FULL: nothing changed
            if victim is not None:
                self._unlink(victim)
                evicted.append((victim, OFPRR_EVICTION))
        self.install(fm.table_id, fm.priority, match, self.shared_program(fm.instructions), fm.cookie,
                     fm.idle_timeout, fm.hard_timeout, fm.flags, now, sig, key)
        return evicted

    def install(self, table_id, priority, match, instructions, cookie, idle_timeout, hard_timeout, flags,
                now, sig, key):
        """Put in a rule an add already checked: `match` normalized and
        compacted, `instructions` shared (shared_program), `sig` and `key` its
        classifier signature and key.  It replaces an identical rule."""
        table = self.tables[table_id]
        rule = Rule(table_id, priority, match, instructions, cookie,
                    idle_timeout, hard_timeout, flags, now, now, seq=next(self._seq))
        old = table.find_exact(match, priority, sig, key)
        if old is not None:
            self._unlink(old)
            if not flags & OFPFF_RESET_COUNTS:
                rule.packet_count, rule.byte_count = old.packet_count, old.byte_count
        table.insert(rule, sig, key)
        if self.limits.settings:
            self.limits.added(rule)
        if rule.hard_timeout:
            heapq.heappush(self._deadlines, (now + rule.hard_timeout, rule.seq, rule))
        if rule.idle_timeout:
            heapq.heappush(self._deadlines, (now + rule.idle_timeout, rule.seq, rule))
        if self.on_change is not None:
            self.on_change(rule, True)
        return rule

    def shared_program(self, instructions):
        """One list per distinct instruction list (bounded; see MAX_SHARED_PROGRAMS).
        The lean decoder returns the same list object for a repeated
        instruction section: the last such list is recognised by identity,
        without building and hashing its key (only the decoder's lists: a
        caller's own list may be mutated between two flow-mods)."""
        last, last_shared, _ = self._last_program
        if instructions is last:
            return last_shared
        try:
            key = tuple((type(i), tuple(i.actions) if hasattr(i, "actions") else i) for i in instructions)
            shared = self._programs.get(key)
        except TypeError:          # an unhashable instruction: not shared
            return list(instructions)
        if shared is None:
            shared = list(instructions)
            if len(self._programs) < MAX_SHARED_PROGRAMS:
                self._programs[key] = shared
        if is_cached_program(instructions):
            self._last_program = (instructions, shared, never_refused(instructions))
        return shared

    def _selected(self, fm, strict):
        """Rules a modify/delete selects, best first per table."""
        self._check_table(fm.table_id, allow_all=True)
        match = fm.match.normalized()
        tables = range(self.n_tables) if fm.table_id == OFPTT_ALL else [fm.table_id]
        out = []
        for t in tables:
            table = self.tables[t]
            if not table.count:
                continue
            if strict:
                rule = table.find_exact(match, fm.priority)
                found = [rule] if rule is not None else []
            else:
                found = best_first(table.loose(match))
            if fm.cookie_mask:
                found = [r for r in found if r.cookie & fm.cookie_mask == fm.cookie & fm.cookie_mask]
            out += found
        return out

    def _modify(self, fm, now):
        strict = fm.command == OFPFC_MODIFY_STRICT
        rules = self._selected(fm, strict)
        if not rules and fm.version == 1:   # OF1.0: a modify that matches nothing adds
            return self._add(fm, now)
        for rule in rules:
            self._check_instructions(rule.table_id, fm.instructions)
        for rule in rules:
            rule.instructions = list(fm.instructions)
            if fm.cookie_mask == 0:
                rule.cookie = fm.cookie
            if fm.flags & OFPFF_RESET_COUNTS:
                rule.packet_count = rule.byte_count = 0
            if self.on_change is not None:
                self.on_change(rule, False)
        return []

    def _delete(self, fm, now):
        rules = [r for r in self._selected(fm, fm.command == OFPFC_DELETE_STRICT)
                 if r.outputs_to(fm.out_port) and r.uses_group(fm.out_group)]
        self.remove(rules)
        return [(r, OFPRR_DELETE) for r in rules]

    def _unlink(self, rule):
        self.tables[rule.table_id].remove(rule)
        rule.removed = True
        if self.on_change is not None:
            self.on_change(rule, False)

    def remove(self, rules):
        for rule in rules:
            self._unlink(rule)

    def evict_over_limit(self):
        """Evict what evicting tables hold above their (lowered) limits ->
        [(rule, OFPRR_EVICTION)] for flow-removed."""
        victims = self.limits.over_limit(self.tables)
        self.remove(rule for rule, _ in victims)
        return victims

    # --- lookup, expiry, dumps ------------------------------------------------

    def lookup(self, table_id, packet):
        """Highest-priority rule matching `packet` ({oxm field: int}) and the
        megaflow mask {field: mask bits} the decision depended on."""
        counters = self.counters[table_id]
        counters.lookup_count += 1
        winner, mask = self.tables[table_id].lookup(packet)
        if winner is not None:
            counters.matched_count += 1
        return winner, mask

    def _due(self, rule, now):
        """Why `rule` has expired at `now`, or None (the old per-rule test)."""
        if rule.hard_timeout and now - rule.created >= rule.hard_timeout:
            return OFPRR_HARD_TIMEOUT
        if rule.idle_timeout and now - rule.last_used >= rule.idle_timeout:
            return OFPRR_IDLE_TIMEOUT
        return None

    def _settle(self):
        """Drop heap entries of removed rules and move idle deadlines that
        traffic pushed back, until the top is a real deadline."""
        heap = self._deadlines
        while heap:
            deadline, seq, rule = heap[0]
            if rule.removed:
                heapq.heappop(heap)
                continue
            real = min(t for t in ((rule.created + rule.hard_timeout) if rule.hard_timeout else None,
                                   (rule.last_used + rule.idle_timeout) if rule.idle_timeout else None)
                       if t is not None)
            if real > deadline:
                heapq.heapreplace(heap, (real, seq, rule))
                continue
            return deadline
        return None

    def expire(self, now):
        """Remove timed-out rules -> [(rule, OFPRR_IDLE_TIMEOUT | OFPRR_HARD_TIMEOUT)]."""
        expired, not_yet = [], []
        while True:
            deadline = self._settle()
            if deadline is None or deadline > now:
                break
            entry = heapq.heappop(self._deadlines)
            reason = self._due(entry[2], now)
            if reason is None:     # created + timeout rounded below now: next time
                not_yet.append(entry)
                continue
            expired.append((entry[2], reason))
            self._unlink(entry[2])
        for entry in not_yet:
            heapq.heappush(self._deadlines, entry)
        expired.sort(key=lambda e: (e[0].table_id, e[0].priority_key))
        return expired

    def next_expiry(self):
        """Earliest time a rule can expire, or None."""
        return self._settle()

    def select(self, table_id=OFPTT_ALL, match=None, out_port=OFPP_ANY, out_group=OFPG_ANY,
               cookie=0, cookie_mask=0):
        """Rules a flow/aggregate stats request selects (loose match)."""
        fm = FlowMod(table_id=table_id, match=match or Match(), cookie=cookie, cookie_mask=cookie_mask)
        rules = self._selected(fm, strict=False)
        if out_port == OFPP_ANY and out_group == OFPG_ANY:
            return rules
        return [r for r in rules if r.outputs_to(out_port) and r.uses_group(out_group)]

    def rules(self):
        return [r for table in self.tables if table.count for r in table]

    def remove_using_group(self, group_id):
        rules = [r for r in self.rules() if r.uses_group(group_id)]
        self.remove(rules)
        return [(r, OFPRR_GROUP_DELETE) for r in rules]

    def remove_using_meter(self, meter_id):
        rules = [r for r in self.rules() if r.meter_id() == meter_id]
        self.remove(rules)
        return [(r, OFPRR_DELETE) for r in rules]


# flow-mod command -> FlowTables method (one table, not a dict built per flow-mod)
_FLOW_MOD_HANDLERS = {OFPFC_ADD: FlowTables._add, OFPFC_MODIFY: FlowTables._modify,
                      OFPFC_MODIFY_STRICT: FlowTables._modify, OFPFC_DELETE: FlowTables._delete,
                      OFPFC_DELETE_STRICT: FlowTables._delete}


def _delete_entries(entries, entry_id, all_id, remove_flows):
    """Group/meter delete: one id or all; the flows using them go too (spec)."""
    removed = []
    for eid in list(entries) if entry_id == all_id else [entry_id]:
        if entries.pop(eid, None) is not None and remove_flows is not None:
            removed += remove_flows(eid)
    return removed


# --- groups ------------------------------------------------------------------

@dataclass(eq=False)
class GroupEntry:
    group_id: int
    type: int
    buckets: list
    created: float = 0.0
    packet_count: int = 0
    byte_count: int = 0
    bucket_counts: list = field(default_factory=list)   # [[packets, bytes]] per bucket


class GroupTable:
    def __init__(self):
        self.groups = {}

    def group_mod(self, gm: GroupMod, now, flows=None):
        """Apply a group-mod; a delete also removes the flows that use the
        group (returned with OFPRR_GROUP_DELETE for flow-removed)."""
        if gm.command == OFPGC_DELETE:
            return _delete_entries(self.groups, gm.group_id, OFPG_ALL,
                                   flows.remove_using_group if flows else None)
        if gm.group_id > OFPG_MAX:
            raise OFPError("GROUP_MOD_FAILED", "INVALID_GROUP", detail=f"group {gm.group_id}")
        self._check(gm)
        if gm.command == OFPGC_ADD:
            if gm.group_id in self.groups:
                raise OFPError("GROUP_MOD_FAILED", "GROUP_EXISTS")
        elif gm.command == OFPGC_MODIFY:
            if gm.group_id not in self.groups:
                raise OFPError("GROUP_MOD_FAILED", "UNKNOWN_GROUP")
        else:
            raise OFPError("GROUP_MOD_FAILED", "BAD_COMMAND")
        old = self.groups.get(gm.group_id)
        entry = GroupEntry(gm.group_id, gm.type, list(gm.buckets), old.created if old else now,
                           bucket_counts=[[0, 0] for _ in gm.buckets])
        if old:
            entry.packet_count, entry.byte_count = old.packet_count, old.byte_count
        self.groups[gm.group_id] = entry
        return []

    def _check(self, gm):
        if gm.type not in (OFPGT_ALL, OFPGT_SELECT, OFPGT_INDIRECT, OFPGT_FF):
            raise OFPError("GROUP_MOD_FAILED", "BAD_TYPE")
        if gm.type == OFPGT_INDIRECT and len(gm.buckets) != 1:
            raise OFPError("GROUP_MOD_FAILED", "INVALID_GROUP", detail="indirect needs one bucket")
        for b in gm.buckets:
            if gm.type == OFPGT_FF and b.watch_port == OFPP_ANY and b.watch_group == OFPG_ANY:
                raise OFPError("GROUP_MOD_FAILED", "BAD_WATCH")
            if gm.type != OFPGT_SELECT and b.weight:
                raise OFPError("GROUP_MOD_FAILED", "WEIGHT_UNSUPPORTED")
            for a in b.actions:
                if isinstance(a, Group) and (a.group_id == gm.group_id or a.group_id not in self.groups):
                    raise OFPError("GROUP_MOD_FAILED", "LOOP" if a.group_id == gm.group_id else "UNKNOWN_GROUP")

    def buckets_to_run(self, group_id, flow_hash, port_live):
        """The buckets a packet goes through: all (ALL), one weighted by
        flow_hash (SELECT), the only one (INDIRECT), the first live one (FF).
        port_live(port) -> bool says which ports are up."""
        g = self.groups[group_id]
        if g.type in (OFPGT_ALL, OFPGT_INDIRECT):
            return list(g.buckets)
        if g.type == OFPGT_FF:
            return next(([b] for b in g.buckets if self._bucket_live(b, port_live)), [])
        live = [b for b in g.buckets if b.weight and self._bucket_live(b, port_live)]
        total = sum(b.weight for b in live)
        if not total:
            return []
        point = flow_hash % total
        for b in live:
            if point < b.weight:
                return [b]
            point -= b.weight
        return []

    def _bucket_live(self, bucket, port_live, depth=0):
        if bucket.watch_port != OFPP_ANY and not port_live(bucket.watch_port):
            return False
        if bucket.watch_group != OFPG_ANY:
            g = self.groups.get(bucket.watch_group)
            return g is not None and depth < 8 and any(self._bucket_live(b, port_live, depth + 1)
                                                       for b in g.buckets)
        return True


# --- meters ------------------------------------------------------------------

@dataclass(eq=False)
class MeterEntry:
    meter_id: int
    flags: int
    bands: list
    created: float = 0.0
    packet_in_count: int = 0
    byte_in_count: int = 0
    band_counts: list = field(default_factory=list)     # [[packets, bytes]] per band
    tokens: list = field(default_factory=list)          # per band, in bits or packets
    last: float = 0.0

    def capacity(self, band):
        burst = band.burst_size if self.flags & OFPMF_BURST and band.burst_size else band.rate
        return burst * (1000 if self.flags & OFPMF_KBPS else 1)


class MeterTable:
    """Meters with drop bands; rates in kbps or packets/s (OFPMF_KBPS/PKTPS),
    token buckets of burst_size (OFPMF_BURST) or else one second of rate."""

    def __init__(self):
        self.meters = {}

    def meter_mod(self, mm: MeterMod, now, flows=None):
        if mm.command == OFPMC_DELETE:
            return _delete_entries(self.meters, mm.meter_id, OFPM_ALL,
                                   flows.remove_using_meter if flows else None)
        if not 0 < mm.meter_id <= OFPM_MAX:
            raise OFPError("METER_MOD_FAILED", "INVALID_METER", detail=f"meter {mm.meter_id}")
        if bool(mm.flags & OFPMF_KBPS) == bool(mm.flags & OFPMF_PKTPS) or \
                mm.flags & ~(OFPMF_KBPS | OFPMF_PKTPS | OFPMF_BURST | OFPMF_STATS):
            raise OFPError("METER_MOD_FAILED", "BAD_FLAGS")
        if not mm.bands:
            raise OFPError("METER_MOD_FAILED", "BAD_BAND", detail="no bands")
        for band in mm.bands:
            if band.type not in (OFPMBT_DROP, OFPMBT_DSCP_REMARK):
                raise OFPError("METER_MOD_FAILED", "BAD_BAND", detail="drop and dscp_remark bands only")
            if not band.rate:
                raise OFPError("METER_MOD_FAILED", "BAD_RATE")
        if mm.command == OFPMC_ADD and mm.meter_id in self.meters:
            raise OFPError("METER_MOD_FAILED", "METER_EXISTS")
        if mm.command == OFPMC_MODIFY and mm.meter_id not in self.meters:
            raise OFPError("METER_MOD_FAILED", "UNKNOWN_METER")
        if mm.command not in (OFPMC_ADD, OFPMC_MODIFY):
            raise OFPError("METER_MOD_FAILED", "BAD_COMMAND")
        entry = MeterEntry(mm.meter_id, mm.flags, sorted(mm.bands, key=lambda b: -b.rate), now,
                           last=now)
        entry.band_counts = [[0, 0] for _ in entry.bands]
        entry.tokens = [entry.capacity(b) for b in entry.bands]
        self.meters[mm.meter_id] = entry
        return []

    def admit(self, meter_id, packet_len, now):
        """Run one packet through the meter: True to pass, False if a drop band
        applies (the highest-rate band whose bucket is empty)."""
        m = self.meters[meter_id]
        elapsed, m.last = max(0.0, now - m.last), now
        kbps = m.flags & OFPMF_KBPS
        cost = packet_len * 8 if kbps else 1
        m.packet_in_count += 1
        m.byte_in_count += packet_len
        verdict, hit = True, False
        for i, band in enumerate(m.bands):
            rate = band.rate * (1000 if kbps else 1)
            m.tokens[i] = min(m.capacity(band), m.tokens[i] + elapsed * rate)
            if m.tokens[i] >= cost:
                m.tokens[i] -= cost
            elif not hit:   # the highest-rate band exceeded applies
                hit, verdict = True, band.type != OFPMBT_DROP  # (a DSCP remark is the datapath's)
                m.band_counts[i][0] += 1
                m.band_counts[i][1] += packet_len
        return verdict
