"""A private Open vSwitch (userspace datapath) inside a test network namespace.

    with netns.namespace("ovs") as ns, OvsPeer(ns) as ovs:
        ovs.vsctl("add-br", "br0", "--", "set", "bridge", "br0",
                  "datapath_type=netdev")
        print(ovs.appctl("lacp/show"))

Each instance gets its own temporary directory (database, sockets, logs,
pidfiles) through OVS_RUNDIR/OVS_DBDIR/OVS_LOGDIR/OVS_SYSCONFDIR, and must
have its own namespace: the netdev datapath always creates a tap called
`ovs-netdev`. Stopping kills exactly the pids written in its pidfiles.
`skip_unless_available()` turns a missing openvswitch-switch into a skip.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time

from helpers import netns

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
DAEMONS = ("ovs-vswitchd", "ovsdb-server")    # stop order


def available() -> bool:
    return all(shutil.which(p) for p in ("ovs-vswitchd", "ovsdb-server", "ovs-vsctl",
                                         "ovs-appctl", "ovsdb-tool")) \
        and os.path.exists(SCHEMA)


def skip_unless_available():
    import pytest
    if not available():
        pytest.skip("openvswitch-switch is not installed")
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")


class OvsPeer:
    def __init__(self, ns: str, timeout: float = 30):
        self.ns = ns
        self.timeout = timeout
        self.dir = None

    # -- lifecycle -------------------------------------------------------------
    def __enter__(self) -> "OvsPeer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="ovs-peer-")
        self.env = {**os.environ, "OVS_RUNDIR": self.dir, "OVS_DBDIR": self.dir,
                    "OVS_LOGDIR": self.dir, "OVS_SYSCONFDIR": self.dir,
                    "OVS_PKGDATADIR": os.path.dirname(SCHEMA)}
        self.db_sock = os.path.join(self.dir, "db.sock")
        try:
            self._run("ovsdb-tool", "create", os.path.join(self.dir, "conf.db"), SCHEMA)
            self._daemon("ovsdb-server", os.path.join(self.dir, "conf.db"),
                         f"--remote=punix:{self.db_sock}")
            self.vsctl("--no-wait", "init")
            self._daemon("ovs-vswitchd", f"unix:{self.db_sock}")
            # Returns once vswitchd has applied the configuration.
            self.vsctl("set", "Open_vSwitch", ".", "other_config:n-handler-threads=1")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if not self.dir:
            return
        for daemon in DAEMONS:
            pid = self._pid(daemon)
            if pid:
                _terminate(pid)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    # -- commands ----------------------------------------------------------------
    def vsctl(self, *args: str) -> str:
        return self._run("ovs-vsctl", f"--db=unix:{self.db_sock}",
                         f"--timeout={int(self.timeout)}", *args).stdout

    def appctl(self, *args: str) -> str:
        return self._run("ovs-appctl", "-t", self._ctl("ovs-vswitchd"), f"--timeout={int(self.timeout)}",
                         *args).stdout

    def add_bridge(self, name: str, *extra: str) -> None:
        """A bridge on the userspace datapath (no kernel module here)."""
        self.vsctl("add-br", name, "--", "set", "bridge", name,
                   "datapath_type=netdev", *extra)

    def lacp_show(self, bond: str) -> dict:
        return parse_lacp_show(self.appctl("lacp/show", bond))[bond]

    def cfm_show(self, iface: str) -> dict:
        return parse_cfm_show(self.appctl("cfm/show", iface))[iface]

    def log(self) -> str:
        path = os.path.join(self.dir or "", "ovs-vswitchd.log")
        return open(path).read() if os.path.exists(path) else ""

    # -- internals ---------------------------------------------------------------
    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        return netns.run(self.ns, *cmd, env=self.env, timeout=self.timeout + 10)

    def _daemon(self, name: str, *args: str) -> None:
        self._run(name, *args, "--pidfile", "--detach", "--no-chdir",
                  f"--log-file={os.path.join(self.dir, name + '.log')}",
                  f"--unixctl={self._ctl(name)}")

    def _ctl(self, daemon: str) -> str:
        return os.path.join(self.dir, daemon + ".ctl")

    def _pid(self, daemon: str) -> int | None:
        try:
            with open(os.path.join(self.dir, daemon + ".pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _terminate(pid: int, grace: float = 5) -> None:
    """SIGTERM the pid from our pidfile, SIGKILL it if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _alive(pid):
            return


# -- parsers for ovs-appctl output (OVS 3.1 layout) ------------------------------

def parse_lacp_show(text: str) -> dict:
    """`lacp/show` -> {bond: {"status": [...], "sys_id": .., "members":
    {name: {"status": "current", "attached": True, "may_enable": True,
    "actor sys_id": .., "partner state": [...], ...}}}}"""
    bonds, bond, target = {}, None, None
    for line in text.splitlines():
        if line.startswith("---- "):
            bond = bonds[line.strip("- ")] = {"members": {}}
            target = bond
        elif line.startswith(("member: ", "slave: ")):
            name, status = line.split(": ", 1)[1].split(": ")
            state, attached = status.split()
            target = bond["members"][name] = {"status": state,
                                              "attached": attached == "attached"}
        elif ":" in line and target is not None:
            key, value = (part.strip() for part in line.split(":", 1))
            if key.endswith("state") or key == "status":
                target[key] = value.split()
            elif key == "may_enable":
                target[key] = value == "true"
            else:
                target[key] = value
    return bonds


def parse_cfm_show(text: str) -> dict:
    """`cfm/show` -> {iface: {"mpid": 1, "fault": [...], "remote_mpids": [..]}}"""
    ifaces, iface = {}, None
    for line in text.splitlines():
        if line.startswith("---- "):
            iface = ifaces[line.strip("- ")] = {"fault": [], "remote_mpids": []}
        elif line.startswith("MPID "):
            iface["mpid"] = int(line.split()[1].rstrip(":"))
        elif line.startswith("Remote MPID "):
            iface["remote_mpids"].append(int(line.split()[2]))
        elif line.strip().startswith("fault:"):
            iface["fault"] = line.split(":", 1)[1].split()
    return ifaces
