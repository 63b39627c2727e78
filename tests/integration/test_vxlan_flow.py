"""Flow-based VXLAN: one `remote_ip=flow key=flow` port on vswitch host A
reaches two remote VTEPs, steered by OpenFlow (`vsctl add-flow`, ovs-ofctl
syntax): set_field:IP->tun_dst and set_field:VNI->tun_id before output, and
on receive rules that match tun_id and tun_src.  The far ends: vswitch host
B with a fixed vxlan port (VNI 100) and a Linux kernel vxlan host K (VNI 200),
on one underlay bridge.  The tunnel rules' counters prove which rule carried
the replies."""
import contextlib
import os
import re

import pytest

from helpers import netns
from helpers.vswitchd import wait_for
from test_vxlan_interop import (INNER, UNDERLAY, Underlay, kernel_vxlan_host, mac, ping,
                                vswitch_host)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    base = tmp_path_factory.mktemp("vxflow")
    with contextlib.ExitStack() as stack:
        ul = Underlay(stack)
        a = vswitch_host(stack, ul, "a", str(base / "a"), peers=())
        a[1].vsctl("add-port", "br0", "vxf", "--", "set", "interface", "vxf", "type=vxlan",
                   "options:remote_ip=flow", "options:key=flow")
        b = vswitch_host(stack, ul, "b", str(base / "b"), peers=("a",))
        k = kernel_vxlan_host(stack, ul, peers=("a",))
        # kernel_vxlan_host uses VNI 100: K gets its own VNI 200 here.
        netns.run(k, "ip", "link", "del", "vxlan0")
        netns.run(k, "ip", "link", "add", "vxlan0", "type", "vxlan", "id", "200", "dstport", "4789",
                  "local", UNDERLAY["k"], "remote", UNDERLAY["a"], "dev", "ul0")
        netns.run(k, "ip", "addr", "add", f"{INNER['k']}/24", "dev", "vxlan0")
        netns.run(k, "ip", "link", "set", "vxlan0", "up")
        yield {"a": a, "b": b, "k": k}


def test_one_flow_port_two_remote_vteps(net):
    (_, vsa, ha), (_, _, hb), k = net["a"], net["b"], net["k"]
    to_b = f"set_field:{UNDERLAY['b']}->tun_dst,set_field:100->tun_id,output:vxf"
    to_k = f"set_field:{UNDERLAY['k']}->tun_dst,set_field:200->tun_id,output:vxf"
    flows = [
        "priority=0,actions=drop",
        f"priority=10,in_port=p1,dl_dst={mac(hb, 'eth0')},actions={to_b}",
        f"priority=10,in_port=p1,dl_dst={mac(k, 'vxlan0')},actions={to_k}",
        f"priority=5,in_port=p1,dl_dst=ff:ff:ff:ff:ff:ff,actions={to_b},{to_k}",
        f"priority=10,in_port=vxf,tun_id=100,tun_src={UNDERLAY['b']},actions=output:p1",
        "priority=10,in_port=vxf,tun_id=200,actions=output:p1",
    ]
    vsa.vsctl("del-flows", "br0")
    for flow in flows:
        vsa.vsctl("add-flow", "br0", flow)
    assert wait_for(lambda: ping(ha, INNER["b"], count=1), timeout=10, what="a -> b via the flow port")
    assert ping(ha, INNER["b"]) and ping(hb, INNER["a"])
    assert ping(ha, INNER["k"]) and ping(k, INNER["a"])
    assert ping(ha, INNER["k"], "-s", "1400", "-M", "do")

    def packets(pattern):
        dump = vsa.vsctl("dump-flows", "br0")
        line = next(ln for ln in dump.splitlines() if re.search(pattern, ln))
        return int(re.search(r"n_packets=(\d+)", line).group(1))

    # (rule counters follow the megaflows' at the revalidator's pace)
    wait_for(lambda: packets(r"tun_id=0x64,tun_src=192\.168\.100\.2") >= 6, what="VNI 100 rule hits")
    wait_for(lambda: packets(r"tun_id=0xc8") >= 6, what="VNI 200 rule hits")
    dump = vsa.vsctl("dump-flows", "br0")
    assert "set_field:192.168.100.2->tun_dst" in dump, dump
    # The datapath's megaflows carry the tunnel metadata they matched.
    dp = vsa.vsctl("dpctl-dump-flows")
    assert "tun_id=100" in dp or "tun_id=0x64" in dp, dp
    assert "set_tunnel(" in dp, dp
