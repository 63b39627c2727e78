"""vsctl end to end: main() talks over a real unix socket to a small in-test
server that runs `transact` the way the daemon does (store.load -> execute ->
commit if changed)."""
import json
import os
import subprocess
import sys

import pytest

from test_vsctl_rpc import running_server, short_tmpdir
from vswitch import __version__, rpc
from vswitch.cli.vsctl import main
from vswitch.config.commands import CommandError, execute
from vswitch.config.store import ConfigStore

FDB = [{"port": "p1", "vlan": 10, "mac": "50:54:00:00:00:01", "age": 4}]


class Runtime:
    def fdb_show(self, br):
        return [dict(entry, bridge=br) for entry in FDB]


class MiniDaemon:
    """The `transact` method of vswitchd, with its store in the run dir."""

    def __init__(self, rundir):
        self.rundir = rundir
        self.store = ConfigStore(os.path.join(rundir, "conf.db"))
        self.commits = 0

    def dispatch(self, method, params):
        if method != "transact":
            raise rpc.RpcError(f"unknown method {method}")
        config = self.store.load()
        try:
            new_config, outputs = execute(config, params["commands"], Runtime())
        except CommandError as exc:
            raise rpc.RpcError(str(exc)) from None
        if new_config != config:
            self.store.commit(new_config)
            self.commits += 1
        return {"outputs": outputs}


@pytest.fixture
def daemon():
    with short_tmpdir() as rundir:
        mini = MiniDaemon(rundir)
        try:
            with running_server(os.path.join(rundir, "vswitchd.sock"), mini.dispatch):
                yield mini
        finally:
            mini.store.close()


def vsctl(daemon, capsys, *args):
    """-> (exit status, stdout, stderr) of `vsctl --rundir DIR ARGS`."""
    status = main(["--rundir", daemon.rundir, "--timeout", "20", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_add_br_add_port_show(daemon, capsys):
    assert vsctl(daemon, capsys, "add-br", "br0") == (0, "", "")
    assert vsctl(daemon, capsys, "add-port", "br0", "p1", "tag=10", "--", "set", "Interface", "p1",
                 "type=tap") == (0, "", "")
    status, out, _ = vsctl(daemon, capsys, "show")
    assert status == 0
    assert out.splitlines() == [
        "    Bridge br0",
        "        Port br0",
        "            Interface br0",
        "                type: internal",
        "        Port p1",
        "            tag: 10",
        "            Interface p1",
        "                type: tap",
        f'    vswitch_version: "{__version__}"',
    ]
    # What the daemon committed is on disk, read through a second connection.
    other = ConfigStore(daemon.store.path)
    try:
        ports = {row["name"]: row for row in other.load()["Port"].values()}
    finally:
        other.close()
    assert ports["p1"]["tag"] == 10 and daemon.commits == 2


def test_json_format(daemon, capsys):
    vsctl(daemon, capsys, "add-br", "br1", "--", "add-br", "br0", "--", "add-port", "br0", "p1")
    status, out, _ = vsctl(daemon, capsys, "--format", "json", "list-br")
    assert (status, json.loads(out)) == (0, ["br0", "br1"])
    status, out, _ = vsctl(daemon, capsys, "-f", "json", "fdb-show", "br0")
    assert (status, json.loads(out)) == (0, [dict(FDB[0], bridge="br0")])
    status, out, _ = vsctl(daemon, capsys, "--format=json", "list-ports", "br0", "--", "br-exists", "br1")
    assert (status, json.loads(out)) == (0, [["p1"], True])


def test_table_format_of_read_commands(daemon, capsys):
    vsctl(daemon, capsys, "add-br", "br0", "--", "add-port", "br0", "p2", "--", "add-port", "br0", "p1",
          "trunks=20,10")
    assert vsctl(daemon, capsys, "list-ports", "br0") == (0, "p1\np2\n", "")
    assert vsctl(daemon, capsys, "get", "Port", "p1", "trunks", "tag") == (0, "[10, 20]\n[]\n", "")
    status, out, _ = vsctl(daemon, capsys, "fdb-show", "br0")
    assert out == " port  VLAN  MAC                Age\n   p1    10  50:54:00:00:00:01    4\n"


def test_error_exits_1_with_message_and_leaves_config(daemon, capsys):
    vsctl(daemon, capsys, "add-br", "br0")
    before = daemon.store.load()
    status, out, err = vsctl(daemon, capsys, "add-port", "br0", "p1", "--", "add-port", "br0", "p2",
                             "tag=5000")
    assert (status, out, err) == (1, "", "vsctl: p2: invalid VLAN tag 5000 (must be 0..4095)\n")
    assert daemon.store.load() == before
    status, _, err = vsctl(daemon, capsys, "add-bridge", "br1")
    assert (status, err) == (1, "vsctl: unknown command 'add-bridge'; see vsctl --help\n")
    assert vsctl(daemon, capsys, "list-br") == (0, "br0\n", "")


def test_br_exists_exit_status(daemon, capsys):
    vsctl(daemon, capsys, "add-br", "br0")
    assert vsctl(daemon, capsys, "br-exists", "br0") == (0, "", "")
    assert vsctl(daemon, capsys, "br-exists", "br9") == (2, "", "")


def test_rundir_from_environment(daemon, capsys, monkeypatch):
    monkeypatch.setenv("VSWITCH_RUNDIR", daemon.rundir)
    assert main(["add-br", "br7"]) == 0
    assert main(["list-br"]) == 0
    assert capsys.readouterr().out == "br7\n"


def test_daemon_not_running(capsys):
    with short_tmpdir() as rundir:
        assert main(["--rundir", rundir, "list-br"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"vsctl: cannot connect to vswitchd at {rundir}/vswitchd.sock: ")


@pytest.mark.parametrize("args, message", [
    (["--format", "xml", "list-br"], "vsctl: unknown format 'xml' (use table or json)\n"),
    (["--timeout", "soon", "list-br"], "vsctl: invalid timeout 'soon' (seconds expected)\n"),
    (["--rundir"], "vsctl: option '--rundir' requires an argument\n"),
    ([], "vsctl: missing command name (use --help for help)\n"),
])
def test_usage_errors(capsys, args, message):
    assert main(args) == 1
    assert capsys.readouterr().err == message


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"vsctl (vswitch) {__version__}\n"
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for line in ("add-br BR", "del-port [BR] PORT", "fdb-show BR", "--format FORMAT", "add-bond-iface BOND IFACE",
                 "del-bond-iface [BOND] IFACE", "bond-show [BOND]", "lacp-show [BOND]", "cfm-show [IFACE]",
                 "--fake-iface"):
        assert line in out


def test_runs_as_a_program(daemon):
    """The module entry point, as a separate process, gives the exit codes."""
    def program(*args):
        done = subprocess.run([sys.executable, "-m", "vswitch.cli.vsctl", "--timeout", "20", *args],
                              env=dict(os.environ, VSWITCH_RUNDIR=daemon.rundir),
                              capture_output=True, text=True, timeout=60)
        return done.returncode, done.stderr

    assert program("add-br", "br0") == (0, "")
    assert program("br-exists", "nope") == (2, "")
    assert program("del-br", "nope") == (1, "vsctl: no bridge named nope\n")


def test_vsctl_start_up_leaves_the_daemons_modules_out():
    """Every vsctl call is a new process (libvirt runs one per VM start, the
    tests hundreds): it imports the client half of rpc and the renderers,
    not asyncio (the server's) nor the lacp/cfm engines or vlog's logging
    handlers, which cost it ~150 ms of start-up (the renderers that need
    them import them when called: test_config_bond_cfm.py, test_vlog.py)."""
    probe = ("import sys; import vswitch.cli.vsctl as v; "
             "heavy = ['asyncio', 'vswitch.lacp', 'vswitch.cfm', 'vswitch.vlog', 'logging.handlers']; "
             "print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]", out
