"""The rtnetlink messages the link monitor (linkmon.py) reads, decoded, and
the one it sends (a dump of all links), encoded.

Design note: linkmon.py opens and reads its netlink sockets itself; what it
needs decoded is small and fixed — the netlink header of each message in a
datagram, NLMSG_ERROR's code, and of RTM_NEWLINK / RTM_DELLINK the
``ifinfomsg`` (family, index, flags) and three attributes (IFLA_IFNAME,
IFLA_ADDRESS, IFLA_MTU).  It did that through pyroute2's rtnetlink marshal,
but importing pyroute2 runs its whole package (IPDB, NDB, conntrack,
nftables): about 0.33 s of the daemon's 0.58 s start-up, paid by every
restart.  The formats are the kernel's (include/uapi/linux/netlink.h,
rtnetlink.h, if_link.h); tests/unit/test_rtnl_link.py checks this decoder
against messages pyroute2 encodes and decodes itself.

A message shorter than its header says, or one whose attributes overrun
it, ends the datagram's decoding (the kernel never sends one; what follows
it cannot be framed).  A link message too short for its ``ifinfomsg`` is
returned with ``malformed`` set, so the caller skips it.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
NLM_F_REQUEST = 0x1
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
AF_UNSPEC = 0

IFF_UP = 0x1
IFF_LOWER_UP = 0x10000

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
NLA_TYPE_MASK = 0x3FFF              # without NLA_F_NESTED / NLA_F_NET_BYTEORDER

NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_RTATTR = struct.Struct("=HH")      # len, type
_ERRCODE = struct.Struct("=i")      # NLMSG_ERROR: -errno, 0 for an ack
_U32 = struct.Struct("=I")


def _align(n: int) -> int:
    return (n + 3) & ~3


@dataclass(frozen=True)
class RtnlMessage:
    """One netlink message: its header, and what the link monitor reads.

    error: for NLMSG_ERROR, the positive errno (0 for an ack), else None.
    family, index, flags, name, mac, mtu: of RTM_NEWLINK / RTM_DELLINK
    (mac as ``aa:bb:..``, the address in whatever length the link has).
    """
    type: int
    nl_flags: int
    seq: int
    error: int | None = None
    malformed: bool = False
    family: int | None = None
    index: int | None = None
    flags: int = 0
    name: str | None = None
    mac: str | None = None
    mtu: int | None = None


def getlink_dump_request(seq: int) -> bytes:
    """RTM_GETLINK with NLM_F_DUMP: every link of the socket's namespace."""
    return (NLMSGHDR.pack(NLMSGHDR.size + IFINFOMSG.size, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP,
                          seq, 0)
            + IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0))


def parse(data: bytes):
    """The messages of one netlink datagram, in order."""
    off = 0
    while off + NLMSGHDR.size <= len(data):
        length, mtype, nl_flags, seq, _pid = NLMSGHDR.unpack_from(data, off)
        if length < NLMSGHDR.size or off + length > len(data):
            return
        body = memoryview(data)[off + NLMSGHDR.size:off + length]
        yield _decode(mtype, nl_flags, seq, body)
        off += _align(length)


def _decode(mtype: int, nl_flags: int, seq: int, body: memoryview) -> RtnlMessage:
    if mtype == NLMSG_ERROR:
        if len(body) < _ERRCODE.size:
            return RtnlMessage(mtype, nl_flags, seq, malformed=True)
        return RtnlMessage(mtype, nl_flags, seq, error=-_ERRCODE.unpack_from(body)[0])
    if mtype not in (RTM_NEWLINK, RTM_DELLINK):
        return RtnlMessage(mtype, nl_flags, seq)
    if len(body) < IFINFOMSG.size:
        return RtnlMessage(mtype, nl_flags, seq, malformed=True)
    family, _type, index, flags, _change = IFINFOMSG.unpack_from(body)
    attrs = {}
    off = IFINFOMSG.size
    while off + _RTATTR.size <= len(body):
        alen, atype = _RTATTR.unpack_from(body, off)
        if alen < _RTATTR.size or off + alen > len(body):
            return RtnlMessage(mtype, nl_flags, seq, malformed=True)
        attrs[atype & NLA_TYPE_MASK] = body[off + _RTATTR.size:off + alen]
        off += _align(alen)
    name = attrs.get(IFLA_IFNAME)
    mac = attrs.get(IFLA_ADDRESS)
    mtu = attrs.get(IFLA_MTU)
    return RtnlMessage(
        mtype, nl_flags, seq, family=family, index=index, flags=flags,
        name=bytes(name).split(b"\0", 1)[0].decode(errors="replace") if name is not None else None,
        mac=":".join(f"{b:02x}" for b in mac) if mac else None,
        mtu=_U32.unpack_from(mtu)[0] if mtu is not None and len(mtu) >= _U32.size else None)
