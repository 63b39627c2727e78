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
         "-- add-port br1 p3 -- set Interface p1 type=tap options:remote_ip=1.2.3.4 options:key=5 "
         "-- set Bridge br0 other_config:mac-aging-time=60 'external_ids:note=a b' "
         "-- set Port p2 vlan_mode=native-untagged -- set-fail-mode br0 secure "
         "-- set-controller br1 tcp:127.0.0.1:6653 ptcp:6654")

READS = [
    "list-br", "list-ports br0", "list-ifaces br1", "port-to-br p3", "iface-to-br p1", "port-to-br br1",
    "get Port p1 trunks tag vlan_mode", "get Port p2 vlan_mode tag trunks",
    "get Interface p1 options type options:key", "get Interface p3 options type",
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
    "add-bond br0 bond0 e1 e2 -- remove Interface p1 options key=6 remote_ip",
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
        names = [split_command(c)[1] for c in commands]
        printed = "".join(render(name, output) + "\n" for name, output in zip(names, outputs)
                          if render(name, output))
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
