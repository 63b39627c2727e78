"""The port-type interface (csrc/netdev_provider.h) through the dummy type,
no root needed: the registry on both sides, whole batches through the poll
thread, bounded queues that drop and count, the virtio-net header carried
through, errors that name their step, and a receive descriptor shared by
several ports (the shape of a tunnel socket) demultiplexed by the type."""
import errno
import os
import select
import struct
import time

import pytest
from dp_ports import needs_root
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from vswitch.datapath import port_types
from helpers.vswitchd import wait_for
from vswitch.datapath.dpif import DUMMY_QUEUE_LEN, Datapath, PortOpenError, drivers, parse_frame

IN_PORT = {"in_port": 0xFFFFFFFF}


def frame(n, size=64, src="02:00:00:00:00:01"):
    head = bytes(Ether(src=src, dst="02:00:00:00:00:02", type=0x88B5))
    return (head + n.to_bytes(4, "big") * size)[:size]


def wait_sent(dp, port_no, n, timeout=5.0):
    got, deadline = [], time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += dp.dummy_sent(port_no)
        if len(got) < n:
            time.sleep(0.01)
    return got


def wait_upcalls(dp, n, timeout=5.0):
    got, deadline = [], time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        if select.select([dp.upcall_fd], [], [], 0.05)[0]:
            got += dp.recv_upcalls()
    return got


@pytest.fixture
def dp():
    d = Datapath(upcall_ring_size=1024)
    try:
        yield d
    finally:
        d.close()


def test_every_registry_driver_is_a_c_port_type_and_the_schema_lists_the_registry():
    from vswitch.config import schema

    assert {"afpacket", "tap", "afxdp", "dummy"} <= set(drivers())
    assert {t.driver for t in port_types.TYPES.values()} <= set(drivers())
    assert schema.INTERFACE_TYPES == list(port_types.TYPES)
    assert "dummy" in schema.INTERFACE_TYPES
    assert [t.name for t in port_types.attempts(port_types.lookup("afxdp"))] == ["afxdp", "afpacket"]
    assert port_types.lookup("afxdp").resolved_options({}) == {"xdp-mode": "best-effort", "xdp-offload": "false"}
    assert port_types.lookup("") is port_types.lookup(None) is port_types.TYPES[""]


def test_a_batch_goes_from_one_dummy_port_to_another_through_a_megaflow(dp):
    dp.add_port(1, "dummy", "d1")
    dp.add_port(2, "dummy", "d2")
    assert dp.port_driver(1) == "dummy" and dp.port_driver(9) is None
    dp.flow_put({"in_port": 1}, IN_PORT, [("push_vlan", 0x2005), ("output", 2)])
    frames = [frame(i, 64 + i) for i in range(200)]
    assert dp.dummy_inject(1, frames) == 200
    out = wait_sent(dp, 2, 200)
    assert [f[:12] + f[16:] for f in out] == frames  # in order, tagged
    assert {f[12:16] for f in out} == {bytes.fromhex("81002005")}
    st1, st2, total = dp.port_stats(1), dp.port_stats(2), dp.stats()
    assert (st1["rx_packets"], st1["rx_bytes"]) == (200, sum(map(len, frames)))
    assert (st2["tx_packets"], st2["tx_bytes"]) == (200, sum(map(len, frames)) + 4 * 200)
    assert total["misses"] == 0 and total["batches"] <= 200 // 32 + 2  # whole batches
    assert dp.port_type_stats(1)["rx_injected"] == 200 and dp.port_type_stats(2)["tx_captured"] == 200
    assert dp.port_type_status(2) == {"rx_queue": "0", "tx_queue": "0"}
    dummy = port_types.lookup("dummy")
    assert set(dp.port_type_status(2)) <= set(dummy.status)
    assert list(dp.port_type_stats(2)) == list(dummy.stats)


def test_a_miss_is_an_upcall_with_its_port_and_key(dp):
    dp.add_port(5, "dummy", "d5")
    f = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2")
              / UDP(sport=7, dport=9) / b"hello")
    dp.dummy_inject(5, [f])
    [up] = wait_upcalls(dp, 1)
    assert (up.in_port, up.cookie, up.frame) == (5, 0, f)
    expect = parse_frame(f, 5)
    del expect["tcp_flags"]
    assert up.key == expect


def test_the_parser_through_a_dummy_port_gives_parse_frames_key_and_counts_malformed(dp):
    """The parser tests' frames, received by the poll thread instead of fed
    to vs_parse_frame: each well-formed one is an upcall whose key is
    parse_frame's; each malformed one is counted and dropped."""
    base = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    good = [base / IP(src="10.0.0.1", dst="10.0.0.2", tos=0x10, ttl=33) / TCP(sport=1234, dport=80, flags="SA"),
            base / Dot1Q(vlan=5, prio=3) / IP() / UDP(sport=53, dport=5353),
            base / Dot1Q(vlan=0) / IP() / ICMP(type=8, code=0),
            base / ARP(op=2, psrc="10.0.0.9", pdst="10.0.0.10", hwsrc="02:00:00:00:00:09"),
            base / IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=1, dport=2),
            base / IP(flags="MF", frag=0) / UDP(sport=1, dport=2) / (b"x" * 8),
            base / IP(frag=10) / (b"x" * 16)]
    good = [bytes(f) for f in good]
    bad = [bytes(base)[:10], bytes(base / IP())[:20], bytes(base / IP() / TCP())[:40]]
    dp.add_port(1, "dummy", "d1")
    dp.dummy_inject(1, good + bad)
    ups = wait_upcalls(dp, len(good))
    assert [u.frame for u in ups] == good
    for u in ups:
        expect = parse_frame(u.frame, 1)
        del expect["tcp_flags"]
        assert u.key == expect
    deadline = time.monotonic() + 5
    while dp.port_stats(1)["rx_malformed"] < len(bad) and time.monotonic() < deadline:
        time.sleep(0.01)
    st = dp.port_stats(1)
    assert (st["rx_packets"], st["rx_malformed"], st["rx_dropped"]) == (len(good + bad), len(bad), len(bad))


def test_queues_are_bounded_and_count_their_drops(dp):
    dp.add_port(1, "dummy", "d1")
    dp.add_port(2, "dummy", "d2")
    # No flow yet: the receive side alone.  One inject fills the queue before
    # the poll thread can take anything (both hold the datapath mutex).
    extra = 40
    assert dp.dummy_inject(1, [frame(i) for i in range(DUMMY_QUEUE_LEN + extra)]) == DUMMY_QUEUE_LEN
    assert dp.port_type_stats(1)["rx_queue_drops"] == extra
    deadline = time.monotonic() + 5
    while dp.port_stats(1)["rx_packets"] < DUMMY_QUEUE_LEN and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dp.port_stats(1)["rx_packets"] == DUMMY_QUEUE_LEN  # all misses
    # The transmit side: nobody reads port 2's queue.
    dp.flow_put({"in_port": 1}, IN_PORT, [("output", 2)])
    for start in range(0, DUMMY_QUEUE_LEN + extra, 256):
        dp.dummy_inject(1, [frame(i) for i in range(start, min(start + 256, DUMMY_QUEUE_LEN + extra))])
        while dp.port_type_status(1)["rx_queue"] != "0" and time.monotonic() < deadline:
            time.sleep(0.01)
    out = dp.dummy_sent(2)
    assert out == [frame(i) for i in range(DUMMY_QUEUE_LEN)]
    assert dp.port_type_stats(2)["tx_queue_drops"] == extra == dp.port_stats(2)["tx_dropped"]
    assert dp.port_stats(2)["tx_packets"] == DUMMY_QUEUE_LEN


def test_the_virtio_net_header_travels_with_the_frame(dp):
    dp.add_port(1, "dummy", "d1")
    dp.add_port(2, "dummy", "d2")
    dp.flow_put({"in_port": 1}, IN_PORT, [("output", 2)])
    f = bytes(Ether() / IP() / TCP() / (b"x" * 3000))
    vnet = struct.pack("<BBHHHH", 1, 1, 54, 1448, 34, 16)  # NEEDS_CSUM, TSO v4
    dp.dummy_inject(1, [f], vnets=[vnet])
    assert wait_sent(dp, 2, 1) == [f]
    dp.dummy_inject(1, [f], vnets=[vnet])
    wait = time.monotonic() + 5
    got = []
    while not got and time.monotonic() < wait:
        got = dp.dummy_sent(2, with_vnet=True)
    assert got == [(f, vnet)]


def test_errors_name_their_step(dp):
    with pytest.raises(PortOpenError) as exc:
        dp.add_port(1, "no-such-type", "x")
    assert exc.value.errno == errno.EPROTONOSUPPORT and exc.value.step == "port type"
    with pytest.raises(PortOpenError) as exc:
        dp.add_port(1, "dummy", "x", {"colour": "red"})
    assert exc.value.errno == errno.EINVAL and exc.value.step == "option colour"
    with pytest.raises(PortOpenError) as exc:
        dp.add_port(1, "afpacket", "no-such-netdev0")
    assert exc.value.errno == errno.ENODEV and exc.value.step == "find device"
    with pytest.raises(PortOpenError) as exc:
        dp.add_port(1, "afxdp", "no-such-netdev0", {"xdp-mode": "sideways"})
    assert exc.value.errno == errno.EINVAL and exc.value.step == "xdp mode"
    dp.add_port(1, "dummy", "x")
    with pytest.raises(PortOpenError) as exc:
        dp.add_port(1, "dummy", "y")
    assert exc.value.errno == errno.EEXIST and exc.value.step == "port number in use"
    with pytest.raises(OSError):
        dp.dummy_inject(2, [frame(0)])  # not a port
    assert dp.port_type_status(2) is None and dp.port_type_stats(2) is None
    assert dp.del_port(1) and not dp.del_port(1)


def test_a_shared_receive_descriptor_is_demultiplexed_by_its_type(dp):
    """Dummy ports of one rx-group share a queue and its eventfd, as vxlan
    ports share a UDP socket: the datapath polls it once (through the
    lowest-numbered port) and each frame counts on, and is looked up with,
    the port the type says it arrived on."""
    dp.set_pmds([None, None])  # the group's ports land on different threads
    for port_no in (1, 2, 3):
        dp.add_port(port_no, "dummy", f"g{port_no}", {"rx-group": "tunnel"})
    dp.add_port(9, "dummy", "out")
    assert dp.port_type_status(2)["rx_group"] == "tunnel"
    for port_no in (2, 3):
        dp.flow_put({"in_port": port_no}, IN_PORT, [("push_vlan", port_no), ("output", 9)])
    dp.dummy_inject(2, [frame(i) for i in range(40)])
    dp.dummy_inject(3, [frame(100 + i) for i in range(40)])
    dp.dummy_inject(1, [frame(200)])  # no flow for port 1: an upcall
    out = wait_sent(dp, 9, 80)
    assert sorted(out) == sorted([f[:12] + bytes.fromhex("81000002") + f[12:] for f in map(frame, range(40))]
                                 + [f[:12] + bytes.fromhex("81000003") + f[12:]
                                    for f in map(frame, range(100, 140))])
    [up] = wait_upcalls(dp, 1)
    assert up.in_port == 1 and up.frame == frame(200)
    assert [dp.port_stats(p)["rx_packets"] for p in (1, 2, 3)] == [1, 40, 40]
    # The port the descriptor was polled through goes: the others still receive.
    assert dp.del_port(1)
    dp.dummy_inject(3, [frame(300 + i) for i in range(5)])
    assert len(wait_sent(dp, 9, 5)) == 5
    assert dp.port_stats(3)["rx_packets"] == 45


@needs_root
def test_real_device_drivers_report_what_the_registry_says():
    from helpers import netns

    with netns.namespace("pt") as ns, netns.entered(ns):
        a, a_peer = netns.veth_pair(ns, ns, prefix="pa")
        x, _ = netns.veth_pair(ns, ns, prefix="px")
        d = Datapath(upcall_ring_size=16)
        try:
            d.add_port(1, "afpacket", a)
            d.add_port(2, "tap", netns.unique("pt"))
            d.add_port(3, "afxdp", x, {"xdp-mode": "generic"})
            # tc_redirect only with tc-offload=true (tests/integration/test_tc_tier.py).
            coalesce = dict.fromkeys(port_types.TCP_COALESCE_STATS, 0)  # nothing sent yet
            assert d.port_type_status(1) == {"tc_offload": "false"}
            assert d.port_type_stats(1) == {"rx_socket_drops": 0, **coalesce}
            assert set(d.port_type_status(1)) <= set(port_types.lookup("afpacket").status)
            assert list(d.port_type_stats(1)) == list(port_types.lookup("afpacket").stats)
            assert d.port_type_status(2) == {} and d.port_type_stats(2) == coalesce
            assert list(d.port_type_stats(2)) == list(port_types.lookup("tap").stats)
            afxdp = port_types.lookup("afxdp")
            assert d.port_type_status(3) == {"xdp_mode": "generic", "xdp_bind": "copy", "n_rxq": "1",
                                                 "xdp_offload": "false"}
            assert list(d.port_type_status(3)) == list(afxdp.status)
            assert list(d.port_type_stats(3)) == list(afxdp.stats)
        finally:
            d.close()


@needs_root
def test_afpacket_counts_what_the_kernel_dropped_for_a_full_socket():
    """The poll thread cannot run while frames arrive (it is pinned to the
    sender's CPU, and the sender runs there as a real-time thread): they
    fill the port's socket receive buffer and the rest are dropped by the
    kernel, which the port reports as rx_socket_drops (summed across reads:
    the kernel's own count resets on every read)."""
    import socket

    from helpers import netns

    sent = 30_000  # several times what a 4 MiB receive buffer holds
    cpu = min(os.sched_getaffinity(0))
    with netns.namespace("pd") as ns, netns.entered(ns):
        a, a_peer = netns.veth_pair(ns, ns, prefix="pd")
        d = Datapath(upcall_ring_size=16)
        affinity = os.sched_getaffinity(0)
        try:
            d.set_pmds([cpu])
            d.add_port(1, "afpacket", a)
            assert d.port_type_stats(1)["rx_socket_drops"] == 0
            frame = bytes.fromhex("020000000002020000000001") + b"\x88\xb5" + bytes(46)
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as tx:
                tx.bind((a_peer, 0))
                os.sched_setaffinity(0, {cpu})
                try:
                    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
                except OSError as e:
                    pytest.skip(f"no real-time priority here: {e}")
                try:
                    for _ in range(sent):
                        tx.send(frame)
                finally:
                    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
            first = d.port_type_stats(1)["rx_socket_drops"]
            assert 0 < first < sent, first
            again = d.port_type_stats(1)["rx_socket_drops"]
            assert again >= first, (first, again)
            # What was not dropped was queued, and the poll thread reads it.
            assert wait_for(lambda: d.port_stats(1)["rx_packets"] == sent - again,
                            what="the queued frames read")
        finally:
            os.sched_setaffinity(0, affinity)
            d.close()
