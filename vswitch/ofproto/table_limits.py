"""Per-table names and flow limits: OVS's Flow_Table rows, as a Bridge's
flow_tables map gives them to its OpenFlow tables.

Design note.  The semantics are OVS's (ofproto/ofproto.c, vswitch.xml
"Flow_Table"); the code is ours:
  - An add that would put a table's flow count above flow_limit is an add
    of a new rule: replacing an identical rule (same match and priority)
    and modifies are not adds and always pass.  With overflow_policy
    refuse (the default) it fails with OFPFMFC_TABLE_FULL (OF1.0:
    OFPFMFC_ALL_TABLES_FULL, the same code) and changes nothing; with
    evict it first removes the evictable rule that expires soonest, and
    fails with TABLE_FULL when none is evictable.
  - Evictable: a rule with an idle or a hard timeout (OVS never evicts a
    permanent rule).  Its expiry is the earlier of created + hard_timeout
    and last_used + idle_timeout; ties go to the older rule.  OVS's
    eviction `groups` (fairness between groups of rules) and OF1.4
    importance are not implemented (the config refuses `groups`).
  - An evicted rule's flow-removed has reason OFPRR_EVICTION (5), as OVS
    sends it.  OVS's default async config for OF1.0 and OF1.3 connections
    does not include that reason (only OF1.4+ has it by default), so those
    controllers hear of it only after a set-async that asks for bit 5; the
    connection layer's async masks (conn/ofconn.py) do that filtering.
  - Lowering flow_limit below a table's count: with evict, rules are
    evicted down to the limit at once (as OVS's ofproto_configure_table);
    with refuse, existing rules stay and only new adds are refused.
  - Names: a configured name replaces "tableN" in table stats (OF1.0) and
    table features; max_entries states the limit when it is below
    DEFAULT_MAX_ENTRIES (OVS's query_tables).
Picking a victim: an evicting table gets a heap of (expiry, seq, rule)
the first time it is full, built from its rules; every rule added to it
after that is pushed (FlowTables.install calls `added`).  Entries go
stale two ways and are settled when they reach the top, as FlowTables'
deadline heap: a rule gone from the table (removed) is dropped, an idle
expiry that traffic pushed back is re-pushed at its real time (expiries
only ever move later).  So an evicting add costs O(log n), not a pass over
the table (bench: 62 ms per add at 50k rules before).  The heap is rebuilt
when stale entries outnumber the rules, and dropped when the settings change.  The C
front end never takes adds into a limited table (ofswitch.py: such an add is never deferred, so the front
end is never taught its table), so every add into one comes through here.

Threads: the event loop thread only, like FlowTables and OFSwitch.
"""
import heapq
from dataclasses import dataclass

from vswitch.ofproto.ofp import OFPError
from vswitch.ofproto.ofp.constants import OFPRR_EVICTION

DEFAULT_MAX_ENTRIES = 1_000_000   # max_entries of a table without a smaller limit (OVS states the same)
POLICY_EVICT = "evict"


@dataclass(frozen=True)
class TableSettings:
    """One table's Flow_Table row: name (None: "tableN"), flow_limit (None:
    no limit), evict (overflow_policy evict)."""
    name: str = None
    flow_limit: int = None
    evict: bool = False


def settings_from_config(bridge_row, flow_table_rows):
    """{table id: TableSettings} of a Bridge row's flow_tables map."""
    out = {}
    for key, uuid in (bridge_row.get("flow_tables") or {}).items():
        row = flow_table_rows.get(uuid)
        if row is not None:
            out[int(key)] = TableSettings(row.get("name"), row.get("flow_limit"),
                                          row.get("overflow_policy") == POLICY_EVICT)
    return out


def expires_at(rule):
    """When `rule` expires without more traffic, or None (no timeout: not evictable)."""
    times = [t for t in ((rule.created + rule.hard_timeout) if rule.hard_timeout else None,
                         (rule.last_used + rule.idle_timeout) if rule.idle_timeout else None)
             if t is not None]
    return min(times) if times else None


def eviction_heap(classifier):
    """A heap of (expiry, seq, rule) of the table's evictable rules."""
    heap = [(at, rule.seq, rule) for rule in classifier if (at := expires_at(rule)) is not None]
    heapq.heapify(heap)
    return heap


def eviction_order(classifier):
    """The table's evictable rules, the soonest to expire first."""
    return [rule for _, _, rule in sorted(eviction_heap(classifier), key=lambda entry: entry[:2])]


def _settled_top(heap):
    """The heap's soonest-expiring live rule (stale entries dropped or
    moved first), or None."""
    while heap:
        at, seq, rule = heap[0]
        if rule.removed:
            heapq.heappop(heap)
            continue
        real = expires_at(rule)
        if real > at:
            heapq.heapreplace(heap, (real, seq, rule))
            continue
        return rule
    return None


class TableLimits:
    """The bridge's per-table settings (FlowTables.limits)."""

    def __init__(self):
        self.settings = {}            # table id -> TableSettings, configured tables only
        self._heaps = {}              # table id -> eviction heap, once the evicting table was full

    def configure(self, settings):
        """New settings (every configuration change brings them): the
        eviction heaps are kept while the settings stay the same."""
        if settings != self.settings:
            self.settings = dict(settings)
            self._heaps = {}

    def added(self, rule):
        """A rule went into its table: an eviction heap there takes it."""
        heap = self._heaps.get(rule.table_id)
        if heap is not None:
            at = expires_at(rule)
            if at is not None:
                heapq.heappush(heap, (at, rule.seq, rule))

    def limited(self, table_id):
        entry = self.settings.get(table_id)
        return entry is not None and entry.flow_limit is not None

    def name(self, table_id):
        entry = self.settings.get(table_id)
        return entry.name if entry is not None and entry.name else f"table{table_id}"

    def max_entries(self, table_id):
        entry = self.settings.get(table_id)
        if entry is None or entry.flow_limit is None:
            return DEFAULT_MAX_ENTRIES
        return min(DEFAULT_MAX_ENTRIES, entry.flow_limit)

    def make_room(self, table_id, classifier):
        """Before a new rule goes into a limited table: None if it fits, the
        rule to evict if the table is full and evicts, else TABLE_FULL."""
        entry = self.settings[table_id]
        if classifier.count < entry.flow_limit:
            return None
        victim = self._victim(table_id, classifier) if entry.evict else None
        if victim is None:
            raise OFPError("FLOW_MOD_FAILED", "TABLE_FULL",
                           detail=f"table {table_id} holds its flow_limit of {entry.flow_limit} rules")
        return victim

    def _victim(self, table_id, classifier):
        heap = self._heaps.get(table_id)
        if heap is None or len(heap) > 2 * classifier.count:
            heap = self._heaps[table_id] = eviction_heap(classifier)
        return _settled_top(heap)

    def over_limit(self, tables):
        """[(rule, OFPRR_EVICTION)] that evicting tables must lose to get
        down to their limits (after a limit was lowered); not yet removed."""
        victims = []
        for table_id, entry in sorted(self.settings.items()):
            if entry.flow_limit is None or not entry.evict or table_id >= len(tables):
                continue
            excess = tables[table_id].count - entry.flow_limit
            if excess > 0:
                victims += [(rule, OFPRR_EVICTION) for rule in eviction_order(tables[table_id])[:excess]]
        return victims
