"""Real traffic between test namespaces: a byte-for-byte TCP transfer and the
offload state of an endpoint."""
import hashlib
import os
import subprocess
import tempfile

from helpers import netns
from helpers.vswitchd import wait_for


def tcp_transfer(src_ns, dst_ns, dst_ip, size=8 << 20, port=5001, what="transfer"):
    """Sends `size` random bytes from src_ns to dst_ip:port (in dst_ns) with
    socat and asserts they arrived complete and intact.  The receiver writes
    to a file: a pipe nobody reads yet would stall TCP."""
    payload = os.urandom(size)
    with tempfile.TemporaryFile() as sink:
        server = subprocess.Popen(
            ["ip", "netns", "exec", dst_ns, "socat", "-u", f"TCP-LISTEN:{port},reuseaddr", "STDOUT"],
            stdout=sink)
        try:
            wait_for(lambda: f":{port}" in netns.run(dst_ns, "ss", "-ltn").stdout, what="listener")
            client = subprocess.run(
                ["ip", "netns", "exec", src_ns, "socat", "-u", "STDIN", f"TCP:{dst_ip}:{port}"],
                input=payload, timeout=90)
            assert client.returncode == 0, f"{what}: sender failed"
            server.wait(timeout=30)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
        sink.seek(0)
        received = sink.read()
    assert len(received) == size, f"{what}: {len(received)} of {size} bytes arrived"
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest(), \
        f"{what}: data corrupted"


def offloads_on(ns, ifname):
    """True when the interface keeps the kernel's default tx checksum and TSO."""
    out = netns.run(ns, "ethtool", "-k", ifname).stdout
    return "tx-checksumming: on" in out and "tcp-segmentation-offload: on" in out
