"""MAC learning table: (VLAN, MAC) -> port, with aging and a size limit.

Entries are kept in least-recently-learned order (an OrderedDict, refreshed
entries move to the end), so evicting the oldest when full and ageing out
are O(1) per entry rather than a scan of the table on every new MAC.  That
order is last_seen order because `now` comes from a monotonic clock.
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

    def configure(self, aging_time=None, max_entries=None):
        """New limits; a smaller size evicts the oldest entries at once (the
        table never stays over its size).  Returns the evicted keys."""
        if aging_time:
            self.aging_time = aging_time
        evicted = []
        if max_entries:
            self.max_entries = max_entries
            while len(self.entries) > self.max_entries:
                evicted.append(self.entries.popitem(last=False)[0])
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
            return False
        if entry:
            del self.entries[key]  # moved: re-inserted at the end below
        elif len(self.entries) >= self.max_entries:
            self.entries.popitem(last=False)  # full: evict the oldest, as OVS does
        self.entries[key] = MacEntry(port, now)
        return True

    def expire(self, now):
        """Drops aged-out entries; returns their (vlan, mac) keys."""
        gone = []
        while self.entries:
            key, entry = next(iter(self.entries.items()))
            if now - entry.last_seen <= self.aging_time:
                break  # everything after it was seen later still
            del self.entries[key]
            gone.append(key)
        return gone

    def flush(self, port=None):
        """Forgets everything, or only what was learned on one port."""
        gone = [k for k, e in self.entries.items() if port is None or e.port == port]
        for k in gone:
            del self.entries[k]
        return gone

    def dump(self, now):
        return [{"port": e.port, "vlan": vlan, "mac": mac_str(mac), "age": int(now - e.last_seen)}
                for (vlan, mac), e in sorted(self.entries.items(), key=lambda kv: (kv[1].port, kv[0]))]
