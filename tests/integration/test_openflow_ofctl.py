"""The real ovs-ofctl (OpenFlow 1.0 and 1.3) against a vswitch bridge's mgmt
socket, with hosts in namespaces pinging through the flows it installs."""
import re

import pytest

from helpers import netns
from helpers.vswitchd import have, wait_for
from test_switch_forwarding import topo  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.timeout(120), pytest.mark.skipif(not have("ovs-ofctl"), reason="needs ovs-ofctl")]


@pytest.fixture
def net(topo):
    """The forwarding tests' switch and br0, with hosts p1 and p2 (ofports 1, 2)."""
    for i in (1, 2):
        topo.veth_host(f"p{i}", f"10.0.0.{i}")
    topo.mgmt = f"unix:{topo.vs.rundir}/br0.mgmt"
    return topo


def ofctl(t, version, command, *args):
    options = [a for a in args if a.startswith("--")]
    args = [a for a in args if not a.startswith("--")]
    proc = netns.run(t.sw, "ovs-ofctl", "-O", version, *options, command, t.mgmt, *args, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def flows(t, version="OpenFlow13"):
    """dump-flows -> {match+actions text: n_packets}."""
    out = {}
    for line in ofctl(t, version, "dump-flows").splitlines():
        m = re.search(r"n_packets=(\d+),.* (\S*actions=\S+)", line)
        if m:
            head = line.split("n_bytes=")[1].split(", ", 1)[1] if ", " in line.split("n_bytes=")[1] else ""
            out[head.strip()] = int(m.group(1))
    return out


def test_ovs_ofctl_add_modify_delete_dump_with_traffic(net):
    t = net
    assert "dpid:" in ofctl(t, "OpenFlow13", "show")
    assert ofctl(t, "OpenFlow13", "show").count("addr:") == 3   # p1, p2, LOCAL
    ofctl(t, "OpenFlow13", "add-flow", "priority=10,in_port=1,actions=output:2")
    ofctl(t, "OpenFlow10", "add-flow", "priority=10,in_port=2,actions=output:1")
    assert t.ping("p1", "p2")
    f = wait_for(lambda: (lambda d: d if all(n > 0 for n in d.values()) else None)(flows(t)),
                 what="n_packets to rise on both flows")
    assert set(f) == {"priority=10,in_port=1 actions=output:2", "priority=10,in_port=2 actions=output:1"}
    before = f["priority=10,in_port=1 actions=output:2"]
    assert t.ping("p1", "p2", count=3)
    wait_for(lambda: flows(t, "OpenFlow10")["priority=10,in_port=1 actions=output:2"] >= before + 3,
             what="counters to rise under more traffic (OpenFlow 1.0 dump)")

    # modify (OF1.0): p1's traffic is now dropped; ovs-ofctl waits for our barrier
    # reply, so no megaflow may still forward the old way.
    ofctl(t, "OpenFlow10", "mod-flows", "in_port=1,actions=drop")
    assert "priority=10,in_port=1 actions=drop" in flows(t)
    assert not t.ping("p1", "p2", count=2)

    # delete-strict one flow (OF1.3): the other stays; misses drop in OF1.3
    ofctl(t, "OpenFlow13", "del-flows", "--strict", "priority=10,in_port=1")
    assert list(flows(t)) == ["priority=10,in_port=2 actions=output:1"]
    assert not t.ping("p1", "p2", count=1)

    # no flows left and no controller: the bridge is a NORMAL switch again
    ofctl(t, "OpenFlow13", "del-flows")
    assert flows(t) == {}
    assert t.ping("p1", "p2")


def test_vsctl_flow_commands_and_trace(net, tmp_path):
    t = net
    path = tmp_path / "flows.txt"
    path.write_text("# two tables\ntable=0,priority=5,ip,actions=goto_table:1\n"
                    "table=0,priority=5,arp,actions=NORMAL\n"
                    "table=1,priority=1,ip,nw_dst=10.0.0.2,actions=output:2\n"
                    "table=1,priority=1,ip,nw_dst=10.0.0.1,actions=output:1\n")
    t.vs.vsctl("add-flows", "br0", str(path))
    assert t.ping("p1", "p2")
    dumped = t.vs.json("dump-flows", "br0", "table=1")
    assert {d["match"] for d in dumped} == {"ip,nw_dst=10.0.0.2", "ip,nw_dst=10.0.0.1"}
    wait_for(lambda: all(d["n_packets"] > 0 for d in t.vs.json("dump-flows", "br0", "table=1")),
             what="table 1 counters")
    text = t.vs.vsctl("dump-flows", "br0")
    assert "table=1" in text and "actions=goto_table:1" in text

    trace = t.vs.json("trace", "br0", "in_port=1,ip,nw_dst=10.0.0.2")
    assert trace["datapath_actions"] == "p2", trace
    assert any("goto table 1" in line for line in trace["trace"])
    assert "nw_dst=10.0.0.2" in trace["megaflow"]
    words = t.vs.vsctl("trace", "br0", "in_port=1,ip,nw_dst=10.0.0.9")
    assert "table 1: no match: drop" in words and "Datapath actions: drop" in words

    t.vs.vsctl("mod-flows", "br0", "table=1,ip,nw_dst=10.0.0.2,actions=drop")
    assert t.vs.json("trace", "br0", "in_port=1,ip,nw_dst=10.0.0.2")["datapath_actions"] == "drop"
    t.vs.vsctl("--strict", "del-flows", "br0", "table=0,priority=5,arp")
    assert len(t.vs.json("dump-flows", "br0")) == 3
    tables = t.vs.json("dump-tables", "br0")
    assert tables[0]["active"] == 1 and tables[1]["active"] == 2 and tables[1]["lookup"] > 0

    t.vs.vsctl("add-group", "br0", "group_id=7,type=all,bucket=output:1,bucket=output:2")
    t.vs.vsctl("add-flow", "br0", "table=0,priority=9,in_port=LOCAL,actions=group:7")
    trace = t.vs.json("trace", "br0", "in_port=LOCAL,dl_dst=ff:ff:ff:ff:ff:ff")
    assert trace["datapath_actions"] == "p1,p2", trace
    assert "group_id=7,type=all" in t.vs.vsctl("dump-groups", "br0")
    proc = t.vs.vsctl_proc("add-flow", "br0", "actions=group:99")
    assert proc.returncode == 1 and "BAD_OUT_GROUP" in proc.stderr
    proc = t.vs.vsctl_proc("add-flow", "br0", "in_port=1,nosuchfield=3,actions=drop")
    assert proc.returncode == 1 and "nosuchfield" in proc.stderr
