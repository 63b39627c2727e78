"""What the three flow exporters (NetFlow, sFlow, IPFIX) share as bridge
features: the Bridge column that names their row, the engine (vswitch/export)
and its UdpSender, the wall clock, the ifIndex map, the statistics column.

A bridge exports with a format when its Bridge column (netflow, sflow,
ipfix) references a row of that table, as in OVS.  The engines are pure
(time in, datagrams out); this layer feeds them and sends what they return
from run(), on their own next_wakeup().  The engines' clock is the wall
clock (NetFlow and IPFIX carry Unix times): the switch's clock plus an
offset fixed when the feature is created, so a fake clock in tests moves
them too.

A configuration the engine refuses (an sFlow agent interface without an
address, ...) is logged and the exporter stays off: nothing is exported
that the row does not describe.  Removing the row (or the reference) flushes
what a flow cache holds, so the last records still leave, then stops.

`vsctl list NetFlow|sFlow|IPFIX` shows a read-only `statistics` column: the
datagrams and records sent, send errors (a collector that is unreachable
never stalls the switch: the socket does not block and errors are counted),
and input the engine dropped.
"""
import logging
import math
import socket
import time

from vswitch.bridge.feature import Feature
from vswitch.datapath import dpif
from vswitch.datapath.flowkey import VLAN_CFI, VLAN_VID_MASK
from vswitch.export import FlowKey, UdpSender
from vswitch.export.records import ETH_HEADER_LEN, VLAN_TAG_LEN, ParsedKey

log = logging.getLogger("vswitch.export")

EXPORT_TICK = 0.25  # seconds: the exporters' timers are rounded up to this grid

# The datapath SAMPLE action's out_port argument (set by sflow_feature and
# ipfix_feature from a translation's outputs): a datapath port, or none, or
# this flag with the number of outputs.
SAMPLE_OUT_NONE = 0
SAMPLE_OUT_MULTI = 0x80000000


ETH_TYPE_IPV4, ETH_TYPE_IPV6 = 0x0800, 0x86DD
IP_VERSIONS = {ETH_TYPE_IPV4: (4, "nw_src", "nw_dst", 4, socket.AF_INET),
               ETH_TYPE_IPV6: (6, "ipv6_src", "ipv6_dst", 16, socket.AF_INET6)}


def parsed_key_of(key, out_port):
    """The exporters' ParsedKey of a datapath key (flowkey's dict), built
    from the integers directly: this runs for every megaflow delta and every
    sample, and text round trips (mac_str, ipaddress) would cost more than
    everything else of a record."""
    tci = key.get("vlan_tci", 0)
    src_mac, dst_mac = key.get("dl_src", 0).to_bytes(6, "big"), key.get("dl_dst", 0).to_bytes(6, "big")
    common = dict(in_port=key.get("in_port", 0), out_port=out_port,
                  vlan=tci & VLAN_VID_MASK if tci & VLAN_CFI else 0,
                  src_mac=src_mac.hex(":"), dst_mac=dst_mac.hex(":"))
    ip = IP_VERSIONS.get(key.get("dl_type"))
    if ip is None:
        return ParsedKey(FlowKey(**common, ip_version=0), src_mac, dst_mac)
    version, src_field, dst_field, size, family = ip
    src, dst = key.get(src_field, 0).to_bytes(size, "big"), key.get(dst_field, 0).to_bytes(size, "big")
    flow = FlowKey(**common, ip_version=version, src_ip=socket.inet_ntop(family, src),
                   dst_ip=socket.inet_ntop(family, dst), protocol=key.get("nw_proto", 0),
                   src_port=key.get("tp_src", 0), dst_port=key.get("tp_dst", 0), tos=key.get("nw_tos", 0))
    return ParsedKey(flow, src_mac, dst_mac, src, dst)


def l2_header_len(key):
    """The frame's Ethernet header as received: the VLAN tag counts when it
    was on the wire (the key's VLAN_CFI)."""
    return ETH_HEADER_LEN + (VLAN_TAG_LEN if key.get("vlan_tci", 0) & VLAN_CFI else 0)


def single_ref(value):
    """A single reference column as the config store holds it, or None."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value or None


def sample_out(actions):
    """The SAMPLE action's out_port argument for a translation's actions."""
    outs = [arg for name, arg in actions if name == "output"]
    if len(outs) == 1:
        return outs[0]
    return SAMPLE_OUT_MULTI | len(outs) if outs else SAMPLE_OUT_NONE


class ExporterFeature(Feature):
    bridge_column = ""  # the Bridge column referencing the row
    table = ""  # the row's table
    engine_class = None

    def __init__(self, host):
        super().__init__(host)
        self.engine = None
        self.sender = None
        self.uuid = None
        self.error = None
        # What megaflows depend on (sampling, masks): a change flushes them.
        self.megaflow_state = None
        self.wall_offset = time.time() - host.clock()
        self.iface_of_dp = {}  # datapath port -> interface name

    def wall(self, t):
        return t + self.wall_offset

    # -- configuration -----------------------------------------------------------
    def configure(self, ctx):
        before = self.megaflow_state
        uuid = single_ref(ctx.row.get(self.bridge_column))
        row = ((ctx.tables or {}).get(self.table) or {}).get(uuid) if uuid else None
        self.iface_of_dp = {dp: iface for port in ctx.ports.values() for iface in port.ifaces
                            if (dp := self.host.iface_port(iface)) is not None}
        if row is None:
            self._stop(ctx.now)
        else:
            try:
                settings = self.settings(row, ctx)
                settings["ifindex_map"] = self.ifindex_map()
                if self.engine is None:
                    engine = self.engine_class()
                    engine.configure({"boot_time": self.wall(ctx.now), **settings})
                    self.engine, self.sender = engine, UdpSender()
                else:
                    self.engine.configure(settings)
                self.uuid, self.error = uuid, None
                self.megaflow_state = self.megaflow_settings(row)
            except ValueError as e:
                log.error("%s: %s not exported: %s", self.host.name, self.table, e)
                self._stop(ctx.now)
                self.uuid, self.error = uuid, str(e)
        self.host.wake()
        return self.megaflow_state != before

    def settings(self, row, ctx):
        """The engine's settings from the row; ValueError if it cannot run."""
        return {"targets": sorted(row.get("targets") or [])}

    def megaflow_settings(self, row):
        """What the megaflows of this bridge depend on while exporting."""
        return True

    def sample_action(self, sampling, actions, header):
        """The datapath SAMPLE action (1 in `sampling`, `header` bytes) that
        sFlow and IPFIX put first in a translation's actions."""
        return ("sample", (dpif.sample_probability(sampling), self.host.cookie(self),
                           sample_out(actions), header))

    def ifindex(self, dp_port):
        info = self.host.netdev_info(self.iface_of_dp.get(dp_port))
        return info["ifindex"] if info else 0

    def ifindex_map(self):
        return {dp: self.ifindex(dp) for dp in self.iface_of_dp}

    def _stop(self, now):
        if self.engine is not None:
            flush = getattr(self.engine, "flush", None)
            if flush is not None:  # a flow cache: its flows still leave
                self.sender.send(flush(self.wall(now)))
            self.sender.close()
        self.engine = self.sender = self.uuid = self.error = None
        self.megaflow_state = None

    # -- timers ----------------------------------------------------------------
    def run(self, now):
        if self.engine is not None:
            self.sender.send(self.engine.run(self.wall(now)))
        return []

    def next_wakeup(self):
        """The engine's next deadline, rounded up to EXPORT_TICK: a flow
        cache's flows each have their own expiry, and waking for every one
        would scan the cache once per flow."""
        due = self.engine.next_wakeup() if self.engine is not None else None
        if due is None:
            return None
        return math.ceil(due / EXPORT_TICK) * EXPORT_TICK - self.wall_offset

    def close(self):
        self._stop(self.host.clock())

    # -- state -----------------------------------------------------------------
    def column(self, table, column, name):
        if table != self.table or column != "statistics" or name != self.uuid:
            return None
        if self.engine is None:
            return {"error": self.error} if self.error else {}
        shown = self.engine.show()
        return {"sent_datagrams": shown["datagrams_sent"], "sent_records": shown["records_sent"],
                "send_errors": sum(self.sender.errors.values()),
                "dropped": sum(shown["dropped"].values())}

    def show(self, name=None):
        if self.engine is None:
            return []
        return [{"bridge": self.host.name, **self.engine.show(), "sender": self.sender.show()}]
