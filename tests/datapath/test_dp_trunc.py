"""TRUNC (a mirror's snaplen): the next output sends a copy cut to the given
length; outputs after it, and the packet itself, stay whole."""
import time

import pytest
from dp_ports import KINDS, datapath_with_ports
from test_dp_sample import frame_of, ours


from vswitch.datapath.dpif import decode_actions, encode_actions, format_actions


def test_trunc_round_trips():
    actions = [("trunc", 64), ("output", 3)]
    assert decode_actions(*encode_actions(actions)) == actions
    assert format_actions(actions) == "trunc(64),3"


def wait_frames(peer, n):
    got, deadline = [], time.monotonic() + 5
    while len(got) < n and time.monotonic() < deadline:
        got += ours(peer.recv_all())
        time.sleep(0.02)
    return got


@pytest.mark.parametrize("kind", KINDS)
def test_trunc_cuts_only_the_next_output(kind):
    with datapath_with_ports(kind, 3) as (dp, [inside, mirror, normal]):
        frames = [frame_of(i, 300) for i in range(5)] + [frame_of(9, 60)]
        dp.flow_put({"in_port": 1}, {"in_port": 0xFFFFFFFF},
                    [("trunc", 64), ("output", 2), ("output", 3)])
        for f in frames:
            inside.send(f)
        cut, whole = wait_frames(mirror, len(frames)), wait_frames(normal, len(frames))
        # a frame shorter than the length goes out whole
        assert cut == [f[:64] for f in frames]
        assert whole == frames
        # execute() (the slow path's first packet) cuts the same way
        dp.execute(1, frames[0], [("output", 3), ("trunc", 100), ("output", 2)])
        assert wait_frames(mirror, 1) == [frames[0][:100]]
        assert wait_frames(normal, 1) == [frames[0]]
