"""The interface every bridge feature implements, and what the bridge offers it.

A feature (bonds, LACP, CFM; later mirrors, exporters, tunnels) is one object
per bridge.  The bridge calls the hooks below in a loop over its features and
never knows which feature it is talking to; every hook has a do-nothing
default, so a feature implements only what it needs.  This is Open vSwitch's
`process_special` plus Faucet's managers, in one small shape:

  configure(ctx)            the bridge's rows changed (ports, interfaces,
                            columns); return True if forwarding decisions the
                            cache holds may now be wrong (the bridge flushes).
  claim(iface, key, mask)   before any pipeline: is this frame mine (LACPDU,
                            CCM)?  Every field looked at goes into `mask`,
                            claimed or not, so no megaflow of the pipeline can
                            swallow a frame the feature would have claimed.
  process_packet(iface, frame, now)   a claimed frame (they stay in the slow
                            path: the megaflow sends them to userspace).
  port_xlate(port_name)     contribute to translation: an object NORMAL asks
                            which member a multi-interface port sends on and
                            whether it admits a frame (bonds), or None.
  reserves(port_name)       True takes the port out of NORMAL's port map
                            (a mirror's output port: OVS reserves it).
  xlate_actions(in_dp, key, actions, mask, tags) -> actions
                            the datapath actions of a translated flow (NORMAL
                            or OpenFlow), returned rewritten: mirrors insert
                            their outputs.  Fields read go into `mask`, tags
                            for the megaflow into `tags`.
  usable(iface)             False vetoes an interface carrying traffic (LACP
                            not collecting/distributing, a CFM fault);
                            None = no opinion.
  link_changed(iface, carrier, now)   the netdev's carrier, from netlink.
  flow_stats(delta, now)    traffic the fast path or the slow path forwarded
                            since the last report (a MegaflowDelta: the
                            megaflow's masked key, its tags, packets, bytes,
                            TCP flags, first/last seen); every packet is
                            reported once: megaflows by the revalidator and
                            before they are deleted, slow-path packets as
                            they are executed.
  sampled(sample, now)      a packet the datapath sampled for this feature
                            (a dpif.DatapathSample: its own SAMPLE action,
                            carrying the feature's cookie; sFlow, IPFIX).
  run(now) -> [(iface, frame)]   timers; frames to send out of interfaces.
  next_wakeup() -> float|None    when run() is next due (the daemon sleeps
                            until the earliest of all features).
  show(name) -> [dict]      state for `vsctl KIND-show [NAME]`; KeyError for
                            an unknown name.
  column(table, column, name)  a read-only column value (cfm_fault, ...).
  close()

Time is always passed in: tests drive features with a fake clock.
"""
class MegaflowDelta:
    """What one megaflow (or one slow-path packet) forwarded since the last
    report.  `key` is the megaflow's key under its mask (fields the mask
    leaves out read 0); times are on the switch's clock.

    The revalidator passes key and mask as None and the dump record they
    come from (`record`: anything with .key and .mask, e.g. a
    dpif.DumpedMegaflow): they are decoded at their first read, as most
    features read only counters and tags (bonds, mirrors) and a round
    reports every megaflow that saw traffic (issue 16: its CPU per round)."""
    __slots__ = ("_key", "_mask", "_record", "tags", "packets", "bytes", "tcp_flags",
                 "first_seen", "last_seen")

    def __init__(self, key, mask, tags, packets, nbytes, tcp_flags, first_seen, last_seen, record=None):
        self._key, self._mask, self._record = key, mask, record
        self.tags = tags  # the tags its translation left, without the bridge name
        self.packets = packets
        self.bytes = nbytes  # frame bytes as received (the VLAN tag counts if it was on the wire)
        self.tcp_flags = tcp_flags
        self.first_seen, self.last_seen = first_seen, last_seen

    @property
    def key(self):
        if self._key is None:
            self._key = self._record.key
        return self._key

    @property
    def mask(self):
        if self._mask is None:
            self._mask = self._record.mask
        return self._mask

    def __repr__(self):
        return (f"MegaflowDelta(key={self.key}, mask={self.mask}, tags={self.tags}, packets={self.packets}, "
                f"bytes={self.bytes}, tcp_flags={self.tcp_flags}, first_seen={self.first_seen}, "
                f"last_seen={self.last_seen})")


def earliest_wakeup(things):
    """The earliest next_wakeup() of `things` (features, bonds, engines,
    bridges), or None when none of them has a timer running."""
    return min((t for t in (x.next_wakeup() for x in things) if t is not None), default=None)


class Feature:
    kind = ""  # the word of `vsctl KIND-show`

    def __init__(self, host):
        self.host = host  # the Bridge: see FeatureHost below

    def configure(self, ctx):
        return False

    def claim(self, iface, key, mask):
        return False

    def process_packet(self, iface, frame, now):
        pass

    def port_xlate(self, port_name):
        return None

    def reserves(self, port_name):
        return False

    def xlate_actions(self, in_dp, key, actions, mask, tags):
        return actions

    def usable(self, iface):
        return None

    def link_changed(self, iface, carrier, now):
        pass

    def flow_stats(self, delta, now):
        pass

    def sampled(self, sample, now):
        pass

    def run(self, now):
        return []

    def next_wakeup(self):
        return None

    def show(self, name=None):
        return []

    def column(self, table, column, name):
        return None

    def close(self):
        pass


class FeatureHost:
    """What a feature may ask of its bridge (implemented by bridge.Bridge):

    name                       the bridge's name
    clock()                    now, on the switch's clock
    iface_port(iface)          datapath port number of an open interface, or None
    iface_mac(iface)           the interface's MAC as bytes, or None
    carrier(iface)             True/False (netlink's word), True if unknown
    usable(iface)              carrier and no feature vetoes it
    invalidate(tag)            delete exactly the megaflows carrying `tag`
    flush()                    delete all of this bridge's megaflows
    learned_macs()             [(vlan, mac, port name)] of the MAC table
    mac_port(vlan, mac)        the port name a MAC was learned on, or None
    feature(kind)              another feature of this bridge, or None
    cookie(feature)            the datapath cookie of `feature`'s claimed
                               frames and samples
    netdev_info(iface)         {"ifindex", "carrier", "admin_up", "mtu",
                               "stats": the datapath port's counters} or None
    ports                      NORMAL's port map {datapath port: normal.BridgePort}
    wake()                     next_wakeup() moved earlier: reschedule
    """
