"""IPFIX on a bridge (Bridge `ipfix` -> an IPFIX row), OVS's per-bridge
sampling (ofproto-dpif-ipfix.c): packets sampled by the datapath at
1/`sampling` become flow records.

As for sFlow, every megaflow starts with a datapath SAMPLE action (its own
cookie: the two features sample independently).  Each sampled packet is one
packet of its flow in the flow cache (packetDeltaCount counts sampled
packets, as OVS; multiply by `sampling` for an estimate of the traffic),
keyed by what the datapath parsed; records leave on the cache's timeouts.

Columns: targets, sampling (default 400), obs_domain_id, obs_point_id
(default 0), cache_active_timeout and cache_max_flows (either 0 or unset:
no caching, every sampled packet is a record at once, as OVS),
other_config:enable-input-sampling=false turns sampling off.  Output and
tunnel sampling and virtual_obs_id are OVS's and not done here: the config
refuses them (schema.MAP_KEYS).
"""
from vswitch.bridge.export_feature import (SAMPLE_OUT_MULTI, SAMPLE_OUT_NONE, ExporterFeature, l2_header_len,
                                           parsed_key_of)
from vswitch.datapath import dpif
from vswitch.export import FlowStats, IpfixExporter

DEFAULT_SAMPLING = 400  # OVS's
TCP_FLAGS_HEADER = 96  # bytes sampled: enough for Ethernet, VLAN, IPv6 and TCP headers
NO_CACHE_SECONDS = 0.001  # caching off: a record leaves at the next run
DEFAULT_CACHE_FLOWS = 65536
IP_PROTO_TCP = 6


class IpfixFeature(ExporterFeature):
    kind = "ipfix"
    bridge_column = "ipfix"
    table = "IPFIX"
    engine_class = IpfixExporter

    def __init__(self, host):
        super().__init__(host)
        self.sampling = DEFAULT_SAMPLING
        self.input_sampling = True
        self.caching = False

    def settings(self, row, ctx):
        self.sampling = row.get("sampling") or DEFAULT_SAMPLING
        other = row.get("other_config") or {}
        self.input_sampling = other.get("enable-input-sampling", "true") == "true"
        active, max_flows = row.get("cache_active_timeout") or 0, row.get("cache_max_flows") or 0
        caching = self.caching = active > 0 and max_flows > 0
        return {**super().settings(row, ctx),
                "observation_domain_id": row.get("obs_domain_id") or 0,
                "observation_point_id": row.get("obs_point_id") or 0,
                "active_timeout": active if caching else NO_CACHE_SECONDS,
                "inactive_timeout": active if caching else NO_CACHE_SECONDS,
                "max_flows": max_flows if caching else DEFAULT_CACHE_FLOWS}

    def megaflow_settings(self, row):
        return (self.sampling, self.input_sampling)

    def xlate_actions(self, in_dp, key, actions, mask, tags):
        if self.engine is None or not self.input_sampling:
            return actions
        return [self.sample_action(self.sampling, actions, TCP_FLAGS_HEADER)] + actions

    def sampled(self, sample, now):
        if self.engine is None:
            return
        out = sample.out_port
        parsed = parsed_key_of(sample.key, SAMPLE_OUT_NONE if out & SAMPLE_OUT_MULTI else out)
        flags = 0
        if parsed.key.protocol == IP_PROTO_TCP:  # tcpControlBits, from the sampled headers
            headers = dpif.parse_frame(sample.header)
            flags = headers["tcp_flags"] if headers else 0
        wall = self.wall(now)
        self.engine.add_parsed_flow_stats(parsed, FlowStats(
            parsed.key, 1, sample.frame_len, wall, wall, flags, l2_header_len(sample.key)), wall)
        if not self.caching:  # each sampled packet is its own record, at once
            self.sender.send(self.engine.run(wall + NO_CACHE_SECONDS))
