#!/bin/bash
# The main demo: a vswitch bridge with VM-like hosts in network namespaces,
# two VLANs, one host on a switch-owned tap port and the others on veths;
# a second bridge joined to the first by an LACP bond of two links; ping and
# a TCP transfer, then the switch's view: show, MAC table, megaflows and
# port counters; NetFlow v5 on br0 towards nfcapd (in the switch's namespace)
# and the records of that traffic as nfdump reads them.  Cleans up everything
# it creates.
# Run as root.  `scripts/demo.sh --no-install` skips the setup step.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--no-install" ]; then
    ./scripts/install-deps.sh
    python3 -m venv .venv
    echo "creating .venv and installing vswitch (compiles the fast path)"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q .
fi
BIN="$PWD/.venv/bin"
RUN=$(mktemp -d /tmp/vswitch-demo.XXXXXX)
FLOWS="$RUN/flows"      # nfcapd's directory
NFCAPD_PID=""
SW=vsdemo-sw
HOSTS="vm1 vm2 vm3 vm4 vm5"
VSCTL="ip netns exec $SW $BIN/vsctl --rundir $RUN"

cleanup() {
    if [ -n "$NFCAPD_PID" ]; then kill "$NFCAPD_PID" 2>/dev/null || true; wait "$NFCAPD_PID" 2>/dev/null || true; fi
    [ -f "$RUN/vswitchd.pid" ] && kill "$(cat "$RUN/vswitchd.pid")" 2>/dev/null && sleep 0.5
    for ns in $SW $HOSTS; do ip netns del "vsdemo-$ns" 2>/dev/null || ip netns del "$ns" 2>/dev/null || true; done
    ip netns del $SW 2>/dev/null || true
    rm -rf "$RUN"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

ip netns add $SW
for h in $HOSTS; do
    ip netns add "vsdemo-$h"; ip -n "vsdemo-$h" link set lo up
    # IPv4 only, so the flow dump below shows the demo's traffic, not IPv6 chatter.
    ip netns exec "vsdemo-$h" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip -n $SW link set lo up

say "start vswitchd in namespace $SW"
ip netns exec $SW "$BIN/vswitchd" --rundir "$RUN" --db "$RUN/conf.db" --log-file "$RUN/vswitchd.log" --detach

say "build the bridge: vm1 on a tap port, vm2-vm4 on veths; VLAN 10 (vm1, vm2) and VLAN 20 (vm3, vm4)"
for h in vm2 vm3 vm4; do
    ip -n $SW link add "$h" type veth peer name eth0 netns "vsdemo-$h"
done
run $VSCTL add-br br0
run $VSCTL add-port br0 vm1 tag=10 -- set interface vm1 type=tap
run $VSCTL add-port br0 vm2 tag=10
run $VSCTL add-port br0 vm3 tag=20
run $VSCTL add-port br0 vm4 tag=20
ip -n $SW link set vm1 netns vsdemo-vm1          # the tap's kernel side goes to the "VM"
addr() { ip -n "vsdemo-$1" addr add "$2/24" dev "$3"; ip -n "vsdemo-$1" link set "$3" up; }
addr vm1 10.0.10.1 vm1; addr vm2 10.0.10.2 eth0; addr vm3 10.0.20.3 eth0; addr vm4 10.0.20.4 eth0
# Same subnet on both VLANs' hosts to show isolation: vm1 -> 10.0.20.3 must fail.
ip -n vsdemo-vm1 addr add 10.0.20.1/24 dev vm1

say "a bond with LACP: br0's bond0 {bo1,bo2} to br1's bond1 {bp1,bp2} over two veth links; vm5 on br1, VLAN 10"
for i in 1 2; do ip -n $SW link add "bo$i" type veth peer name "bp$i"; done
ip -n $SW link add vm5 type veth peer name eth0 netns vsdemo-vm5
run $VSCTL add-bond br0 bond0 bo1 bo2 lacp=active bond_mode=balance-tcp other_config:lacp-time=fast
run $VSCTL add-br br1 -- add-bond br1 bond1 bp1 bp2 lacp=active bond_mode=balance-tcp other_config:lacp-time=fast
run $VSCTL add-port br1 vm5 tag=10
addr vm5 10.0.10.5 eth0
for i in $(seq 50); do
    [ "$($VSCTL bond-show bond0 | grep -c ': enabled')" = 2 ] && break
    sleep 0.2
done
run $VSCTL lacp-show bond0
run $VSCTL bond-show bond0

say "NetFlow v5 on br0 towards nfcapd on 127.0.0.1 in namespace $SW"
mkdir "$FLOWS"
NFPORT=$(ip netns exec $SW python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '$ nfcapd -b 127.0.0.1 -p %s -w %s &\n' "$NFPORT" "$FLOWS"
ip netns exec $SW nfcapd -b 127.0.0.1 -p "$NFPORT" -w "$FLOWS" -t 3600 >"$RUN/nfcapd.log" 2>&1 &
NFCAPD_PID=$!
for i in $(seq 50); do
    ip netns exec $SW ss -lun | grep -q "127.0.0.1:$NFPORT " && break
    [ "$i" = 50 ] && { echo "nfcapd is not listening:"; cat "$RUN/nfcapd.log"; exit 1; }
    sleep 0.1
done
run $VSCTL -- --id=@nf create NetFlow targets=\"127.0.0.1:$NFPORT\" active_timeout=60 -- set Bridge br0 netflow=@nf

say "traffic"
run ip netns exec vsdemo-vm1 ping -c 3 -i 0.2 10.0.10.2
run ip netns exec vsdemo-vm3 ping -c 3 -i 0.2 10.0.20.4
run ip netns exec vsdemo-vm5 ping -c 3 -i 0.2 10.0.10.1      # across the bond
printf '$ ping from VLAN 10 to VLAN 20 (must fail)\n'
if ip netns exec vsdemo-vm1 ping -c 2 -W 1 -i 0.2 10.0.20.3 >/dev/null; then echo "VLANs leak!"; exit 1; else echo "no reply: VLANs are isolated"; fi
say "TCP: 64 MiB from vm2 to vm1 (tap), default offloads on both ends, checked byte for byte"
head -c 67108864 /dev/urandom > "$RUN/blob"
ip netns exec vsdemo-vm1 socat -u TCP-LISTEN:5001,reuseaddr "CREATE:$RUN/blob.rx" &
LISTENER=$!
sleep 0.5
ip netns exec vsdemo-vm2 socat -u "OPEN:$RUN/blob" TCP:10.0.10.1:5001
wait "$LISTENER"
if cmp -s "$RUN/blob" "$RUN/blob.rx"; then echo "64 MiB received intact"; else echo "TCP data corrupted"; exit 1; fi

say "TCP throughput vm2 -> vm1 (iperf3, 3 s; socat's timing measures socat, not the switch)"
ip netns exec vsdemo-vm1 iperf3 -s -1 -B 10.0.10.1 >/dev/null 2>&1 &
LISTENER=$!
sleep 0.5
ip netns exec vsdemo-vm2 iperf3 -c 10.0.10.1 -t 3 | grep -E "sender|receiver"
wait "$LISTENER"

say "what the switch knows"
run $VSCTL show
run $VSCTL fdb-show br0
run $VSCTL dpctl-dump-flows
run $VSCTL dump-ports br0
run $VSCTL pmd-stats-show

say "the collector's view: NetFlow v5 records of br0's traffic, as nfdump reads nfcapd's file"
run $VSCTL list NetFlow
# Removing the reference reports what the megaflows forwarded since the
# revalidator's last look, then exports what the flow cache holds.
run $VSCTL clear Bridge br0 netflow
sleep 0.5
kill "$NFCAPD_PID"; wait "$NFCAPD_PID" 2>/dev/null || true; NFCAPD_PID=""   # SIGTERM: nfcapd writes its file
echo "# IPv4 only (v5's limit; ARP is not a flow); ICMP type.code in the port; Input/Output are"
echo "# ifindexes: 0 for vm1, whose tap's netdev lives in vm1's namespace; bytes at the IP layer"
run nfdump -R "$FLOWS" -O tstart -o "fmt:%ts %pr %sap -> %dap %in %out %pkt %byt"
TCP_BYTES=$(nfdump -R "$FLOWS" -q -N -o "fmt:%byt" "src ip 10.0.10.2 and dst ip 10.0.10.1 and dst port 5001" | awk '{s += $1} END {print s + 0}')
if [ "$TCP_BYTES" -ge 67108864 ]; then
    echo "NetFlow saw the 64 MiB transfer: $TCP_BYTES bytes at the IP layer"
else
    echo "NetFlow missed part of the 64 MiB transfer: $TCP_BYTES bytes"; exit 1
fi
