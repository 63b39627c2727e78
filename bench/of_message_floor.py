"""How fast can a Python OpenFlow server answer ovs-ofctl add-flows at all?

    python3 bench/of_message_floor.py [--rules 20000] [--rounds 2]

A minimal server on a unix socket answers what `ovs-ofctl -O OpenFlow13
add-flows` needs (hello, the table-features request as vswitch's OFSwitch
answers it, one barrier reply per flow-mod + barrier round trip) and drops
the flow-mods.  Four variants, each timed with the real ovs-ofctl:
asyncio streams (as conn/ofconn.py reads) or an asyncio Protocol, with or
without decoding every message with the codec.  It bounds what the message
path can reach in Python, whatever the flow table does.  Not a test.
"""
import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from vswitch.ofproto.ofp import decode, encode, split_messages  # noqa: E402
from vswitch.ofproto.ofp import messages as m  # noqa: E402

OF13 = 4
OFPT_MULTIPART_REQUEST, OFPT_BARRIER_REQUEST, OFPT_BARRIER_REPLY = 18, 20, 21
READ_CHUNK = 65536


class _Host:
    def flush_bridge(self, name):
        """No datapath here: nothing to flush."""


def make_handler(decode_all):
    from vswitch.ofproto.ofswitch import OFSwitch
    ofs = OFSwitch("br0", _Host())

    def handle(raw):
        """One message -> reply bytes or None."""
        if raw[1] == OFPT_MULTIPART_REQUEST:
            return b"".join(encode(r) for r in ofs.handle(decode(raw), 0.0))
        if decode_all:
            msg = decode(raw)
            if isinstance(msg, m.BarrierRequest):
                return encode(m.BarrierReply(version=msg.version, xid=msg.xid))
            return None
        if raw[1] == OFPT_BARRIER_REQUEST:
            return raw[:1] + bytes([OFPT_BARRIER_REPLY]) + raw[2:8]
        return None
    return handle


HELLO = encode(m.Hello(versions=(OF13,), version=OF13))


def streams_server(handle):
    async def serve(reader, writer):
        writer.write(HELLO)
        buf = b""
        while True:
            data = await reader.read(READ_CHUNK)
            if not data:
                break
            raws, buf = split_messages(buf + data)
            for raw in raws:
                out = handle(raw)
                if out:
                    writer.write(out)
            await writer.drain()
        writer.close()
    return lambda path: asyncio.start_unix_server(serve, path)


def protocol_server(handle):
    class Conn(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buf = transport, b""
            transport.write(HELLO)

        def data_received(self, data):
            raws, self.buf = split_messages(self.buf + data)
            for raw in raws:
                out = handle(raw)
                if out:
                    self.transport.write(out)
    return lambda path: asyncio.get_running_loop().create_unix_server(Conn, path)


def serve_forever(kind, decode_all, path):
    handle = make_handler(decode_all)
    start = (streams_server if kind == "streams" else protocol_server)(handle)

    async def main():
        server = await start(path)
        async with server:
            await server.serve_forever()
    asyncio.run(main())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="of-floor-")
    path = os.path.join(work, "s.sock")
    from of_scale import loadavg, tcp_rules, write_rules
    rules = write_rules(tcp_rules(args.rules))
    print(f"| server | decode | ovs-ofctl add-flows of {args.rules:,} rules (s, per round) |")
    print("|---|---|---|")
    try:
        for kind in ("streams", "protocol"):
            for decode_all in (True, False):
                times = []
                for _ in range(args.rounds):
                    proc = subprocess.Popen([sys.executable, __file__, "--serve-path", path, kind,
                                             "1" if decode_all else "0"])
                    try:
                        while not os.path.exists(path):
                            time.sleep(0.05)
                        t0 = time.perf_counter()
                        subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flows", f"unix:{path}", rules],
                                       check=True, timeout=600, capture_output=True)
                        times.append(time.perf_counter() - t0)
                    finally:
                        proc.terminate()
                        proc.wait()
                        if os.path.exists(path):
                            os.unlink(path)
                print(f"| {kind} | {'yes' if decode_all else 'no'} | {', '.join(f'{t:.2f}' for t in times)} |")
        print(f"\nload {loadavg()}")
    finally:
        os.unlink(rules)
        os.rmdir(work)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve-path":   # a server child: PATH KIND DECODE
        serve_forever(sys.argv[3], sys.argv[4] == "1", sys.argv[2])
    else:
        main()
