"""NetFlow v5 on a bridge (Bridge `netflow` -> a NetFlow row), as OVS's
ofproto/netflow.c: one record per flow from the megaflows' traffic.

Every megaflow of the bridge matches what a record carries (input port,
addresses, protocol, ports, ToS: `xlate_actions` widens the mask, as OVS
does when NetFlow is on), so a record is exact per 5-tuple; the revalidator
hands each megaflow's deltas over (and the last ones before it is deleted),
the slow path its packets.  The flow cache (export/flow_cache.py) expires a
flow on the active timeout, after NETFLOW_IDLE_SECONDS without traffic, or
on TCP FIN/RST.

Columns: targets, active_timeout (0: OVS's default of 600 s, -1: none),
engine_type, engine_id (default 0), add_id_to_interface (the interface
fields' top 7 bits carry the engine id's low 7 bits, as OVS).  Interfaces
are the netdevs' ifindexes; a flooded flow's output is 0xFFFF and a dropped
one's 0, as OVS's NF_OUT_FLOOD and drop.  IPv6 and non-IP flows are not
NetFlow v5's and are not exported.
"""
from vswitch.bridge.export_feature import ETH_TYPE_IPV4, ExporterFeature, l2_header_len, parsed_key_of
from vswitch.datapath.flowkey import full_mask
from vswitch.export import FlowStats, NetflowV5Exporter

DEFAULT_ACTIVE_TIMEOUT = 600  # OVS's, for active_timeout 0
NO_ACTIVE_TIMEOUT = 10 ** 9  # active_timeout -1
NETFLOW_IDLE_SECONDS = 10  # as long as an idle megaflow lives
NF_OUT_FLOOD = 0xFFFF
NF_OUT_DROP = 0
ADD_ID_SHIFT = 9  # add_id_to_interface: engine id in the top 7 of 16 bits
ADD_ID_MASK = 0x7F
IFINDEX_LOW_MASK = 0x1FF
RECORD_FIELDS = ("nw_src", "nw_dst", "nw_proto", "nw_tos", "tp_src", "tp_dst")
OUT_TAG = "netflow-out"


class NetflowFeature(ExporterFeature):
    kind = "netflow"
    bridge_column = "netflow"
    table = "NetFlow"
    engine_class = NetflowV5Exporter

    def settings(self, row, ctx):
        timeout = row.get("active_timeout") or 0
        active = (NO_ACTIVE_TIMEOUT if timeout < 0 else timeout or DEFAULT_ACTIVE_TIMEOUT)
        self.engine_id = row.get("engine_id") or 0
        self.add_id = bool(row.get("add_id_to_interface"))
        return {**super().settings(row, ctx), "active_timeout": active,
                "inactive_timeout": NETFLOW_IDLE_SECONDS, "engine_type": row.get("engine_type") or 0,
                "engine_id": self.engine_id}

    def ifindex(self, dp_port):
        index = super().ifindex(dp_port)
        if self.add_id:
            return (self.engine_id & ADD_ID_MASK) << ADD_ID_SHIFT | (index & IFINDEX_LOW_MASK)
        return index

    def xlate_actions(self, in_dp, key, actions, mask, tags):
        if self.engine is None:
            return actions
        for name in ("in_port", "dl_type") + (RECORD_FIELDS if key.get("dl_type") == ETH_TYPE_IPV4 else ()):
            mask[name] = full_mask(name)
        outs = [arg for name, arg in actions if name == "output"]
        tags.add((OUT_TAG, outs[0] if len(outs) == 1 else NF_OUT_FLOOD if outs else NF_OUT_DROP))
        return actions

    def flow_stats(self, delta, now):
        if self.engine is None:
            return  # before delta.key: the revalidator's deltas decode it when read
        key = delta.key
        if key.get("dl_type") != ETH_TYPE_IPV4:
            return
        out = next((tag[1] for tag in delta.tags if tag[0] == OUT_TAG), NF_OUT_DROP)
        parsed = parsed_key_of(key, out)
        self.engine.add_parsed_flow_stats(parsed, FlowStats(
            parsed.key, delta.packets, delta.bytes, self.wall(delta.first_seen), self.wall(delta.last_seen),
            delta.tcp_flags, l2_header_len(key)), self.wall(now))
        # No wake-up per delta: the switch reschedules after each revalidation.
