"""sFlow v5 on a bridge (Bridge `sflow` -> an sFlow row), as OVS's
ofproto-dpif-sflow.c: flow samples from the datapath, counter samples from
the ports' statistics.

Every megaflow of the bridge starts with a datapath SAMPLE action taking 1
packet in `sampling` at random, with its first `header` bytes, as it was
received, into the datapath's own sample queue (never the misses' ring); the
action also says where the translation sends the packet (one port, several,
none).  The sample pool and the drops come from the datapath.  Every
`polling` seconds each port of the bridge is a counter sample (generic
interface counters: the datapath port's packets and bytes, drops, malformed
frames as errors, carrier as operational state).  Data sources are the
netdevs' ifindexes.

Columns: targets, sampling (default 400), polling (default 30 s, 0 none),
header (default 128 bytes, at most the datapath's 256), agent (an IP
address or an interface name whose IPv4 address is used; unset: the address
the route to the first target leaves from, as OVS).
"""
import fcntl
import ipaddress
import socket
import struct

from vswitch.bridge.export_feature import SAMPLE_OUT_MULTI, SAMPLE_OUT_NONE, ExporterFeature
from vswitch.datapath.flowkey import VLAN_CFI, VLAN_VID_MASK
from vswitch.export import InterfaceCounters, PacketSample, SflowExporter
from vswitch.export.exporter_base import parse_target

DEFAULT_SAMPLING = 400  # OVS's SFL_DEFAULT_SAMPLING_RATE
DEFAULT_POLLING = 30  # seconds, OVS's SFL_DEFAULT_POLLING_INTERVAL
DEFAULT_HEADER = 128  # bytes, OVS's SFL_DEFAULT_HEADER_SIZE
SIOCGIFADDR = 0x8915
IFREQ = struct.Struct("16s16x")
PCP_SHIFT = 13


def interface_ipv4(name):
    """The IPv4 address of interface `name` (ioctl SIOCGIFADDR), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            reply = fcntl.ioctl(s.fileno(), SIOCGIFADDR, IFREQ.pack(name.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(reply[20:24])


def route_source(target):
    """The local address the route to `target` (host:port) leaves from;
    connecting a UDP socket looks the route up without sending anything."""
    host, port = parse_target(target)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        return s.getsockname()[0]


def agent_address(agent, targets):
    if agent:
        try:
            return str(ipaddress.ip_address(agent))
        except ValueError:
            address = interface_ipv4(agent)
            if address is None:
                raise ValueError(f"agent interface {agent} has no IPv4 address") from None
            return address
    if not targets:
        raise ValueError("no target to find the agent address from")
    try:
        return route_source(targets[0])
    except OSError as e:
        raise ValueError(f"no route to {targets[0]} for the agent address: {e.strerror}") from None


class SflowFeature(ExporterFeature):
    kind = "sflow"
    bridge_column = "sflow"
    table = "sFlow"
    engine_class = SflowExporter

    def __init__(self, host):
        super().__init__(host)
        self.sampling = DEFAULT_SAMPLING
        self.header = DEFAULT_HEADER

    def settings(self, row, ctx):
        settings = super().settings(row, ctx)
        self.sampling = row.get("sampling") or DEFAULT_SAMPLING
        self.header = row.get("header") or DEFAULT_HEADER
        polling = row.get("polling")
        return {**settings, "agent_address": agent_address(row.get("agent"), settings["targets"]),
                "polling_interval": DEFAULT_POLLING if polling is None else polling,
                "header_bytes": self.header, "counters_callback": self.counters}

    def megaflow_settings(self, row):
        return (self.sampling, self.header)

    def xlate_actions(self, in_dp, key, actions, mask, tags):
        if self.engine is None:
            return actions
        return [self.sample_action(self.sampling, actions, self.header)] + actions

    def sampled(self, sample, now):
        if self.engine is None:
            return
        out = sample.out_port
        if out & SAMPLE_OUT_MULTI:
            out = [SAMPLE_OUT_NONE] * (out & ~SAMPLE_OUT_MULTI)  # sFlow says only how many
        elif out == SAMPLE_OUT_NONE:
            out = None
        tci = sample.key.get("vlan_tci", 0)
        vlan = tci & VLAN_VID_MASK if tci & VLAN_CFI else 0
        self.engine.add_packet_sample(PacketSample(
            header=sample.header, frame_length=sample.frame_len, in_port=sample.in_port,
            out_port=out, sampling_rate=self.sampling, sample_pool=sample.pool,
            drops=sample.drops, in_vlan=vlan, out_vlan=vlan,
            in_priority=tci >> PCP_SHIFT if tci & VLAN_CFI else 0,
            out_priority=tci >> PCP_SHIFT if tci & VLAN_CFI else 0), self.wall(now))

    def counters(self):
        """{ifindex: InterfaceCounters} of every open interface of the bridge."""
        table = {}
        for iface in self.iface_of_dp.values():
            info = self.host.netdev_info(iface)
            if not info or not info["ifindex"]:
                continue
            st = info["stats"]
            table[info["ifindex"]] = InterfaceCounters(
                admin_up=info["admin_up"], oper_up=info["carrier"],
                in_octets=st.get("rx_bytes", 0), in_ucast_pkts=st.get("rx_packets", 0),
                in_discards=st.get("rx_dropped", 0), in_errors=st.get("rx_malformed", 0),
                out_octets=st.get("tx_bytes", 0), out_ucast_pkts=st.get("tx_packets", 0),
                out_discards=st.get("tx_dropped", 0))
        return table
