"""OVS's Flow_Table on a real vswitchd, with OVS's own tools: ovs-vsctl
creates the row over OVSDB and maps table 0 to it; the real ovs-ofctl's
adds beyond flow_limit fail with OFPFMFC_TABLE_FULL (OpenFlow 1.3 and 1.0)
and change nothing; dump-tables and dump-table-features show the name and
the limit; overflow_policy=evict (set with vswitch's vsctl) evicts the rule
that expires soonest; bad values are refused naming them."""
import re

import pytest

from helpers import netns
from helpers.vswitchd import have
from test_ovsdb_vswitchd import ovs_vsctl, switch  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not (have("ovs-ofctl") and have("ovs-vsctl")), reason="needs OVS's tools")]
LIMIT = 3


def ofctl(vs, version, *args, check=True):
    proc = netns.run(vs.ns, "ovs-ofctl", "-O", version, args[0], f"unix:{vs.rundir}/br0.mgmt", *args[1:],
                     check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def flow_dsts(vs):
    out = ofctl(vs, "OpenFlow13", "dump-flows").stdout
    return sorted(int(n) for n in re.findall(r"nw_dst=10\.0\.0\.(\d+)", out))


def test_ovs_tools_limit_a_table_and_see_its_name(switch):  # noqa: F811
    vs = switch
    ovs_vsctl(vs, "add-br", "br0")
    ovs_vsctl(vs, "--", "--id=@ft", "create", "Flow_Table", "name=acl", f"flow_limit={LIMIT}",
              "overflow_policy=refuse", "--", "set", "Bridge", "br0", "flow_tables:0=@ft")
    assert ovs_vsctl(vs, "get", "Flow_Table", "acl", "flow_limit", "overflow_policy").stdout.split() == \
        [str(LIMIT), "refuse"]
    assert vs.json("get", "Bridge", "br0", "flow_tables")[0]["0"] == \
        ovs_vsctl(vs, "get", "Flow_Table", "acl", "_uuid").stdout.strip()

    for n in range(1, LIMIT + 1):
        ofctl(vs, "OpenFlow13", "add-flow", f"priority=10,ip,nw_dst=10.0.0.{n},actions=drop")
    for version in ("OpenFlow13", "OpenFlow10"):
        proc = ofctl(vs, version, "add-flow", "priority=10,ip,nw_dst=10.0.0.99,actions=drop", check=False)
        assert proc.returncode != 0 and "OFPFMFC_TABLE_FULL" in proc.stderr, (version, proc.stderr)
    assert flow_dsts(vs) == list(range(1, LIMIT + 1))
    # replacing an existing rule is not an add; another table has no limit
    ofctl(vs, "OpenFlow13", "add-flow", "priority=10,ip,nw_dst=10.0.0.1,actions=output:1")
    ofctl(vs, "OpenFlow13", "add-flow", "table=1,priority=10,ip,nw_dst=10.0.0.99,actions=drop")
    assert flow_dsts(vs) == list(range(1, LIMIT + 1)) + [99]

    # OF1.0 table stats carry the name and max_entries; OF1.3 table features too
    tables = ofctl(vs, "OpenFlow10", "dump-tables").stdout
    assert re.search(rf'table 0 \("acl"\):\n\s+active={LIMIT}, .*\n\s+max_entries={LIMIT}\n', tables), tables
    assert re.search(r'table 1 \("table1"\):\n\s+active=1, .*\n\s+max_entries=1000000\n', tables), tables
    features = ofctl(vs, "OpenFlow13", "dump-table-features").stdout
    assert re.search(rf'table 0 \("acl"\):\n(\s+.*\n)*?\s+max_entries={LIMIT}\n', features), features[:2000]
    assert re.search(r'table 1 \("table1"\):\n(\s+.*\n)*?\s+max_entries=1000000\n', features), features[:2000]

    # vswitch's vsctl: the same name and limit
    assert vs.vsctl("dump-tables", "br0").splitlines()[0] == \
        f'  table 0 ("acl"): active={LIMIT}, lookup=0, matched=0, max_entries={LIMIT}'

    # evict (vswitch's vsctl on the same row): the timed rule that expires first goes
    vs.vsctl("set", "Flow_Table", "acl", "overflow_policy=evict")
    ofctl(vs, "OpenFlow13", "add-flow", "priority=10,ip,nw_dst=10.0.0.1,hard_timeout=300,actions=drop")
    ofctl(vs, "OpenFlow13", "add-flow", "priority=10,ip,nw_dst=10.0.0.2,hard_timeout=100,actions=drop")
    ofctl(vs, "OpenFlow13", "add-flow", "priority=10,ip,nw_dst=10.0.0.7,actions=drop")
    assert flow_dsts(vs) == [1, 3, 7, 99]
    # nothing evictable left but rule 1: then TABLE_FULL again
    ofctl(vs, "OpenFlow13", "add-flow", "priority=10,ip,nw_dst=10.0.0.8,actions=drop")
    proc = ofctl(vs, "OpenFlow13", "add-flow", "priority=10,ip,nw_dst=10.0.0.9,actions=drop", check=False)
    assert proc.returncode != 0 and "OFPFMFC_TABLE_FULL" in proc.stderr
    assert flow_dsts(vs) == [3, 7, 8, 99]

    # bad values: refused naming them, nothing changed
    for setting, word in (("flow_limit=-1", "-1"), ("overflow_policy=bogus", "bogus")):
        proc = vs.vsctl_proc("set", "Flow_Table", "acl", setting)
        assert proc.returncode != 0 and word in proc.stderr, proc.stderr
        proc = ovs_vsctl(vs, "set", "Flow_Table", "acl", setting, check=False)
        assert proc.returncode != 0 and word in proc.stderr, proc.stderr
    assert ovs_vsctl(vs, "get", "Flow_Table", "acl", "flow_limit", "overflow_policy").stdout.split() == \
        [str(LIMIT), "evict"]
    # unreferenced, the row goes (OVSDB's garbage collection)
    ovs_vsctl(vs, "clear", "Bridge", "br0", "flow_tables")
    assert ovs_vsctl(vs, "list", "Flow_Table").stdout == ""
    ofctl(vs, "OpenFlow13", "add-flow", "priority=10,ip,nw_dst=10.0.0.9,actions=drop")
    assert flow_dsts(vs) == [3, 7, 8, 9, 99]


def test_a_limit_survives_a_restart_and_flows_do_not(switch):  # noqa: F811
    """The Flow_Table row is configuration (stored); flows are not (as OVS):
    after a restart the table is empty, named and limited again."""
    vs = switch
    ovs_vsctl(vs, "add-br", "br0", "--", "--id=@ft", "create", "Flow_Table", "name=acl", "flow_limit=1",
              "--", "set", "Bridge", "br0", "flow_tables:0=@ft")
    ofctl(vs, "OpenFlow13", "add-flow", "priority=10,ip,nw_dst=10.0.0.1,actions=drop")
    assert vs.stop()
    vs.start("--remote", f"punix:{vs.remote}")
    assert flow_dsts(vs) == []
    ofctl(vs, "OpenFlow13", "add-flow", "priority=10,ip,nw_dst=10.0.0.2,actions=drop")
    proc = ofctl(vs, "OpenFlow13", "add-flow", "priority=10,ip,nw_dst=10.0.0.3,actions=drop", check=False)
    assert proc.returncode != 0 and "OFPFMFC_TABLE_FULL" in proc.stderr
    assert flow_dsts(vs) == [2]
    assert 'table 0 ("acl")' in ofctl(vs, "OpenFlow10", "dump-tables").stdout
