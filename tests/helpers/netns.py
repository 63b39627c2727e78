"""Network namespaces and veth pairs for tests, with unique names and cleanup.

    with netns.namespace("lacp") as ns:            # "lacp-3f9c1a"
        a, b = netns.veth_pair(ns, ns)             # two ends, both up
        netns.run(ns, "ip", "link", "show")

Everything created inside a `namespace()` block goes away with it: deleting
a namespace deletes the veth ends inside it. `entered(ns)` switches the
calling thread into a namespace (for opening sockets there) and back.
"""
import contextlib
import ctypes
import secrets
import subprocess

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def unique(prefix: str, width: int = 15) -> str:
    """`prefix` plus a random hex suffix, at most `width` characters."""
    suffix = secrets.token_hex(3)
    return f"{prefix[:width - len(suffix) - 1]}-{suffix}"


def run(ns: str | None, *cmd: str, check: bool = True, env: dict | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess:
    """Run `cmd` inside namespace `ns` (or here when ns is None)."""
    argv = (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
    proc = subprocess.run(argv, capture_output=True, text=True, env=env,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): "
                           f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc


@contextlib.contextmanager
def namespace(prefix: str = "t"):
    """A fresh namespace with loopback up and IPv6 off (no RS/MLD chatter)."""
    name = unique(prefix)
    run(None, "ip", "netns", "add", name)
    try:
        run(name, "ip", "link", "set", "lo", "up")
        run(name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        run(name, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        yield name
    finally:
        run(None, "ip", "netns", "delete", name, check=False)


def veth_pair(ns_a: str, ns_b: str, prefix: str = "v") -> tuple[str, str]:
    """Create a veth pair with one end in each namespace, both up."""
    stem = unique(prefix[:6], 14)          # "v-3f9c1a" + "a"/"b"
    a, b = stem + "a", stem + "b"
    run(ns_a, "ip", "link", "add", a, "type", "veth", "peer", "name", b,
        "netns", ns_b)
    run(ns_a, "ip", "link", "set", a, "up")
    run(ns_b, "ip", "link", "set", b, "up")
    return a, b


def blackhole(ns: str, ifname: str) -> None:
    """Cut a link's transmit direction while it stays up (no netem here)."""
    run(ns, "tc", "qdisc", "replace", "dev", ifname, "root", "blackhole")


def unblackhole(ns: str, ifname: str) -> None:
    run(ns, "tc", "qdisc", "del", "dev", ifname, "root", check=False)


@contextlib.contextmanager
def entered(ns: str):
    """Move this thread into `ns` for the duration of the block.

    Sockets opened inside stay bound to `ns` after the thread comes back.
    """
    with open("/proc/self/ns/net") as home, open(f"/run/netns/{ns}") as there:
        if _libc.setns(there.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({ns}) failed")
        try:
            yield
        finally:
            if _libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back home failed")
