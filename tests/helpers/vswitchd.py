"""A real vswitchd for tests: started inside a namespace with a private run
directory and database, driven through the real vsctl, stopped by its pid.

    with netns.namespace("sw") as sw, running_vswitchd(sw, tmp_path) as vs:
        vs.vsctl("add-br", "br0")
        vs.json("fdb-show", "br0")
"""
import contextlib
import json
import os
import shutil
import signal
import sys
import time

from helpers import netns
from helpers.wait import wait_until


def _console_script(name, module):
    """The installed console script next to this interpreter, or `python -m`."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    return [path] if os.path.exists(path) else [sys.executable, "-m", module]


VSWITCHD = _console_script("vswitchd", "vswitch.daemon")
VSCTL = _console_script("vsctl", "vswitch.cli.vsctl")


class VSwitchd:
    def __init__(self, ns, workdir):
        self.ns = ns
        self.rundir = os.path.join(workdir, "run")
        self.db = os.path.join(workdir, "conf.db")
        self.log = os.path.join(workdir, "vswitchd.log")
        self.pid = None

    def start(self, *extra_args, timeout=15):
        os.makedirs(self.rundir, exist_ok=True)
        proc = netns.run(self.ns, *VSWITCHD, "--rundir", self.rundir, "--db", self.db,
                         "--log-file", self.log, "--detach", *extra_args, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"vswitchd failed to start: {proc.stderr}\n{self.read_log()}")
        with open(os.path.join(self.rundir, "vswitchd.pid")) as f:
            self.pid = int(f.read())
        return self

    def read_log(self):
        try:
            with open(self.log) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self, timeout=10):
        """SIGTERM and wait for exit; returns True if it exited in time."""
        if self.pid is None:
            return True
        pid, self.pid = self.pid, None
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not os.path.exists(f"/proc/{pid}") or _is_zombie(pid):
                return True
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        return False

    def vsctl_proc(self, *args, timeout=15):
        return netns.run(self.ns, *VSCTL, "--rundir", self.rundir, *args,
                         check=False, timeout=timeout)

    def vsctl(self, *args, timeout=15):
        proc = self.vsctl_proc(*args, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"vsctl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc.stdout

    def json(self, *args):
        return json.loads(self.vsctl("--format", "json", *args))

    def map_column(self, table, record, column):
        """A map column (`get` in JSON: [["map", pairs]] or a dict) as a dict."""
        value = self.json("get", table, record, column)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, list) and value and value[0] == "map":
            value = dict(value[1])
        return value

    def statistics(self, iface):
        """The Interface's statistics column, as integers."""
        return {k: int(v) for k, v in self.map_column("interface", iface, "statistics").items()}


def _is_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@contextlib.contextmanager
def running_vswitchd(ns, workdir):
    vs = VSwitchd(ns, str(workdir)).start()
    try:
        yield vs
    finally:
        vs.stop()


wait_for = wait_until  # the name the switch tests use


def have(tool):
    return shutil.which(tool) is not None
