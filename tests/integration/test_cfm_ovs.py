"""Our CFM MEP on a raw socket against Open vSwitch's CFM on an interface.

Layout (one namespace per test): OVS bridge br0 (userspace datapath) with
port o (cfm_mpid=1, cfm_interval=100 ms) <-veth-> e, where our engine runs
(MPID 7, 100 ms) through an AF_PACKET socket in a thread with real time.
OVS checks faults every 3.5 intervals and drops a remote MEP it did not hear
during the last check, so it reports loss within 2 x 350 ms; we report it
3.5 intervals after the last CCM.
"""
import contextlib
import time

import pytest
from helpers import netns
from helpers.ovs_peer import OvsPeer, skip_unless_available
from helpers.wait import wait_until
from helpers.rawsock import EngineLoop, RawPort

from vswitch.cfm import CfmEngine, ccm, render_show

INTERVAL = 0.1
OVS_MPID, OUR_MPID = 1, 7
SLACK = 2.0                 # a loaded 2-core CI box

pytestmark = pytest.mark.timeout(60)


@contextlib.contextmanager
def mep_against_ovs(ours=None, theirs=()):
    skip_unless_available()
    with netns.namespace("cfm") as ns, OvsPeer(ns) as ovs:
        o, e = netns.veth_pair(ns, ns, "c")
        ovs.add_bridge("br0")
        ovs.vsctl("add-port", "br0", o, "--", "set", "Interface", o,
                  f"cfm_mpid={OVS_MPID}", f"other_config:cfm_interval={int(INTERVAL * 1000)}",
                  *theirs)
        engine = CfmEngine({"interfaces": {e: {"mpid": OUR_MPID,
                                               "interval_ms": INTERVAL * 1000,
                                               **(ours or {})}}})
        with EngineLoop(engine, {e: RawPort(ns, e)}, accept=ccm.is_cfm) as loop:
            yield ns, ovs, engine, loop, o, e


def ours(loop, engine, e):
    return loop.call(engine.show)["interfaces"][e]


def healthy_both_ways(ovs, engine, loop, o, e, remote=OUR_MPID):
    wait_until(lambda: ours(loop, engine, e)["fault"] == []
               and ours(loop, engine, e)["remote_mpids"] == [OVS_MPID]
               and ovs.cfm_show(o)["fault"] == []
               and ovs.cfm_show(o)["remote_mpids"] == [remote],
               10, what="no fault on either side")


def test_cfm_sees_ovs_and_both_report_loss_after_a_cut():
    with mep_against_ovs() as (ns, ovs, engine, loop, o, e):
        healthy_both_ways(ovs, engine, loop, o, e)
        assert f"Remote MPID {OVS_MPID}" in loop.call(lambda: render_show(engine.show()))
        assert ours(loop, engine, e)["remote_meps"][OVS_MPID]["seq_errors"] == 0
        netns.blackhole(ns, o)
        netns.blackhole(ns, e)
        cut = time.monotonic()
        wait_until(lambda: "recv" in ours(loop, engine, e)["fault"],
                   3.5 * INTERVAL + SLACK, interval=0.02, what="our recv fault")
        ours_at = time.monotonic() - cut
        wait_until(lambda: "recv" in ovs.cfm_show(o)["fault"],
                   7 * INTERVAL + SLACK, interval=0.02, what="OVS recv fault")
        # Exact timing is checked with a fake clock in the unit tests; here only
        # the bound, since a stalled peer on a busy box can only make it later.
        assert ours_at <= 3.5 * INTERVAL + SLACK
        assert ovs.cfm_show(o)["remote_mpids"] == []


def test_cfm_one_way_cut_gives_recv_there_and_rdi_here_then_recovers():
    with mep_against_ovs() as (ns, ovs, engine, loop, o, e):
        healthy_both_ways(ovs, engine, loop, o, e)
        netns.blackhole(ns, e)                  # our CCMs stop reaching OVS
        wait_until(lambda: "recv" in ovs.cfm_show(o)["fault"], 7 * INTERVAL + SLACK,
                   interval=0.02, what="OVS recv fault")
        # OVS now sets RDI in the CCMs that still reach us.
        wait_until(lambda: ours(loop, engine, e)["fault"] == ["rdi"],
                   2 * INTERVAL + SLACK, interval=0.02, what="our rdi fault")
        netns.unblackhole(ns, e)
        healthy_both_ways(ovs, engine, loop, o, e)


def test_cfm_maid_mismatch_is_a_fault_on_both_sides():
    with mep_against_ovs({"ma_name": "not-ovs"}) as (ns, ovs, engine, loop, o, e):
        wait_until(lambda: "maid" in ovs.cfm_show(o)["fault"]
                   and "maid" in ours(loop, engine, e)["fault"],
                   7 * INTERVAL + SLACK, what="maid fault on both sides")
        assert ours(loop, engine, e)["remote_mpids"] == []


def test_cfm_extended_mode_interoperates_with_64_bit_mpids():
    with mep_against_ovs({"mpid": 70000, "extended": True},
                         ("other_config:cfm_extended=true",
                          "other_config:cfm_opstate=down")) as (ns, ovs, engine, loop, o, e):
        healthy_both_ways(ovs, engine, loop, o, e, remote=70000)
        assert ours(loop, engine, e)["remote_opstate"] == "down"
        assert "MPID 1: extended" in ovs.appctl("cfm/show", o)
