"""VXLAN against a private Open vSwitch (userspace/netdev datapath) as the
far VTEP, on the same kind of underlay as test_vxlan_interop.py.

OVS's userspace tunnels need their own setup: the underlay interface is a
port of a netdev bridge `br-phy`, whose internal interface carries the VTEP
address (OVS's tunnel routing and ARP come from it); `br-int` holds the
vxlan port and a namespace behind it.  Checked: pings both ways between the
namespace behind vswitch and the one behind OVS, near-MTU pings with DF, and
each side learned the other's MAC behind its tunnel port.  (vswitch's
underlay veth has tx checksum offload turned off: OVS's userspace datapath
drops datagrams whose UDP checksum a veth left partial; the kernel's vxlan
does not care.)"""
import contextlib

import pytest

from helpers import netns
from helpers.ovs_peer import OvsPeer, skip_unless_available
from helpers.vswitchd import wait_for
from test_vxlan_interop import INNER, UNDERLAY, VNI, Underlay, mac, ping, vswitch_host

OVS_VTEP, OVS_INNER = "192.168.100.4", "10.0.0.4"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    skip_unless_available()
    base = tmp_path_factory.mktemp("vxovs")
    UNDERLAY["o"] = OVS_VTEP
    try:
        with contextlib.ExitStack() as stack:
            ul = Underlay(stack)
            a = vswitch_host(stack, ul, "a", str(base / "a"), peers=("o",))
            # OVS's userspace datapath reads its underlay port without the
            # vnet header, so the partial UDP checksums a veth with tx
            # offload leaves fail its check and it drops our datagrams (the
            # DESIGN note's known OVS quirk): checksum them in software here.
            netns.run(a[0], "ethtool", "-K", "ul0", "tx", "off")
            o = stack.enter_context(netns.namespace("vxo"))
            netns.run(ul.ns, "ip", "link", "add", "uo", "type", "veth", "peer", "name", "ul0",
                      "netns", o)
            netns.run(ul.ns, "ip", "link", "set", "uo", "master", "ubr", "up")
            netns.run(o, "ip", "link", "set", "ul0", "up")
            ovs = stack.enter_context(OvsPeer(o))
            ovs.add_bridge("br-phy")
            ovs.vsctl("add-port", "br-phy", "ul0")
            netns.run(o, "ip", "addr", "add", f"{OVS_VTEP}/24", "dev", "br-phy")
            netns.run(o, "ip", "link", "set", "br-phy", "up")
            ovs.add_bridge("br-int")
            ovs.vsctl("add-port", "br-int", "vx0", "--", "set", "interface", "vx0", "type=vxlan",
                      f"options:remote_ip={UNDERLAY['a']}", f"options:key={VNI}")
            ho = stack.enter_context(netns.namespace("ho"))
            netns.run(o, "ip", "link", "add", "p1", "type", "veth", "peer", "name", "eth0", "netns", ho)
            netns.run(o, "ip", "link", "set", "p1", "up")
            netns.run(ho, "ip", "addr", "add", f"{OVS_INNER}/24", "dev", "eth0")
            netns.run(ho, "ip", "link", "set", "eth0", "up")
            ovs.vsctl("add-port", "br-int", "p1")
            yield {"a": a, "ovs": ovs, "ho": ho}
    finally:
        UNDERLAY.pop("o", None)


def test_ping_both_ways_with_ovs_as_far_vtep(net):
    (_, vsa, ha), ovs, ho = net["a"], net["ovs"], net["ho"]
    try:
        wait_for(lambda: ping(ha, OVS_INNER, count=1), timeout=20, what="vswitch -> OVS")
    except Exception:
        pytest.fail(ovs.appctl("dpctl/dump-flows") + ovs.appctl("tnl/neigh/show")
                    + str(vsa.json("get", "interface", "vxo", "statistics")))
    assert ping(ho, INNER["a"])
    for size in ("1400", "1422"):
        assert ping(ha, OVS_INNER, "-s", size, "-M", "do"), size
        assert ping(ho, INNER["a"], "-s", size, "-M", "do"), size
    fdb = ovs.appctl("fdb/show", "br-int")
    assert mac(ha, "eth0") in fdb
    assert mac(ho, "eth0") in vsa.vsctl("fdb-show", "br0")
