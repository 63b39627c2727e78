"""The real ovs-ofctl over OpenFlow 1.0 on a bridge whose rules use OF1.3
instructions and actions: dump-flows shows them as a private OVS 3.1 does
(goto_table as resubmit, write_metadata and set-field of OF1.3 fields as
Nicira actions; write_actions, clear_actions and push_vlan left out; OVS
prints the set-field as "load:" pieces, vswitch sends one reg_load2), and
dump-ports-desc works (OVS's OF1.0 OFPST_PORT_DESC)."""
import re

import pytest

from helpers import netns
from helpers.vswitchd import have, running_vswitchd

pytestmark = [pytest.mark.timeout(120), pytest.mark.skipif(not have("ovs-ofctl"), reason="needs ovs-ofctl")]

FLOWS = [
    "table=0,priority=5,ip,actions=write_actions(output:2),write_metadata:0x5/0xff,goto_table:1",
    "table=1,priority=1,actions=push_vlan:0x88a8,output:2,clear_actions",
    "table=0,priority=4,ipv6,actions=set_field:2001:db8::1->ipv6_src,output:1",
]
# what ovs-ofctl -O OpenFlow10 dump-flows prints (match and actions)
WANT = {
    "priority=5,ip actions=resubmit(,1),write_metadata:0x5/0xff",
    "priority=1 actions=output:2",
    "priority=4,ipv6 actions=set_field:2001:db8::1->ipv6_src,output:1",
}


def test_of10_dump_flows_and_ports_desc_of_an_of13_bridge(tmp_path):
    with netns.namespace("of10") as ns, running_vswitchd(ns, tmp_path) as vs:
        vs.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "protocols=OpenFlow10,OpenFlow13")
        mgmt = f"unix:{vs.rundir}/br0.mgmt"
        for flow in FLOWS:
            netns.run(ns, "ovs-ofctl", "-O", "OpenFlow13", "add-flow", mgmt, flow)
        out = netns.run(ns, "ovs-ofctl", "-O", "OpenFlow10", "dump-flows", mgmt).stdout
        got = {re.sub(r"^.*n_bytes=\d+, ", "", line.strip()) for line in out.splitlines()[1:]}
        assert got == WANT, out
        desc = netns.run(ns, "ovs-ofctl", "-O", "OpenFlow10", "dump-ports-desc", mgmt).stdout
        assert desc.startswith("OFPST_PORT_DESC reply") and "LOCAL(br0): addr:" in desc, desc
