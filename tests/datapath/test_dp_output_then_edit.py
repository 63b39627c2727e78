"""An edit after the last output must not change what that output sends: the
frame is staged and only flushed after the whole action list ran (a mirror's
RSPAN copy went out untagged when a VLAN restore followed it).  On a dummy
port (no root) and an afpacket port on a veth (root)."""
import time

import pytest
from dp_ports import KINDS, datapath_with_ports
from scapy.layers.l2 import Dot1Q, Ether


@pytest.mark.parametrize("kind", KINDS)
def test_last_output_followed_by_an_edit_sends_the_frame_as_it_was(kind):
    with datapath_with_ports(kind, 1) as (dp, [capture]):
        frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x88b5) / (b"x" * 46))
        dp.execute(0, frame, [("push_vlan", 999), ("output", 1), ("pop_vlan", 0)])
        time.sleep(0.3)
        got = [f for f in capture.recv_all() if f[6:12] == frame[6:12]]
    assert len(got) == 1
    assert Ether(got[0]).haslayer(Dot1Q) and Ether(got[0])[Dot1Q].vlan == 999
