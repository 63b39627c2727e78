"""Flow setups per second through miss -> xlate (NORMAL) -> install -> execute.

    python3 bench/upcall_rate.py [--flows 30000]

Runs the real datapath and slow path (vswitch.switch.Switch) in this process
on two veth ports in a private namespace, sends frames that are each a new
flow (a new source MAC) from the peer end, and handles the upcalls as the
daemon does.  Reports wall-clock setups per second (the sender shares this
process and the machine) and setups per CPU-second of the slow path, which is
what bounds a dedicated handler.  Target (issue 3): 50,000 per second.
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


def config():
    return {"Bridge": {"b": {"name": "br0", "ports": ["p1", "p2"],
                             "other_config": {"mac-table-size": "1000000"}}},
            "Port": {"p1": {"name": "pa", "interfaces": ["i1"]}, "p2": {"name": "qa", "interfaces": ["i2"]}},
            "Interface": {"i1": {"name": "pa", "type": ""}, "i2": {"name": "qa", "type": ""}}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=30000)
    n = ap.parse_args().flows
    with netns.namespace("uprate") as ns:
        for a, b in (("pa", "pb"), ("qa", "qb")):
            netns.run(ns, "ip", "link", "add", "name", a, "type", "veth", "peer", "name", b)
            netns.run(ns, "ip", "link", "set", a, "up")
            netns.run(ns, "ip", "link", "set", b, "up")
        with netns.entered(ns):
            dp = Datapath(upcall_ring_size=4096)
            sw = Switch(dp)
            sw.apply_config(config())  # opens the ports: must run in the namespace
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        try:
            sock.bind(("pb", 0))
            # ethertype 0x88b5 (local experimental): parsed as L2 only
            frames = [bytes.fromhex("020000000001") + struct.pack("!HI", 0x0200, i + 1)
                      + b"\x88\xb5" + b"\0" * 46 for i in range(n)]
            cpu, sent, t0 = 0.0, 0, time.perf_counter()
            while True:
                for frame in frames[sent:sent + 256]:
                    sock.send(frame)
                sent = min(n, sent + 256)
                ready, _, _ = select.select([dp.upcall_fd], [], [], 0.0 if sent < n else 0.3)
                if ready:
                    c0 = time.thread_time()
                    sw.handle_upcalls()
                    cpu += time.thread_time() - c0
                elif sent >= n:
                    break
            wall = time.perf_counter() - t0
            st = dp.stats()
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
