"""Where a flow-mod's time goes inside vswitchd, without sockets.

    python3 bench/of_flow_mod_decode.py [--rules 20000] [--rounds 5]

The flow-mods of of_scale.py's rule set (`priority=P,tcp,nw_dst=A,tp_dst=B,
actions=output:2`, OF1.3, as ovs-ofctl encodes them: OXM eth_type, ip_proto,
ipv4_dst, tcp_dst; apply-actions output), each followed by a barrier, as
bytes.  Timed per message, best round of --rounds:

  table codec     codec.decode_by_table (Struct/Reader/tlvs tables)
  lean decoder    flow_mod_fast.decode_flow_mod13
  objects alone   building the same FlowMod, Match, ApplyActions and Output
                  from values already parsed: what any decoder, C included,
                  still has to do for the Python table (the floor)
  decode+handle   ofp.decode and OFSwitch.handle of flow-mod and barrier,
                  and the barrier reply encoded: the whole per-rule work of
                  the daemon except the socket calls and the event loop
  connection      OFConnection.data_received of each flow-mod + barrier
                  (as one read brings them) on a transport that drops the
                  replies: framing, the barrier answered from its header,
                  the flow-mod into OFSwitch; CPU time (process_time) per
                  block of BLOCK rules, the fastest block (load moves the
                  others)

It answers whether a C decoder would pay: the most it could save is the
lean decoder's time minus the objects' (which must still be built in
Python for the table).  Not a test.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from vswitch.ofproto.ofp import ApplyActions, Match, Output, codec, decode, encode  # noqa: E402
from vswitch.ofproto.ofp import messages as m  # noqa: E402
from vswitch.ofproto.ofp.constants import OFPFC_ADD  # noqa: E402
from vswitch.ofproto.ofp.flow_mod_fast import decode_flow_mod13  # noqa: E402

OF13 = 4
ETH_IP, TCP = 0x0800, 6
NET = 0x0A000000
OUT_PORT = 2
MAX_LEN = 0          # ovs-ofctl's max_len for output to a port
PORTS = 60000
BLOCK = 2000         # rules per timed block of the connection row


class _Host:
    def flush_bridge(self, name):
        """No datapath here: nothing to flush."""


class _RevalidatingHost(_Host):
    """As the Switch with no megaflows: revalidation finds nothing to do."""

    def revalidate_rules(self, name, changes):
        """No megaflows: none to delete."""


class _Mgr:
    def __init__(self, switch):
        self.switch, self.clock = switch, time.monotonic

    def admit(self, conn):
        return True

    def connected(self, conn):
        """Nothing to announce."""

    def disconnected(self, conn):
        """Nothing to forget."""


class _Transport:
    """Counts the writes (one per read: the barrier reply)."""

    def __init__(self):
        self.writes = 0

    def write(self, data):
        self.writes += 1

    def get_extra_info(self, name, default=None):
        """No socket (so no busy-polling) and no TLS."""
        return default

    def pause_reading(self):
        """Never asked here (no stream, under the budget)."""

    def resume_reading(self):
        """Never asked here."""

    def close(self):
        """Nothing to close."""


def connection_block_time(items):
    """Seconds of CPU per rule of the fastest BLOCK-rule block."""
    import asyncio
    from vswitch.ofproto.conn.ofconn import OFConnection
    from vswitch.ofproto.ofswitch import OFSwitch

    async def run():
        conn = OFConnection(_Mgr(OFSwitch("br0", _RevalidatingHost())), "bench", False)
        transport = _Transport()
        conn.connection_made(transport)
        conn.data_received(encode(m.Hello(versions=(OF13,), version=OF13)))
        best, t0 = float("inf"), time.process_time()
        for i, (fm, barrier) in enumerate(items, 1):
            conn.data_received(fm + barrier)
            if i % BLOCK == 0:
                t1 = time.process_time()
                best, t0 = min(best, (t1 - t0) / BLOCK), t1
        if transport.writes != len(items) + 1:   # hello + one barrier reply per rule
            raise RuntimeError(f"{transport.writes} writes for {len(items)} rules")
        return best
    return asyncio.run(run())


def flow_mods(n):
    from of_scale import PRIORITIES
    import random
    rng = random.Random(1)
    out = []
    for i in range(n):
        match = Match([("eth_type", (ETH_IP, None)), ("ip_proto", (TCP, None)),
                       ("ipv4_dst", (NET + i, None)), ("tcp_dst", (1 + i % PORTS, None))])
        fm = m.FlowMod(command=OFPFC_ADD, priority=rng.randrange(1, PRIORITIES), match=match,
                       instructions=[ApplyActions([Output(OUT_PORT, MAX_LEN)])], version=OF13, xid=2 * i)
        out.append((encode(fm), encode(m.BarrierRequest(version=OF13, xid=2 * i + 1))))
    return out


def timed(fn, items, rounds):
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn(items)
        best = min(best, time.perf_counter() - t0)
    return best / len(items)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    msgs = flow_mods(args.rules)
    fms = [fm for fm, _ in msgs]
    assert all(decode_flow_mod13(b) == codec.decode_by_table(b) for b in fms[:100])

    def table(items):
        for b in items:
            codec.decode_by_table(b)

    def lean(items):
        for b in items:
            decode_flow_mod13(b)

    parsed = [(fm.xid, fm.priority, [(k, v) for k, v in fm.match.items()])
              for fm in (decode_flow_mod13(b) for b in fms)]

    def objects(items):
        for xid, priority, pairs in items:
            m.FlowMod(version=OF13, xid=xid, cookie=0, cookie_mask=0, table_id=0, command=OFPFC_ADD,
                      idle_timeout=0, hard_timeout=0, priority=priority, buffer_id=0xFFFFFFFF,
                      out_port=0xFFFFFFFF, out_group=0xFFFFFFFF, flags=0, match=Match(pairs),
                      instructions=[ApplyActions([Output(OUT_PORT, MAX_LEN)])])

    def whole(items):
        from vswitch.ofproto.ofswitch import OFSwitch
        ofs = OFSwitch("br0", _Host())
        for fm, barrier in items:
            ofs.handle(decode(fm), 0.0)
            for reply in ofs.handle(decode(barrier), 0.0):
                encode(reply)

    from of_scale import loadavg
    print(f"| per flow-mod ({args.rules:,} rules, best of {args.rounds}; load {loadavg()}) | us |")
    print("|---|---|")
    print(f"| table codec decode | {timed(table, fms, args.rounds) * 1e6:.1f} |")
    print(f"| lean decoder | {timed(lean, fms, args.rounds) * 1e6:.1f} |")
    print(f"| objects alone (the floor of any decoder) | {timed(objects, parsed, args.rounds) * 1e6:.1f} |")
    print(f"| decode + OFSwitch.handle of flow-mod and barrier, reply encoded | "
          f"{timed(whole, msgs, args.rounds) * 1e6:.1f} |")
    print(f"| OFConnection.data_received of flow-mod + barrier (CPU, fastest {BLOCK}-rule block) | "
          f"{connection_block_time(msgs) * 1e6:.1f} |")


if __name__ == "__main__":
    main()
