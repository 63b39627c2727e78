"""Port-mod config enforced, driven by the real ovs-ofctl mod-port: hosts p1
and p2 ping through "in_port=1->2, in_port=2->1" flows; no-forward and down
on p2 stop it, no-receive on p1 stops it, and undoing each brings it back
(the bridge's megaflows are flushed on every change).  dump-ports-desc shows
the config bits."""
import pytest

from helpers.vswitchd import have
import test_openflow_ofctl
import test_switch_forwarding
from test_openflow_ofctl import ofctl

net = test_openflow_ofctl.net         # the fixtures: hosts p1, p2 on br0
topo = test_switch_forwarding.topo

pytestmark = [pytest.mark.timeout(120), pytest.mark.skipif(not have("ovs-ofctl"), reason="needs ovs-ofctl")]


def port_config(t, port):
    """The config line of `port` in dump-ports-desc, as its words."""
    block = ofctl(t, "OpenFlow13", "dump-ports-desc").split(f" {port}(")[1]
    return block.split("config:")[1].split("\n")[0].split()


def test_mod_port_no_forward_no_receive_and_down_stop_traffic(net):
    t = net
    ofctl(t, "OpenFlow13", "add-flow", "in_port=1,actions=output:2")
    ofctl(t, "OpenFlow13", "add-flow", "in_port=2,actions=output:1")
    assert t.ping("p1", "p2")
    for port, on, off, shown in (("2", "no-forward", "forward", "NO_FWD"),
                                 ("1", "no-receive", "receive", "NO_RECV"),
                                 ("2", "down", "up", "PORT_DOWN")):
        ofctl(t, "OpenFlow13", "mod-port", port, on)
        assert port_config(t, port) == [shown]
        assert not t.ping("p1", "p2", count=2), f"traffic passed with {on} on port {port}"
        ofctl(t, "OpenFlow13", "mod-port", port, off)
        assert t.ping("p1", "p2"), f"traffic stayed stopped after {off} on port {port}"
        assert port_config(t, port) == ["0"]
