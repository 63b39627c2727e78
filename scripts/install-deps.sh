#!/bin/sh
# System packages the tests and the demo use (Debian). Idempotent.
# On a busy host another apt may hold the package manager's lock: wait for it
# (apt's own DPkg::Lock::Timeout, up to 10 minutes) instead of failing.
# clang, libbpf-dev: the kernel XDP tier's program (csrc/bpf/), built with the
# extension; without them it is built without the tier.
# libvirt: the daemon, its QEMU driver and virsh only; not
# libvirt-daemon-system (no system libvirtd is started: the tests run a
# private one, tests/helpers/libvirt_guest.py).
set -eu
need=""
for pkg in openvswitch-switch openvswitch-testcontroller tshark nfdump pmacct iproute2 iputils-ping ethtool iperf3 tcpdump socat gcc clang libbpf-dev python3-venv qemu-system-x86 linux-image-amd64 busybox-static \
           libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
if [ -n "$need" ]; then
    export DEBIAN_FRONTEND=noninteractive
    wait_lock="-o DPkg::Lock::Timeout=600"
    echo "installing Debian packages:$need (waits for another apt if one runs)"
    apt-get $wait_lock update -qq
    apt-get $wait_lock install -y -qq $need >/dev/null
    echo "Debian packages installed"
fi
