"""Datapath: the batch-shaped Python interface to the C fast path."""
import errno
import ipaddress
import os
import struct
from dataclasses import dataclass

from . import flowkey
from ._datapath import ffi, lib


def drivers():
    """The port types the C fast path has registered (csrc/netdev_provider.h):
    what add_port's `driver` may be."""
    names = ffi.new("const char *[]", 64)
    n = lib.vs_netdev_types(names, 64)
    return [ffi.string(names[i]).decode() for i in range(min(n, 64))]


def xdp_tier_available():
    """Whether the extension was built with the kernel XDP tier (clang and
    libbpf at build time): what an afxdp port's xdp-offload=true needs."""
    return bool(lib.vs_xdp_tier_available())


def tc_tier_available():
    """Whether the extension was built with the kernel tc tier: what an
    afpacket port's tc-offload=true needs."""
    return bool(lib.vs_tc_tier_available())


def xdp_offload_counts():
    """The kernel tiers' exact flows (XDP and tc share one map),
    process-wide: live (forwarded by the kernel now), added (so far),
    refused (the map full)."""
    out = ffi.new("struct vs_xdp_offload_counts *")
    lib.vs_dp_xdp_offload_counts(out)
    return {"live": out.live, "added": out.added, "refused": out.refused}


class PortOpenError(OSError):
    """A port could not be opened; .step says where (e.g. "attach native
    XDP"), .strerror is the errno's text."""

    def __init__(self, errno_, step):
        super().__init__(errno_, os.strerror(errno_))
        self.step = step

    def __str__(self):
        return f"{self.step}: {self.strerror}" if self.step else self.strerror


AfxdpError = PortOpenError  # its name before port types shared one interface

# Datapath actions are (name, arg) tuples.  Simple ones carry one 32-bit
# argument; set-field ones carry the field's new value as an int; "sample"
# carries the tuple (probability, cookie, out_port, header): see
# sample_probability() and csrc/datapath.h; "set_tunnel" carries (tun_id,
# tun_dst, tun_src) for a later output to a key=flow / remote_ip=flow tunnel port.
ACTIONS = {
    "output": lib.VS_ACTION_OUTPUT,
    "push_vlan": lib.VS_ACTION_PUSH_VLAN,
    "pop_vlan": lib.VS_ACTION_POP_VLAN,
    "userspace": lib.VS_ACTION_USERSPACE,
    "push_mpls": lib.VS_ACTION_PUSH_MPLS,
    "pop_mpls": lib.VS_ACTION_POP_MPLS,
    "sample": lib.VS_ACTION_SAMPLE,
    "trunc": lib.VS_ACTION_TRUNC,  # the next output sends a copy cut to arg bytes
    "push_pbb": lib.VS_ACTION_PUSH_PBB,  # arg: Ethertype of the new outer header
    "pop_pbb": lib.VS_ACTION_POP_PBB,
    "meter": lib.VS_ACTION_METER,  # arg: a dp_meters id
}
# push_vlan's arg: the TCI, with a TPID other than 802.1Q in the high 16 bits
PUSH_VLAN_TPID_SHIFT = 16
TPID_8021Q = lib.VS_TPID_8021Q


def format_push_vlan(arg):
    """("push_vlan", arg) as text: vid, pcp, and the TPID when it is not 802.1Q."""
    tci, tpid = arg & 0xFFFF, arg >> PUSH_VLAN_TPID_SHIFT
    text = f"vid={tci & 0xFFF},pcp={tci >> 13}"
    return f"push_vlan({text})" if tpid in (0, TPID_8021Q) else f"push_vlan(tpid=0x{tpid:04x},{text})"

ACTION_NAMES = {v: k for k, v in ACTIONS.items()}
# set-field actions: name -> (VS_EDIT_* field, width in bytes)
SET_FIELDS = {
    "set_eth_src": (lib.VS_EDIT_ETH_SRC, 6),
    "set_eth_dst": (lib.VS_EDIT_ETH_DST, 6),
    "set_ipv4_src": (lib.VS_EDIT_IPV4_SRC, 4),
    "set_ipv4_dst": (lib.VS_EDIT_IPV4_DST, 4),
    "set_ipv4_tos": (lib.VS_EDIT_IPV4_TOS, 1),
    "set_ipv4_ttl": (lib.VS_EDIT_IPV4_TTL, 1),
    "set_ipv6_src": (lib.VS_EDIT_IPV6_SRC, 16),
    "set_ipv6_dst": (lib.VS_EDIT_IPV6_DST, 16),
    "set_tp_src": (lib.VS_EDIT_TP_SRC, 2),
    "set_tp_dst": (lib.VS_EDIT_TP_DST, 2),
    "set_ipv6_tc": (lib.VS_EDIT_IPV6_TC, 1),
    "set_ipv6_hlimit": (lib.VS_EDIT_IPV6_HLIMIT, 1),
    "set_ipv6_flabel": (lib.VS_EDIT_IPV6_FLABEL, 4),
    "set_icmp_type": (lib.VS_EDIT_ICMP_TYPE, 1),
    "set_icmp_code": (lib.VS_EDIT_ICMP_CODE, 1),
    "set_arp_op": (lib.VS_EDIT_ARP_OP, 2),
    "set_arp_sha": (lib.VS_EDIT_ARP_SHA, 6),
    "set_arp_spa": (lib.VS_EDIT_ARP_SPA, 4),
    "set_arp_tha": (lib.VS_EDIT_ARP_THA, 6),
    "set_arp_tpa": (lib.VS_EDIT_ARP_TPA, 4),
    "set_mpls_lse": (lib.VS_EDIT_MPLS_LSE, 4),
    "set_nd_target": (lib.VS_EDIT_ND_TARGET, 16),
    "set_nd_sll": (lib.VS_EDIT_ND_SLL, 6),
    "set_nd_tll": (lib.VS_EDIT_ND_TLL, 6),
    "set_vlan_tci": (lib.VS_EDIT_VLAN_TCI, 2),
    "set_pbb_isid": (lib.VS_EDIT_PBB_ISID, 4),
    "set_inner_ttl": (lib.VS_EDIT_INNER_TTL, 1),
}
SET_FIELD_NAMES = {field: name for name, (field, _) in SET_FIELDS.items()}

_UPCALL_SIZE = ffi.sizeof("struct vs_upcall")
_UPCALL_KEY = ffi.offsetof("struct vs_upcall", "key")
_UPCALL_VNET = ffi.offsetof("struct vs_upcall", "vnet")
_VNET_SIZE = ffi.sizeof("struct vs_vnet_hdr")
_UPCALL_HEAD = struct.Struct("=IIII")  # in_port, cookie, len, offset

UPCALL_BATCH = 64
DUMP_CHUNK = 1024  # megaflows per dump call: ~0.7 MB of records, a few ms of work
NS_PER_US = 1000
UPCALL_BUF = UPCALL_BATCH * 2048 + lib.VS_MAX_FRAME

_SAMPLE_SIZE = ffi.sizeof("struct vs_sample")
_SAMPLE_KEY = ffi.offsetof("struct vs_sample", "key")
# in_port, cookie, out_port, frame_len, len, offset, pool, drops
_SAMPLE_HEAD = struct.Struct("=8I")
assert _SAMPLE_HEAD.size == _SAMPLE_KEY, "struct vs_sample changed: update _SAMPLE_HEAD"

# Samples come at sampling rates, many more per wake-up than upcalls; every
# header fits in VS_SAMPLE_MAX_HEADER, so the buffer never cuts a batch short.
SAMPLE_BATCH = 256
SAMPLE_BUF = SAMPLE_BATCH * lib.VS_SAMPLE_MAX_HEADER
SAMPLE_ALWAYS = lib.VS_SAMPLE_ALWAYS
SAMPLE_MAX_HEADER = lib.VS_SAMPLE_MAX_HEADER
SAMPLE_POOLS = lib.VS_SAMPLE_POOLS

DUMMY_QUEUE_LEN = lib.VS_DUMMY_QUEUE_LEN
DUMMY_BATCH = 256
DUMMY_BUF = DUMMY_BATCH * 2048 + lib.VS_MAX_FRAME  # a frame never waits for room


def sample_probability(n):
    """The SAMPLE action's probability word for sampling 1 packet in n:
    floor(2^32 / n), and SAMPLE_ALWAYS for n == 1 (2^32 does not fit)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"sampling rate must be an int >= 1, not {n!r}")
    return SAMPLE_ALWAYS if n == 1 else (1 << 32) // n


@dataclass
class Upcall:
    in_port: int
    cookie: int  # 0 = flow-cache miss
    key: dict
    frame: bytes
    vnet: bytes  # the virtio_net_hdr to hand back with execute()
    packed_key: bytes = b""  # the key as C laid it out (flowkey.pack's layout)


@dataclass
class DatapathSample:
    """A packet sampled by a SAMPLE action (vs_dp_recv_samples)."""
    in_port: int
    cookie: int     # the action's cookie
    out_port: int   # the action's out_port, untouched
    frame_len: int  # the whole frame's length
    header: bytes   # its first min(header, frame_len, SAMPLE_MAX_HEADER) bytes
    pool: int       # in_port's pool cookie % SAMPLE_POOLS, this packet counted (wraps at 2^32)
    drops: int      # samples dropped for a full ring so far, datapath-wide (wraps at 2^32)
    key: dict       # flowkey.unpack of the key parsed on receipt


# struct vs_flow_dump as the revalidator's dump reads it (DumpedMegaflow):
# the masked key and the mask side by side (the megaflow's identity), then
# packets, bytes, used_ns, tcp_flags, n_actions, then the action words.
_DUMP_SIZE = ffi.sizeof("struct vs_flow_dump")
_DUMP_FID = 2 * flowkey.PACKED_SIZE
_DUMP_COUNTERS = ffi.offsetof("struct vs_flow_dump", "packets")
_DUMP_ACTIONS = ffi.offsetof("struct vs_flow_dump", "actions")
_DUMP_HEAD = struct.Struct("=QQQHxxI")  # packets, bytes, used_ns, tcp_flags, n_actions
assert (ffi.offsetof("struct vs_flow_dump", "mask") == flowkey.PACKED_SIZE
        and _DUMP_COUNTERS == _DUMP_FID
        and _DUMP_COUNTERS + _DUMP_HEAD.size == _DUMP_ACTIONS), \
    "struct vs_flow_dump changed: update _DUMP_HEAD"
_ACTION_WORDS = struct.Struct("=I")
# The filtered dump's record array: it starts at ACTIVE_DUMP_FIRST records
# and doubles (up to the call's chunk) when a call fills it, then stays: a
# round's cost follows its active megaflows (see flow_dump_active_chunks).
ACTIVE_DUMP_FIRST = 16


@dataclass
class MegaflowStats:
    key: dict
    mask: dict
    actions: list
    packets: int
    bytes: int
    used_ns: int  # CLOCK_MONOTONIC ns of the last hit, 0 = never
    tcp_flags: int
    # The masked key and mask as C lays them out (flowkey.pack): the
    # megaflow's identity without unpacking and packing again.
    packed_key: bytes = b""
    packed_mask: bytes = b""

    @property
    def fid(self):
        """The megaflow's identity: its packed masked key then mask."""
        return self.packed_key + self.packed_mask


class DumpedMegaflow:
    """One record of the revalidator's filtered dump (flow_dump_active_chunks):
    what a round needs of every megaflow it reads (identity, counters) as
    plain values; key, mask and actions are decoded only when read, as a
    round reads them only for the megaflows whose traffic it reports (a
    MegaflowStats decoded all three for each: ~35 µs a record on the poll
    thread's CPU, cold).  Reading one twice decodes it twice."""
    __slots__ = ("fid", "packets", "bytes", "used_ns", "tcp_flags", "_actions")

    def __init__(self, fid, packets, nbytes, used_ns, tcp_flags, actions):
        self.fid = fid            # packed masked key then mask (flowkey.pack's layout)
        self.packets, self.bytes, self.used_ns, self.tcp_flags = packets, nbytes, used_ns, tcp_flags
        self._actions = actions   # the action words as C laid them out (bytes)

    @property
    def packed_key(self):
        return self.fid[:flowkey.PACKED_SIZE]

    @property
    def packed_mask(self):
        return self.fid[flowkey.PACKED_SIZE:]

    @property
    def key(self):
        return flowkey.unpack(self.packed_key)

    @property
    def mask(self):
        return flowkey.unpack(self.packed_mask)

    @property
    def actions(self):
        words = [w for (w,) in _ACTION_WORDS.iter_unpack(self._actions)]
        return decode_actions(words, len(words))


def _dumped_megaflows(records, n):
    """DumpedMegaflow of the first n records of a struct vs_flow_dump array,
    read as one buffer with struct (no cffi attribute access per field)."""
    raw = ffi.buffer(records, n * _DUMP_SIZE)
    out = []
    for base in range(0, n * _DUMP_SIZE, _DUMP_SIZE):
        packets, nbytes, used_ns, tcp_flags, n_actions = _DUMP_HEAD.unpack_from(raw, base + _DUMP_COUNTERS)
        actions = base + _DUMP_ACTIONS
        out.append(DumpedMegaflow(raw[base:base + _DUMP_FID], packets, nbytes, used_ns, tcp_flags,
                                  raw[actions:actions + 4 * n_actions]))
    return out


def _header(op, nargs):
    return op | nargs << 16


_encoded_cache = {}


def encode_actions(actions):
    """[(name, arg)] -> (uint32_t[] cdata, word count) in the C layout: a
    header word (opcode | nargs << 16) then the arguments.  Encodings are
    cached: a switch uses few distinct action lists, each many times (the C
    side copies them, so sharing the cdata is safe)."""
    cache_key = tuple(actions)
    hit = _encoded_cache.get(cache_key)
    if hit is not None:
        return hit
    if len(_encoded_cache) >= 4096:
        _encoded_cache.clear()
    hit = _encoded_cache[cache_key] = _encode_actions(actions)
    return hit


def _encode_actions(actions):
    words = []
    for name, arg in actions:
        if name in SET_FIELDS:
            field, width = SET_FIELDS[name]
            nwords = (width + 3) // 4
            value = [(arg >> (32 * (nwords - 1 - k))) & 0xFFFFFFFF for k in range(nwords)]
            words += [_header(lib.VS_ACTION_SET_FIELD, 1 + nwords), field, *value]
        elif name == "set_tunnel":
            tun_id, tun_dst, tun_src = arg
            words += [_header(lib.VS_ACTION_SET_TUNNEL, lib.VS_SET_TUNNEL_NARGS),
                      (tun_id >> 32) & 0xFFFFFFFF, tun_id & 0xFFFFFFFF, tun_dst, tun_src]
        elif name == "sample":
            if len(arg) != lib.VS_SAMPLE_NARGS:
                raise ValueError(f"sample takes (probability, cookie, out_port, header), not {arg!r}")
            words += [_header(lib.VS_ACTION_SAMPLE, lib.VS_SAMPLE_NARGS), *arg]
        else:
            words += [_header(ACTIONS[name], 1), arg or 0]
    return ffi.new("uint32_t[]", words or [0]), len(words)


def decode_actions(words, n):
    actions, i = [], 0
    while i < n:
        op, nargs = words[i] & 0xFFFF, words[i] >> 16
        args = [words[i + 1 + k] for k in range(nargs)]
        if op == lib.VS_ACTION_SET_FIELD:
            value = 0
            for w in args[1:]:
                value = value << 32 | w
            actions.append((SET_FIELD_NAMES.get(args[0], f"set_field{args[0]}"), value))
        elif op == lib.VS_ACTION_SAMPLE:
            actions.append(("sample", tuple(args)))
        elif op == lib.VS_ACTION_SET_TUNNEL and nargs >= 4:
            actions.append(("set_tunnel", (args[0] << 32 | args[1], args[2], args[3])))
        else:
            actions.append((ACTION_NAMES.get(op, str(op)), args[0] if args else 0))
        i += 1 + nargs
    return actions


def format_actions(actions, port_names=None):
    if not actions:
        return "drop"
    out = []
    for name, arg in actions:
        if name == "output":
            out.append(port_names.get(arg, str(arg)) if port_names else str(arg))
        elif name == "push_vlan":
            out.append(format_push_vlan(arg))
        elif name == "pop_vlan":
            out.append("pop_vlan")
        elif name in SET_FIELDS:
            out.append(f"{name}({_format_value(name, arg)})")
        elif name == "set_tunnel":
            tun_id, tun_dst, tun_src = arg
            out.append(f"set_tunnel(tun_id={tun_id:#x},dst={ipaddress.IPv4Address(tun_dst)}"
                       + (f",src={ipaddress.IPv4Address(tun_src)}" if tun_src else "") + ")")
        elif name == "sample":
            probability, cookie, out_port, header = arg
            port = port_names.get(out_port, str(out_port)) if port_names else str(out_port)
            out.append(f"sample(probability={probability},cookie={cookie},out={port},header={header})")
        else:
            out.append(f"{name}({arg})")
    return ",".join(out)


def _format_value(name, value):
    if name.startswith(("set_eth", "set_arp_sha", "set_arp_tha")):
        return flowkey.mac_str(value)
    if name.startswith(("set_ipv4_src", "set_ipv4_dst", "set_arp_spa", "set_arp_tpa")):
        return str(ipaddress.IPv4Address(value))
    if name in ("set_ipv6_src", "set_ipv6_dst"):
        return str(ipaddress.IPv6Address(value))
    return str(value)


def now_ns():
    return lib.vs_now_ns()


class Datapath:
    def __init__(self, upcall_ring_size=1024):
        self._dp = lib.vs_dp_create(upcall_ring_size)
        if self._dp == ffi.NULL:
            raise OSError("could not create the datapath (out of memory or threads)")
        self._ups = ffi.new("struct vs_upcall[]", UPCALL_BATCH)
        self._buf = ffi.new("uint8_t[]", UPCALL_BUF)
        self._samples = ffi.new("struct vs_sample[]", SAMPLE_BATCH)
        self._sample_buf = ffi.new("uint8_t[]", SAMPLE_BUF)
        self._dummy_frames = self._dummy_buf = None  # allocated on first use
        self._active_records, self._active_cap = None, 0  # flow_dump_active_chunks' array

    def close(self):
        if self._dp is not None:
            lib.vs_dp_destroy(self._dp)  # joins the poll thread, closes every port
            self._dp = None

    @property
    def upcall_fd(self):
        return lib.vs_dp_upcall_fd(self._dp)

    def add_port(self, port_no, driver, name, options=None):
        """Opens `name` as datapath port port_no with the C port type
        `driver` (drivers()) and its options ({key: value}, strings).
        Raises PortOpenError, which says the failing step."""
        options = options or {}
        keep = [(ffi.new("char[]", str(k).encode()), ffi.new("char[]", str(v).encode()))
                for k, v in options.items()]
        opts = ffi.new("struct vs_port_option[]", max(len(keep), 1))
        for i, (k, v) in enumerate(keep):
            opts[i].key, opts[i].value = k, v
        err_buf = ffi.new("char[]", 64)
        err = lib.vs_dp_port_add(self._dp, port_no, driver.encode(), name.encode(), opts, len(keep),
                                 err_buf, 64)
        if err < 0:
            raise PortOpenError(-err, ffi.string(err_buf).decode(errors="replace"))

    def port_driver(self, port_no):
        """The C port type port_no was opened with, or None."""
        buf = ffi.new("char[]", 64)
        if lib.vs_dp_port_type(self._dp, port_no, buf, 64) < 0:
            return None
        return ffi.string(buf).decode()

    def port_type_status(self, port_no):
        """{key: value} the port's type reports (afxdp: xdp_mode, xdp_bind,
        n_rxq); None if there is no such port."""
        out = ffi.new("struct vs_port_kv[]", lib.VS_KV_MAX)
        n = lib.vs_dp_port_type_status(self._dp, port_no, out, lib.VS_KV_MAX)
        if n < 0:
            return None
        return {ffi.string(out[i].key).decode(): ffi.string(out[i].value).decode() for i in range(n)}

    def port_type_stats(self, port_no):
        """{counter: value} the port's type keeps beyond port_stats (afxdp:
        software offloads, kernel ring drops); None if there is no such port."""
        out = ffi.new("struct vs_port_counter[]", lib.VS_KV_MAX)
        n = lib.vs_dp_port_type_stats(self._dp, port_no, out, lib.VS_KV_MAX)
        if n < 0:
            return None
        return {ffi.string(out[i].name).decode(): out[i].value for i in range(n)}

    # -- the dummy port type (csrc/netdev_dummy.h) ------------------------------------
    def dummy_inject(self, port_no, frames, vnets=None):
        """Queues frames (bytes) for dummy port port_no to receive, as if
        they arrived on a wire; vnets: None or one 10-byte virtio_net_hdr per
        frame.  Returns how many were queued: the rest found the queue full
        (DUMMY_QUEUE_LEN) and count in the port's dummy_rx_queue_drops."""
        frames = [bytes(f) for f in frames]
        if not frames:
            return 0
        lens = ffi.new("uint32_t[]", [len(f) for f in frames])
        cvnets = ffi.NULL
        if vnets is not None:
            cvnets = ffi.new("struct vs_vnet_hdr[]", len(frames))
            ffi.memmove(cvnets, b"".join(bytes(v) for v in vnets), len(frames) * _VNET_SIZE)
        n = lib.vs_dummy_inject(self._dp, port_no, b"".join(frames), lens, len(frames), cvnets)
        if n < 0:
            raise OSError(-n, f"port {port_no} is not a dummy port")
        return n

    def dummy_sent(self, port_no, with_vnet=False):
        """Drains what the datapath sent to dummy port port_no, in order: a
        list of frames (bytes), or of (frame, vnet header bytes) pairs."""
        if self._dummy_buf is None:
            self._dummy_frames = ffi.new("struct vs_dummy_frame[]", DUMMY_BATCH)
            self._dummy_buf = ffi.new("uint8_t[]", DUMMY_BUF)
        out = []
        while True:
            n = lib.vs_dummy_sent(self._dp, port_no, self._dummy_frames, DUMMY_BATCH,
                                  self._dummy_buf, DUMMY_BUF)
            if n < 0:
                raise OSError(-n, f"port {port_no} is not a dummy port")
            buf = ffi.buffer(self._dummy_buf, DUMMY_BUF)
            for i in range(n):
                f = self._dummy_frames[i]
                frame = buf[f.offset:f.offset + f.len]
                out.append((frame, ffi.buffer(ffi.addressof(f, "vnet"), _VNET_SIZE)[:])
                           if with_vnet else frame)
            if not n:
                return out

    def del_port(self, port_no):
        return lib.vs_dp_port_del(self._dp, port_no) == 0

    def port_stats(self, port_no):
        st = ffi.new("struct vs_port_stats *")
        if lib.vs_dp_port_stats(self._dp, port_no, st) < 0:
            return None
        return {name: getattr(st, name) for name in (
            "rx_packets", "rx_bytes", "rx_dropped", "rx_malformed",
            "tx_packets", "tx_bytes", "tx_dropped", "poll_errors", "dead")}

    def stats(self):
        st = ffi.new("struct vs_dp_stats *")
        lib.vs_dp_get_stats(self._dp, st)
        return {name: getattr(st, name) for name in (
            "packets", "batches", "emc_hits", "megaflow_hits", "misses", "upcalls",
            "upcall_drops", "malformed", "samples", "sample_drops", "n_flows", "n_subtables", "n_pmds",
            "busy_ns", "idle_ns", "busy_cycles", "idle_cycles")}

    def set_pmds(self, cpus, busy_poll=False):
        """Runs one poll thread per entry of cpus (None: not pinned); with
        busy_poll they always spin on their ports, otherwise they poll
        adaptively (spin while traffic keeps coming, sleep when it stops)."""
        arr = ffi.new("int[]", [-1 if c is None else c for c in cpus])
        n = lib.vs_dp_set_pmds(self._dp, arr, len(cpus), int(busy_poll))
        if n != len(cpus):
            raise OSError(f"could only start {max(n, 0)} of {len(cpus)} poll threads")

    def set_pmd_maxsleep(self, usec):
        """Load-based sleeping (OVS's other_config:pmd-maxsleep): a spinning
        poll thread whose batches stay under half full sleeps up to usec µs
        between rounds; 0 turns it off."""
        if lib.vs_dp_set_pmd_maxsleep(self._dp, int(usec) * NS_PER_US):
            raise ValueError(f"pmd-maxsleep {usec} µs is out of range")

    def set_pmd_nice(self, nice):
        """The poll threads' nice value (datapath.h, vs_dp_set_pmd_nice):
        below 0 they win more of a CPU they share with the slow path."""
        r = lib.vs_dp_set_pmd_nice(self._dp, int(nice))
        if r == -errno.EINVAL:
            raise ValueError(f"pmd nice {nice} is out of range (-20..19)")
        if r < 0:
            raise PermissionError(-r, f"cannot set the poll threads' nice to {nice}: {os.strerror(-r)}")

    def pmd_stats(self):
        out = ffi.new("struct vs_pmd_stats[]", lib.VS_MAX_PMDS)
        n = lib.vs_dp_pmd_stats(self._dp, out, lib.VS_MAX_PMDS)
        return [{name: getattr(out[i], name) for name in (
            "cpu", "busy_poll", "packets", "batches", "emc_hits", "megaflow_hits", "misses", "upcalls",
            "upcall_drops", "malformed", "samples", "sample_drops", "busy_ns", "idle_ns",
            "busy_cycles", "idle_cycles", "rx_cycles", "process_cycles", "tx_cycles", "sleeps",
            "wakeups")}
            for i in range(n)]

    @staticmethod
    def _c_key(values):
        """A key or mask given as a dict, or already packed (flowkey.pack)."""
        packed = values if isinstance(values, bytes) else flowkey.pack(values)
        return ffi.from_buffer("struct vs_key *", packed)

    def flow_put(self, key, mask, actions):
        """Installs a megaflow; returns True if it was new."""
        words, n = encode_actions(actions)
        r = lib.vs_dp_flow_put(self._dp, self._c_key(key), self._c_key(mask), words, n)
        if r < 0:
            raise MemoryError("datapath flow table could not grow")
        return r == 0

    def flow_del(self, key, mask):
        return lib.vs_dp_flow_del(self._dp, self._c_key(key), self._c_key(mask)) == 0

    def flow_del_stats(self, key, mask):
        """Deletes a megaflow and returns its final MegaflowStats (None if
        there was none), so that its last packets can still be reported."""
        final = ffi.new("struct vs_flow_dump *")
        if lib.vs_dp_flow_del_stats(self._dp, self._c_key(key), self._c_key(mask), final) < 0:
            return None
        return self._megaflow_stats(final)

    def flow_flush(self):
        lib.vs_dp_flow_flush(self._dp)

    def flow_dump(self):
        """Every megaflow's MegaflowStats (read chunk by chunk: see
        flow_dump_chunks for what a walk under change may see)."""
        return [stats for chunk in self.flow_dump_chunks() for stats in chunk]

    def flow_dump_chunks(self, chunk=DUMP_CHUNK):
        """The megaflows as lists of at most `chunk` MegaflowStats, each read
        by one control call that holds the datapath's control mutex for that
        chunk only (vs_dp_flow_dump_next).  The caller may do other work
        between two chunks; flows added or deleted meanwhile may be missed or
        appear twice, never stale within a chunk (each is read when asked for).
        A fresh record array per dump (0.7 MB, zeroed by cffi): reusing one
        was tried for the revalidator's cost on the poll thread's CPU (issue
        16) and was not shown to pay: its round's first step took 0.37-1.09
        ms of CPU with a fresh array, 0.17-0.86 ms with a reused one (5
        rounds each, 3 megaflows: ranges overlap), the array itself 12-230
        µs, for 0.7 MB held for good.  (The revalidator's other rounds use
        flow_dump_active_chunks, whose small kept array and lazily decoded
        records did pay: see there.)"""
        out = ffi.new("struct vs_flow_dump[]", chunk)
        cursor, done = ffi.new("uint64_t *"), ffi.new("int *")
        while not done[0]:
            n = lib.vs_dp_flow_dump_next(self._dp, cursor, out, chunk, done)
            yield [self._megaflow_stats(d) for d in out[0:n]]

    def flow_dump_active_chunks(self, since_ns, idle_before_ns, chunk=DUMP_CHUNK):
        """The revalidator's filtered dump (vs_dp_flow_dump_active): as
        flow_dump_chunks, but only the megaflows hit at or after since_ns,
        those the kernel tier brought new traffic for, and those idle (last
        hit, or install if never hit, before idle_before_ns); both on the
        datapath's clock (now_ns).  The others are skipped in C.  A chunk
        may be empty (the C walk visits a bounded stretch per call).

        Records are DumpedMegaflow (key, mask and actions decoded when
        read), read through one record array kept for the next rounds: it
        starts small and doubles, up to `chunk`, when a call fills it, so a
        round with a few active megaflows neither allocates nor zeroes 0.7
        MB (a fresh DUMP_CHUNK array per round cost ~230 µs of the poll
        thread's CPU, cold: issue 16), and a busy one soon reads `chunk`
        per call.  Each chunk is converted before it is yielded, so walks
        interleaved by their callers share the array safely."""
        cursor, done = ffi.new("uint64_t *"), ffi.new("int *")
        skipped = ffi.new("uint64_t *")
        if self._active_records is None:
            self._grow_active_records(ACTIVE_DUMP_FIRST)
        while not done[0]:
            want = min(chunk, self._active_cap)
            n = lib.vs_dp_flow_dump_active(self._dp, cursor, since_ns, idle_before_ns,
                                           self._active_records, want, done, skipped)
            records = _dumped_megaflows(self._active_records, n)
            if n == want < chunk:  # full: the next calls may find as many
                self._grow_active_records(min(chunk, 2 * want))
            yield records

    def _grow_active_records(self, n):
        self._active_records, self._active_cap = ffi.new("struct vs_flow_dump[]", n), n

    @staticmethod
    def _megaflow_stats(d):
        """A MegaflowStats from a struct vs_flow_dump."""
        size = ffi.sizeof("struct vs_key")
        packed_key = ffi.buffer(ffi.addressof(d, "key"), size)[:]
        packed_mask = ffi.buffer(ffi.addressof(d, "mask"), size)[:]
        return MegaflowStats(
            key=flowkey.unpack(packed_key), mask=flowkey.unpack(packed_mask),
            actions=decode_actions(d.actions, d.n_actions), packets=d.packets,
            bytes=d.bytes, used_ns=d.used_ns, tcp_flags=d.tcp_flags,
            packed_key=packed_key, packed_mask=packed_mask)

    def recv_upcalls(self):
        """Drains up to UPCALL_BATCH upcalls.  The C structs are read as one
        buffer and unpacked with struct: this runs for every flow setup."""
        n = lib.vs_dp_recv_upcalls(self._dp, self._ups, UPCALL_BATCH, self._buf, UPCALL_BUF)
        if not n:
            return []
        raw = ffi.buffer(self._ups, n * _UPCALL_SIZE)[:]
        frames = ffi.buffer(self._buf, UPCALL_BUF)
        result = []
        for i in range(n):
            base = i * _UPCALL_SIZE
            in_port, cookie, length, offset = _UPCALL_HEAD.unpack_from(raw, base)
            packed_key = raw[base + _UPCALL_KEY:base + _UPCALL_KEY + flowkey.PACKED_SIZE]
            result.append(Upcall(
                in_port=in_port, cookie=cookie, key=flowkey.unpack(packed_key),
                frame=frames[offset:offset + length],
                vnet=raw[base + _UPCALL_VNET:base + _UPCALL_VNET + _VNET_SIZE],
                packed_key=packed_key))
        return result

    def recv_samples(self):
        """Drains up to SAMPLE_BATCH samples (DatapathSample).  Call it after
        recv_upcalls on a wake-up of upcall_fd: that call re-arms the eventfd,
        which SAMPLE writes too.  Read like recv_upcalls: one buffer, struct."""
        n = lib.vs_dp_recv_samples(self._dp, self._samples, SAMPLE_BATCH, self._sample_buf, SAMPLE_BUF)
        if not n:
            return []
        raw = ffi.buffer(self._samples, n * _SAMPLE_SIZE)[:]
        headers = ffi.buffer(self._sample_buf, SAMPLE_BUF)
        result = []
        for i in range(n):
            base = i * _SAMPLE_SIZE
            (in_port, cookie, out_port, frame_len, length, offset, pool,
             drops) = _SAMPLE_HEAD.unpack_from(raw, base)
            key = base + _SAMPLE_KEY
            result.append(DatapathSample(
                in_port=in_port, cookie=cookie, out_port=out_port, frame_len=frame_len,
                header=headers[offset:offset + length], pool=pool, drops=drops,
                key=flowkey.unpack(raw[key:key + flowkey.PACKED_SIZE])))
        return result

    def execute(self, in_port, frame, actions, vnet=None):
        words, n = encode_actions(actions)
        # The header bytes from an upcall are passed in place, not copied.
        cvnet = ffi.from_buffer("struct vs_vnet_hdr *", vnet) if vnet else ffi.NULL
        lib.vs_dp_execute(self._dp, in_port, frame, len(frame), cvnet, words, n)


def parse_frame(frame, in_port=0):
    """Parses one frame with the C parser: returns the key dict, or None if
    the fast path would count it malformed."""
    key = ffi.new("struct vs_key *")
    key.in_port = in_port
    flags = ffi.new("uint16_t *")
    if lib.vs_parse_frame(frame, len(frame), key, flags) < 0:
        return None
    result = flowkey.from_c(key)
    result["tcp_flags"] = flags[0]
    return result
