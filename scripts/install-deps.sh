#!/bin/sh
# System packages the tests and the demo use (Debian). Idempotent.
set -eu
need=""
for pkg in openvswitch-switch tshark nfdump pmacct iproute2 iputils-ping ethtool iperf3 tcpdump socat gcc python3-venv; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
if [ -n "$need" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq $need >/dev/null
fi
