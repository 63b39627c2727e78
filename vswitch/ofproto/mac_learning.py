"""MAC learning table: (VLAN, MAC) -> port, with aging and a size limit."""
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
        self.entries = {}  # (vlan, mac) -> MacEntry

    def configure(self, aging_time=None, max_entries=None):
        if aging_time:
            self.aging_time = aging_time
        if max_entries:
            self.max_entries = max_entries

    def lookup(self, vlan, mac, now):
        entry = self.entries.get((vlan, mac))
        if entry and now - entry.last_seen <= self.aging_time:
            return entry.port
        return None

    def learn(self, vlan, mac, port, now):
        """Records that (vlan, mac) is behind port.  Returns True when that
        changed where the MAC goes (new or moved), i.e. megaflows forwarding to
        it are now stale."""
        entry = self.entries.get((vlan, mac))
        if entry and entry.port == port:
            entry.last_seen = now
            return False
        if not entry and len(self.entries) >= self.max_entries:
            # Full: evict the oldest entry, as OVS does.
            oldest = min(self.entries, key=lambda k: self.entries[k].last_seen)
            del self.entries[oldest]
        self.entries[(vlan, mac)] = MacEntry(port, now)
        return True

    def expire(self, now):
        """Drops aged-out entries; returns their (vlan, mac) keys."""
        gone = [k for k, e in self.entries.items() if now - e.last_seen > self.aging_time]
        for k in gone:
            del self.entries[k]
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
