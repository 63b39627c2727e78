"""vswitch/rtnl_link.py against pyroute2, an independent rtnetlink codec:
messages pyroute2 encodes, and the kernel's own link dump of this
namespace, decode to what pyroute2 decodes; broken framing is refused."""
import socket
import struct

import pytest
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

try:                                    # pyroute2 >= 0.8
    from pyroute2.netlink.rtnl.marshal import MarshalRtnl
except ImportError:                     # pragma: no cover - pyroute2 0.7
    from pyroute2.netlink.rtnl.iprsocket import MarshalRtnl

from vswitch import rtnl_link

NLM_F_REQUEST, NLM_F_MULTI = 0x1, 0x2
RTM_GETLINK = 18


def encoded_link(mtype, index, flags, attrs, seq=7, family=0):
    msg = ifinfmsg()
    msg["header"]["type"] = mtype
    msg["header"]["flags"] = NLM_F_MULTI
    msg["header"]["sequence_number"] = seq
    msg["family"] = family
    msg["index"] = index
    msg["flags"] = flags
    msg["attrs"] = attrs
    msg.encode()
    return bytes(msg.data)


def done(seq=7):
    return struct.pack("=IHHIIi", 20, rtnl_link.NLMSG_DONE, NLM_F_MULTI, seq, 0, 0)


def error(code, seq=7):
    # The kernel echoes the request that failed (here a whole RTM_GETLINK).
    request = struct.pack("=IHHIIBxHiII", 32, RTM_GETLINK, NLM_F_REQUEST, seq, 0, 0, 0, 0, 0, 0)
    return struct.pack("=IHHIIi", 16 + 4 + len(request), rtnl_link.NLMSG_ERROR, 0, seq, 0,
                       -code) + request


def theirs(data):
    """pyroute2's decode: (type, seq, family, index, flags, name, mac, mtu)."""
    out = []
    for m in MarshalRtnl().parse(data):
        hdr = m["header"]
        if hdr["type"] in (rtnl_link.RTM_NEWLINK, rtnl_link.RTM_DELLINK):
            out.append((hdr["type"], hdr["sequence_number"], m["family"], m["index"], m["flags"],
                        m.get_attr("IFLA_IFNAME"), m.get_attr("IFLA_ADDRESS") or None,
                        m.get_attr("IFLA_MTU")))
        else:
            out.append((hdr["type"], hdr["sequence_number"]))
    return out


def ours(data):
    out = []
    for m in rtnl_link.parse(data):
        assert not m.malformed, m
        if m.type in (rtnl_link.RTM_NEWLINK, rtnl_link.RTM_DELLINK):
            out.append((m.type, m.seq, m.family, m.index, m.flags, m.name, m.mac, m.mtu))
        else:
            out.append((m.type, m.seq))
    return out


def test_messages_pyroute2_encodes_decode_alike():
    up = rtnl_link.IFF_UP | rtnl_link.IFF_LOWER_UP
    data = (encoded_link(rtnl_link.RTM_NEWLINK, 5, up,
                         [("IFLA_IFNAME", "veth-a"), ("IFLA_OPERSTATE", "UP"),
                          ("IFLA_ADDRESS", "02:00:00:00:00:01"), ("IFLA_MTU", 1400),
                          ("IFLA_TXQLEN", 1000)])
            + encoded_link(rtnl_link.RTM_DELLINK, 9, 0, [("IFLA_IFNAME", "tap0"),
                                                         ("IFLA_MTU", 65536)])
            + encoded_link(rtnl_link.RTM_NEWLINK, 1, rtnl_link.IFF_UP,
                           [("IFLA_ADDRESS", "00:00:00:00:00:00"), ("IFLA_IFNAME", "lo")],
                           family=7)
            + done())
    decoded = ours(data)
    assert decoded == theirs(data)
    assert decoded[0] == (rtnl_link.RTM_NEWLINK, 7, 0, 5, up, "veth-a", "02:00:00:00:00:01", 1400)
    assert decoded[1][5:] == ("tap0", None, 65536)
    assert decoded[-1] == (rtnl_link.NLMSG_DONE, 7)


def test_the_kernels_link_dump_decodes_as_pyroute2_decodes_it():
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    sock.settimeout(5)
    try:
        sock.bind((0, 0))
        sock.send(rtnl_link.getlink_dump_request(42))   # the kernel checks our request too
        links = []
        while True:
            data = sock.recv(1 << 16)
            decoded = ours(data)
            assert decoded == theirs(data)
            links += [d for d in decoded if d[0] == rtnl_link.RTM_NEWLINK]
            if any(d[0] == rtnl_link.NLMSG_DONE for d in decoded):
                break
    finally:
        sock.close()
    names = {d[5]: d for d in links}
    assert "lo" in names and names["lo"][6] == "00:00:00:00:00:00" and names["lo"][7] > 0


def test_an_error_reply_carries_its_errno_and_an_ack_zero():
    (nack,) = rtnl_link.parse(error(19))
    (ack,) = rtnl_link.parse(error(0))
    assert (nack.type, nack.error, ack.error) == (rtnl_link.NLMSG_ERROR, 19, 0)
    assert [m["header"]["error"].code for m in MarshalRtnl().parse(error(19))] == [19]


@pytest.mark.parametrize("cut", ["header_longer_than_datagram", "length_below_header"])
def test_broken_framing_ends_the_datagram(cut):
    good = encoded_link(rtnl_link.RTM_NEWLINK, 3, 0, [("IFLA_IFNAME", "a")])
    if cut == "header_longer_than_datagram":   # the datagram's last message
        data = good + good[:-4]
    else:
        data = good + struct.pack("=I", 8) + good[4:] + good
    assert [m.name for m in rtnl_link.parse(data)] == ["a"]


def test_an_attribute_overrunning_its_message_marks_it_malformed():
    good = encoded_link(rtnl_link.RTM_NEWLINK, 3, 0, [("IFLA_IFNAME", "a"), ("IFLA_MTU", 1500)])
    bad = bytearray(good)
    first_attr = 16 + rtnl_link.IFINFOMSG.size
    struct.pack_into("=H", bad, first_attr, 200)   # rta_len past the message's end
    short = struct.pack("=IHHII", 20, rtnl_link.RTM_NEWLINK, 0, 7, 0) + b"\0" * 4
    decoded = list(rtnl_link.parse(bytes(bad) + short + good))
    assert [m.malformed for m in decoded] == [True, True, False]
    assert decoded[2].mtu == 1500
