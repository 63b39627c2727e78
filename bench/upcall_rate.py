"""Flow setups per second through miss -> xlate (NORMAL) -> install -> execute.

    python3 bench/upcall_rate.py [--flows 30000] [--flood | --bond] [--tcp]

Runs the real datapath and slow path (vswitch.switch.Switch) in this process
on two veth ports in a private namespace, sends frames that are each a new
flow (a new source MAC) from the peer end, and handles the upcalls as the
daemon does.  Reports wall-clock setups per second (the sender shares this
process and the machine) and setups per CPU-second of the slow path, which is
what bounds a dedicated handler.  Target (issue 3): 50,000 per second.

--bond puts the output side in a two-member balance-tcp bond instead of one
port (`add-bond br0 bond0 qa ra bond_mode=balance-tcp
other_config:bond-rebalance-interval=0`, no LACP): every flooded new flow then
goes through the bond's admission and member selection and its megaflow
carries the bond's tag.  --bond implies --flood.

--flood addresses the frames to a unicast MAC that is never a source
(02:ff:00:00:00:01), so NORMAL floods every new flow out of the other
port(s).  By default the destination is 02:00:00:00:00:01, which the first
frame itself teaches the MAC table as behind the ingress port, so every later
setup ends in a drop megaflow (no output port, no bond member choice).

--tcp sends IPv4/TCP frames (a new source MAC and a new TCP source port each)
instead of the L2-only 0x88b5 frames, so balance-tcp hashes the 5-tuple
rather than falling back to L2.
"""
import argparse
import os
import select
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from helpers import netns  # noqa: E402
from vswitch.datapath.dpif import Datapath  # noqa: E402
from vswitch.switch import Switch  # noqa: E402


def config(bond=False):
    if bond:
        from vswitch.config.commands import execute
        from vswitch.config.schema import empty_config
        cfg, _ = execute(empty_config(), [
            ["add-br", "br0"], ["set", "bridge", "br0", "other_config:mac-table-size=1000000"],
            ["add-port", "br0", "pa"],
            ["add-bond", "br0", "bond0", "qa", "ra", "bond_mode=balance-tcp",
             "other_config:bond-rebalance-interval=0"]])
        # Like the plain configuration: no bridge-local (internal) port, so a
        # flood leaves on the bond only.
        local = [u for u, p in cfg["Port"].items() if p["name"] == "br0"]
        for u in local:
            for i in cfg["Port"].pop(u)["interfaces"]:
                cfg["Interface"].pop(i)
        for br in cfg["Bridge"].values():
            br["ports"] = [u for u in br["ports"] if u not in local]
        return cfg
    return {"Bridge": {"b": {"name": "br0", "ports": ["p1", "p2"],
                             "other_config": {"mac-table-size": "1000000"}}},
            "Port": {"p1": {"name": "pa", "interfaces": ["i1"]}, "p2": {"name": "qa", "interfaces": ["i2"]}},
            "Interface": {"i1": {"name": "pa", "type": ""}, "i2": {"name": "qa", "type": ""}}}


def ipv4_tcp(sport):
    """0x0800 + a 20-byte IPv4 header + a 20-byte TCP SYN (checksums left 0)."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    tcp = struct.pack("!HHIIBBHHH", sport, 80, 0, 0, 0x50, 0x02, 65535, 0, 0)
    return b"\x08\x00" + ip + tcp + b"\0" * 6


def veth_pairs(ns, pairs):
    """Veth pairs (switch end, sender end) in namespace `ns`, all up."""
    for a, b in pairs:
        netns.run(ns, "ip", "link", "add", "name", a, "type", "veth", "peer", "name", b)
        netns.run(ns, "ip", "link", "set", a, "up")
        netns.run(ns, "ip", "link", "set", b, "up")


def drive(sw, dp, sock, frames, burst=256, idle=0.3):
    """Sends `frames` from `sock` in bursts, handling upcalls as the daemon
    does, until none come for `idle` seconds -> (wall seconds, slow-path CPU
    seconds)."""
    n = len(frames)
    cpu, sent, t0 = 0.0, 0, time.perf_counter()
    while True:
        for frame in frames[sent:sent + burst]:
            sock.send(frame)
        sent = min(n, sent + burst)
        ready, _, _ = select.select([dp.upcall_fd], [], [], 0.0 if sent < n else idle)
        if ready:
            c0 = time.thread_time()
            sw.handle_upcalls()
            cpu += time.thread_time() - c0
        elif sent >= n:
            break
    return time.perf_counter() - t0, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=30000)
    ap.add_argument("--bond", action="store_true", help="qa+ra as a balance-tcp bond")
    ap.add_argument("--tcp", action="store_true", help="IPv4/TCP frames instead of L2-only")
    ap.add_argument("--flood", action="store_true", help="unknown unicast destination: flooded")
    args = ap.parse_args()
    dst = bytes.fromhex("02ff00000001" if args.flood or args.bond else "020000000001")
    n = args.flows
    with netns.namespace("uprate") as ns:
        veth_pairs(ns, (("pa", "pb"), ("qa", "qb")) + ((("ra", "rb"),) if args.bond else ()))
        with netns.entered(ns):
            dp = Datapath(upcall_ring_size=4096)
            sw = Switch(dp)
            sw.apply_config(config(args.bond))  # opens the ports: must run in the namespace
            if args.bond:
                sw.run_features()  # the daemon's periodic call: enables the members
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        try:
            sock.bind(("pb", 0))
            # ethertype 0x88b5 (local experimental): parsed as L2 only
            if args.tcp:
                frames = [dst + struct.pack("!HI", 0x0200, i + 1)
                          + ipv4_tcp(1024 + i % 64000) for i in range(n)]
            else:
                frames = [dst + struct.pack("!HI", 0x0200, i + 1)
                          + b"\x88\xb5" + b"\0" * 46 for i in range(n)]
            wall, cpu = drive(sw, dp, sock, frames)
            st = dp.stats()
            outs = {}
            for flow in dp.flow_dump():
                ports = tuple(a[1] for a in flow.actions if a[0] == "output")
                outs[ports] = outs.get(ports, 0) + 1
            names = {i.dp_port: i.name for i in sw.ifaces.values()}
            print("megaflows by output ports: " + ", ".join(
                f"{'+'.join(names.get(p, str(p)) for p in k) or 'drop'}: {v:,}" for k, v in sorted(outs.items())))
            if args.bond:
                members = sw.feature_show("bond", "bond0")[0]["members"]
                port_of = {sw.ifaces[m].dp_port: m for m in ("qa", "ra")}
                chose = {m: 0 for m in ("qa", "ra")}
                for flow in dp.flow_dump():
                    for act in flow.actions:
                        if act[0] == "output" and act[1] in port_of:
                            chose[port_of[act[1]]] += 1
                print("bond0 members: " + ", ".join(
                    f"{m} enabled={v['enabled']}, megaflows output to it: {chose[m]:,}"
                    for m, v in members.items()))
            print(f"frames sent: {n:,}; megaflows installed: {st['n_flows']:,}; "
                  f"upcalls: {st['upcalls']:,}; upcall drops (ring full): {st['upcall_drops']:,}")
            print(f"wall clock: {st['n_flows'] / wall:,.0f} setups/s; "
                  f"slow path: {st['upcalls'] / cpu:,.0f} setups per CPU-second")
        finally:
            sock.close()
            sw.close()
            dp.close()


if __name__ == "__main__":
    main()
