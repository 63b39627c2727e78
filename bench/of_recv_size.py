"""What one socket read costs by how it is made: asyncio's default read
size versus a preallocated buffer.

    python3 bench/of_recv_size.py [--reads 100000] [--size 112]

A plain asyncio Protocol's transport reads with `sock.recv(max_size)`
(256 KiB in asyncio): a bytes object that size is allocated and shrunk to
what arrived, on every read.  A BufferedProtocol's transport reads with
`recv_into` a buffer the protocol keeps.  ovs-ofctl's add-flows makes one
read per rule (a flow-mod and its barrier, 112 bytes), so this cost is per
rule.  One unix socketpair, a message sent and then read back, only the
read timed; medians of the per-read times.  Not a test.
"""
import argparse
import socket
import statistics
import time

ASYNCIO_MAX_SIZE = 256 * 1024     # selector_events._SelectorTransport.max_size
READ_SIZE = 65536                 # conn/ofconn.py's READ_SIZE


def timed_reads(reader, n, size):
    a, b = socket.socketpair()
    msg = b"x" * size
    times = []
    try:
        for _ in range(n):
            a.send(msg)
            t0 = time.perf_counter()
            reader(b)
            times.append(time.perf_counter() - t0)
    finally:
        a.close()
        b.close()
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reads", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=112, help="bytes per message (ovs-ofctl: flow-mod + barrier)")
    args = ap.parse_args()
    buf = memoryview(bytearray(READ_SIZE))

    def recv_into_copy(sock):
        n = sock.recv_into(buf)
        return bytes(buf[:n])

    cases = [(f"recv({ASYNCIO_MAX_SIZE}) (asyncio Protocol)", lambda s: s.recv(ASYNCIO_MAX_SIZE)),
             (f"recv({READ_SIZE})", lambda s: s.recv(READ_SIZE)),
             (f"recv_into a {READ_SIZE}-byte buffer + copy (BufferedProtocol, ofconn)", recv_into_copy)]
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"| read of a {args.size}-byte message ({args.reads:,} reads, median; load {load}) | us |")
    print("|---|---|")
    for label, reader in cases:
        print(f"| {label} | {timed_reads(reader, args.reads, args.size) * 1e6:.2f} |")


if __name__ == "__main__":
    main()
