"""A libvirt-managed guest on vswitch, with the real libvirt (Debian's
libvirtd and its QEMU driver, a private instance: tests/helpers/libvirt_guest.py)
and the real ovs-vsctl that libvirt runs, pointed at vswitchd only by where
the database socket is: vswitchd `--remote punix:` at the path libvirt's
ovs-vsctl uses by default (/run/openvswitch/db.sock as libvirtd sees it).

The domain has `<interface type='bridge'><source bridge='br0'/><virtualport
type='openvswitch'/><model type='virtio'/>`.  `virsh start`: libvirt creates
the vnet tap in the switch's namespace and adds it with its external_ids
(attached-mac, iface-id, vm-id, iface-status); the guest answers ping and
carries TCP both ways (iperf3 in the guest, a client in a namespace on br0).
`virsh destroy`: libvirt's del-port removes the port.  `virsh start` again:
the new tap is a port again and the guest is reachable.  Its QEMU killed (a
crash): libvirt removes the port too.

TCG (`<domain type='qemu'>`): the paravirtual KVM here cannot boot a stock
kernel.  Each boot takes ~10-20 s here."""
import json
import os
import signal
import time

import pytest
from helpers import libvirt_guest, netns, qemu_guest
from helpers.topology import switch_with_bridge
from helpers.vswitchd import VSwitchd, wait_for

pytestmark = pytest.mark.timeout(2 * qemu_guest.BOOT_TIMEOUT + libvirt_guest.START_TIMEOUT + 120)

GUEST_MAC = "52:54:00:77:0a:02"
HOST_IP, GUEST_IP = "10.77.10.1", "10.77.10.2"


@pytest.fixture
def needs_libvirt():
    reason = libvirt_guest.unavailable_reason()
    if reason:
        pytest.skip(reason)


def ovs_vsctl(ns, db_sock, *args):
    proc = netns.run(ns, "ovs-vsctl", f"--db=unix:{db_sock}", "--timeout=20", *args, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"ovs-vsctl {' '.join(args)}: {proc.stderr}")
    return proc.stdout.strip()


def external_ids(ns, db_sock, iface):
    """The Interface's external_ids as a dict (ovs-vsctl --format=json)."""
    out = ovs_vsctl(ns, db_sock, "--format=json", "--data=json", "--columns=external_ids",
                    "find", "Interface", f"name={iface}")
    rows = json.loads(out)["data"]
    assert len(rows) == 1, out
    kind, pairs = rows[0][0]
    assert kind == "map"
    return dict(pairs)


def iperf3(ns, server, seconds, reverse=False, retry_for=15):
    """(bytes, Mbit/s) the receiver got in one iperf3 run from `ns`.  The
    guest's server takes a while (TCG) to accept the next test after one
    ended: refusals are retried for `retry_for` seconds."""
    argv = ["iperf3", "-c", server, "-t", str(seconds), "-J", "--connect-timeout", "5000"]
    deadline = time.monotonic() + retry_for
    while True:
        proc = netns.run(ns, *(argv + (["-R"] if reverse else [])), check=False, timeout=seconds + 30)
        result = json.loads(proc.stdout or "{}")
        error = result.get("error", "")
        if ("refused" in error or "busy" in error) and time.monotonic() < deadline:
            time.sleep(0.5)
            continue
        break
    assert proc.returncode == 0 and "sum_received" in result.get("end", {}), \
        f"iperf3 {'-R ' if reverse else ''}failed: {error}: {proc.stdout[-2000:]}{proc.stderr}"
    received = result["end"]["sum_received"]
    return received["bytes"], received["bits_per_second"] / 1e6


def test_libvirt_guest_on_an_openvswitch_bridge(tmp_path, needs_libvirt):
    with netns.namespace("sw") as sw, netns.namespace("h1") as h1:
        lv = libvirt_guest.Libvirtd(sw, tmp_path)
        vs = VSwitchd(sw, str(tmp_path))
        db = lv.ovs_db_sock
        vs.start("--remote", f"punix:{db}")
        try:
            # The bridge and a host, built with the real ovs-vsctl too.
            netns.run(sw, "ip", "link", "add", "p1", "type", "veth", "peer", "name", "eth0", "netns", h1)
            netns.run(sw, "ip", "link", "set", "p1", "up")
            netns.run(h1, "ip", "addr", "add", f"{HOST_IP}/24", "dev", "eth0")
            netns.run(h1, "ip", "link", "set", "eth0", "up")
            ovs_vsctl(sw, db, "add-br", "br0", "--", "add-port", "br0", "p1")

            t0 = time.monotonic()
            lv.start()
            libvirtd_seconds = time.monotonic() - t0
            dom = lv.domain("vsguest", "br0", f"{GUEST_IP}/24", GUEST_MAC)

            # First boot: libvirt's tap is a port with libvirt's external_ids.
            dom.start()
            taps = dom.taps()
            assert len(taps) == 1 and taps[0].startswith("vnet"), taps
            tap = taps[0]
            assert tap in ovs_vsctl(sw, db, "list-ports", "br0").split()
            assert external_ids(sw, db, tap) == {
                "attached-mac": GUEST_MAC, "iface-id": dom.iface_id,
                "vm-id": dom.uuid, "iface-status": "active"}
            assert int(ovs_vsctl(sw, db, "get", "Interface", tap, "ofport")) >= 1
            assert ovs_vsctl(sw, db, "get", "Interface", tap, "error") == "[]"
            add_cmds = [c for c in lv.ovs_vsctl_commands() if "add-port" in c]
            assert len(add_cmds) == 1 and f"add-port br0 {tap}" in add_cmds[0], add_cmds

            ping = ["ping", "-c", "3", "-i", "0.2", "-W", "2", GUEST_IP]
            wait_for(lambda: netns.run(h1, "ping", "-c", "1", "-W", "1", GUEST_IP, check=False).returncode == 0,
                     timeout=15, what="ping to the libvirt guest")
            assert netns.run(h1, *ping, check=False).returncode == 0
            sent, to_guest = iperf3(h1, GUEST_IP, 2)
            got, from_guest = iperf3(h1, GUEST_IP, 2, reverse=True)
            assert sent > 1_000_000 and got > 1_000_000, (sent, got)
            first_boot = dom.boot_seconds

            # The port counted the TCP both ways (statistics are refreshed
            # every 5 s).  libvirt's `virsh domifstat` reads the tap's kernel
            # counters, not these.
            def port_bytes():
                out = ovs_vsctl(sw, db, "get", "Interface", tap, "statistics:tx_bytes",
                                "statistics:rx_bytes").split()
                return int(out[0]), int(out[1])
            wait_for(lambda: port_bytes()[0] > sent and port_bytes()[1] > got, timeout=15,
                     what=f"{tap}'s statistics to count the TCP")

            # Destroyed: libvirt's del-port removes the port, the tap is gone.
            dom.destroy()
            assert any(c.endswith(f"del-port {tap}") for c in lv.ovs_vsctl_commands())
            wait_for(lambda: tap not in ovs_vsctl(sw, db, "list-ports", "br0").split(),
                     timeout=10, what=f"port {tap} to go")
            assert netns.run(sw, "ip", "link", "show", tap, check=False).returncode != 0
            assert ovs_vsctl(sw, db, "list-ports", "br0").split() == ["p1"]
            assert netns.run(h1, "ping", "-c", "1", "-W", "1", GUEST_IP, check=False).returncode != 0

            # Started again: the new tap (libvirt may name it anew) is a port again.
            dom.start()
            tap2, = dom.taps()
            assert sorted(ovs_vsctl(sw, db, "list-ports", "br0").split()) == sorted(["p1", tap2])
            assert external_ids(sw, db, tap2)["attached-mac"] == GUEST_MAC
            start = time.monotonic()
            wait_for(lambda: netns.run(h1, "ping", "-c", "1", "-W", "1", GUEST_IP, check=False).returncode == 0,
                     timeout=15, what="ping to the restarted guest")
            reached = time.monotonic() - start
            assert netns.run(h1, *ping, check=False).returncode == 0
            again, _ = iperf3(h1, GUEST_IP, 1)
            assert again > 500_000

            # The guest's QEMU dies (SIGKILL, as a crash): libvirt notices and
            # removes the port; the tap went with QEMU.
            pid = dom.qemu_pid()
            assert pid and libvirt_guest._is_qemu(pid, dom.name)
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: tap2 not in ovs_vsctl(sw, db, "list-ports", "br0").split(),
                     timeout=15, what=f"port {tap2} to go after QEMU died")
            wait_for(lambda: not dom.running(), timeout=10, what="libvirt to see the guest stopped")
            assert ovs_vsctl(sw, db, "list-ports", "br0").split() == ["p1"]
            assert "Traceback" not in vs.read_log()
            print(f"libvirtd ready in {libvirtd_seconds:.1f} s; guest boots {first_boot:.1f} s, "
                  f"{dom.boot_seconds:.1f} s (taps {tap}, {tap2}); reachable {reached:.2f} s after the "
                  f"second boot; TCP to the guest {to_guest:.0f} Mbit/s, from it {from_guest:.0f} Mbit/s")
        finally:
            lv.stop()
            vs.stop()


def test_libvirt_finds_vswitchd_by_ovs_rundir(tmp_path, needs_libvirt):
    """OVS_RUNDIR in libvirtd's environment reaches the ovs-vsctl it runs:
    set to vswitchd's run directory, libvirt adds and removes its tap on
    vswitchd's own RUNDIR/db.sock, with no --remote.  (The guest is not
    waited for: the port is what is checked.)"""
    with netns.namespace("sw") as sw:
        vs = VSwitchd(sw, str(tmp_path))
        vs.start()
        lv = libvirt_guest.Libvirtd(sw, tmp_path, env={"OVS_RUNDIR": vs.rundir})
        db = os.path.join(vs.rundir, "db.sock")
        try:
            assert not os.path.exists(lv.ovs_db_sock)
            ovs_vsctl(sw, db, "add-br", "br0")
            t0 = time.monotonic()
            lv.start()
            t1 = time.monotonic()
            dom = lv.domain("vsguest", "br0", f"{GUEST_IP}/24", GUEST_MAC)
            t2 = time.monotonic()
            dom.start(wait_ready=False)
            print(f"libvirtd ready in {t1 - t0:.1f} s, guest defined in {t2 - t1:.1f} s, "
                  f"started in {time.monotonic() - t2:.1f} s")
            tap, = dom.taps()
            assert ovs_vsctl(sw, db, "list-ports", "br0").split() == [tap]
            assert external_ids(sw, db, tap)["vm-id"] == dom.uuid
            dom.destroy()
            assert ovs_vsctl(sw, db, "list-ports", "br0") == ""
        finally:
            lv.stop()
            vs.stop()


def test_qemu_cannot_be_a_second_program_side_of_a_switch_tap(tmp_path):
    """A `type=tap` port is the switch's tap: the switch holds its program
    side, so QEMU (or libvirt) asking for that tap fails with EBUSY and the
    port carries on.  VMs attach with their own tap as a plain port (above);
    `type=tap` is for containers (its kernel side moved into one)."""
    reason = qemu_guest.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with switch_with_bridge(tmp_path) as topo:
        topo.tap_host("ct0", "10.77.11.2")       # a container on a switch tap
        topo.veth_host("p1", "10.77.11.1")
        assert topo.ping("p1", "ct0")
        netns.run(topo.hosts["ct0"][0], "ip", "link", "set", "ct0", "netns", topo.sw)
        proc = netns.run(topo.sw, qemu_guest.QEMU, "-accel", "tcg", "-S", "-nodefaults",
                         "-display", "none", "-monitor", "none",
                         "-netdev", "tap,id=n0,ifname=ct0,script=no,downscript=no,vhost=off",
                         "-device", "virtio-net-pci,netdev=n0", check=False, timeout=30)
        assert proc.returncode != 0
        assert "Device or resource busy" in proc.stderr, proc.stderr
        print(proc.stderr.strip())
        assert "error" not in topo.vs.vsctl("get", "interface", "ct0", "status")
