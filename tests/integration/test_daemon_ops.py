"""vswitchd as an operator runs it: log rotation on SIGHUP, syslog, run-time
log levels through vsctl, --monitor restarting a crashed daemon, systemd's
READY=1, and start-up errors as one line. Real daemons in their own network
namespaces; every process a test starts is stopped by its pid."""
import os
import signal
import socket
import subprocess
import time

import pytest

from helpers import netns
from helpers.vswitchd import VSCTL, VSWITCHD, VSwitchd, running_vswitchd
from helpers.wait import wait_until

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def parent_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def kill_and_wait(pid, sig=signal.SIGTERM, timeout=10):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    try:
        wait_until(lambda: not alive(pid), timeout=timeout, what=f"pid {pid} to exit")
        return True
    except AssertionError:
        os.kill(pid, signal.SIGKILL)
        return False


def read_pid(path):
    try:
        with open(path) as f:
            text = f.read().strip()
        return int(text) if text else None
    except FileNotFoundError:
        return None


def datagram_socket(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    return sock


def receive_until(sock, needle, timeout=10):
    """Datagrams received until one contains `needle` (all of them, decoded)."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got.append(sock.recv(65536).decode(errors="replace"))
        if needle in got[-1]:
            return got
    raise AssertionError(f"no datagram with {needle!r}; got {got!r}")


class Daemon:
    """A vswitchd started with our own flags; stopped (with its monitor) at the end."""

    def __init__(self, ns, tmp_path):
        self.ns, self.tmp = ns, tmp_path
        self.rundir = str(tmp_path / "run")
        self.db = str(tmp_path / "conf.db")
        self.pidfile = os.path.join(self.rundir, "vswitchd.pid")
        self.pids = set()

    def start(self, *flags, env=None, check=True):
        proc = netns.run(self.ns, *VSWITCHD, "--rundir", self.rundir, "--db", self.db, "--detach", *flags,
                         env=None if env is None else {**os.environ, **env}, check=False, timeout=20)
        if check:
            assert proc.returncode == 0, proc.stderr
            self.pids.add(read_pid(self.pidfile))
        return proc

    def vsctl(self, *args):
        return netns.run(self.ns, *VSCTL, "--rundir", self.rundir, *args, check=False)

    def stop(self):
        for pid in sorted(self.pids, reverse=True):  # the monitor (if any) after its child is noted
            if pid:
                kill_and_wait(pid)


@pytest.fixture
def daemon(tmp_path):
    with netns.namespace("ops") as ns:
        d = Daemon(ns, tmp_path)
        try:
            yield d
        finally:
            d.stop()


# ---------------------------------------------------------------- SIGHUP and log rotation

@needs_root
def test_sighup_reopens_the_log_file(tmp_path):
    with netns.namespace("hup") as ns, running_vswitchd(ns, tmp_path) as vs:
        vs.vsctl("add-br", "br0")
        os.rename(vs.log, vs.log + ".1")
        os.kill(vs.pid, signal.SIGHUP)
        wait_until(lambda: "reopened log file" in vs.read_log(), what="a new log file")
        assert alive(vs.pid)
        assert vs.vsctl("list-br").split() == ["br0"]  # still serving
        pid = vs.pid
        assert vs.stop()
        assert not alive(pid)
        with open(vs.log + ".1") as f:
            old = f.read()
        new = vs.read_log()
    assert "ready on" in old and "shutting down" not in old and "reopened" not in old
    assert "shutting down" in new and "ready on" not in new


# ---------------------------------------------------------------- syslog

@needs_root
def test_detached_without_log_file_logs_to_syslog(daemon, tmp_path):
    sock = datagram_socket(tmp_path / "syslog.sock")
    with sock:
        daemon.start("--syslog-target", str(tmp_path / "syslog.sock"))
        pid = read_pid(daemon.pidfile)
        got = receive_until(sock, "ready on")
        # facility daemon (3) * 8 + info (6) = 30, ident vswitchd[PID]
        assert got[-1].startswith(f"<30>vswitchd[{pid}]: INFO vswitch.daemon: vswitchd "), got[-1]
        os.kill(pid, signal.SIGTERM)
        assert receive_until(sock, "shutting down")[-1].startswith(f"<30>vswitchd[{pid}]: ")


@needs_root
def test_no_syslog_socket_is_one_warning_line(daemon, tmp_path):
    missing = str(tmp_path / "no-syslog")
    proc = daemon.start("--syslog-target", missing)
    warning, *logged = proc.stderr.splitlines()
    assert warning == (f"vswitchd: no syslog socket at {missing}: logging to stderr until detached, "
                       "then nowhere (use --log-file)")
    # until detached (the parent returns once the daemon is ready), log lines go to stderr
    assert logged and all("|INFO|" in line for line in logged) and "ready on" in logged[-1]
    assert daemon.vsctl("list-br").returncode == 0


# ---------------------------------------------------------------- vlog-set / vlog-list

def vlog_levels(d):
    proc = d.vsctl("vlog-list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].strip() == "level" and lines[1].strip() == "-----"
    return dict(line.split() for line in lines[2:])


@needs_root
def test_vlog_set_and_list(daemon, tmp_path):
    log = str(tmp_path / "vswitchd.log")
    daemon.start("--log-file", log)
    levels = vlog_levels(daemon)
    assert {"daemon", "switch", "interfaces", "bridge.lacp", "vlog"} <= set(levels)
    assert set(levels.values()) == {"INFO"}

    assert daemon.vsctl("vlog-set", "switch:dbg", "bridge.lacp:warn").returncode == 0
    levels = vlog_levels(daemon)
    assert levels["switch"] == "DBG" and levels["bridge.lacp"] == "WARN" and levels["daemon"] == "INFO"

    bad = daemon.vsctl("vlog-set", "daemon:err", "nosuch:dbg")
    assert bad.returncode != 0
    assert 'no level or module "nosuch"' in bad.stderr
    assert vlog_levels(daemon) == levels  # nothing changed, not even daemon:err
    bad = daemon.vsctl("vlog-set", "switch:loud")
    assert bad.returncode != 0 and '"loud"' in bad.stderr

    # A level really applies: with vlog at warn, SIGHUP's info line is not logged.
    assert daemon.vsctl("vlog-set", "vlog:warn").returncode == 0
    pid = read_pid(daemon.pidfile)
    os.rename(log, log + ".1")
    os.kill(pid, signal.SIGHUP)
    wait_until(lambda: os.path.exists(log), what="the reopened log")
    assert daemon.vsctl("vlog-set", "ANY:info").returncode == 0
    assert set(vlog_levels(daemon).values()) == {"INFO"}
    os.kill(pid, signal.SIGHUP)
    wait_until(lambda: "reopened log file" in open(log).read(), what="the second reopen's line")
    assert open(log).read().count("reopened log file") == 1

    json_out = daemon.vsctl("--format", "json", "vlog-list")
    assert '"module": "switch"' in json_out.stdout


# ---------------------------------------------------------------- --monitor

@needs_root
def test_monitor_restarts_a_crashed_daemon(daemon, tmp_path):
    daemon.start("--monitor", "--log-file", str(tmp_path / "vswitchd.log"))
    child = read_pid(daemon.pidfile)
    monitor = parent_of(child)
    daemon.pids.add(monitor)
    assert monitor != child and alive(monitor)
    assert daemon.vsctl("add-br", "br0").returncode == 0

    os.kill(child, signal.SIGSEGV)
    new = wait_until(lambda: (p := read_pid(daemon.pidfile)) not in (None, child) and p, timeout=15,
                     what="the restarted daemon's pid in the pidfile")
    daemon.pids.add(new)
    assert alive(new) and parent_of(new) == monitor
    wait_until(lambda: daemon.vsctl("list-br").stdout.split() == ["br0"], what="the restarted daemon")
    log = (tmp_path / "vswitchd.log").read_text()
    assert f"pid {child} died, killed (SIGSEGV), restarting" in log

    # SIGTERM to the monitor stops both.
    assert kill_and_wait(monitor)
    wait_until(lambda: not alive(new), what="the daemon to stop with its monitor")
    assert not os.path.exists(daemon.pidfile)


@needs_root
def test_monitor_does_not_restart_after_sigterm(daemon, tmp_path):
    daemon.start("--monitor", "--log-file", str(tmp_path / "vswitchd.log"))
    child = read_pid(daemon.pidfile)
    monitor = parent_of(child)
    daemon.pids.add(monitor)
    assert kill_and_wait(child)  # as `kill $(cat vswitchd.pid)`
    wait_until(lambda: not alive(monitor), what="the monitor to exit")
    assert read_pid(daemon.pidfile) is None
    assert f"pid {child} died, exit status 0, exiting" in (tmp_path / "vswitchd.log").read_text()


# ---------------------------------------------------------------- systemd

@needs_root
def test_sd_notify_ready(daemon, tmp_path):
    path = tmp_path / "notify.sock"
    with datagram_socket(path) as sock:
        daemon.start("--log-file", str(tmp_path / "vswitchd.log"), env={"NOTIFY_SOCKET": str(path)})
        pid = read_pid(daemon.pidfile)
        ready = sock.recv(4096).decode().split("\n")
        assert "READY=1" in ready and f"MAINPID={pid}" in ready
        # ready means serving: vsctl answers at once
        assert daemon.vsctl("list-br").returncode == 0
        os.kill(pid, signal.SIGTERM)
        assert sock.recv(4096) == b"STOPPING=1"


def test_print_systemd_unit():
    out = subprocess.run([*VSWITCHD, "--print-systemd-unit"], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert "Type=notify" in lines
    exec_start = next(line for line in lines if line.startswith("ExecStart="))
    program = exec_start.split("=", 1)[1].split()[0]
    assert os.path.isabs(program) and os.access(program, os.X_OK)
    assert "ExecReload=/bin/kill -HUP $MAINPID" in lines


def test_help_is_a_man_page():
    out = subprocess.run([*VSWITCHD, "--help"], capture_output=True, text=True, check=True).stdout
    for section in ("files:", "signals:", "environment:", "SIGHUP", "NOTIFY_SOCKET", "VSWITCH_RUNDIR",
                    "--monitor", "vswitchd.service"):
        assert section in out


# ---------------------------------------------------------------- start-up errors

def start_error(ns, tmp_path, *flags, detach):
    args = [*VSWITCHD, *flags, "--log-file", str(tmp_path / "vswitchd.log")] if "--log-file" not in flags \
        else [*VSWITCHD, *flags]
    if "--rundir" not in flags:
        args += ["--rundir", str(tmp_path / "run")]
    if "--db" not in flags:
        args += ["--db", str(tmp_path / "conf.db")]
    proc = netns.run(ns, *args, *(["--detach"] if detach else []), check=False, timeout=20)
    return proc.returncode, proc.stderr.splitlines()


@needs_root
@pytest.mark.parametrize("detach", [False, True], ids=["foreground", "detach"])
def test_startup_errors_are_one_line(tmp_path, detach):
    regular = tmp_path / "a-file"
    regular.write_text("")
    (tmp_path / "db-is-a-dir").mkdir()
    cases = [
        (["--log-file", str(tmp_path / "missing" / "vswitchd.log")],
         f"vswitchd: cannot open log file {tmp_path}/missing/vswitchd.log: No such file or directory"),
        (["--rundir", str(regular / "run")],
         f"vswitchd: cannot create run directory {regular}/run: Not a directory"),
        (["--db", str(tmp_path / "db-is-a-dir")],
         f"vswitchd: cannot open database {tmp_path}/db-is-a-dir: unable to open database file"),
        (["--db", str(regular / "conf.db")],
         f"vswitchd: cannot create database directory {regular}: not a directory"),
    ]
    with netns.namespace("err") as ns:
        for flags, line in cases:
            rc, stderr = start_error(ns, tmp_path, *flags, detach=detach)
            assert rc != 0 and stderr == [line], (flags, rc, stderr)
        # And a second daemon on a busy run directory.
        vs = VSwitchd(ns, str(tmp_path / "first")).start()
        try:
            rc, stderr = start_error(ns, tmp_path, "--rundir", vs.rundir, detach=detach)
            assert rc != 0 and stderr == [f"vswitchd: another vswitchd (pid {vs.pid}) is running on {vs.rundir}"]
        finally:
            vs.stop()
