"""A real QEMU guest on a tap, attached the way a KVM host (libvirt) does it:
QEMU creates the tap itself (`-netdev tap,ifname=vnet0,script=no`) in the
switch's namespace, the host sets it up, and the switch takes the tap's kernel
side as an existing netdev.

    with qemu_guest.guest(sw, tmp_path, "vnet0", "10.77.9.2/24") as g:
        ...                      # g.ip == "10.77.9.2"; g.mac as configured
    # QEMU killed (its pid only); the tap is gone

The guest is tiny: the host's Debian kernel (/boot/vmlinuz-*, package
linux-image-amd64) and an initramfs built here (cpio newc + gzip) holding a
static busybox (package busybox-static) and the virtio-net modules with their
dependencies.  Its /init loads them, gives eth0 the address from `vsip=` on the
kernel command line, prints READY on the serial console (a log file) and
idles; the guest kernel answers ping.  Emulated with TCG: the KVM here cannot
boot a stock kernel, and TCG works everywhere.  No vhost-net either.
"""
import contextlib
import glob
import gzip
import io
import lzma
import os
import shutil
import signal
import struct
import subprocess
import time

from helpers import netns

QEMU = "qemu-system-x86_64"
BUSYBOX = "/bin/busybox"
READY = "vswitch-guest ready"
BOOT_TIMEOUT = 150  # seconds; a TCG boot took 5-6 s on a 2-core box, slower CI allowed for
# virtio-net over PCI in the Debian kernel, where these are modules.
NET_MODULES = ("virtio_pci", "virtio_net")

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
for m in $(cat /modules.order); do insmod /lib/modules/$m.ko || echo "insmod $m failed"; done
addr=$(sed -n 's/.*vsip=\([^ ]*\).*/\1/p' /proc/cmdline)
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 200 ]; do usleep 50000; i=$((i+1)); done
ip link set lo up
ip link set eth0 up
ip addr add "$addr" dev eth0
echo "READY eth0 $addr $(cat /sys/class/net/eth0/address)"
while true; do sleep 3600; done
""".replace("READY", READY)


class Unavailable(Exception):
    """What the host lacks to boot a guest (the reason, for pytest.skip)."""


def kernel():
    """(vmlinuz path, version) of the newest installed kernel with modules."""
    found = []
    for path in glob.glob("/boot/vmlinuz-*"):
        ver = path.split("vmlinuz-", 1)[1]
        if os.path.isdir(f"/lib/modules/{ver}/kernel") and os.access(path, os.R_OK):
            found.append((os.path.getmtime(path), path, ver))
    if not found:
        raise Unavailable("no readable /boot/vmlinuz-* with /lib/modules/<ver> "
                          "(Debian package linux-image-amd64)")
    _, path, ver = max(found)
    return path, ver


def check_available():
    """Raises Unavailable unless QEMU, a kernel and a static busybox are here."""
    if not shutil.which(QEMU):
        raise Unavailable(f"{QEMU} is not installed (Debian package qemu-system-x86)")
    kernel()
    if not _is_static_elf(BUSYBOX):
        raise Unavailable(f"{BUSYBOX} is missing or not static (Debian package busybox-static)")


def _is_static_elf(path):
    """An ELF executable without a program interpreter (PT_INTERP)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only
                return False
            phoff, = struct.unpack_from("<Q", head, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


# --- initramfs ------------------------------------------------------------

def _module_path(ver, name):
    return subprocess.run(["modinfo", "-k", ver, "-n", name], capture_output=True,
                          text=True, check=True).stdout.strip()


def _module_deps(ver, name):
    out = subprocess.run(["modinfo", "-k", ver, "-F", "depends", name], capture_output=True,
                         text=True, check=True).stdout.strip()
    return [d for d in out.split(",") if d]


def modules_in_load_order(ver, wanted=NET_MODULES):
    """[(name, path)], every module after its dependencies (modinfo's
    `depends`).  Built-in modules (no file) are left out."""
    order, seen = [], set()

    def visit(name):
        if name in seen:
            return
        seen.add(name)
        for dep in _module_deps(ver, name):
            visit(dep)
        path = _module_path(ver, name)
        if path and path != "(builtin)" and os.path.exists(path):
            order.append((name, path))

    for name in wanted:
        visit(name)
    return order


def _module_bytes(path):
    """The module, uncompressed (busybox insmod takes plain .ko)."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", path], capture_output=True, check=True).stdout
    return data


class _Cpio:
    """A cpio archive in the kernel's `newc` format."""

    def __init__(self):
        self.buf, self.ino = io.BytesIO(), 1

    def _entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        name_b = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0)
        self.ino += 1
        self.buf.write(b"070701" + b"".join(b"%08X" % v for v in fields) + name_b)
        self.buf.write(b"\0" * (-(110 + len(name_b)) % 4))
        self.buf.write(data + b"\0" * (-len(data) % 4))

    def dir(self, name):
        self._entry(name, 0o040755, nlink=2)

    def file(self, name, data, perm=0o644):
        self._entry(name, 0o100000 | perm, data)

    def symlink(self, name, target):
        self._entry(name, 0o120777, target.encode())

    def chardev(self, name, major, minor):
        self._entry(name, 0o020600, rdev=(major, minor))

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def shared_libraries(binary):
    """The host files `binary` loads (ldd's resolved paths, the loader too)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0] if parts else ""
        if path.startswith("/"):
            libs.append(path)
    return libs


def build_initramfs(path, ver, init=INIT, binaries=()):
    """Writes the guest's gzipped initramfs to `path`: busybox, the
    virtio-net modules and `init`; each of `binaries` (host paths, e.g.
    /usr/bin/iperf3) goes in at the same path with its shared libraries."""
    mods = modules_in_load_order(ver)
    names = [n for n, _ in mods]
    if "virtio_net" not in names:
        raise Unavailable(f"kernel {ver} has no virtio_net module")
    ar = _Cpio()
    dirs = ["bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"]
    files = []
    for binary in binaries:
        for host_path in [binary, *shared_libraries(binary)]:
            name = host_path.lstrip("/")
            files.append((name, host_path))
            parts = name.split("/")[:-1]
            dirs += ["/".join(parts[:i + 1]) for i in range(len(parts))]
    for d in dict.fromkeys(dirs):
        ar.dir(d)
    for name, host_path in dict(files).items():
        with open(host_path, "rb") as f:  # follows symlinks: the library itself
            ar.file(name, f.read(), 0o755)
    ar.chardev("dev/console", 5, 1)
    ar.chardev("dev/null", 1, 3)
    with open(BUSYBOX, "rb") as f:
        ar.file("bin/busybox", f.read(), 0o755)
    ar.symlink("bin/sh", "busybox")
    for name, mod_path in mods:
        ar.file(f"lib/modules/{name}.ko", _module_bytes(mod_path))
    ar.file("modules.order", ("\n".join(names) + "\n").encode())
    ar.file("init", init.encode(), 0o755)
    with open(path, "wb") as f:
        f.write(gzip.compress(ar.finish(), compresslevel=1))
    return names


# --- the guest ----------------------------------------------------------

class Guest:
    """One QEMU guest process on tap `ifname` in namespace `ns`."""

    def __init__(self, ns, workdir, ifname, cidr, mac="52:54:00:77:09:02", set_tap_up=True):
        self.ns, self.workdir, self.ifname, self.cidr, self.mac = ns, str(workdir), ifname, cidr, mac
        self.ip = cidr.split("/")[0]
        self.set_tap_up = set_tap_up
        self.proc = None
        self.boots = 0
        self.boot_seconds = None
        self.console = None

    def _initrd(self):
        path = os.path.join(self.workdir, "guest-initrd.gz")
        if not os.path.exists(path):
            build_initramfs(path, kernel()[1])
        return path

    def start(self, timeout=BOOT_TIMEOUT):
        """Boots the guest, waits for its READY line on the console and for
        the tap; brings the tap up as libvirt does (no switch command)."""
        assert self.proc is None, "guest already running"
        check_available()
        vmlinuz, _ = kernel()
        initrd = self._initrd()
        self.boots += 1
        self.console = os.path.join(self.workdir, f"guest-console-{self.boots}.log")
        open(self.console, "w").close()
        append = (f"console=ttyS0 loglevel=4 panic=-1 nokaslr mitigations=off "
                  f"vsip={self.cidr}")
        argv = ["ip", "netns", "exec", self.ns, QEMU,
                "-accel", "tcg", "-smp", "1", "-m", "256",
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-serial", f"file:{self.console}", "-monitor", "none",
                "-kernel", vmlinuz, "-initrd", initrd, "-append", append,
                "-netdev", f"tap,id=n0,ifname={self.ifname},script=no,downscript=no,vhost=off",
                "-device", f"virtio-net-pci,netdev=n0,mac={self.mac}"]
        qemu_log = open(os.path.join(self.workdir, f"guest-qemu-{self.boots}.log"), "w")
        t0 = time.monotonic()
        # `ip netns exec` execs QEMU: this pid is QEMU's.
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=qemu_log,
                                     stderr=subprocess.STDOUT)
        qemu_log.close()
        try:
            self._wait_ready(timeout, t0)
        except BaseException:
            self.stop()
            raise
        self.boot_seconds = time.monotonic() - t0
        return self

    def _tap_exists(self):
        return netns.run(self.ns, "ip", "link", "show", self.ifname, check=False).returncode == 0

    def _wait_ready(self, timeout, t0):
        tap_up = False
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"QEMU exited ({self.proc.returncode}) before the guest was ready:\n"
                                   f"{self._qemu_output()}\n--- console ---\n{self.console_text()[-3000:]}")
            if self.set_tap_up and not tap_up and self._tap_exists():
                netns.run(self.ns, "ip", "link", "set", self.ifname, "up")
                tap_up = True
            if tap_up or not self.set_tap_up:
                if READY in self.console_text():
                    return
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"guest not ready after {timeout}s; console tail:\n"
                                   f"{self.console_text()[-3000:]}")
            time.sleep(0.1)

    def console_text(self):
        try:
            with open(self.console, errors="replace") as f:
                return f.read()
        except (FileNotFoundError, TypeError):
            return ""

    def _qemu_output(self):
        try:
            with open(os.path.join(self.workdir, f"guest-qemu-{self.boots}.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self, timeout=10):
        """SIGKILL exactly the QEMU we started (a VM that dies or is
        destroyed) and reap it; its tap goes with it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=timeout)


@contextlib.contextmanager
def guest(ns, workdir, ifname, cidr, **kw):
    g = Guest(ns, workdir, ifname, cidr, **kw)
    try:
        yield g.start()
    finally:
        g.stop()


def unavailable_reason():
    """None when a guest can boot here, else why not."""
    try:
        check_available()
    except Unavailable as e:
        return str(e)
    return None
