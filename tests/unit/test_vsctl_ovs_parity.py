"""Differential test against the real ovs-vsctl: the same command chains run
on a private ovsdb-server (Open vSwitch's own schema, no ovs-vswitchd needed
with --no-wait) and on our command engine must print the same text, fail with
the same messages, and leave the same bridges behind."""
import os
import shlex
import signal
import subprocess
import tempfile
import time

import pytest

from test_config_commands import chain
from vswitch.config.commands import CommandError, execute, split_command
from vswitch.config.render import render
from vswitch.config.schema import empty_config

OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"

SETUP = ("add-br br0 -- add-port br0 p1 tag=10 trunks=20,30 -- add-port br0 p2 -- add-br br1 "
         "-- add-port br1 p3 -- set Interface p1 type=afxdp options:xdp-mode=native "
         "-- set Bridge br0 other_config:mac-aging-time=60 'external_ids:note=a b' "
         "-- set Port p2 vlan_mode=native-untagged -- set-fail-mode br0 secure "
         "-- set-controller br1 tcp:127.0.0.1:6653 ptcp:6654")

READS = [
    "list-br", "list-ports br0", "list-ifaces br1", "port-to-br p3", "iface-to-br p1", "port-to-br br1",
    "get Port p1 trunks tag vlan_mode", "get Port p2 vlan_mode tag trunks",
    "get Interface p1 options type options:xdp-mode", "get Interface p3 options type",
    "get Bridge br0 other_config external_ids fail_mode other_config:mac-aging-time",
    "get-fail-mode br0", "get-fail-mode br1", "get-controller br1",
    "--columns=name,tag,trunks,vlan_mode list Port p1 p2",
    "--columns=name,type,options list Interface p1",
    "list-br -- list-ports br1",
]

CHANGES = [
    "clear Port p1 trunks -- remove Bridge br0 other_config mac-aging-time -- add Port p2 trunks 5,6",
    "del-port br0 p1 -- del-br br1 -- add-port br0 p4 tag=4 -- del-fail-mode br0",
    "--may-exist add-br br0 -- --may-exist add-port br0 p2 -- --if-exists del-port p9 -- --if-exists del-br br9",
    "set Port p2 tag=[] trunks=[] -- set Interface p2 'external_ids={a=1, b=\"x y\"}'",
    "add-bond br0 bond0 e1 e2 -- remove Interface p1 options xdp-mode=generic xdp-mode",
]

ERRORS = [
    "add-br br0", "add-port br0 p1", "add-br p2", "add-bond br1 bb e1 p1", "del-br br9",
    "del-port br1 p1", "del-port br9 p1", "del-port br0 br0", "del-port p9", "port-to-br p9",
    "iface-to-br p9", "port-to-br br1", "iface-to-br br0", "get Bridge br0 other_config:foo", "set Port p9 tag=1", "set Port p1 colour=1",
    "set Port p1 tag:x=1", "set Port p1 name=x", "set Port p1 tag", "set-fail-mode br0 open",
    "--may-exist add-port br1 p1", "--may-exist del-br br0", "add-port br0", "list-br x",
    "add-br br5 -- add-port br9 p5",
]


@pytest.fixture(scope="module")
def ovsdb():
    """A private ovsdb-server on a unix socket; stopped by its pidfile's pid."""
    with tempfile.TemporaryDirectory(prefix="vsctl-ovs-", dir="/tmp") as tmp:
        env = dict(os.environ, OVS_RUNDIR=tmp, OVS_DBDIR=tmp, OVS_LOGDIR=tmp, OVS_SYSCONFDIR=tmp)
        db, sock, pidfile = (os.path.join(tmp, name) for name in ("conf.db", "db.sock", "ovsdb-server.pid"))
        subprocess.run(["ovsdb-tool", "create", db, OVS_SCHEMA], check=True, env=env, timeout=30)
        subprocess.run(["ovsdb-server", f"--remote=punix:{sock}", f"--pidfile={pidfile}", "--detach",
                        "--no-chdir", f"--log-file={tmp}/ovsdb-server.log", db], check=True, env=env, timeout=30)
        try:
            yield {"env": env, "db": f"unix:{sock}"}
        finally:
            with open(pidfile) as f:
                pid = int(f.read())
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
                time.sleep(0.05)


class Pair:
    """The same state in real OVSDB (through ovs-vsctl) and in our config."""

    def __init__(self, ovsdb):
        self.ovsdb = ovsdb
        self.config = empty_config()
        assert self.ovs("--if-exists del-br br0 -- --if-exists del-br br1 -- --if-exists del-br br5")[0] == 0

    def ovs(self, text):
        done = subprocess.run(["ovs-vsctl", "--no-wait", f"--db={self.ovsdb['db']}", "--timeout=20",
                               *shlex.split(text)], env=self.ovsdb["env"], capture_output=True,
                              text=True, timeout=60)
        return done.returncode, done.stdout, done.stderr.removeprefix("ovs-vsctl: ").strip()

    def ours(self, text):
        commands = [command for command in chain(text) if command]
        try:
            self.config, outputs = execute(self.config, commands, None)
        except CommandError as exc:
            return 1, "", str(exc)
        rendered = [render(split_command(c)[1], output, split_command(c)[2])
                    for c, output in zip(commands, outputs)]
        printed = "".join(text + "\n" for text in rendered if text)
        return 0, printed, ""

    def both(self, text):
        return self.ovs(text), self.ours(text)


@pytest.fixture
def pair(ovsdb):
    pair = Pair(ovsdb)
    theirs, ours = pair.both(SETUP)
    assert theirs == ours == (0, "", "")
    return pair


@pytest.mark.parametrize("text", READS)
def test_reads_print_the_same(pair, text):
    theirs, ours = pair.both(text)
    assert ours == theirs


@pytest.mark.parametrize("text", CHANGES)
def test_changes_leave_the_same_state(pair, text):
    theirs, ours = pair.both(text)
    assert ours == theirs
    for read in ("list-br", "list-ports br0", "list-ifaces br0", "get Port p2 trunks tag",
                 "get Interface p2 external_ids", "get Interface p1 options", "get-fail-mode br0"):
        theirs, ours = pair.both(read)
        if theirs[0] == 0 or ours[0] == 0:
            assert ours == theirs, read


def test_map_keys_print_as_ovs_vsctl_prints_them(pair):
    """String keys that look like numbers stay quoted, in string order;
    the integer keys of Bridge flow_tables print bare, in numeric order
    (the two databases make different uuids: compared with uuids masked)."""
    theirs, ours = pair.both("set Interface p1 external_ids:10=x external_ids:9=y "
                             "-- get Interface p1 external_ids")
    assert ours == theirs and '"10"=x' in ours[1]
    theirs, ours = pair.both("--id=@ft create Flow_Table name=acl -- set Bridge br0 flow_tables:10=@ft "
                             "flow_tables:2=@ft -- get Bridge br0 flow_tables -- --columns=flow_tables list Bridge br0")
    assert mask_uuids(ours) == mask_uuids(theirs) and "{2=" in ours[1]


def mask_uuids(result):
    return tuple(_UUID_TEXT.sub("UUID", part) if isinstance(part, str) else part for part in result)


@pytest.mark.parametrize("text", ERRORS)
def test_errors_say_the_same(pair, text):
    theirs, ours = pair.both(text)
    assert theirs[0] == 1 and theirs[1] == ""
    assert ours == theirs
    assert pair.both("list-br -- list-ports br0 -- list-ports br1") == ((0, "br0\nbr1\np1\np2\np3\n", ""),) * 2


def test_get_if_exists_of_a_missing_key_prints_nothing(pair):
    # ovs-vsctl prints an empty line, we print no line: the same to `$(...)`.
    text = "--if-exists get Bridge br0 other_config:absent"
    theirs, ours = pair.both(text)
    assert theirs == (0, "\n", "") and ours == (0, "", "")


def test_br_exists_exit_status(pair):
    assert pair.ovs("br-exists br1")[0] == 0 and pair.ours("br-exists br1") == (0, "", "")
    assert pair.ovs("br-exists br9")[0] == 2
    _, outputs = execute(pair.config, [["br-exists", "br9"]])
    assert outputs == [False]


# ---------------------------------------------------------------- bonds, LACP and CFM settings

BOND_SETUP = (SETUP + " -- --fake-iface add-bond br0 bond0 e1 e2 lacp=active bond_mode=balance-tcp "
              "other_config:lacp-time=fast bond_updelay=100 -- set Interface e1 cfm_mpid=5 "
              "other_config:cfm_interval=100 other_config:lacp-port-priority=10")

BOND_READS = [
    "get Port bond0 bond_fake_iface bond_updelay bond_downdelay lacp bond_mode other_config",
    "get Port p1 bond_fake_iface bond_updelay bond_mode",
    "get Interface e1 cfm_mpid other_config other_config:cfm_interval", "get Interface e2 cfm_mpid",
    "--columns=name,bond_mode,lacp,bond_updelay,bond_downdelay,bond_fake_iface list Port bond0 p2",
    "--columns=name,cfm_mpid,other_config list Interface e1 e2",
    "list-ifaces br0", "iface-to-br e2", "port-to-br bond0",
]

BOND_CHANGES = [
    "add-bond-iface bond0 e3", "--may-exist add-bond-iface bond0 e1", "del-bond-iface e1",
    "del-bond-iface bond0 e2 -- add-bond-iface bond0 e4", "--if-exists del-bond-iface e9",
    "--if-exists del-bond-iface bond0 e9", "--may-exist add-bond br0 bond0 e2 e1",
    "set Port bond0 bond_updelay=5 bond_downdelay=7 bond_fake_iface=false "
    "other_config:bond-rebalance-interval=0 other_config:lacp-system-priority=7 -- clear Interface e1 cfm_mpid",
    "add-bond br1 bond1 e5 e6 tag=3 -- del-port bond0",
    "add-bond br0 bond2 e7 e8 bond_mode=active-backup other_config:bond-primary=e8 "
    "-- set Interface e7 cfm_mpid=8191 other_config:cfm_extended=false other_config:cfm_ccm_vlan=random",
    "set Interface e2 cfm_mpid=70000 other_config:cfm_extended=true other_config:cfm_md_level=3",
]

BOND_ERRORS = [
    "add-bond-iface bond0 e1", "--may-exist add-bond-iface p1 e1", "--may-exist add-bond-iface bond0 p1",
    "add-bond-iface br0 e9", "add-bond-iface p9 e9", "add-bond-iface bond0 br1", "add-bond-iface bond0 p1",
    "add-bond-iface bond0", "del-bond-iface e9", "del-bond-iface p1", "del-bond-iface bond0 p1",
    "del-bond-iface br0", "del-bond-iface p9 e1", "del-bond-iface bond0 e1 e2",
    "del-bond-iface e1 -- del-bond-iface e2", "--may-exist add-bond br0 bond0 e1 e3",
    "--may-exist add-port br0 bond0", "--may-exist add-bond br1 bond0 e1 e2", "add-bond br0 b3 e8 tag=1 e9",
    "add-bond br0 b3 e8 e9 tag=1 e10", "--fake-iface add-port br0 x",
    "clear Port bond0 bond_updelay", "clear Port bond0 bond_fake_iface", "add-bond br0 b3 e1 e9",
]


@pytest.fixture
def bond_pair(ovsdb):
    pair = Pair(ovsdb)
    theirs, ours = pair.both(BOND_SETUP)
    assert theirs == ours == (0, "", "")
    return pair


@pytest.mark.parametrize("text", BOND_READS)
def test_bond_reads_print_the_same(bond_pair, text):
    theirs, ours = bond_pair.both(text)
    assert theirs[0] == 0 and ours == theirs


@pytest.mark.parametrize("text", BOND_CHANGES)
def test_bond_changes_leave_the_same_state(bond_pair, text):
    theirs, ours = bond_pair.both(text)
    assert theirs == (0, "", "") and ours == theirs
    for read in ("list-ifaces br0", "list-ifaces br1", "list-ports br0",
                 "--columns=name,bond_mode,lacp,bond_updelay,bond_downdelay,bond_fake_iface,other_config list Port",
                 "--columns=name,cfm_mpid,other_config list Interface"):
        theirs, ours = bond_pair.both(read)
        # `list TABLE` runs in uuid order in OVS, name order here: compare the records.
        assert (ours[0], sorted(ours[1].strip().split("\n\n")), ours[2]) == \
            (theirs[0], sorted(theirs[1].strip().split("\n\n")), theirs[2]), read


@pytest.mark.parametrize("text", BOND_ERRORS)
def test_bond_errors_say_the_same(bond_pair, text):
    theirs, ours = bond_pair.both(text)
    assert theirs[0] == 1 and theirs[1] == ""
    assert ours == theirs
    read = "list-ifaces br0 -- get Port bond0 bond_updelay bond_fake_iface"
    assert bond_pair.both(read) == ((0, "e1\ne2\np1\np2\n100\ntrue\n", ""),) * 2


def show_tree(text):
    """`show` text -> {bridge line: (its own lines, {port line: (lines, sorted interface blocks)})}.
    OVS lists ports and interfaces in uuid order and starts with the
    Open_vSwitch row's uuid; ours sorts by name and ends with our version:
    compare the same content regardless of that order (controllers too)."""
    bridges, bridge, port, iface = {}, None, None, None
    for line in text.splitlines():
        if not line.startswith("    ") or "_version:" in line:
            continue
        depth = (len(line) - len(line.lstrip(" "))) // 4
        if depth == 1:
            bridge = bridges[line] = ([], {})
        elif depth == 2 and line.lstrip().startswith("Port "):
            port = bridge[1][line] = ([], [])
        elif depth == 2:
            bridge[0].append(line)
        elif depth == 3 and line.lstrip().startswith("Interface "):
            iface = [line]
            port[1].append(iface)
        elif depth == 3:
            port[0].append(line)
        else:
            iface.append(line)
    return {b: (sorted(lines), {p: (pl, sorted(map(tuple, ifaces))) for p, (pl, ifaces) in ports.items()})
            for b, (lines, ports) in bridges.items()}


def test_show_lists_a_bond_as_ovs_vsctl(bond_pair):
    theirs, ours = bond_pair.both("show")
    assert theirs[0] == ours[0] == 0
    tree = show_tree(theirs[1])
    assert tree == show_tree(ours[1])
    ports = tree["    Bridge br0"][1]
    assert ports["        Port bond0"] == ([], [("            Interface e1",), ("            Interface e2",)])
    assert ports["        Port p1"][0] == ["            tag: 10", "            trunks: [20, 30]"]


# ---------------------------------------------------------------- records, references, mirrors, NetFlow/sFlow/IPFIX

import re  # noqa: E402

_UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def port_names(pair, text):
    """Output with each uuid replaced by what it names here (a port name, or
    <uuid>): the two databases give rows different uuids."""
    def name(match):
        for table in ("Port", "Bridge", "Mirror"):
            rows = pair.config[table]
            if match.group(0) in rows:
                return rows[match.group(0)].get("name", "<uuid>")
        return "<uuid>"
    return _UUID_TEXT.sub(name, text)


class OvsNames:
    """Maps the real database's uuids to names by asking ovs-vsctl."""

    def __init__(self, pair):
        self.names = {}
        for table in ("Port", "Bridge", "Mirror"):
            code, out, _ = pair.ovs(f"--columns=_uuid,name find {table}")
            for block in out.strip().split("\n\n"):
                fields = dict(line.split(" : ", 1) for line in block.splitlines() if " : " in line)
                if "_uuid" in {k.strip() for k in fields}:
                    uuid = next(v for k, v in fields.items() if k.strip() == "_uuid").strip()
                    self.names[uuid] = next(v for k, v in fields.items() if k.strip() == "name").strip()

    def __call__(self, text):
        return _UUID_TEXT.sub(lambda m: self.names.get(m.group(0), "<uuid>"), text)


_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT[^|]*\|\d+\|\w+\|WARN\|.*\n?", re.M)


def _without_log(stderr):
    return _LOG_LINE.sub("", stderr).strip().removeprefix("ovs-vsctl: ")


def _sorted_sets(text):
    """`[p2, p1]` -> `[p1, p2]`: sets of references print in uuid order."""
    return re.sub(r"\[([^\[\]]*)\]", lambda m: "[" + ", ".join(sorted(m.group(1).split(", "))) + "]", text)


def both_named(pair, text):
    """Run on both; uuids in the outputs are replaced by the row names, and
    ovs-vsctl's log warnings (about rows that will be garbage collected)
    are left out: ours collects them silently."""
    theirs, ours = pair.both(text)
    names = OvsNames(pair)
    return ((theirs[0], _sorted_sets(names(theirs[1])), _without_log(names(theirs[2]))),
            (ours[0], _sorted_sets(port_names(pair, ours[1])), port_names(pair, ours[2])))


MIRROR_SETUP = ("-- --id=@p1 get Port p1 -- --id=@p2 get Port p2 -- --id=@m create Mirror name=m0 "
                "select_src_port=@p1,@p2 select_dst_port=@p1 output_port=@p2 select_vlan=10,20 "
                "-- add Bridge br0 mirrors @m "
                "-- --id=@n create NetFlow targets=\\\"192.0.2.1:2055\\\" active_timeout=30 engine_id=3 "
                "-- set Bridge br0 netflow=@n "
                "-- --id=@s create sFlow targets=\\\"192.0.2.2:6343\\\" sampling=64 polling=10 agent=p1 "
                "-- set Bridge br1 sflow=@s "
                "-- --id=@i create IPFIX targets=\\\"192.0.2.3:4739\\\" sampling=100 obs_domain_id=7 "
                "-- set Bridge br0 ipfix=@i -- set Bridge br0 flood_vlans=5,7")

MIRROR_COLUMNS = "name,select_all,select_src_port,select_dst_port,select_vlan,output_port,output_vlan,snaplen,external_ids"

RECORD_READS = [
    f"--columns={MIRROR_COLUMNS} list Mirror",
    f"--columns={MIRROR_COLUMNS} find Mirror name=m0",
    "--columns=name find Mirror select_all=false", "--columns=name find Mirror select_all=true",
    "--columns=name find Mirror select_vlan=[10,20]", "--columns=name find Mirror select_vlan=10",
    "--columns=name,flood_vlans find Bridge flood_vlans=[5,7]", "find Bridge flood_vlans=5",
    "--columns=name find Port tag=10", "--columns=name find Bridge other_config:mac-aging-time=60",
    "get Mirror m0 select_src_port output_port name", "get Bridge br0 flood_vlans",
    "--columns=targets,active_timeout,engine_id,engine_type,add_id_to_interface list NetFlow br0",
    "--columns=targets,sampling,polling,agent,header list sFlow br1",
    "--columns=targets,sampling,obs_domain_id,obs_point_id,other_config list IPFIX br0",
    "get NetFlow br0 targets active_timeout", "get sFlow br1 sampling agent",
    "--id=@p get Port p1", "--id=@p get Port p1 -- --columns=name find Mirror select_dst_port=@p",
    "--columns=name find Mirror output_port=[]",
    "--columns=name,tag find Port name!=p1 tag!=[]",
]

RECORD_CHANGES = [
    # a mirror nothing references is collected at commit
    "--id=@m2 create Mirror name=m2 -- --columns=name find Mirror name=m2",
    "clear Bridge br0 mirrors",
    "--id=@m get Mirror m0 -- remove Bridge br0 mirrors @m",
    "--id=@m get Mirror m0 -- remove Bridge br0 mirrors @m -- add Bridge br1 mirrors @m",
    "-- --id=@m3 create Mirror name=m3 output_vlan=5 select_all=true -- add Bridge br1 mirrors @m3",
    # weak references: deleting a port removes it from the mirror, deleting
    # the bridge removes the mirror
    "del-port p1", "del-port p2 -- del-port p1", "del-br br0",
    "--id=@p get Port p3 -- set Mirror m0 output_port=@p select_src_port=[]",
    "--id=@p get Port p2 -- remove Mirror m0 select_src_port @p -- clear Mirror m0 select_dst_port",
    "clear Bridge br0 netflow ipfix -- clear Bridge br1 sflow",
    "destroy Mirror m0", "--if-exists destroy Mirror m9",
    "--id=@x create Mirror name=x -- destroy Mirror x",
    "set Mirror m0 snaplen=100 external_ids:a=b -- set NetFlow br0 add_id_to_interface=true engine_type=1",
    "add Bridge br1 netflow @n -- --id=@n create NetFlow targets=\\\"192.0.2.9:9\\\"",
    "--id=@n get NetFlow br0 -- set Bridge br1 netflow=@n -- clear Bridge br0 netflow",
    "set Bridge br0 flood_vlans=[] -- add Bridge br1 flood_vlans 1,2",
    # a weak reference to a row that does not exist is dropped at commit
    "--id=@p get Port p2 -- set Mirror m0 output_port=12345678-1234-1234-1234-123456789abc "
    "-- add Mirror m0 select_dst_port @p -- get Mirror m0 output_port",
]

RECORD_ERRORS = [
    "destroy Mirror m9", "destroy Flow m9", "find Mirror colour=1", "list Mirror m9",
    "--id=@p get Port p9", "--id=@p get Port p1 -- --id=@p get Port p2", "--id=p get Port p1",
    "--id=@m create Mirror name=a -- --id=@m create Mirror name=b", "create Mirror",
    "add Bridge br0 mirrors @x", "set Mirror m0 output_port=p2", "remove Bridge br0 mirrors m0",
    "create Mirror name", "list IPFIX br1", "get sFlow br0 targets",
    "set Mirror m0 output_port=@p -- --id=@p get Port p1",
]


@pytest.fixture
def mirror_pair(ovsdb):
    pair = Pair(ovsdb)
    assert pair.both(SETUP) == ((0, "", ""),) * 2
    theirs, ours = pair.both(MIRROR_SETUP)
    assert theirs[0] == ours[0] == 0 and theirs[2] == ours[2] == ""
    assert len(theirs[1].split()) == len(ours[1].split()) == 4   # four new uuids
    return pair


STATE_READS = (
    f"--columns={MIRROR_COLUMNS} list Mirror", "--columns=name,mirrors,flood_vlans list Bridge",
    "--columns=targets,active_timeout,engine_type,add_id_to_interface list NetFlow",
    "--columns=targets,sampling,agent list sFlow", "--columns=targets,sampling list IPFIX",
    "list-ports br0",
)


def assert_same_state(pair):
    for read in STATE_READS:
        theirs, ours = both_named(pair, read)
        # `list TABLE` runs in uuid order in OVS, name order here: compare the records.
        assert (ours[0], sorted(ours[1].strip().split("\n\n")), ours[2]) == \
            (theirs[0], sorted(theirs[1].strip().split("\n\n")), theirs[2]), read


@pytest.mark.parametrize("text", RECORD_READS)
def test_record_reads_print_the_same(mirror_pair, text):
    theirs, ours = both_named(mirror_pair, text)
    assert theirs[0] == 0 and ours == theirs


@pytest.mark.parametrize("text", RECORD_CHANGES)
def test_record_changes_leave_the_same_state(mirror_pair, text):
    theirs, ours = both_named(mirror_pair, text)
    assert theirs[0] == 0 and ours == theirs
    assert_same_state(mirror_pair)


@pytest.mark.parametrize("text", RECORD_ERRORS)
def test_record_errors_say_the_same(mirror_pair, text):
    theirs, ours = mirror_pair.both(text)
    theirs = (theirs[0], theirs[1], _without_log(theirs[2]))
    assert theirs[0] == 1 and theirs[1] == ""
    if text.startswith("destroy Flow"):   # ours lists the tables it has
        assert ours[2].startswith('unknown table "Flow"')
    else:
        assert ours == theirs
    assert_same_state(mirror_pair)


def test_referencing_a_missing_row_is_an_integrity_error(mirror_pair):
    text = "add Bridge br0 mirrors 11111111-1111-1111-1111-111111111111"
    theirs, ours = mirror_pair.both(text)
    assert theirs[0] == ours[0] == 1
    assert _UUID_TEXT.sub("U", _without_log(theirs[2])) == _UUID_TEXT.sub("U", ours[2])
    assert_same_state(mirror_pair)


def test_show_leaves_mirrors_and_sampling_out_as_ovs_vsctl(mirror_pair):
    theirs, ours = mirror_pair.both("show")
    assert theirs[0] == ours[0] == 0
    assert show_tree(theirs[1]) == show_tree(ours[1])
    assert "Mirror" not in theirs[1] and "NetFlow" not in theirs[1]
