"""Our LACP engine on raw sockets against a private Open vSwitch bond.

Layout (one namespace per test): OVS bridge br0 (userspace datapath) with
bond0 = {o1, o2}, lacp=active, lacp-time=fast; veth o1<->e1 and o2<->e2;
our engine runs on e1/e2 through AF_PACKET sockets in a thread with real
time. Cutting = blackhole qdiscs on all four ends (links stay up).
"""
import contextlib
import time

import pytest
from helpers import netns
from helpers.ovs_peer import OvsPeer, skip_unless_available
from helpers.wait import wait_until
from helpers.rawsock import EngineLoop, RawPort

from vswitch.lacp import LacpEngine, pdu, render_show

OUR_SYSTEM = "02:5e:00:00:aa:01"
FAST_EXPIRY = 3.0            # 3 x fast periodic time (802.1AX 5.4.4)
SLACK = 2.0                  # a loaded 2-core CI box

pytestmark = pytest.mark.timeout(60)


@contextlib.contextmanager
def bond_against_ovs(mode="active"):
    skip_unless_available()
    with netns.namespace("lacp") as ns, OvsPeer(ns) as ovs:
        (o1, e1), (o2, e2) = netns.veth_pair(ns, ns, "l"), netns.veth_pair(ns, ns, "l")
        ovs.add_bridge("br0")
        ovs.vsctl("add-bond", "br0", "bond0", o1, o2, "lacp=active",
                  "other_config:lacp-time=fast")
        engine = LacpEngine({"system_id": OUR_SYSTEM, "mode": mode, "rate": "fast",
                             "members": {e1: {"port_id": 11}, e2: {"port_id": 12}}})
        ports = {e: RawPort(ns, e) for e in (e1, e2)}
        with EngineLoop(engine, ports, accept=pdu.is_lacp) as loop:
            yield ns, ovs, engine, loop, (o1, o2), (e1, e2)


def ovs_system_id(ovs) -> str:
    return ovs.lacp_show("bond0")["sys_id"]


def negotiated_both_ways(ovs, engine, loop, ours):
    def ready():
        theirs = ovs.lacp_show("bond0")["members"].values()
        return (sorted(loop.call(engine.enabled_members)) == sorted(ours)
                and all(m["status"] == "current" and m["attached"] and m["may_enable"]
                        for m in theirs))
    wait_until(ready, 15, what="both sides collecting and distributing")


@pytest.mark.parametrize("mode", ["active", "passive"])
def test_lacp_negotiates_with_ovs(mode):
    with bond_against_ovs(mode) as (ns, ovs, engine, loop, theirs, ours):
        negotiated_both_ways(ovs, engine, loop, ours)
        ovs_view = ovs.lacp_show("bond0")
        assert ovs_view["status"] == ["active", "negotiated"]
        for name in theirs:
            m = ovs_view["members"][name]
            assert m["partner sys_id"] == OUR_SYSTEM
            assert m["partner port_id"] in ("11", "12")
            assert {"synchronized", "collecting", "distributing"} <= set(m["partner state"])
            assert ("activity" in m["partner state"]) == (mode == "active")
        show = loop.call(engine.show)
        assert show["negotiated"]
        for name in ours:
            m = show["members"][name]
            assert m["partner"]["sys_id"] == ovs_system_id(ovs)
            assert {"activity", "timeout", "synchronized", "collecting",
                    "distributing"} <= set(m["partner"]["state"])
        assert f"partner sys_id: {ovs_system_id(ovs)}" in loop.call(
            lambda: render_show(engine.show()))
        assert "lacp_status: negotiated" in ovs.appctl("bond/show", "bond0")


def test_lacp_partner_expires_on_both_sides_when_links_are_cut():
    with bond_against_ovs() as (ns, ovs, engine, loop, theirs, ours):
        negotiated_both_ways(ovs, engine, loop, ours)
        for ifname in theirs + ours:
            netns.blackhole(ns, ifname)
        cut = time.monotonic()

        def ours_expired():
            members = loop.call(engine.show)["members"].values()
            return all(m["status"] != "current" for m in members) and \
                loop.call(engine.enabled_members) == []
        wait_until(ours_expired, FAST_EXPIRY + SLACK, interval=0.05,
                   what="our members to leave current")
        ours_at = time.monotonic() - cut

        def theirs_expired():
            members = ovs.lacp_show("bond0")["members"].values()
            return all(m["status"] != "current" and not m["may_enable"] for m in members)
        wait_until(theirs_expired, FAST_EXPIRY + SLACK, interval=0.05,
                   what="OVS members to leave current")
        theirs_at = time.monotonic() - cut
        # Timer-driven, not instant: the last PDU came about 1 s before the cut
        # at the earliest (less a peer's scheduling stall on a busy box).
        assert 1.0 <= ours_at <= FAST_EXPIRY + SLACK
        assert theirs_at <= FAST_EXPIRY + SLACK
        # Expired turns into defaulted after another short timeout.
        wait_until(lambda: all(m["status"] == "defaulted" for m in
                               loop.call(engine.show)["members"].values()),
                   FAST_EXPIRY + SLACK, what="our members defaulted")
        for name in ours:
            assert loop.call(engine.show)["members"][name]["partner"]["sys_id"] \
                == "00:00:00:00:00:00"
