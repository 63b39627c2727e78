"""An edit after the last output must not change what that output sends: the
frame is staged and only flushed after the whole action list ran (a mirror's
RSPAN copy went out untagged when a VLAN restore followed it)."""
import os
import subprocess
import time

import pytest
from helpers import netns
from helpers.rawsock import RawPort
from scapy.layers.l2 import Dot1Q, Ether

from vswitch.datapath.dpif import Datapath

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")


def test_last_output_followed_by_an_edit_sends_the_frame_as_it_was():
    with netns.namespace("oe") as ns, netns.entered(ns):
        subprocess.run(["ip", "link", "add", "oa", "type", "veth", "peer", "name", "ob"], check=True)
        subprocess.run(["ip", "link", "set", "ob", "up"], check=True)
        dp = Datapath(upcall_ring_size=16)
        try:
            dp.add_port(1, "afpacket", "oa")
            capture = RawPort(None, "ob")
            time.sleep(0.2)
            capture.recv_all()
            frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x88b5) / (b"x" * 46))
            dp.execute(0, frame, [("push_vlan", 999), ("output", 1), ("pop_vlan", 0)])
            time.sleep(0.3)
            got = [f for f in capture.recv_all() if f[6:12] == frame[6:12]]
            capture.close()
        finally:
            dp.close()
    assert len(got) == 1
    assert Ether(got[0]).haslayer(Dot1Q) and Ether(got[0])[Dot1Q].vlan == 999
