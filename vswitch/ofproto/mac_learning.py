"""MAC learning table: (VLAN, MAC) -> port, with aging and a size limit.

Entries are kept in least-recently-learned order (an OrderedDict, refreshed
entries move to the end), so ageing out is O(1) per entry rather than a
scan of the table on every new MAC.  That order is last_seen order because
`now` comes from a monotonic clock.

A full table evicts fairly, as OVS's mac_learning does: the least recently
seen entry of the port with the most entries, so a port flooding new source
MACs evicts its own and never the few MACs of the other ports.  Evicted keys
are kept for the caller (take_evicted) to invalidate the megaflows that
forward to them.
"""
from collections import OrderedDict
from dataclasses import dataclass

from vswitch.datapath.flowkey import mac_str

DEFAULT_AGING = 300
DEFAULT_SIZE = 8192


@dataclass
class MacEntry:
    port: str
    last_seen: float


class MacTable:
    def __init__(self, aging_time=DEFAULT_AGING, max_entries=DEFAULT_SIZE):
        self.aging_time = aging_time
        self.max_entries = max_entries
        self.entries = OrderedDict()  # (vlan, mac) -> MacEntry, oldest first
        self.by_port = {}  # port -> OrderedDict of its keys, oldest first
        self.evicted = []  # keys evicted for room since take_evicted()

    def configure(self, aging_time=None, max_entries=None):
        """New limits; a smaller size evicts at once (the table never stays
        over its size).  Returns the evicted keys."""
        if aging_time:
            self.aging_time = aging_time
        evicted = []
        if max_entries:
            self.max_entries = max_entries
            while len(self.entries) > self.max_entries:
                evicted.append(self._evict_fairly())
        return evicted

    def _remove(self, key):
        entry = self.entries.pop(key)
        keys = self.by_port[entry.port]
        del keys[key]
        if not keys:
            del self.by_port[entry.port]
        return entry

    def _evict_fairly(self):
        """Evicts the oldest entry of the port with the most; returns its key."""
        port = max(self.by_port, key=lambda p: len(self.by_port[p]))
        key = next(iter(self.by_port[port]))
        self._remove(key)
        return key

    def take_evicted(self):
        """The keys evicted for room since the last call (their megaflows are stale)."""
        evicted, self.evicted = self.evicted, []
        return evicted

    def lookup(self, vlan, mac, now):
        entry = self.entries.get((vlan, mac))
        if entry and now - entry.last_seen <= self.aging_time:
            return entry.port
        return None

    def learn(self, vlan, mac, port, now):
        """Records that (vlan, mac) is behind port.  Returns True when that
        changed where the MAC goes (new or moved), i.e. megaflows forwarding to
        it are now stale."""
        key = (vlan, mac)
        entry = self.entries.get(key)
        if entry and entry.port == port:
            entry.last_seen = now
            self.entries.move_to_end(key)
            self.by_port[port].move_to_end(key)
            return False
        if entry:
            self._remove(key)  # moved: re-inserted at the end below
        elif len(self.entries) >= self.max_entries:
            self.evicted.append(self._evict_fairly())
        self.entries[key] = MacEntry(port, now)
        self.by_port.setdefault(port, OrderedDict())[key] = None
        return True

    def expire(self, now):
        """Drops aged-out entries; returns their (vlan, mac) keys."""
        gone = []
        while self.entries:
            key, entry = next(iter(self.entries.items()))
            if now - entry.last_seen <= self.aging_time:
                break  # everything after it was seen later still
            self._remove(key)
            gone.append(key)
        return gone

    def flush(self, port=None):
        """Forgets everything, or only what was learned on one port."""
        gone = [k for k, e in self.entries.items() if port is None or e.port == port]
        for k in gone:
            self._remove(k)
        return gone

    def dump(self, now):
        return [{"port": e.port, "vlan": vlan, "mac": mac_str(mac), "age": int(now - e.last_seen)}
                for (vlan, mac), e in sorted(self.entries.items(), key=lambda kv: (kv[1].port, kv[0]))]
