"""The real ovs-vsctl against vswitch's OVSDB server and against Open
vSwitch's own ovsdb-server (a private instance, tests/unit/
test_vsctl_ovs_parity.py's fixture): the same command lines print the
same text, fail with the same messages and leave the same state.  Ours
runs them without --no-wait (ovs-vsctl bumps next_cfg and waits for
cur_cfg, which the daemon's commit path advances); OVS's server has no
ovs-vswitchd, so it gets --no-wait.  Then what vswitch refuses: columns it
does not act on fail the transaction with a constraint violation naming
the column, and nothing changes."""
import re
import shlex
import subprocess
import time

import pytest

from helpers.ovsdb_server import RawClient, ovsdb_thread
from test_vsctl_ovs_parity import ovsdb  # noqa: F401  (a private ovsdb-server: the fixture)

SETUP = ("add-br br0 -- add-port br0 p1 tag=10 trunks=20,30 -- add-port br0 p2 -- add-br br1 "
         "-- add-port br1 p3 -- set Interface p1 type=afxdp options:xdp-mode=native "
         "-- set Bridge br0 other_config:mac-aging-time=60 'external_ids:note=a b' "
         "-- set Port p2 vlan_mode=native-untagged -- set-fail-mode br0 secure "
         "-- set-controller br1 tcp:127.0.0.1:6653 ptcp:6654")

READS = [
    "list-br", "list-ports br0", "list-ifaces br1", "port-to-br p3", "iface-to-br p1", "br-exists br1",
    "get Port p1 trunks tag vlan_mode", "get Interface p1 options type options:xdp-mode",
    "get Bridge br0 other_config external_ids fail_mode other_config:mac-aging-time",
    "get-fail-mode br0", "get-controller br1", "--columns=name,tag,trunks,vlan_mode list Port",
    "--columns=name,type,options list Interface p1 p3", "--columns=name,tag find Port tag=10",
    "--columns=name find Interface type=internal", "--columns=target find Controller",
    "--columns=name,fail_mode,protocols,flood_vlans list Bridge", "show",
    "--columns=name,tag find Port 'trunks{>=}20'",
]

CHANGES = [
    "clear Port p1 trunks -- remove Bridge br0 other_config mac-aging-time -- add Port p2 trunks 5,6",
    "del-port br0 p1 -- del-br br1 -- add-port br0 p4 tag=4 -- del-fail-mode br0",
    "--may-exist add-br br0 -- --may-exist add-port br0 p2 -- --if-exists del-port p9 -- --if-exists del-br br9",
    "set Port p2 tag=[] trunks=[] -- set Interface p2 'external_ids={a=1, b=\"x y\"}'",
    "add-bond br0 bond0 e1 e2 lacp=active bond_mode=balance-tcp other_config:lacp-time=fast "
    "-- set Interface e1 cfm_mpid=5 -- add-bond-iface bond0 e3 -- del-bond-iface e2",
    "-- --id=@m create Mirror name=m0 select_all=true -- add Bridge br0 mirrors @m "
    "-- --id=@n create NetFlow targets=\\\"192.0.2.1:2055\\\" active_timeout=30 -- set Bridge br1 netflow=@n",
    "-- --id=@c create Controller target=\\\"tcp:192.0.2.9:6653\\\" -- add Bridge br0 controller @c "
    "-- set Bridge br0 protocols=OpenFlow13 flood_vlans=7",
    "set-controller br1 ptcp:6655 -- del-controller br0 -- set Bridge br1 'external_ids:k=\"v w\"'",
    "destroy Bridge br0",
    "-- --id=@s create sFlow targets=\\\"192.0.2.2:6343\\\" sampling=64 -- set Bridge br0 sflow=@s "
    "-- destroy NetFlow br1 -- clear Bridge br1 netflow",
    "-- --id=@ft create Flow_Table name=acl flow_limit=1000 overflow_policy=refuse "
    "-- set Bridge br0 flow_tables:0=@ft",
    "-- --id=@ft create Flow_Table name=acl flow_limit=10 -- set Bridge br0 flow_tables:0=@ft "
    "-- --id=@f2 create Flow_Table name=t2 overflow_policy=evict 'external_ids:a=b' "
    "-- set Bridge br1 'flow_tables={2=@f2, 10=@ft}' -- clear Bridge br0 flow_tables",
]

AFTER = ["list-br", "list-ports br0", "list-ifaces br0", "get-controller br0", "get-controller br1",
         "--columns=name,tag,trunks,interfaces,bond_mode,lacp,other_config list Port",
         "--columns=name,type,cfm_mpid,external_ids,options list Interface",
         "--columns=name,select_all,select_src_port list Mirror", "--columns=targets,active_timeout list NetFlow",
         "--columns=targets,sampling list sFlow",
         "--columns=name,protocols,flood_vlans,external_ids,mirrors,netflow,sflow,fail_mode,flow_tables list Bridge",
         "--columns=name,flow_limit,overflow_policy,groups,prefixes,external_ids list Flow_Table", "show"]

ERRORS = [
    "add-br br0", "add-port br0 p1", "add-br p2", "add-bond br1 bb e1 p1", "del-br br9", "del-port br1 p1",
    "del-port br0 br0", "port-to-br p9", "get Bridge br0 other_config:foo", "set Port p9 tag=1",
    "set Port p1 colour=1", "set Port p1 name=x", "set Port p1 tag=5000", "set-fail-mode br0 open",
    "--may-exist add-port br1 p1", "add-br br5 -- add-port br9 p5",
    "create Port name=x", "set Bridge br0 fail_mode=open",
    "-- --id=@ft create Flow_Table flow_limit=-1 -- set Bridge br0 flow_tables:0=@ft",
    "-- --id=@ft create Flow_Table overflow_policy=bogus -- set Bridge br0 flow_tables:0=@ft",
    "-- --id=@ft create Flow_Table name=x -- set Bridge br0 flow_tables:255=@ft",
]
# (ovs-vsctl's destroy of a Bridge row succeeds against both: OVSDB keeps
# the row while Open_vSwitch still names it.)

LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT[0-9:]+Z\|")     # ovs-vsctl's own log lines
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _sorted_tree(lines):
    """show's lines with each level's children sorted (ovs-vsctl prints
    bridges and ports in hash order)."""
    items, i = [], 0
    while i < len(lines):
        indent = len(lines[i]) - len(lines[i].lstrip())
        j = i + 1
        while j < len(lines) and len(lines[j]) - len(lines[j].lstrip()) > indent:
            j += 1
        items.append([lines[i], *_sorted_tree(lines[i + 1:j])])
        i = j
    return [line for item in sorted(items) for line in item]


def canonical(text):
    """uuids -> <uuid>; the records of list/find and the lines of show
    (printed in hash order) sorted; show's lines that only a running switch
    fills in dropped."""
    text = UUID.sub("<uuid>", text)
    lines = [line for line in text.split("\n")
             if not line.strip().startswith(("datapath_type:", "ovs_version:", "<uuid>"))]
    if lines and lines[0].startswith("    Bridge"):
        return "\n".join(_sorted_tree([line for line in lines if line]))
    blocks = "\n".join(lines).split("\n\n")
    return "\n\n".join(sorted(block.strip("\n") for block in blocks))


class Dbs:
    def __init__(self, theirs, ours):
        self.theirs, self.ours = theirs, ours

    @staticmethod
    def run(db, text, wait):
        done = subprocess.run(["ovs-vsctl", *([] if wait else ["--no-wait"]), f"--db={db}", "--timeout=20",
                               *shlex.split(text)], capture_output=True, text=True, timeout=60)
        stderr = "\n".join(line for line in done.stderr.splitlines() if not LOG_LINE.match(line))
        return done.returncode, canonical(done.stdout), UUID.sub("<uuid>", stderr.removeprefix("ovs-vsctl: ").strip())

    def both(self, text):
        return self.run(self.theirs, text, wait=False), self.run(self.ours.remote, text, wait=True)


@pytest.fixture
def dbs(ovsdb, tmp_path):  # noqa: F811
    client = RawClient(ovsdb["db"].removeprefix("unix:"))
    client.call("transact", "Open_vSwitch", {"op": "delete", "table": "Open_vSwitch", "where": []})
    client.close()
    with ovsdb_thread(tmp_path) as srv:
        dbs = Dbs(ovsdb["db"], srv)
        theirs, ours = dbs.both(SETUP)
        assert theirs == ours == (0, "", "")
        yield dbs


@pytest.mark.parametrize("text", READS)
def test_reads_print_the_same(dbs, text):
    theirs, ours = dbs.both(text)
    assert ours == theirs


@pytest.mark.parametrize("text", CHANGES)
def test_changes_leave_the_same_state(dbs, text):
    theirs, ours = dbs.both(text)
    assert ours == theirs
    for read in AFTER:
        theirs, ours = dbs.both(read)
        assert ours == theirs, read


@pytest.mark.parametrize("text", ERRORS)
def test_errors_say_the_same(dbs, text):
    theirs, ours = dbs.both(text)
    assert theirs[0] != 0
    assert ours == theirs
    assert dbs.both("list-br -- list-ports br0") == ((0, "br0\nbr1\np1\np2", ""),) * 2


def test_no_wait_and_the_next_cfg_it_skips(dbs):
    get = "get Open_vSwitch . next_cfg cur_cfg"
    before = dbs.run(dbs.ours.remote, get, wait=False)[1].split("\n")
    assert before[0] == before[1]
    assert dbs.run(dbs.ours.remote, "--no-wait add-port br0 p7", wait=False)[0] == 0
    assert dbs.run(dbs.ours.remote, get, wait=False)[1].split("\n") == before
    assert dbs.run(dbs.ours.remote, "del-port p7", wait=True)[0] == 0
    after = dbs.run(dbs.ours.remote, get, wait=False)[1].split("\n")
    assert int(after[0]) == int(after[1]) == int(before[0]) + 1
    assert dbs.ours.vsctl(["list-ports", "br0"]) == [["p1", "p2"]]


def test_wait_until_returns_when_vsctl_makes_it_true(dbs):
    cmd = ["ovs-vsctl", f"--db={dbs.ours.remote}", "--timeout=20", "wait-until", "Port", "p1", "tag=99",
           "--", "get", "Port", "p1", "tag"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        assert proc.poll() is None
        dbs.ours.vsctl(["set", "Port", "p1", "tag=99"])
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert (proc.returncode, out) == (0, "99\n"), err
    theirs, ours = dbs.both("wait-until Bridge br0 fail_mode=secure -- wait-until Port p2 'vlan_mode=native-untagged'")
    assert theirs == ours == (0, "", "")


@pytest.mark.parametrize("text, column", [
    ("set Bridge br0 stp_enable=true", "Bridge column stp_enable"),
    ("set Bridge br0 datapath_type=system", "Bridge column datapath_type"),
    ("set Interface p1 mtu_request=9000", "Interface column mtu_request"),
    ("set Interface p1 ingress_policing_rate=1000", "Interface column ingress_policing_rate"),
    ("set Port p1 fake_bridge=true", "Port column fake_bridge"),
    # (the IDL orders the insert and the update either way: either is refused first)
    ("set-manager ptcp:6640", ("Open_vSwitch column manager_options", "table Manager")),
    ("set Open_vSwitch . other_config:dpdk-init=true", "Open_vSwitch column other_config"),
    ("set Controller {controller} max_backoff=1000", "Controller column max_backoff"),
    ("set Interface p2 type=gre", 'invalid type \\"gre\\"'),
    ("set Port p2 other_config:colour=red", "unknown key other_config:colour"),
    ("-- --id=@ft create Flow_Table name=acl groups=g -- set Bridge br0 flow_tables:0=@ft", "column groups"),
    ("-- --id=@ft create Flow_Table prefixes=ip_dst -- set Bridge br0 flow_tables:0=@ft", "column prefixes"),
    ("-- --id=@ft create Flow_Table name=acl -- set Bridge br0 flow_tables:254=@ft", "flow_tables key '254'"),
])
def test_what_the_switch_does_not_act_on_is_refused_by_name(dbs, text, column):
    before = dict(dbs.ours.backend.config)
    if "{controller}" in text:
        controller = subprocess.run(["ovs-vsctl", f"--db={dbs.ours.remote}", "--bare", "--columns=_uuid", "find",
                                     "Controller", 'target="ptcp:6654"'], capture_output=True, text=True).stdout
        text = text.format(controller=controller.strip())
    rc, out, err = dbs.run(dbs.ours.remote, text, wait=True)
    assert rc == 1 and "constraint violation" in err, err
    assert any(c in err for c in ((column,) if isinstance(column, str) else column)), err
    assert dbs.ours.backend.config == before


def test_ovs_vsctl_accepts_what_the_switch_states(dbs):
    rc, out, err = dbs.run(dbs.ours.remote, "set Bridge br0 datapath_type=netdev stp_enable=false "
                           "-- get Open_vSwitch . ovs_version db_version iface_types -- get Bridge br0 datapath_type",
                           wait=True)
    from vswitch import __version__
    from vswitch.config.schema import INTERFACE_TYPES
    types = ", ".join(sorted(t for t in INTERFACE_TYPES if t))
    assert (rc, out, err) == (0, f'"{__version__}"\n"8.3.1"\n[{types}]\nnetdev', "")
