"""The port types: one registry of the Interface types the switch opens, with
their options, fallbacks and status.  The schema's Interface `type` list and
the options each type accepts (vswitch/config/schema.py) are derived from it,
and vswitch/interfaces.py opens ports by it; nothing else tests a type.

Design note.  A registry entry names the datapath driver that opens the port:
a C port type registered under that name (csrc/netdev_provider.h; the
datapath lists them with `dpif.drivers()`).  Several Interface types may share
a driver ("", system and afpacket are all afpacket; tap and internal are both
the switch's own taps).  A type whose driver cannot be set up on a device
that exists (afxdp without XDP) may name a `fallback` type, opened instead on
the same port number, with a note in the Interface status; a missing device
(ENODEV) never falls back, since every type would fail the same way: the port
is reopened when its netdev appears.  Each option is passed to the driver as
a string, with its default filled in, so two rows that mean the same thing
compare equal.

Each entry also lists the status keys and counters its driver reports, so
that this file documents what `vsctl list interface` shows per type.

A new port type is one C file (csrc/) plus one entry in TYPES.

This module imports nothing from the C extension, so that the schema (and
vsctl) can use it without loading the fast path.
"""
import errno
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Option:
    """One key of the Interface options column a type accepts."""
    values: tuple = ()  # the allowed values; () = any string
    expect: str = ""  # how a wrong value is explained ("must be ...")
    default: str | None = None  # passed to the driver when the row has none
    valid: object = None  # a predicate on the value, when `values` cannot list them

    def check(self, value):
        if self.valid is not None:
            return isinstance(value, str) and bool(self.valid(value))
        return not self.values or value in self.values


@dataclass(frozen=True)
class PortType:
    name: str  # the Interface type as configured ("" means system)
    driver: str  # the C port type that opens it
    doc: str
    options: dict = field(default_factory=dict)  # key -> Option
    fallback: str | None = None  # the type opened when the driver cannot set up
    # The switch creates the port's device and holds it (taps, internal
    # ports, dummy ports): link events for its name are not followed.
    owned: bool = False
    # A kernel netdev of that name exists once open (MAC, ifindex).
    kernel_netdev: bool = True
    # What the driver adds to the Interface status column (beside the
    # switch's driver_name, error and note) and, as DRIVER_NAME, to its
    # statistics column (beside the datapath's per-port counters).
    status: tuple = ()
    stats: tuple = ()
    # Options a row of this type must have (vxlan's remote_ip).
    required: tuple = ()
    # A tunnel to other VTEPs: NORMAL does not flood from one tunnel port
    # into another (split horizon, vswitch/ofproto/normal.py).
    tunnel: bool = False

    def resolved_options(self, options):
        """The row's options as the driver gets them: this type's keys only,
        defaults filled in."""
        options = options or {}
        resolved = {k: opt.default for k, opt in self.options.items() if opt.default is not None}
        resolved.update({k: v for k, v in options.items() if k in self.options})
        return resolved


XDP_MODES = ("best-effort", "native", "generic")  # OVS's, minus native-with-zerocopy


def _ipv4(text):
    """A dotted-quad IPv4 address, as inet_pton reads it (no leading zeros)."""
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and p == str(int(p)) and int(p) < 256 for p in parts)


def _uint(lo, hi):
    def check(text):
        return text.isdigit() and text == str(int(text)) and lo <= int(text) <= hi
    return check


def _or_flow(check):
    return lambda text: text == "flow" or check(text)


def _unicast(text):
    return _ipv4(text) and text != "0.0.0.0" and not 224 <= int(text.split(".")[0]) < 240


# VXLAN (RFC 7348) as OVS's options: remote_ip and key may be "flow" (set per
# packet by OpenFlow: set_field:IP->tun_dst, set_field:N->tun_id).
VXLAN_OPTIONS = {
    "remote_ip": Option(expect="an IPv4 unicast address or flow", valid=_or_flow(_unicast)),
    "key": Option(expect="a VNI 0..16777215 or flow", default="0",
                  valid=_or_flow(_uint(0, 0xFFFFFF))),
    "dst_port": Option(expect="a UDP port 1..65535", default="4789", valid=_uint(1, 65535)),
    "local_ip": Option(expect="an IPv4 address of this host", valid=_ipv4),
    "tos": Option(expect="0..255 or inherit", default="0",
                  valid=lambda t: t == "inherit" or _uint(0, 255)(t)),
    "ttl": Option(expect="1..255", default="64", valid=_uint(1, 255)),
    # The kernel's vxlan device receives for this (local_ip, dst_port)
    # (csrc/vxlan_kdev.h); every vxlan port of the pair must agree.
    "tc-offload": Option(("true", "false"), "true or false", "false"),
    # With tc-offload: a plain kernel vxlan device of the port's own
    # (fixed remote_ip and key; faster, but unknown VNIs are not counted:
    # csrc/vxlan_kdev.h) or the shared external one.
    "tc-device": Option(("shared", "per-port"), "shared or per-port", "shared"),
}

# The kernel tc tier (csrc/tc_tier.h): established flows between two ports
# with it forwarded at tc ingress, on the skb (GSO and partial checksums
# intact); tc_redirect says how the tier sends to the port (peer or egress).
AFPACKET_OPTIONS = {"tc-offload": Option(("true", "false"), "true or false", "false")}
AFPACKET_STATUS = ("tc_offload", "tc_redirect")

# Transmit coalescing (csrc/tcp_coalesce.h): TCP segments sent within
# coalesced TSO frames, those frames, and coalesced sends the kernel refused
# (their segments then went one by one).
TCP_COALESCE_STATS = ("tx_coalesced", "tx_coalesced_frames", "tx_coalesce_errors")

# afpacket: frames the kernel dropped because the port's socket buffer was
# full (the switch fell behind), from PACKET_STATISTICS.
AFPACKET_STATS = ("rx_socket_drops",) + TCP_COALESCE_STATS

TYPES = {t.name: t for t in (
    PortType("", "afpacket", "a kernel netdev, as system", options=AFPACKET_OPTIONS,
             status=AFPACKET_STATUS, stats=AFPACKET_STATS),
    PortType("system", "afpacket", "a kernel netdev (veth, NIC, a VM's tap that QEMU opened)",
             options=AFPACKET_OPTIONS, status=AFPACKET_STATUS, stats=AFPACKET_STATS),
    PortType("afpacket", "afpacket", "a kernel netdev, through an AF_PACKET socket",
             options=AFPACKET_OPTIONS, status=AFPACKET_STATUS, stats=AFPACKET_STATS),
    PortType("tap", "tap", "a tap the switch creates and holds (its kernel side may move to a "
             "container's namespace)", owned=True, stats=TCP_COALESCE_STATS),
    PortType("internal", "tap", "the bridge's own host interface, a tap the switch holds",
             owned=True, stats=TCP_COALESCE_STATS),
    PortType("afxdp", "afxdp", "a kernel netdev, through AF_XDP sockets and the switch's XDP "
             "program; falls back to afpacket when XDP cannot be set up",
             options={"xdp-mode": Option(XDP_MODES, "best-effort, native or generic",
                                         "best-effort"),
                      # The kernel XDP tier (csrc/xdp_tier.h): established
                      # flows between two such ports forwarded in the driver.
                      "xdp-offload": Option(("true", "false"), "true or false", "false")},
             fallback="afpacket", status=("xdp_mode", "xdp_bind", "n_rxq", "xdp_offload"),
             stats=("rx_dropped", "rx_fill_empty", "tx_no_room", "tx_segments", "tx_csum",
                    "tx_offload_drops", "rx_csum_fixed", "rx_copied") + TCP_COALESCE_STATS),
    PortType("dummy", "dummy", "no device: frames injected and captured through the datapath "
             "API (tests, as OVS's dummy)", owned=True, kernel_netdev=False,
             status=("rx_queue", "rx_group", "tx_queue"),
             stats=("rx_injected", "rx_queue_drops", "tx_captured", "tx_queue_drops")),
    PortType("vxlan", "vxlan", "a VXLAN tunnel (RFC 7348) to remote_ip over the host's IP stack: "
             "one UDP socket per (local_ip, dst_port) shared by the vxlan ports using it",
             options=VXLAN_OPTIONS, required=("remote_ip",), tunnel=True, owned=True, kernel_netdev=False,
             status=("tunnel_remote_ip", "tunnel_key", "tunnel_local_ip", "tunnel_dst_port",
                     "tunnel_path_mtu", "tunnel_inner_mtu", "tunnel_oversize", "tc_offload",
                     "tc_device"),
             stats=("tx_segments", "tx_mtu_drops", "tx_resegmented", "tx_no_remote", "tx_offload_drops", "tx_errors",
                    "tx_trains", "tx_train_frames", "tx_train_errors", "sock_rx_packets", "sock_rx_unknown_vni", "sock_rx_malformed",
                    "sock_rx_gro_datagrams", "sock_rx_coalesced")),
)}


def schema_types():
    """The Interface `type` column's allowed values, in registry order."""
    return list(TYPES)


def schema_options():
    """{type: {option key: (check, expect)}} for the schema's options check."""
    return {name: {key: (opt.check, opt.expect) for key, opt in t.options.items()}
            for name, t in TYPES.items() if t.options}


def schema_required():
    """{type: (option keys a row of that type must have)}."""
    return {name: t.required for name, t in TYPES.items() if t.required}


def lookup(name):
    """The PortType of an Interface type as configured, or None."""
    return TYPES.get(name or "")


def attempts(ptype):
    """The type, then its fallbacks in order: what opening a port tries."""
    chain, seen = [], set()
    while ptype is not None and ptype.name not in seen:
        chain.append(ptype)
        seen.add(ptype.name)
        ptype = TYPES.get(ptype.fallback) if ptype.fallback is not None else None
    return chain


def falls_back(exc_errno):
    """Whether an open that failed with this errno tries the fallback: not
    when the device is missing (the fallback would fail the same way)."""
    return exc_errno != errno.ENODEV


def dummy_mac(dp_port):
    """A port without a kernel netdev gets aa:55:aa:55:00:00 + its datapath
    port number as its MAC, as OVS's dummy ports do."""
    return (0xAA55AA550000 + dp_port).to_bytes(6, "big")
