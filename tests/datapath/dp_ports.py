"""Datapath ports for the datapath tests, on two kinds of port:

- "dummy": the dummy port type (csrc/netdev_dummy.h), no device and no root;
  a DummyPeer injects what the test sends and reads what the datapath sent;
- "veth": afpacket ports on veth ends in a fresh namespace (root), the peer a
  raw socket on the other end.

Both peers have the same face (send, recv_all, close), so one test body
runs on either: `datapath_with_ports(kind, n)` yields (dp, [peer per port]).
"""
import contextlib
import os
import time

import pytest

from vswitch.datapath.dpif import Datapath

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")
# Parametrize a test over both kinds: @pytest.mark.parametrize("kind", KINDS)
KINDS = ["dummy", pytest.param("veth", marks=needs_root)]


class DummyPeer:
    """The far side of a dummy port: what it sends the port receives."""

    def __init__(self, dp, port_no):
        self.dp, self.port_no = dp, port_no

    def send(self, frame):
        assert self.dp.dummy_inject(self.port_no, [bytes(frame).ljust(60, b"\0")]) == 1

    def recv_all(self):
        return self.dp.dummy_sent(self.port_no)

    def close(self):
        pass


@contextlib.contextmanager
def datapath_with_ports(kind, n_ports, upcall_ring_size=16):
    """A datapath with ports 1..n_ports of `kind`; yields (dp, peers)."""
    if kind == "dummy":
        dp = Datapath(upcall_ring_size=upcall_ring_size)
        try:
            for port_no in range(1, n_ports + 1):
                dp.add_port(port_no, "dummy", f"d{port_no}")
            yield dp, [DummyPeer(dp, port_no) for port_no in range(1, n_ports + 1)]
        finally:
            dp.close()
        return
    from helpers import netns
    from helpers.rawsock import RawPort

    with netns.namespace("smp") as ns, netns.entered(ns):
        dp = Datapath(upcall_ring_size=upcall_ring_size)
        peers = []
        try:
            for port_no in range(1, n_ports + 1):
                a, b = netns.veth_pair(ns, ns, prefix=f"s{port_no}")
                dp.add_port(port_no, "afpacket", a)
                peers.append(RawPort(None, b))
            time.sleep(0.2)
            for p in peers:
                p.recv_all()
            yield dp, peers
        finally:
            for p in peers:
                p.close()
            dp.close()
