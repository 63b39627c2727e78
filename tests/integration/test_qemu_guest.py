"""A real QEMU guest on vswitch as a KVM host attaches one: QEMU creates tap
vnet0 in the switch's namespace (libvirt's `-netdev tap,ifname=vnet0`), the
tap is set up and added with `vsctl add-port br0 vnet0` (an existing netdev:
its kernel side opened with afpacket).  When the guest dies its tap goes away:
the port is closed with the reason in `status` and the daemon idles.  The
guest restarted on a new tap of the same name and MAC is reachable again with
no vsctl command: the port follows the netdev by netlink events.

The guest is the host's Debian kernel plus a busybox initramfs built at test
time (tests/helpers/qemu_guest.py), emulated with TCG; each boot takes a few
seconds here, the timeouts allow for a much slower machine."""
import os
import time

import pytest
from helpers import netns, qemu_guest
from helpers.topology import switch_with_bridge
from helpers.vswitchd import wait_for

pytestmark = pytest.mark.timeout(2 * qemu_guest.BOOT_TIMEOUT + 100)  # 400 s
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_share(pid, seconds=1.0):
    """The share of one CPU `pid` used over `seconds` (as test_netdev_lifecycle)."""
    def cpu_seconds():
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    before, t0 = cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds() - before) / (time.monotonic() - t0)

GUEST_MAC = "52:54:00:77:09:02"


@pytest.fixture(autouse=True)
def _needs_qemu():
    reason = qemu_guest.unavailable_reason()
    if reason:
        pytest.skip(reason)


def test_restarted_qemu_guest_is_reachable_again_without_a_command(tmp_path):
    with switch_with_bridge(tmp_path) as topo:
        topo.veth_host("p1", "10.77.9.1")
        vm = qemu_guest.Guest(topo.sw, tmp_path, "vnet0", "10.77.9.2/24", mac=GUEST_MAC)
        try:
            vm.start()
            topo.vs.vsctl("add-port", "br0", "vnet0")
            topo.hosts["vnet0"] = (None, "eth0", vm.ip)  # the guest: ping target only
            wait_for(lambda: topo.ping("p1", "vnet0", count=1), timeout=10, what="ping to the guest")
            assert topo.ping("p1", "vnet0")
            ofport = topo.vs.vsctl("get", "interface", "vnet0", "ofport")
            first_boot = vm.boot_seconds

            vm.stop()  # the VM dies: QEMU closes the tap and the kernel deletes vnet0
            wait_for(lambda: netns.run(topo.sw, "ip", "link", "show", "vnet0", check=False).returncode != 0,
                     what="the tap to disappear")
            wait_for(lambda: "went away" in topo.vs.vsctl("get", "interface", "vnet0", "status"),
                     what="vnet0's status to report the lost netdev")
            assert cpu_share(topo.vs.pid) < 0.02
            assert not topo.ping("p1", "vnet0", count=1)

            vm.start()  # same tap name, same MAC, a new ifindex; no vsctl command
            start = time.monotonic()
            wait_for(lambda: topo.ping("p1", "vnet0", count=1), timeout=10,
                     what="ping to the restarted guest")
            reached = time.monotonic() - start
            assert topo.ping("p1", "vnet0")
            assert topo.vs.vsctl("get", "interface", "vnet0", "ofport") == ofport
            assert "error" not in topo.vs.vsctl("get", "interface", "vnet0", "status")
            log = topo.vs.read_log()
            assert "port reopened" in log
            print(f"guest boots: {first_boot:.1f} s, {vm.boot_seconds:.1f} s; "
                  f"reachable {reached:.2f} s after the second boot")
        finally:
            vm.stop()
