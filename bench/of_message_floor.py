"""How fast can a Python OpenFlow server answer ovs-ofctl add-flows at all?

    python3 bench/of_message_floor.py [--rules 20000] [--rounds 2]

A minimal server on a unix socket answers what `ovs-ofctl -O OpenFlow13
add-flows` needs (hello, the table-features request as vswitch's OFSwitch
answers it, one barrier reply per flow-mod + barrier round trip) and drops
the flow-mods.  Eight variants, each timed with the real ovs-ofctl:
asyncio streams (as conn/ofconn.py once read), an asyncio Protocol, a
BufferedProtocol reading into a preallocated buffer, or that plus the
bounded busy-polling after each reply (as conn/ofconn.py reads now), with
or without decoding every message with the codec.  Beside
the wall time, the server's own CPU time per rule (its rusage at exit).  It
bounds what the message path can reach in Python, whatever the flow table
does.  Not a test.
"""
import argparse
import asyncio
import os
import resource
import signal
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


def answer(conn, handle, data):
    """Handle the whole messages of conn.buf + data; write what they get."""
    raws, conn.buf = split_messages(conn.buf + data)
    for raw in raws:
        out = handle(raw)
        if out:
            conn.transport.write(out)


def protocol_server(handle):
    class Conn(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buf = transport, b""
            transport.write(HELLO)

        def data_received(self, data):
            answer(self, handle, data)
    return lambda path: asyncio.get_running_loop().create_unix_server(Conn, path)


def buffered_server(handle):
    class Conn(asyncio.BufferedProtocol):
        def connection_made(self, transport):
            self.transport, self.buf = transport, b""
            self.rbuf = memoryview(bytearray(READ_CHUNK))
            transport.write(HELLO)

        def get_buffer(self, sizehint):
            return self.rbuf

        def buffer_updated(self, nbytes):
            answer(self, handle, bytes(self.rbuf[:nbytes]))
    return lambda path: asyncio.get_running_loop().create_unix_server(Conn, path)


def busypoll_server(handle):
    """buffered, plus conn/busy_poll.py's bounded polling after each reply."""
    from vswitch.ofproto.conn.busy_poll import BusyPoller
    import time

    class Conn(asyncio.BufferedProtocol):
        def connection_made(self, transport):
            self.transport, self.buf = transport, b""
            self._rbuf = memoryview(bytearray(READ_CHUNK))
            self.poller = BusyPoller.for_transport(transport)
            transport.write(HELLO)

        def get_buffer(self, sizehint):
            return self._rbuf

        def buffer_updated(self, nbytes):
            streaming = self.poller.streaming(time.perf_counter())
            self.data_received(bytes(self._rbuf[:nbytes]))
            if streaming:
                self.poller.run(self)
            else:
                self.poller.replied_at = time.perf_counter()

        def data_received(self, data):
            answer(self, handle, data)

        def may_poll(self):
            return not self.transport.is_closing()

        def connection_lost(self, exc):
            self.poller.close()
    return lambda path: asyncio.get_running_loop().create_unix_server(Conn, path)


SERVERS = {"streams": streams_server, "protocol": protocol_server, "buffered": buffered_server,
           "busypoll": busypoll_server}


def serve_forever(kind, decode_all, path, cpu_path):
    handle = make_handler(decode_all)
    start = SERVERS[kind](handle)

    async def main():
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        server = await start(path)
        async with server:
            await stop
    asyncio.run(main())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(cpu_path, "w") as f:
        f.write(str(usage.ru_utime + usage.ru_stime))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--kinds", default="streams,protocol,buffered")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="of-floor-")
    path = os.path.join(work, "s.sock")
    cpu_path = os.path.join(work, "cpu")
    from of_scale import loadavg, tcp_rules, write_rules
    rules = write_rules(tcp_rules(args.rules))
    print(f"| server | decode | ovs-ofctl add-flows of {args.rules:,} rules (s, per round) "
          "| server CPU per rule (us, per round, start-up included) |")
    print("|---|---|---|---|")
    try:
        for kind in args.kinds.split(","):
            for decode_all in (True, False):
                times, cpus = [], []
                for _ in range(args.rounds):
                    proc = subprocess.Popen([sys.executable, __file__, "--serve-path", path, kind,
                                             "1" if decode_all else "0", cpu_path])
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
                    with open(cpu_path) as f:
                        cpus.append(float(f.read()) / args.rules * 1e6)
                    os.unlink(cpu_path)
                print(f"| {kind} | {'yes' if decode_all else 'no'} | {', '.join(f'{t:.2f}' for t in times)} "
                      f"| {', '.join(f'{c:.0f}' for c in cpus)} |")
        print(f"\nload {loadavg()}")
    finally:
        os.unlink(rules)
        os.rmdir(work)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--serve-path":   # a server child: PATH KIND DECODE CPU-FILE
        serve_forever(sys.argv[3], sys.argv[4] == "1", sys.argv[2], sys.argv[5])
    else:
        main()
