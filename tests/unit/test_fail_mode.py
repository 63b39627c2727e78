"""Which pipeline a bridge runs with controllers configured (OVS's fail-open):
standalone takes over only after 3 probe intervals without a controller, and
a connected controller that has installed nothing blackholes nothing."""
from vswitch.ofproto.ofp import Match
from vswitch.ofproto.ofp.messages import FlowMod
from vswitch.ofproto.ofswitch import FAIL_OPEN_PROBES, OFSwitch


class Host:
    def __init__(self):
        self.flushes = 0

    def flush_bridge(self, name):
        self.flushes += 1


def bridge(fail_mode=None, probe_ms=1000):
    ofs = OFSwitch("br0", Host())
    ofs.configure({"controller": ["tcp:127.0.0.1:6653"], "fail_mode": fail_mode,
                   "other_config": {"inactivity-probe": str(probe_ms)}}, 0x020000000001)
    return ofs


def test_standalone_fails_open_only_after_three_probe_intervals():
    ofs = bridge()
    ofs.run(100.0)  # starts looking for a controller
    assert ofs.mode() == "openflow"
    ofs.run(100.0 + FAIL_OPEN_PROBES * 1.0 - 0.5)
    assert ofs.mode() == "openflow"
    flushes = ofs.host.flushes
    ofs.run(100.0 + FAIL_OPEN_PROBES * 1.0)
    assert ofs.mode() == "normal" and ofs.host.flushes == flushes + 1


def test_a_controller_that_installed_nothing_does_not_blackhole():
    ofs = bridge()
    ofs.connected[1] = 4  # an OF1.3 controller connects
    ofs.run(10.0)
    assert ofs.mode() == "normal"
    ofs.flow_mod(FlowMod(command=0, match=Match(), priority=0, instructions=[]), 10.5)
    assert ofs.mode() == "openflow"
    # It dies: the installed flows keep working until standalone fails open.
    ofs.connected.clear()
    ofs.run(11.0)
    assert ofs.mode() == "openflow"
    ofs.run(11.0 + FAIL_OPEN_PROBES)
    assert ofs.mode() == "normal"
    # A new controller starts afresh: NORMAL until it programs the switch.
    ofs.connected[2] = 4
    ofs.run(20.0)
    assert ofs.mode() == "normal"


def test_of10_controllers_get_misses_at_once_and_secure_never_fails_open():
    ofs = bridge()
    ofs.connected[1] = 1
    assert ofs.mode() == "openflow"  # OF1.0: misses go to the controller
    secure = bridge("secure")
    secure.run(0.0)
    secure.run(1000.0)
    assert secure.mode() == "openflow"
