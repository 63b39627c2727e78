"""Which megaflows an added OpenFlow rule can change: incremental revalidation.

Design note.  A flow-mod used to delete every megaflow of its bridge.  Now:
  * a rule that is deleted or modified (or expires) changes the megaflows
    whose translation used it: Switch tags them ("of_rule", rule.seq) and
    deletes that tag's megaflows (the MAC-learning tag mechanism);
  * a rule that is added to table T changes a megaflow only if the
    megaflow's translation looked T up, the rule could beat what that
    lookup found (higher priority, or the lookup missed), and the rule can
    match a packet of the megaflow.  The last test is made on the packet
    fields the lookup saw and the bits its mask fixed: a packet of the
    megaflow agrees with them on those bits (the megaflow's mask contains
    them), so a rule that disagrees on one of them cannot match any packet
    of the megaflow.  Anything else is deleted: wider is never wrong.

This index answers the "added" question without reading every megaflow:
per table, megaflows are indexed by the exact value of a few selective
fields (when the lookup fixed all of the field's bits) or listed as
wildcarded for that field; an added rule with an exact match on one of the
fields reads only the megaflows with its value plus the wildcarded ones,
choosing the field with the fewest.  A rule with none of them reads all
megaflows that looked the table up.

Not thread-safe; owned by Switch and used from the main loop only (as the
flow cache it indexes).
"""
from vswitch.ofproto.ofp.oxm import full

# A few selective fields only: every megaflow sits in one set per field
# (memory per megaflow, up to the flow limit), and a rule matching none of
# them exactly reads all of the table's megaflows.
INDEX_FIELDS = ("ipv4_dst", "ipv4_src", "tcp_dst", "udp_dst", "eth_dst", "in_port")
_FULL = {name: full(name) for name in INDEX_FIELDS}


class _TableIndex:
    __slots__ = ("all", "exact", "wild")

    def __init__(self):
        self.all = set()
        self.exact = {name: {} for name in INDEX_FIELDS}   # field -> value -> fids
        self.wild = {name: set() for name in INDEX_FIELDS}  # field -> fids not fixed on it

    def add(self, fid, packet, mask):
        self.all.add(fid)
        for name, bits in _FULL.items():
            value = packet.get(name)
            if value is not None and mask.get(name) == bits:
                self.exact[name].setdefault(value, set()).add(fid)
            else:
                self.wild[name].add(fid)

    def discard(self, fid, packet, mask):
        self.all.discard(fid)
        for name, bits in _FULL.items():
            value = packet.get(name)
            if value is not None and mask.get(name) == bits:
                fids = self.exact[name].get(value)
                if fids is not None:
                    fids.discard(fid)
                    if not fids:
                        del self.exact[name][value]
            else:
                self.wild[name].discard(fid)

    def candidates(self, match):
        """The smallest superset of the megaflows `match` can hit that the
        index can name without reading them."""
        best = self.all
        for name, (value, mask) in match.items():
            if name in _FULL and mask is None:
                exact = self.exact[name].get(value, ())
                n = len(exact) + len(self.wild[name])
                if n < len(best):
                    best = set(exact) | self.wild[name] if exact else self.wild[name]
        return best


def may_change(rule, packet, mask, winner):
    """True if `rule` (just added to the table) could change the decision of a
    lookup that saw `packet`, fixed `mask` and found `winner`."""
    if winner is not None and winner.priority >= rule.priority:
        return False     # equal priority: the older rule keeps winning
    for name, (value, rmask) in rule.match.items():
        have = packet.get(name)
        if have is None:
            continue     # the field's absence: decided by fields the mask may not hold
        bits = mask.get(name, 0) & (full(name) if rmask is None else rmask)
        if (have ^ value) & bits:
            return False
    return True


class OFMegaflowIndex:
    """One bridge's OpenFlow megaflows, by the table lookups that made them."""

    def __init__(self):
        self.lookups = {}    # fid -> the translation's lookups [(table, packet, mask, winner)]
        self.tables = {}     # table id -> _TableIndex

    def __len__(self):
        return len(self.lookups)

    def add(self, fid, lookups):
        self.discard(fid)
        self.lookups[fid] = lookups
        for table_id, packet, mask, _ in lookups:
            index = self.tables.get(table_id)
            if index is None:
                index = self.tables[table_id] = _TableIndex()
            index.add(fid, packet, mask)

    def discard(self, fid):
        lookups = self.lookups.pop(fid, None)
        for table_id, packet, mask, _ in lookups or ():
            self.tables[table_id].discard(fid, packet, mask)

    def clear(self):
        self.lookups.clear()
        self.tables.clear()

    def uses_table(self, table_id):
        """Does any megaflow depend on a lookup in OpenFlow table `table_id`?"""
        index = self.tables.get(table_id)
        return index is not None and bool(index.all)

    def affected_by_add(self, rule):
        """Megaflows that `rule`, added to its table, may change."""
        index = self.tables.get(rule.table_id)
        if index is None:
            return []
        out = []
        for fid in index.candidates(rule.match):
            for table_id, packet, mask, winner in self.lookups[fid]:
                if table_id == rule.table_id and may_change(rule, packet, mask, winner):
                    out.append(fid)
                    break
        return out
