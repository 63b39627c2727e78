"""Bond and CFM settings survive a vswitchd restart, and bad values for them
are refused without touching the database.

Layout: namespace `sw` runs vswitchd with br0 = {bond0 = {a1, a2} (LACP
active, balance-tcp, fast, updelay 100), c (cfm_mpid=5, 100 ms)}; the other
ends of the three veth pairs just sit up in namespace `peer` (no LACP or CFM
partner, so the bond stays unnegotiated and CFM reports `recv`; only the
configuration and that the engines run it again is checked here).
"""
import contextlib

import pytest
from helpers import netns
from helpers.vswitchd import VSwitchd
from helpers.wait import wait_until

pytestmark = pytest.mark.timeout(90)

BOND_COLUMNS = ("bond_mode", "lacp", "bond_updelay", "other_config")


@contextlib.contextmanager
def configured_switch(tmp_path):
    with netns.namespace("rsw") as sw, netns.namespace("rpeer") as peer:
        a1, _ = netns.veth_pair(sw, peer, "r")
        a2, _ = netns.veth_pair(sw, peer, "r")
        c, _ = netns.veth_pair(sw, peer, "r")
        sw_ = type("Switch", (), dict(ns=sw, workdir=str(tmp_path), ours=(a1, a2), c=c))
        sw_.vs = VSwitchd(sw, str(tmp_path)).start()
        try:
            sw_.vs.vsctl("add-br", "br0")
            sw_.vs.vsctl("add-bond", "br0", "bond0", a1, a2, "lacp=active",
                         "bond_mode=balance-tcp", "other_config:lacp-time=fast",
                         "bond_updelay=100")
            sw_.vs.vsctl("add-port", "br0", c, "--", "set", "interface", c,
                         "cfm_mpid=5", "other_config:cfm_interval=100")
            yield sw_
        finally:
            sw_.vs.stop()


def settings(sw):
    return (sw.vs.vsctl("get", "port", "bond0", *BOND_COLUMNS),
            sw.vs.vsctl("get", "interface", sw.c, "cfm_mpid"),
            sw.vs.vsctl("get", "interface", sw.c, "other_config"))


def running_config_listed(sw):
    """bond-show, lacp-show and cfm-show list the bond and the MEP."""
    bond = sw.vs.json("bond-show", "bond0")
    assert len(bond) == 1 and bond[0]["name"] == "bond0"
    assert bond[0]["bond_mode"] == "balance-tcp" and bond[0]["updelay"] == 100
    assert set(bond[0]["members"]) == set(sw.ours)
    assert bond[0]["lacp_status"] != "off"
    lacp = sw.vs.json("lacp-show", "bond0")
    assert len(lacp) == 1 and lacp[0]["name"] == "bond0"
    assert lacp[0]["status"] == "active" and lacp[0]["lacp_time"] == "fast"
    assert set(lacp[0]["members"]) == set(sw.ours)
    cfm = sw.vs.json("cfm-show", sw.c)[0]["interfaces"][sw.c]
    assert cfm["mpid"] == 5 and cfm["interval_ms"] == 100
    text = sw.vs.vsctl("cfm-show")
    assert f"---- {sw.c} ----" in text and "MPID 5:" in text and "interval: 100ms" in text
    assert "bond0" in sw.vs.vsctl("bond-show") and "bond0" in sw.vs.vsctl("lacp-show")
    return True


def test_bond_and_cfm_settings_survive_a_restart(tmp_path):
    with configured_switch(tmp_path) as sw:
        before = settings(sw)
        assert before[0].split() == ["balance-tcp", "active", "100", "{lacp-time=fast}"]
        assert before[1].strip() == "5"
        assert "cfm_interval" in before[2] and "100" in before[2]
        wait_until(lambda: running_config_listed(sw), 5, what="bond/lacp/cfm shown")
        listed_port = sw.vs.vsctl("list", "port", "bond0")
        listed_iface = sw.vs.vsctl("list", "interface", sw.c)

        assert sw.vs.stop(), "vswitchd did not exit on SIGTERM"
        sw.vs = VSwitchd(sw.ns, sw.workdir).start()

        assert settings(sw) == before
        assert sw.vs.vsctl("list", "port", "bond0") == listed_port
        # Read-only status columns (cfm_fault, ...) may be rewritten by the
        # new daemon; the configured ones must not change.
        for column in ("name", "cfm_mpid", "other_config", "_uuid"):
            assert sw.vs.vsctl("get", "interface", sw.c, column) in listed_iface
        wait_until(lambda: running_config_listed(sw), 5, what="bond/lacp/cfm shown after restart")


@pytest.mark.parametrize("cmd, token", [
    (("set", "port", "bond0", "bond_mode=round-robin"), "round-robin"),
    (("set", "port", "bond0", "other_config:lacp-time=medium"), "medium"),
    (("set", "interface", "{c}", "cfm_mpid=0"), "cfm_mpid"),
], ids=["bond_mode", "lacp-time", "cfm_mpid"])
def test_bad_bond_and_cfm_values_are_refused_and_change_nothing(tmp_path, cmd, token):
    with configured_switch(tmp_path) as sw:
        cmd = [part.format(c=sw.c) for part in cmd]
        port_before = sw.vs.vsctl("list", "port", "bond0")
        before = settings(sw)
        proc = sw.vs.vsctl_proc(*cmd)
        assert proc.returncode != 0, (proc.stdout, proc.stderr)
        assert token in proc.stderr, proc.stderr
        if token == "cfm_mpid":
            assert " 0" in proc.stderr, proc.stderr      # names the bad value too
        assert sw.vs.vsctl("list", "port", "bond0") == port_before
        assert settings(sw) == before
        # ... and the daemon keeps running what it had.
        assert running_config_listed(sw)
        # Still so after a restart (nothing half-written to the database).
        assert sw.vs.stop()
        sw.vs = VSwitchd(sw.ns, sw.workdir).start()
        assert sw.vs.vsctl("list", "port", "bond0") == port_before
        assert settings(sw) == before


def test_lacp_system_id_survives_a_restart(tmp_path):
    """OVS derives it from the bridge's interfaces, so a partner sees the same
    system after the daemon restarts."""
    with configured_switch(tmp_path) as sw:
        first = sw.vs.json("lacp-show", "bond0")[0]["sys_id"]
        assert sw.vs.stop(), "vswitchd did not exit on SIGTERM"
        sw.vs = VSwitchd(sw.ns, sw.workdir).start()
        assert sw.vs.json("lacp-show", "bond0")[0]["sys_id"] == first
