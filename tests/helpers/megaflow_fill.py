"""Many megaflows in a real vswitchd, quickly: frames from one host to N
distinct unknown destination MACs.  The NORMAL pipeline floods each and
installs one megaflow per destination (mask: in_port, VLAN, both MACs), so
N frames make N megaflows.  Start the daemon with a large --max-idle: they
see no traffic afterwards.

    fill(ns, "eth0", ctl, 100_000)   # -> megaflows the switch holds
    dst_mac(i)                       # the i-th destination, "02:00:..."
"""
import re
import socket
import struct
import subprocess
import time

from helpers import netns

DST_BASE = 0x020000000000  # locally administered unicast
ETH_P_IP = 0x0800
UDP_PROTO = 17
IP_TTL = 64
UDP_PORT = 9  # discard
PAYLOAD = bytes(18)  # pads the frame to Ethernet's 60-byte minimum
SRC_ADDR, DST_ADDR = "192.0.2.1", "192.0.2.2"  # TEST-NET-1: no host answers
BURST, BURST_PAUSE_S = 256, 0.01  # frames per send burst: the upcall ring's pace
ROUNDS = 10  # resends (of all: installed ones just hit) before giving up
SETTLE_S = 1.0


def dst_mac(i):
    return ":".join(f"{b:02x}" for b in (DST_BASE | (i + 1)).to_bytes(6, "big"))


def frame(src_mac, i):
    """An IPv4/UDP frame from src_mac (bytes) to destination number i."""
    udp = struct.pack("!HHHH", UDP_PORT, UDP_PORT, 8 + len(PAYLOAD), 0) + PAYLOAD
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, IP_TTL, UDP_PROTO, 0,
                     socket.inet_aton(SRC_ADDR), socket.inet_aton(DST_ADDR))
    return (DST_BASE | (i + 1)).to_bytes(6, "big") + src_mac + struct.pack("!H", ETH_P_IP) + ip + udp


def megaflows(ctl):
    """How many megaflows the switch holds (ovs-appctl memory/show)."""
    text = subprocess.run(["ovs-appctl", "-t", ctl, "memory/show"], capture_output=True,
                          text=True, timeout=30).stdout
    m = re.search(r"udpif keys:(\d+)", text)
    return int(m[1]) if m else 0


def fill(ns, ifname, ctl, n):
    """Sends from `ifname` in `ns` until the switch behind it holds n
    megaflows more than before, or ROUNDS passed; returns what it holds."""
    with netns.entered(ns):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        sock.bind((ifname, 0))
    src = bytes.fromhex(netns.run(ns, "cat", f"/sys/class/net/{ifname}/address").stdout.strip()
                        .replace(":", ""))
    frames = [frame(src, i) for i in range(n)]
    want = megaflows(ctl) + n
    try:
        for _ in range(ROUNDS):
            for start in range(0, n, BURST):
                for f in frames[start:start + BURST]:
                    sock.send(f)
                time.sleep(BURST_PAUSE_S)
            time.sleep(SETTLE_S)
            have = megaflows(ctl)
            if have >= want:
                break
        return have
    finally:
        sock.close()
