"""A private libvirtd (Debian's libvirt-daemon and its QEMU driver) in the
switch's namespace, and a libvirt-managed guest on an Open vSwitch bridge:

    with libvirt_guest.private_libvirtd(sw, workdir) as lv:
        # vswitchd --remote punix:<lv.ovs_db_sock> is what libvirt's ovs-vsctl
        # reaches at /run/openvswitch/db.sock
        dom = lv.domain("vsguest", "br0", "10.77.10.2/24", mac)
        dom.start()            # virsh start; waits for the guest's READY line
        dom.taps()             # ["vnet0"]: the taps libvirt created
        dom.destroy()          # virsh destroy

Why it looks like this (all checked on Debian 12's libvirt 9.0):
- A root libvirtd has fixed paths (/etc/libvirt, /run/libvirt,
  /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt) and parses the
  build-time default QEMU user `libvirt-qemu` before it reads qemu.conf (the
  user comes with libvirt-daemon-system, which would also start a system
  libvirtd).  So the daemon runs in a mount namespace of its own
  (`unshare -m`) where directories under `workdir` are bound over /etc/libvirt,
  /run, /var/lib, /var/log, /var/cache, and copies of /etc/passwd and
  /etc/group that name libvirt-qemu are bound over the real ones.  Nothing
  outside `workdir` is written and no system libvirtd can collide with it.
- It runs inside the switch's network namespace (`ip netns exec`), so the
  vnet taps it creates for guests are where vswitchd sees them.
- libvirt runs `ovs-vsctl --timeout=5 -- --may-exist add-port BR vnetN --
  set Interface vnetN external-ids:attached-mac=... iface-id=... vm-id=...
  iface-status=active` when a guest starts and `ovs-vsctl --timeout=5 --
  --if-exists del-port vnetN` when it stops, with no --db: ovs-vsctl's
  default, unix:$OVS_RUNDIR/db.sock (OVS_RUNDIR is passed on from
  libvirtd's environment), else unix:/run/openvswitch/db.sock.  Here /run is
  `workdir`/run, so vswitchd's `--remote punix:<ovs_db_sock>` is that
  default path as libvirt sees it.
- qemu.conf: user/group root, no security driver, no dynamic ownership, no
  cgroups, no private /dev namespace, stdio to a file (no virtlogd): QEMU
  reads the kernel and initramfs from `workdir` and nothing else is needed.
- Guests are `<domain type='qemu'>` (TCG: the paravirtual KVM here cannot
  boot a stock kernel), kernel and initramfs from tests/helpers/qemu_guest.py
  plus iperf3 (with its shared libraries) started as a server before the
  READY line, serial console to a file.

Everything is stopped by pid: each domain is destroyed and undefined, then
libvirtd gets SIGTERM (SIGKILL after 10 s), and a QEMU libvirt left behind is
killed by the pid in its pidfile.
"""
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
import uuid

from helpers import qemu_guest

LIBVIRTD = "libvirtd"
VIRSH = "virsh"
QEMU_DRIVER = "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so"
IPERF3 = "/usr/bin/iperf3"
IPERF3_FAILED = "iperf3 server failed"
# seconds: libvirtd's first QEMU call probes qemu-system-i386 and -x86_64 (~8 s
# here, every time: libvirt's capabilities cache is invalidated by "host
# cpuid changed" on this paravirtual machine, so it is not shared).
START_TIMEOUT = 60

# Bound over these paths in libvirtd's mount namespace (key: directory under workdir).
BINDS = (("etc", "/etc/libvirt"), ("run", "/run"), ("var-lib", "/var/lib"),
         ("var-log", "/var/log"), ("var-cache", "/var/cache"))

LIBVIRTD_CONF = """\
unix_sock_dir = "{sock_dir}"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_filters = "1:util.command 3:*"
log_outputs = "1:file:{log}"
"""

QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
cgroup_controllers = [ ]
namespaces = [ ]
"""

# The guest: qemu_guest's /init, plus an iperf3 server before READY.
GUEST_INIT = qemu_guest.INIT.replace(
    f'echo "{qemu_guest.READY}',
    f'{IPERF3} -s -D >/dev/null 2>&1 || echo "{IPERF3_FAILED}"\n'
    f'echo "{qemu_guest.READY}', 1)
assert GUEST_INIT != qemu_guest.INIT

DOMAIN_XML = """\
<domain type='qemu'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 loglevel=4 panic=-1 nokaslr mitigations=off vsip={cidr}</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>{qemu}</emulator>
    <interface type='bridge'>
      <mac address='{mac}'/>
      <source bridge='{bridge}'/>
      <virtualport type='openvswitch'>
        <parameters interfaceid='{iface_id}'/>
      </virtualport>
      <model type='virtio'/>
      <driver name='qemu'/>
    </interface>
    <serial type='file'>
      <source path='{console}' append='off'/>
      <target port='0'/>
    </serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
  <seclabel type='none'/>
</domain>
"""


class Unavailable(Exception):
    """What the host lacks to run libvirt guests (the reason, for pytest.skip)."""


def unavailable_reason():
    """None when a libvirt guest can boot here, else why not."""
    for tool, pkg in ((LIBVIRTD, "libvirt-daemon"), (VIRSH, "libvirt-clients"),
                      ("ovs-vsctl", "openvswitch-switch"), ("unshare", "util-linux")):
        if not shutil.which(tool):
            return f"{tool} is not installed (Debian package {pkg}; scripts/install-deps.sh)"
    if not os.path.isdir("/etc/libvirt"):
        return "/etc/libvirt is missing (Debian package libvirt-daemon)"
    if not os.path.exists(QEMU_DRIVER):
        return "libvirt's QEMU driver is not installed (Debian package libvirt-daemon-driver-qemu)"
    if not os.path.exists(IPERF3):
        return f"{IPERF3} is not installed (Debian package iperf3)"
    return qemu_guest.unavailable_reason()


class Libvirtd:
    def __init__(self, ns, workdir, env=None):
        """env: extra environment of libvirtd (e.g. OVS_RUNDIR)."""
        self.ns, self.env = ns, dict(env or {})
        self.dir = os.path.join(str(workdir), "libvirt")
        self.sock_dir = os.path.join(self.dir, "sock")
        self.log = os.path.join(self.dir, "libvirtd.log")
        self.uri = f"qemu:///system?socket={self.sock_dir}/libvirt-sock"
        # /run/openvswitch/db.sock as libvirtd and its ovs-vsctl see it.
        self.ovs_db_sock = os.path.join(self.dir, "run", "openvswitch", "db.sock")
        self.proc = None
        self.domains = []
        self._initrd = None

    # -- the daemon --------------------------------------------------------------
    def _write_config(self):
        os.makedirs(self.sock_dir, mode=0o700, exist_ok=True)
        for sub, _ in BINDS:
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        os.makedirs(os.path.dirname(self.ovs_db_sock), mode=0o755, exist_ok=True)
        etc = os.path.join(self.dir, "etc")
        with open(os.path.join(etc, "libvirtd.conf"), "w") as f:
            f.write(LIBVIRTD_CONF.format(sock_dir=self.sock_dir, log=self.log))
        with open(os.path.join(etc, "qemu.conf"), "w") as f:
            f.write(QEMU_CONF)
        # The build-time default user and group must exist (see the docstring).
        for src, line in (("/etc/passwd", "libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin"),
                          ("/etc/group", "libvirt-qemu:x:64055:")):
            with open(src) as f:
                text = f.read()
            if not any(entry.startswith("libvirt-qemu:") for entry in text.splitlines()):
                text = text.rstrip("\n") + "\n" + line + "\n"
            with open(os.path.join(self.dir, os.path.basename(src)), "w") as f:
                f.write(text)

    def start(self, timeout=START_TIMEOUT):
        self._write_config()
        mounts = [f"mount --bind {os.path.join(self.dir, 'passwd')} /etc/passwd",
                  f"mount --bind {os.path.join(self.dir, 'group')} /etc/group"]
        mounts += [f"mount --bind {os.path.join(self.dir, sub)} {path}" for sub, path in BINDS]
        env = "".join(f" {k}={shlex.quote(v)}" for k, v in self.env.items())
        script = " && ".join(mounts) + (
            f" && exec env{env} {LIBVIRTD} --config /etc/libvirt/libvirtd.conf"
            f" --pid-file {os.path.join(self.dir, 'libvirtd.pid')}")
        out = open(os.path.join(self.dir, "libvirtd.out"), "w")
        # ip netns exec, unshare and sh each exec the next: the pid is libvirtd's.
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "unshare", "-m", "--propagation", "private",
             "sh", "-c", script], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"libvirtd exited ({self.proc.returncode}):\n{self.output()}")
            # The first call of the QEMU driver probes QEMU's capabilities.
            if os.path.exists(os.path.join(self.sock_dir, "libvirt-sock")) and \
                    self.virsh_proc("version", timeout=timeout).returncode == 0:
                return self
            if time.monotonic() > deadline:
                raise TimeoutError(f"libvirtd not answering after {timeout}s:\n{self.output()}")
            time.sleep(0.1)

    def output(self):
        text = []
        for name in ("libvirtd.out", "libvirtd.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    text.append(f.read()[-4000:])
            except FileNotFoundError:
                pass
        return "\n".join(text)

    def ovs_vsctl_commands(self):
        """The ovs-vsctl command lines libvirtd ran (from its debug log)."""
        try:
            with open(self.log, errors="replace") as f:
                return [line.split("About to run ", 1)[1].strip() for line in f
                        if "About to run ovs-vsctl" in line]
        except FileNotFoundError:
            return []

    def virsh_proc(self, *args, timeout=60):
        return subprocess.run([VIRSH, "-q", "-c", self.uri, *args], capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=timeout)

    def virsh(self, *args, timeout=60):
        proc = self.virsh_proc(*args, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"virsh {' '.join(args)} failed ({proc.returncode}): "
                               f"{proc.stderr.strip()}\n--- libvirtd ---\n{self.output()[-3000:]}")
        return proc.stdout

    def stop(self, timeout=10):
        for dom in reversed(self.domains):
            dom.remove()
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    # -- guests ------------------------------------------------------------------
    def initrd(self):
        if self._initrd is None:
            path = os.path.join(self.dir, "guest-initrd.gz")
            qemu_guest.build_initramfs(path, qemu_guest.kernel()[1], init=GUEST_INIT,
                                       binaries=[IPERF3])
            self._initrd = path
        return self._initrd

    def domain(self, name, bridge, cidr, mac):
        dom = Domain(self, name, bridge, cidr, mac)
        self.domains.append(dom)
        return dom


class Domain:
    """A persistent libvirt domain (defined once; started and destroyed as
    often as wanted), one virtio NIC on an openvswitch bridge."""

    def __init__(self, lv, name, bridge, cidr, mac):
        self.lv, self.name, self.mac, self.cidr = lv, name, mac, cidr
        self.ip = cidr.split("/")[0]
        self.uuid = str(uuid.uuid4())
        self.iface_id = str(uuid.uuid4())  # Neutron's port id, as OpenStack sets it
        self.console = os.path.join(lv.dir, f"{name}-console.log")
        self.boot_seconds = None
        xml = DOMAIN_XML.format(name=name, uuid=self.uuid, kernel=qemu_guest.kernel()[0],
                                initrd=lv.initrd(), cidr=cidr, qemu=shutil.which(qemu_guest.QEMU),
                                mac=mac, bridge=bridge, console=self.console,
                                iface_id=self.iface_id)
        path = os.path.join(lv.dir, f"{name}.xml")
        with open(path, "w") as f:
            f.write(xml)
        lv.virsh("define", path)
        self.defined = True

    def start(self, timeout=qemu_guest.BOOT_TIMEOUT, wait_ready=True):
        """virsh start (libvirt creates the tap and runs ovs-vsctl add-port),
        then waits for the READY line on the serial console."""
        t0 = time.monotonic()
        self.lv.virsh("start", self.name)
        if not wait_ready:
            return self
        while READY_LINE not in self.console_text():
            if not self.running():
                raise RuntimeError(f"guest {self.name} stopped while booting:\n"
                                   f"{self.qemu_log()}\n--- console ---\n{self.console_text()[-3000:]}")
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"guest not ready after {timeout}s; console tail:\n"
                                   f"{self.console_text()[-3000:]}")
            time.sleep(0.2)
        self.boot_seconds = time.monotonic() - t0
        if IPERF3_FAILED in self.console_text():
            raise RuntimeError(f"the guest's iperf3 did not start:\n{self.console_text()[-3000:]}")
        return self

    def running(self):
        return self.lv.virsh_proc("domstate", self.name).stdout.strip() == "running"

    def destroy(self):
        if self.running():
            self.lv.virsh("destroy", self.name)

    def taps(self):
        """Names of the guest's taps (virsh domiflist)."""
        rows = [line.split() for line in self.lv.virsh("domiflist", self.name).splitlines()]
        return [row[0] for row in rows if row and row[0] != "-"]

    def qemu_pid(self):
        try:
            with open(os.path.join(self.lv.dir, "run", "libvirt", "qemu", f"{self.name}.pid")) as f:
                return int(f.read().strip() or 0) or None
        except (FileNotFoundError, ValueError):
            return None

    def console_text(self):
        try:
            with open(self.console, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def qemu_log(self):
        try:
            with open(os.path.join(self.lv.dir, "var-log", "libvirt", "qemu", f"{self.name}.log"),
                      errors="replace") as f:
                return f.read()[-3000:]
        except FileNotFoundError:
            return ""

    def remove(self):
        """Destroy (if running) and undefine; a QEMU libvirt could not stop
        is killed by the pid in its pidfile."""
        if not self.defined:
            return
        pid = self.qemu_pid()
        if self.lv.proc is not None and self.lv.proc.poll() is None:
            self.lv.virsh_proc("destroy", self.name)
            self.lv.virsh_proc("undefine", self.name)
        self.defined = False
        if pid and _is_qemu(pid, self.name):
            os.kill(pid, signal.SIGKILL)


READY_LINE = qemu_guest.READY


def _is_qemu(pid, name):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except FileNotFoundError:
        return False
    return bool(argv) and argv[0].endswith(b"qemu-system-x86_64") and \
        any(f"guest={name}".encode() in a for a in argv)


@contextlib.contextmanager
def private_libvirtd(ns, workdir):
    lv = Libvirtd(ns, workdir)
    try:
        yield lv.start()
    finally:
        lv.stop()
