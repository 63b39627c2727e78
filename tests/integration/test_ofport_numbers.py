"""OpenFlow port numbers as OVS hands them out: per bridge, ofport_request
over 1..65279, kept across a restart, and the ones that forward."""
import pytest
from helpers import netns
from helpers.topology import switch_with_bridge
from helpers.vswitchd import VSwitchd, have

pytestmark = pytest.mark.timeout(120)


def ofport(vs, name):
    return int(vs.vsctl("get", "interface", name, "ofport"))


def test_numbers_are_per_bridge_requested_and_survive_a_restart(tmp_path):
    with switch_with_bridge(tmp_path) as topo:
        vs = topo.vs
        vs.vsctl("add-br", "br1")
        topo.veth_host("a1", "10.6.0.1")
        topo.veth_host("a2", "10.6.0.2")
        topo.veth_host("a3", "10.6.0.3", "ofport_request=5000")  # an Interface column
        for name in ("b1", "b2"):
            netns.run(topo.sw, "ip", "link", "add", name, "type", "veth", "peer", "name", name + "p")
            vs.vsctl("add-port", "br1", name)
        assert [ofport(vs, n) for n in ("a1", "a2", "a3")] == [1, 2, 5000]
        assert [ofport(vs, n) for n in ("b1", "b2")] == [1, 2]  # br1 counts on its own
        assert ofport(vs, "br0") == 65534  # LOCAL, as OVS shows it
        # Forwarding by OpenFlow through the requested number.
        vs.vsctl("add-flow", "br0", "in_port=5000,actions=output:2")
        vs.vsctl("add-flow", "br0", "in_port=2,actions=output:5000")
        assert topo.ping("a3", "a2")
        vs.vsctl("del-port", "br0", "a1")
        # A restart brings the same numbers back, not a compacted 1, 2.
        assert vs.stop()
        topo.vs = vs = VSwitchd(topo.sw, str(tmp_path)).start()
        topo.stack.callback(vs.stop)  # the topology stops only the daemon it started
        assert [ofport(vs, n) for n in ("a2", "a3")] == [2, 5000]
        assert [ofport(vs, n) for n in ("b1", "b2")] == [1, 2]
        if have("ovs-ofctl"):
            import os
            desc = netns.run(topo.sw, "ovs-ofctl", "-O", "OpenFlow13", "dump-ports-desc",
                             f"unix:{os.path.join(vs.rundir, 'br0.mgmt')}").stdout
            assert " 2(a2):" in desc and " 5000(a3):" in desc and "LOCAL(br0):" in desc
